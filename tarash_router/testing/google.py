"""Fake Google generative media APIs on loopback: the Gemini Developer API and Vertex AI.

Follows https://ai.google.dev/gemini-api/docs/video, https://ai.google.dev/gemini-api/docs/imagen and
https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation.

Gemini Developer API (``x-goog-api-key``):
- ``POST /v1beta/models/{model}:predictLongRunning`` (Veo) → ``{"name": "models/{model}/operations/{id}"}``;
- ``GET /v1beta/models/{model}/operations/{id}`` (the operation name pasted unescaped) → the
  operation: running (no ``done``), then ``done: true`` with
  ``response.generateVideoResponse.generatedSamples[0].video.uri``, or with
  ``raiMediaFilteredCount``/``raiMediaFilteredReasons`` and no sample, or with ``error``;
- ``GET /v1beta/files/{id}:download?alt=media`` (key required) → 302 to an unauthenticated
  storage URL serving the mp4 bytes, as the real API does;
- ``POST /v1beta/models/{imagen}:predict`` → ``{"predictions": [{"bytesBase64Encoded", "mimeType"}]}``;
- ``POST /v1beta/models/{gemini-image}:generateContent`` → ``candidates[0].content.parts`` with
  ``inlineData`` images.
The Gemini API takes images inline only: a ``gcsUri`` (or anything but base64 bytes with a
mime type) is a 400, and so are the ``parameters`` it does not know (``seed``,
``generateAudio``, ``storageUri`` ...), like the real API's "Unknown name" errors.

Vertex AI (``Authorization: Bearer <token>``), under ``/v1beta1/`` (the SDK) or ``/v1/`` (the docs):
- ``POST projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning`` →
  ``{"name": "projects/{p}/locations/{l}/publishers/google/models/{m}/operations/{uuid}"}``;
- ``POST …/models/{m}:fetchPredictOperation`` with ``{"operationName"}`` → the operation; done
  answers carry ``response.videos[0]`` with ``gcsUri`` when ``parameters.storageUri`` was set,
  else ``bytesBase64Encoded``, plus ``mimeType`` and ``raiMediaFilteredCount``;
- ``POST …/models/{m}:predict`` → Imagen predictions (``gcsUri`` with ``storageUri``, else bytes).
Express mode (no ``projects/…/locations/…`` prefix, ``x-goog-api-key``) is served too. Images
take ``bytesBase64Encoded`` or a ``gs://`` ``gcsUri``; an https URL sent as ``gcsUri`` is a 400
(Vertex reads only Cloud Storage URIs there).

Errors use Google's envelope ``{"error": {"code", "message", "status"}}``. Each create
(``predictLongRunning``, ``predict``, ``generateContent``) follows a :class:`GoogleJob` script.

Run standalone: ``python -m tarash_router.testing.google --port 0``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._server import (
    Failure, Headers, ScriptedFake, StatusScript, credential, delayed_failure, json_response, key_accepted,
)

__all__ = ["FakeGoogle", "GoogleJob", "GoogleOperation", "GoogleSubmit", "google_error", "rate_limited",
           "FAKE_MP4", "FAKE_PNG"]

RUNNING, DONE = "running", "done"
# Stand-in media (magic bytes only).
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
FAKE_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                 504: "DEADLINE_EXCEEDED"}
# `parameters` the Gemini API knows, per method (anything else: 400 "Unknown name").
GEMINI_VIDEO_PARAMETERS = frozenset({"aspectRatio", "resolution", "durationSeconds", "sampleCount", "personGeneration",
                                     "negativePrompt", "enhancePrompt"})
GEMINI_IMAGE_PARAMETERS = frozenset({"sampleCount", "aspectRatio", "personGeneration", "guidanceScale", "safetySetting",
                                     "includeRaiReason", "includeSafetyAttributes", "outputOptions", "language",
                                     "sampleImageSize", "enhancePrompt"})
VIDEO_INSTANCE_KEYS = frozenset({"prompt", "image", "lastFrame", "referenceImages", "video"})
VERTEX_VIDEO_INSTANCE_KEYS = VIDEO_INSTANCE_KEYS | {"mask"}

_PATH = re.compile(
    r"^/(?P<version>v1beta1|v1beta|v1)/"
    r"(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"(?:(?P<publisher>publishers/google/)?models/(?P<model>[A-Za-z0-9._-]+)"
    r"(?::(?P<method>[A-Za-z]+)|/operations/(?P<op>[A-Za-z0-9_-]+))"
    r"|files/(?P<file>[A-Za-z0-9_-]+):download)$")


def google_error(status: int, message: str, status_name: str | None = None, *,
                 details: list[Any] | None = None, headers: dict[str, str] | None = None) -> Failure:
    """A scripted failure in Google's error envelope."""
    error: dict[str, Any] = {"code": status, "message": message,
                             "status": status_name or _STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return Failure(status=status, json={"error": error}, headers=dict(headers or {}))


def rate_limited(retry_after: float | None = 0.01) -> Failure:
    """429 RESOURCE_EXHAUSTED; a Retry-After header (seconds) when given."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return google_error(429, "Resource has been exhausted (e.g. check quota).", headers=headers)


@dataclass
class GoogleJob(StatusScript):
    """Script for one create (a Veo operation, an Imagen predict or a generateContent).

    ``statuses`` is what successive operation polls return (the last repeats): ``"running"``,
    ``"done"`` or a dict with ``done``, ``metadata``, ``error`` or ``response`` keys that are
    merged into the answer. A done operation ends in ``error`` when set (a failed operation),
    else in ``rai_reasons`` when set (samples filtered, none returned), else in a video:
    ``video`` replaces the generated sample's video object. ``metadata`` is sent with running
    answers (the real content is unverified, so none by default).
    ``predictions`` replaces an Imagen answer; ``filtered`` turns that many of the generated
    images into ``{"raiFilteredReason"}`` entries (put last). ``candidates`` /
    ``prompt_feedback`` replace a generateContent answer's fields.
    ``submit_failures`` are answered before acceptance, one per attempt; ``poll_failures`` by
    1-based poll number (they do not advance the sequence). ``delay`` precedes every answer.
    """

    statuses: list[str | dict[str, Any]] = field(default_factory=lambda: [RUNNING, RUNNING, DONE])
    error: dict[str, Any] | None = None
    rai_reasons: list[str] | None = None
    video: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    predictions: list[dict[str, Any]] | None = None
    filtered: int = 0
    candidates: list[dict[str, Any]] | None = None
    prompt_feedback: dict[str, Any] | None = None
    submit_failures: list[Failure] = field(default_factory=list)
    poll_failures: dict[int, Failure] = field(default_factory=dict)
    delay: float = 0.0

    def status_dicts(self) -> list[dict[str, Any]]:
        """``statuses`` as dicts: ``"done"`` is ``{"done": True}``, ``"running"`` ``{"done": False}``."""
        return [{"done": s == DONE} if isinstance(s, str) else dict(s) for s in self.statuses]

    @classmethod
    def failed(cls, message: str = "Video generation failed.", code: int = 13, **kwargs: Any) -> GoogleJob:
        """An operation that finishes with ``done: true`` and ``error {code, message}``."""
        return cls(error={"code": code, "message": message}, **kwargs)

    @classmethod
    def moderated(cls, reasons: list[str] | None = None, **kwargs: Any) -> GoogleJob:
        """A done operation whose only sample was filtered by Responsible AI."""
        return cls(rai_reasons=reasons or ["Video filtered: the prompt violates the usage guidelines."], **kwargs)


@dataclass
class GoogleSubmit:
    """An accepted create as received (body byte-exact)."""

    api: str  # "gemini" or "vertex"
    method: str  # predictLongRunning | predict | generateContent
    model: str
    path: str
    body: bytes
    json: Any
    headers: Headers
    operation: str | None = None  # the operation name, for predictLongRunning


@dataclass
class GoogleOperation:
    """Server-side state of one long-running operation."""

    name: str
    api: str
    model: str
    script: GoogleJob
    submitted: dict[str, Any]
    step: int = 0
    polls: int = 0
    result: dict[str, Any] | None = None  # the done response, made once


def _error(status: int, message: str, details: list[Any] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return json_response(status, {"error": error})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class FakeGoogle(ScriptedFake[GoogleJob]):
    """Loopback fake of the Gemini API and Vertex AI generative media endpoints, scripted per create.

    ``api_key=None`` accepts any non-empty ``x-goog-api-key`` (Gemini API, Vertex express mode);
    ``access_token=None`` accepts any ``Authorization: Bearer <token>`` (Vertex). All create
    methods share one script FIFO.
    """

    job_type = GoogleJob
    auth_help = "require x-goog-api-key: <api-key>"

    def __init__(self, api_key: str | None = None, access_token: str | None = None, **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.access_token = access_token

    def _init_state(self) -> None:
        super()._init_state()
        self.operations: dict[str, GoogleOperation] = {}
        self.submits: list[GoogleSubmit] = []
        self.files: dict[str, bytes] = {}
        self.assets: dict[str, tuple[bytes, str]] = {}

    # -- scripting / inspection --------------------------------------------------------------

    @property
    def submit_attempts(self) -> int:
        """Create calls received past authentication, accepted or not."""
        return self.attempts

    def add_asset(self, name: str, content: bytes, content_type: str = "image/png") -> str:
        """Serve ``content`` at a plain (unauthenticated) https-style URL, as a test input image."""
        with self._lock:
            self.assets[name] = (content, content_type)
        return f"{self.base_url}/assets/{name}"

    def create_count(self) -> int:
        """Long-running operations created (accepted predictLongRunning calls)."""
        return sum(1 for s in self.submits if s.method == "predictLongRunning")

    def predict_count(self) -> int:
        """Accepted synchronous calls (predict and generateContent)."""
        return sum(1 for s in self.submits if s.method != "predictLongRunning")

    def polls(self, name: str) -> int:
        """Polls received for the operation ``name`` (scripted failures included)."""
        op = self.operations.get(name)
        return op.polls if op else 0

    # -- routing -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/storage/{file_id}.mp4", self._storage)
        app.router.add_get("/assets/{name}", self._asset)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        match = _PATH.match(request.path)
        if match is None:
            return _error(404, f"The requested URL {request.path} was not found on this server.")
        parts = match.groupdict()
        vertex = parts["version"] in ("v1beta1", "v1") and (parts["publisher"] is not None)
        if parts["file"] is not None:
            if request.method != "GET" or vertex:
                return _error(404, "Method not found.")
            return await self._download(request, parts["file"])
        if not vertex and (parts["project"] or parts["publisher"] or parts["version"] == "v1beta1"):
            return _error(404, f"The requested URL {request.path} was not found on this server.")
        api = "vertex" if vertex else "gemini"
        unauthorized = self._check_auth(request, api, express=vertex and parts["project"] is None)
        if unauthorized is not None:
            return unauthorized
        model, method = parts["model"], parts["method"]
        if parts["op"] is not None:
            if api != "gemini" or request.method != "GET":
                return _error(404, "Method not found.")
            return await self._poll(request, f"models/{model}/operations/{parts['op']}")
        if request.method != "POST":
            return _error(404, "Method not found.")
        prefix = (f"projects/{parts['project']}/locations/{parts['location']}/" if parts["project"] else "")
        if method == "predictLongRunning":
            return await self._create(request, api, model, prefix)
        if method == "fetchPredictOperation" and api == "vertex":
            data = self.recorded(request).json
            name = data.get("operationName") if isinstance(data, dict) else None
            if not isinstance(name, str):
                return _error(400, "operationName is required.")
            resource = f"{prefix}publishers/google/models/{model}"
            if name.rpartition("/operations/")[0] != resource:
                return _error(400, f"operationName {name} does not belong to {resource}.")
            return await self._poll(request, name)
        if method == "predict":
            return await self._predict(request, api, model)
        if method == "generateContent" and api == "gemini":
            return await self._generate_content(request, model)
        return _error(404, f"Method {method} not found for {api}.")

    def _check_auth(self, request: web.Request, api: str, express: bool) -> web.Response | None:
        if api == "gemini" or express:
            key = request.headers.get("x-goog-api-key") or request.query.get("key")
            if not key:
                return _error(403, "Method doesn't allow unregistered callers (callers without established "
                                   "identity). Please use API Key or other form of API consumer identity to call "
                                   "this API.")
            if not key_accepted(key, self.api_key):
                return _error(400, "API key not valid. Please pass a valid API key.", details=[
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com"}])
            return None
        if not key_accepted(credential(request), self.access_token):
            return _error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                               "login cookie or other valid authentication credential.")
        return None

    async def _accept(self, request: web.Request, problem: str | None) -> GoogleJob | web.StreamResponse:
        """Count a create; its script when accepted, else the 400 for ``problem`` or the scripted failure."""
        self.count_attempt()
        if problem:
            return _error(400, problem)
        script, failed = await self.next_script(request)
        return script if failed is None else failed

    def _record_submit(self, request: web.Request, api: str, method: str, model: str,
                       operation: str | None = None) -> None:
        record = self.recorded(request)
        with self._lock:
            self.submits.append(GoogleSubmit(api, method, model, request.path, record.body, record.json,
                                             record.headers, operation))

    # -- videos ------------------------------------------------------------------------------

    async def _create(self, request: web.Request, api: str, model: str, prefix: str) -> web.StreamResponse:
        data = self.recorded(request).json
        script = await self._accept(request, _video_problem(data, api))
        if not isinstance(script, GoogleJob):
            return script
        op_id = uuid.uuid4().hex[:12] if api == "gemini" else str(uuid.uuid4())
        name = (f"models/{model}/operations/{op_id}" if api == "gemini"
                else f"{prefix}publishers/google/models/{model}/operations/{op_id}")
        with self._lock:
            self.operations[name] = GoogleOperation(name, api, model, script, data)
        self._record_submit(request, api, "predictLongRunning", model, name)
        return json_response(200, {"name": name})

    async def _poll(self, request: web.Request, name: str) -> web.StreamResponse:
        op = self.operations.get(name)
        if op is None:
            return _error(404, f"Operation {name} not found.")
        op.polls += 1
        script = op.script
        failed = await delayed_failure(request, script.delay, script.poll_failures.get(op.polls))
        if failed is not None:
            return failed
        entries = script.status_dicts()
        entry = entries[min(op.step, len(entries) - 1)]
        op.step += 1
        body: dict[str, Any] = {"name": op.name}
        if not entry.get("done"):
            metadata = entry.get("metadata", script.metadata)
            if metadata is not None:
                body["metadata"] = metadata
            return json_response(200, body)  # proto3 JSON leaves out done: false
        body["done"] = True
        if "response" in entry or "error" in entry:
            body.update({k: v for k, v in entry.items() if k in ("response", "error", "metadata")})
        elif script.error is not None:
            body["error"] = script.error
        else:
            if op.result is None:
                op.result = self._video_response(request, op)
            body["response"] = op.result
        return json_response(200, body)

    def _video_response(self, request: web.Request, op: GoogleOperation) -> dict[str, Any]:
        script = op.script
        if op.api == "gemini":
            inner: dict[str, Any] = {}
            if script.rai_reasons is not None:
                inner = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": list(script.rai_reasons)}
            else:
                file_id = uuid.uuid4().hex[:12]
                self.files[file_id] = FAKE_MP4
                video = {"uri": f"{self.base_url}/v1beta/files/{file_id}:download?alt=media"}
                inner = {"generatedSamples": [{"video": script.video if script.video is not None else video}]}
            return {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                    "generateVideoResponse": inner}
        response: dict[str, Any] = {"@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"}
        if script.rai_reasons is not None:
            response.update(raiMediaFilteredCount=1, raiMediaFilteredReasons=list(script.rai_reasons), videos=[])
            return response
        params = op.submitted.get("parameters") or {}
        storage = params.get("storageUri")
        if script.video is not None:
            video = script.video
        elif storage:
            video = {"gcsUri": f"{storage.rstrip('/')}/{op.name.rsplit('/', 1)[-1]}/sample_0.mp4",
                     "mimeType": "video/mp4"}
        else:
            video = {"bytesBase64Encoded": _b64(FAKE_MP4), "mimeType": "video/mp4"}
        response.update(raiMediaFilteredCount=0, videos=[video])
        return response

    # -- files -------------------------------------------------------------------------------

    async def _download(self, request: web.Request, file_id: str) -> web.StreamResponse:
        unauthorized = self._check_auth(request, "gemini", express=False)
        if unauthorized is not None:
            return unauthorized
        if request.query.get("alt") != "media":
            return json_response(200, {"name": f"files/{file_id}", "mimeType": "video/mp4"})
        if file_id not in self.files:
            return _error(404, f"File files/{file_id} not found.")
        raise web.HTTPFound(f"{self.base_url}/storage/{file_id}.mp4")

    async def _storage(self, request: web.Request) -> web.StreamResponse:
        content = self.files.get(request.match_info["file_id"])
        if content is None:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(status=200, body=content, content_type="video/mp4")

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        asset = self.assets.get(request.match_info["name"])
        if asset is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(status=200, body=asset[0], content_type=asset[1])

    # -- images ------------------------------------------------------------------------------

    async def _predict(self, request: web.Request, api: str, model: str) -> web.StreamResponse:
        data = self.recorded(request).json
        script = await self._accept(request, _predict_problem(data, api))
        if not isinstance(script, GoogleJob):
            return script
        self._record_submit(request, api, "predict", model)
        if script.predictions is not None:
            return json_response(200, {"predictions": copy.deepcopy(script.predictions)})
        params = data.get("parameters") or {}
        count = int(params.get("sampleCount") or 1)
        mime = (params.get("outputOptions") or {}).get("mimeType") or "image/png"
        storage = params.get("storageUri") if api == "vertex" else None
        made = []
        for index in range(max(0, count - script.filtered)):
            if storage:
                made.append({"gcsUri": f"{storage.rstrip('/')}/{uuid.uuid4().hex[:8]}/sample_{index}.png",
                             "mimeType": mime})
            else:
                made.append({"bytesBase64Encoded": _b64(FAKE_PNG), "mimeType": mime})
        if params.get("includeRaiReason"):
            made += [{"raiFilteredReason": "Image filtered: it may violate the usage guidelines."}
                     for _ in range(min(script.filtered, count))]
        return json_response(200, {"predictions": made} if made else {})

    async def _generate_content(self, request: web.Request, model: str) -> web.StreamResponse:
        data = self.recorded(request).json
        script = await self._accept(request, _content_problem(data))
        if not isinstance(script, GoogleJob):
            return script
        self._record_submit(request, "gemini", "generateContent", model)
        body: dict[str, Any] = {"modelVersion": model, "responseId": uuid.uuid4().hex[:16]}
        if script.prompt_feedback is not None:
            body["promptFeedback"] = script.prompt_feedback
        if script.candidates is not None:
            body["candidates"] = copy.deepcopy(script.candidates)
        elif script.prompt_feedback is None:
            body["candidates"] = [{"content": {"role": "model", "parts": [
                {"text": "Here is your image."},
                {"inlineData": {"mimeType": "image/png", "data": _b64(FAKE_PNG)}}]},
                "finishReason": "STOP", "index": 0}]
        return json_response(200, body)

    # -- command line ------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--access-token", default=None, help="require Authorization: Bearer <token> (Vertex)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **options: Any) -> FakeGoogle:
        return super().from_args(args, access_token=args.access_token, **options)


# -- request checks (what the real APIs answer with 400) ------------------------------------------


def _unknown_name(key: str, where: str) -> str:
    """The message of Google's 400 for a JSON field the API does not define."""
    return f'Invalid JSON payload received. Unknown name "{key}" at \'{where}\': Cannot find field.'


def _unknown_names(fields: dict[str, Any], allowed: frozenset[str], where: str) -> str | None:
    """:func:`_unknown_name` for the first key of ``fields`` not in ``allowed``; None when all are known."""
    unknown = next((key for key in fields if key not in allowed), None)
    return None if unknown is None else _unknown_name(unknown, where)


def _image_problem(image: Any, where: str, api: str) -> str | None:
    if not isinstance(image, dict):
        return f"{where} must be an object"
    if "gcsUri" in image:
        if api == "gemini":
            return _unknown_name("gcsUri", where)
        if not str(image["gcsUri"]).startswith("gs://"):
            return f"{where}.gcsUri must be a Cloud Storage URI (gs://...), got {str(image['gcsUri'])[:60]!r}"
        return None
    encoded = image.get("bytesBase64Encoded")
    if not isinstance(encoded, str) or not encoded:
        return f"{where}.bytesBase64Encoded is required"
    try:
        base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return f"{where}.bytesBase64Encoded is not valid base64"
    if not isinstance(image.get("mimeType"), str) or "/" not in image["mimeType"]:
        return f"{where}.mimeType is required"
    return None


def _envelope_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "Invalid JSON payload received: expected an object."
    instances = data.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        return "instances must hold exactly one instance"
    if data.get("parameters") is not None and not isinstance(data["parameters"], dict):
        return "parameters must be an object"
    return None


def _video_problem(data: Any, api: str) -> str | None:
    problem = _envelope_problem(data)
    if problem:
        return problem
    instance = data["instances"][0]
    allowed_keys = VIDEO_INSTANCE_KEYS if api == "gemini" else VERTEX_VIDEO_INSTANCE_KEYS
    if problem := _unknown_names(instance, allowed_keys, "instances[0]"):
        return problem
    if not isinstance(instance.get("prompt"), str) and "image" not in instance and "video" not in instance:
        return "instances[0].prompt is required"
    for key in ("image", "lastFrame"):
        if key in instance and (problem := _image_problem(instance[key], f"instances[0].{key}", api)):
            return problem
    refs = instance.get("referenceImages")
    if refs is not None:
        if not isinstance(refs, list) or not 1 <= len(refs) <= 3:
            return "instances[0].referenceImages takes 1 to 3 images"
        for i, ref in enumerate(refs):
            where = f"instances[0].referenceImages[{i}]"
            if not isinstance(ref, dict) or str(ref.get("referenceType", "")).upper() not in ("ASSET", "STYLE"):
                return f"{where}.referenceType must be asset or style"
            if problem := _image_problem(ref.get("image"), f"{where}.image", api):
                return problem
        if "image" in instance:
            return "referenceImages cannot be combined with an input image"
    if "lastFrame" in instance and "image" not in instance:
        return "lastFrame requires image (the first frame)"
    params = data.get("parameters") or {}
    if api == "gemini" and (problem := _unknown_names(params, GEMINI_VIDEO_PARAMETERS, "parameters")):
        return problem
    duration = params.get("durationSeconds")
    if duration is not None and (not isinstance(duration, int) or isinstance(duration, bool)):
        return "parameters.durationSeconds must be an integer"
    if params.get("aspectRatio") not in (None, "16:9", "9:16"):
        return f"Unsupported aspect ratio: {params['aspectRatio']}"
    storage = params.get("storageUri")
    if storage is not None and not str(storage).startswith("gs://"):
        return "parameters.storageUri must be a Cloud Storage URI (gs://...)"
    return None


def _predict_problem(data: Any, api: str) -> str | None:
    problem = _envelope_problem(data)
    if problem:
        return problem
    if not isinstance(data["instances"][0].get("prompt"), str):
        return "instances[0].prompt is required"
    params = data.get("parameters") or {}
    if api == "gemini" and (problem := _unknown_names(params, GEMINI_IMAGE_PARAMETERS, "parameters")):
        return problem
    count = params.get("sampleCount", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 4:
        return "parameters.sampleCount must be between 1 and 4"
    if params.get("seed") is not None and params.get("addWatermark", True):
        return "Seed is not supported when addWatermark is enabled."
    return None


def _content_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "Invalid JSON payload received: expected an object."
    contents = data.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            return "* GenerateContentRequest.contents.parts: must not be empty"
        for part in parts:
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if inline is None:
                continue
            mime = inline.get("mimeType") or inline.get("mime_type")
            if not isinstance(inline.get("data"), str) or not isinstance(mime, str):
                return "* GenerateContentRequest.contents.parts.inline_data: data and mime_type are required"
    return None


main = FakeGoogle.main
"""``python -m tarash_router.testing.google [--port N] [--api-key K] [--access-token T]``."""


if __name__ == "__main__":
    main()
