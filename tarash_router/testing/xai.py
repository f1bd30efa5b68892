"""Fake xAI (Grok Imagine) REST API on loopback: deferred video jobs and synchronous images.

Follows https://docs.x.ai/docs/guides/video-generations and
https://docs.x.ai/docs/guides/image-generations:
- ``POST /v1/videos/generations`` (and ``/v1/videos/edits``, which requires ``video.url``) with a
  JSON body → ``{"request_id"}``;
- ``GET /v1/videos/{request_id}`` → pending, then ``{"status": "done", "video": {"url",
  "duration", "respect_moderation"}, "model"}``, ``failed`` (with ``error {code, message}``) or
  ``expired``; done and failed are HTTP 200;
- ``POST /v1/images/generations`` → ``{"data": [{"url" | "b64_json", "revised_prompt"}]}``.
Auth is ``Authorization: Bearer <key>``. Errors are ``{"code": ..., "error": ...}``. Each POST
follows an :class:`XAIJob` script (status sequence, outcome, scripted failures).

Choices where xAI's documentation is silent, matching ``provider_specs/xai/provider.yaml``:
- a pending poll answers HTTP 202 with ``{"status": "pending", "progress": n}`` by default;
  ``XAIJob.pending_body`` also plays the other shapes clients report (an empty body, or only
  ``{"request_id"}``);
- there is no cancel endpoint (any other path or method is a 404);
- an incorrect API key is a 400 whose ``error`` names the key; a missing one is a 401;
- an unknown model is a 404; a body that is not a JSON object or lacks a required field is a
  422; an out-of-range value is a 400.

Run standalone (benchmarks): ``python -m tarash_router.testing.xai --port 0``.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from ._server import Failure, Headers, ScriptedFake, StatusScript, delayed_failure, json_response

__all__ = ["FakeXAI", "XAIJob", "XAIJobState", "XAISubmit", "xai_error", "rate_limited"]

PENDING, DONE, FAILED, EXPIRED = "pending", "done", "failed", "expired"
VIDEO_ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
VIDEO_RESOLUTIONS = ("480p", "720p")
IMAGE_ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "2:1", "1:2", "19.5:9", "9:19.5", "20:9",
                       "9:20", "auto")
IMAGE_MODELS = ("grok-2-image", "grok-2-image-1212", "grok-imagine-image", "grok-imagine-image-quality",
                "grok-imagine-image-pro")
VIDEO_MODELS = ("grok-imagine-video",)
DEFAULT_DURATION = 8
INVALID_ARGUMENT = "Client specified an invalid argument"
NOT_FOUND = "Some requested entity was not found"
_VIDEO_CDN = "https://vidgen.x.ai/xai-vidgen-bucket"
_IMAGE_CDN = "https://imgen.x.ai/xai-imgen"
# A stand-in JPEG (magic bytes only) for b64_json answers.
_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def xai_error(status: int, error: str, code: str | None = None, headers: dict[str, str] | None = None) -> Failure:
    """A scripted failure in xAI's REST error shape ``{"code", "error"}``."""
    default_code = {400: INVALID_ARGUMENT, 404: NOT_FOUND, 429: "Too many requests"}.get(status, "Internal error")
    return Failure(status=status, json={"code": code or default_code, "error": error}, headers=dict(headers or {}))


def rate_limited(retry_after: float | None = 0.01) -> Failure:
    """429 with xAI's error shape and, when given, a Retry-After header (seconds)."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return xai_error(429, "Your team has reached its rate limit for this model. Please retry later.",
                     headers=headers)


@dataclass
class XAIJob(StatusScript):
    """Script for one POST (a video generation/edit or an image generation).

    ``statuses`` is what successive video polls return (the last repeats): a status name or a
    dict with ``status`` and any of ``progress``, ``video``, ``error``. A ``done`` entry gets
    ``video`` (defaults: a URL, the requested duration, ``respect_moderation: true``; ``video``
    here overrides keys); a ``failed`` entry gets ``error`` (default ``internal_error``) and the
    entry's own ``video`` keys, if any.
    Pending polls answer ``pending_status`` with ``pending_body``: ``"status"`` (``{"status":
    "pending", "progress": n}``), ``"empty"`` (no body) or ``"request_id"`` (only the id).
    ``images`` replaces the ``data`` entries of an image answer. ``submit_failures`` are
    answered before acceptance, one per attempt; ``poll_failures`` by 1-based poll number
    (they do not advance the sequence). ``delay`` is added before every answer about the job.
    """

    statuses: list[str | dict[str, Any]] = field(default_factory=lambda: [PENDING, PENDING, DONE])
    video: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    pending_status: int = 202
    pending_body: Literal["status", "empty", "request_id"] = "status"
    images: list[dict[str, Any]] | None = None
    submit_failures: list[Failure] = field(default_factory=list)
    poll_failures: dict[int, Failure] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def moderated(cls, **kwargs: Any) -> XAIJob:
        """Done, but the output was withheld: ``video.respect_moderation`` false and no URL."""
        kwargs.setdefault("statuses", [PENDING, DONE])
        return cls(video={"url": None, "respect_moderation": False}, **kwargs)

    @classmethod
    def failed(cls, message: str = "Video generation failed due to an internal error.",
               code: str = "internal_error", **kwargs: Any) -> XAIJob:
        """A job that ends ``failed`` with ``error {code, message}`` (HTTP 200)."""
        kwargs.setdefault("statuses", [PENDING, FAILED])
        return cls(error={"code": code, "message": message}, **kwargs)

    @classmethod
    def expired(cls, **kwargs: Any) -> XAIJob:
        """A job whose deferred result expired before it was collected."""
        kwargs.setdefault("statuses", [PENDING, EXPIRED])
        return cls(**kwargs)


@dataclass
class XAISubmit:
    """An accepted POST as received (body byte-exact)."""

    request_id: str | None  # None for image generations (synchronous)
    endpoint: str  # "videos/generations", "videos/edits" or "images/generations"
    body: bytes
    json: Any
    headers: Headers


@dataclass
class XAIJobState:
    """Server-side state of one video job."""

    request_id: str
    model: str
    script: XAIJob
    submitted: dict[str, Any]
    step: int = 0
    polls: int = 0


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    default_code = {400: INVALID_ARGUMENT, 401: "Unauthenticated", 404: NOT_FOUND, 422: INVALID_ARGUMENT}
    return json_response(status, {"code": code or default_code.get(status, "Error"), "error": message})


class FakeXAI(ScriptedFake[XAIJob]):
    """Loopback fake of xAI's REST video and image generation APIs, scripted with :class:`XAIJob`.

    ``api_key=None`` accepts any ``Authorization: Bearer <x>``; otherwise the key must match.
    Videos and images share one script FIFO.
    """

    job_type = XAIJob

    def _init_state(self) -> None:
        super()._init_state()
        self.jobs: dict[str, XAIJobState] = {}
        self.submits: list[XAISubmit] = []

    # -- scripting / inspection --------------------------------------------------------------

    @property
    def submit_attempts(self) -> int:
        """POSTs to a generation endpoint, accepted or not."""
        return self.attempts

    def create_count(self) -> int:
        """Video jobs created (accepted generation and edit POSTs)."""
        return sum(1 for s in self.submits if s.request_id is not None)

    def image_count(self) -> int:
        """Accepted image generation POSTs."""
        return sum(1 for s in self.submits if s.request_id is None)

    def polls(self, request_id: str) -> int:
        """Status polls received for ``request_id``, scripted failures included."""
        job = self.jobs.get(request_id)
        return job.polls if job else 0

    # -- routing -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/videos/generations", self._create_video)
        app.router.add_post("/v1/videos/edits", self._create_video)
        app.router.add_get("/v1/videos/{request_id}", self._poll)
        app.router.add_post("/v1/images/generations", self._generate_images)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, f"No route for {request.method} {request.path}")

    def _check_auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return _error(401, "Missing bearer or basic authentication in header")
        if not self.check_auth(request):
            key = header.partition(" ")[2]
            shown = f"{key[:2]}***{key[-2:]}" if len(key) > 4 else "***"
            return _error(400, f"Incorrect API key provided: {shown}. You can obtain an API key from "
                               "https://console.x.ai.")
        return None

    async def _accept(
        self, request: web.Request, models: tuple[str, ...], problem_of: Callable[[dict[str, Any]], str | None],
    ) -> tuple[dict[str, Any], XAIJob] | web.StreamResponse:
        """Count a generation POST; the JSON body and script of an accepted one, or what to answer instead.

        That is a 401/400 for the key, a 422 for a body that is not an object with ``model`` and
        ``prompt``, a 404 for a model not in ``models``, a 400 for what ``problem_of`` finds, or the
        script's next create failure.
        """
        self.count_attempt()
        unauthorized = self._check_auth(request)
        if unauthorized is not None:
            return unauthorized
        data = self.recorded(request).json
        if not isinstance(data, dict):
            return _error(422, "Failed to deserialize the JSON body into the target type: expected an object")
        for name in ("model", "prompt"):
            if not isinstance(data.get(name), str):
                return _error(422, f"Failed to deserialize the JSON body into the target type: missing field `{name}`")
        if data["model"] not in models:
            return _error(404, f"The model {data['model']} does not exist or your team does not have access to it.")
        problem = problem_of(data)
        if problem:
            return _error(400, problem)
        script, failed = await self.next_script(request)
        return (data, script) if failed is None else failed

    # -- videos ------------------------------------------------------------------------------

    async def _create_video(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.path.removeprefix("/v1/")
        accepted = await self._accept(request, VIDEO_MODELS,
                                      lambda data: _video_problem(data, edit=endpoint == "videos/edits"))
        if not isinstance(accepted, tuple):
            return accepted
        data, script = accepted
        record = self.recorded(request)
        job = XAIJobState(request_id=str(uuid.uuid4()), model=data["model"], script=script, submitted=data)
        with self._lock:
            self.jobs[job.request_id] = job
            self.submits.append(XAISubmit(job.request_id, endpoint, record.body, data, record.headers))
        return json_response(200, {"request_id": job.request_id})

    async def _poll(self, request: web.Request) -> web.StreamResponse:
        unauthorized = self._check_auth(request)
        if unauthorized is not None:
            return unauthorized
        job = self.jobs.get(request.match_info["request_id"])
        if job is None:
            return _error(404, "No deferred request found with the given id")
        job.polls += 1
        script = job.script
        failed = await delayed_failure(request, script.delay, script.poll_failures.get(job.polls))
        if failed is not None:
            return failed
        entries = script.status_dicts()
        index = min(job.step, len(entries) - 1)
        entry = entries[index]
        job.step += 1
        status = entry.get("status", PENDING)
        if status == DONE:
            video = {"url": f"{_VIDEO_CDN}/xai-video-{job.request_id}.mp4",
                     "duration": job.submitted.get("duration", DEFAULT_DURATION), "respect_moderation": True}
            video.update(script.video)
            video.update(entry.get("video", {}))
            body: dict[str, Any] = {"status": DONE, "video": {k: v for k, v in video.items() if v is not None},
                                    "model": job.model}
            return json_response(200, body)
        if status == FAILED:
            error = entry.get("error") or script.error or {"code": "internal_error",
                                                           "message": "Video generation failed."}
            video = {"duration": 0, "respect_moderation": True, **entry.get("video", {})}
            return json_response(200, {"status": FAILED, "video": video, "model": "", "error": error})
        if status == EXPIRED:
            return json_response(200, {"status": EXPIRED, "model": job.model})
        # Still running: pending (or any other non-terminal status a script names).
        if script.pending_body == "empty":
            return web.Response(status=script.pending_status)
        if script.pending_body == "request_id":
            return json_response(script.pending_status, {"request_id": job.request_id})
        progress = entry.get("progress", min(99, 100 * (index + 1) // (len(entries) + 1)))
        return json_response(script.pending_status, {"status": status, "progress": progress})

    # -- images ------------------------------------------------------------------------------

    async def _generate_images(self, request: web.Request) -> web.StreamResponse:
        accepted = await self._accept(request, IMAGE_MODELS, _image_problem)
        if not isinstance(accepted, tuple):
            return accepted
        data, script = accepted
        record = self.recorded(request)
        with self._lock:
            self.submits.append(XAISubmit(None, "images/generations", record.body, data, record.headers))
        if script.images is not None:
            return json_response(200, {"data": copy.deepcopy(script.images)})
        b64 = data.get("response_format") == "b64_json"
        revised = f"A detailed rendering of: {data['prompt']}"
        entries = [
            {"url": None if b64 else f"{_IMAGE_CDN}/xai-tmp-imgen-{uuid.uuid4()}.jpeg",
             "b64_json": base64.b64encode(_JPEG).decode("ascii") if b64 else None,
             "revised_prompt": revised}
            for _ in range(int(data.get("n") or 1))
        ]
        return json_response(200, {"data": entries})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _media_problem(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:")):
        return f"{name}.url must be an https URL or a data URI"
    return None


def _video_problem(data: dict[str, Any], edit: bool) -> str | None:
    """Why xAI would answer 400, or None."""
    duration = data.get("duration")
    if duration is not None and not (_is_int(duration) and 1 <= duration <= 15):
        return "duration must be an integer between 1 and 15 seconds"
    if data.get("aspect_ratio") is not None and data["aspect_ratio"] not in VIDEO_ASPECT_RATIOS:
        return f"Invalid aspect_ratio {data['aspect_ratio']!r}; supported: {', '.join(VIDEO_ASPECT_RATIOS)}"
    if data.get("resolution") is not None and data["resolution"] not in VIDEO_RESOLUTIONS:
        return f"Invalid resolution {data['resolution']!r}; supported: {', '.join(VIDEO_RESOLUTIONS)}"
    for name in ("image", "video"):
        problem = _media_problem(data, name)
        if problem:
            return problem
    if edit and data.get("video") is None:
        return "video.url is required to edit a video"
    return None


def _image_problem(data: dict[str, Any]) -> str | None:
    """Why xAI would answer 400, or None."""
    n = data.get("n")
    if n is not None and not (_is_int(n) and 1 <= n <= 10):
        return "n must be between 1 and 10"
    if data.get("response_format") not in (None, "url", "b64_json"):
        return "response_format must be url or b64_json"
    for name in ("size", "style"):
        if name in data:
            return f"Argument not supported: {name}"
    aspect = data.get("aspect_ratio")
    if aspect is not None:
        if not data["model"].startswith("grok-imagine"):
            return f"aspect_ratio is not supported by model {data['model']}"
        if aspect not in IMAGE_ASPECT_RATIOS:
            return f"Invalid aspect_ratio {aspect!r}; supported: {', '.join(IMAGE_ASPECT_RATIOS)}"
    if data.get("resolution") not in (None, "1k", "2k"):
        return "resolution must be 1k or 2k"
    return None


main = FakeXAI.main
"""``python -m tarash_router.testing.xai [--port N] [--api-key K]``."""


if __name__ == "__main__":
    main()
