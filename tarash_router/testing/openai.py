"""Loopback fakes of OpenAI's Videos (Sora 2) and Images APIs, and of Azure OpenAI's v1 videos
surface and deployment image endpoints (https://platform.openai.com/docs/api-reference/videos,
https://platform.openai.com/docs/api-reference/images,
https://learn.microsoft.com/azure/ai-foundry/openai/concepts/video-generation).

:class:`FakeOpenAI` serves, under ``/v1``:

- ``POST /videos`` as multipart/form-data (what the SDK sends) or JSON; ``seconds`` must be the
  text ``"4" | "8" | "12"`` (a JSON number is a 400), ``size`` one of the four Sora sizes (the
  1024x1792/1792x1024 ones for ``sora-2-pro*`` only), ``input_reference`` a file part (jpeg, png,
  webp) or an object with exactly one of ``image_url`` / ``file_id``;
- ``GET /videos/{id}`` walking the job's scripted statuses with ``progress`` 0..100 (and the
  ``openai-poll-after-ms`` header when scripted); a failed job carries ``error{code, message}``;
- ``GET /videos/{id}/content[?variant=video|thumbnail|spritesheet]`` as binary (``video/mp4``);
- ``POST /videos/{id}/remix`` (JSON ``{"prompt"}``, source must be completed), ``DELETE /videos/{id}``;
- ``POST /images/generations`` (JSON): GPT image models answer ``b64_json`` only and reject
  ``response_format``; DALL-E answers ``url`` (served by the fake under ``/fake-images/``) or
  ``b64_json``; per-model size/quality/style/n rules.

:class:`FakeAzureOpenAI` serves the same videos under ``/openai/v1`` and images under
``/openai/deployments/{deployment}/images/generations``; it requires the ``api-key`` header and an
``api-version`` query parameter (400 ``MissingApiVersionParameter`` without one). ``model`` is a
deployment name; ``deployments`` maps names to models when the test cares.

Jobs are scripted with :class:`SoraJob` (statuses, error, content, failures per phase); image calls
with queued :class:`Failure` s. Errors use OpenAI's body ``{"error": {message, type, param, code}}``.

Run one standalone: ``python -m tarash_router.testing.openai [--azure] [--api-key K]``.
"""

from __future__ import annotations

import argparse
import base64
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self, cast

from aiohttp import web

from ._server import (
    Failure, Headers, ScriptedFake, StatusScript, apply_failure, delayed_failure, failure_response, format_seconds,
    json_response, multipart_parts,
)

__all__ = [
    "FakeOpenAI", "FakeAzureOpenAI", "SoraJob", "SoraCreate", "ImageCall", "openai_error", "rate_limited",
    "moderation_blocked", "server_error", "FAKE_MP4", "SORA_MODELS",
]

SORA_MODELS = frozenset({"sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08"})
SECONDS = ("4", "8", "12")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
PRO_SIZES = frozenset({"1024x1792", "1792x1024"})
REFERENCE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
CREATE_FIELDS = frozenset({"prompt", "model", "seconds", "size", "input_reference"})
QUEUED, IN_PROGRESS, COMPLETED, FAILED = "queued", "in_progress", "completed", "failed"

# A few bytes that start like an MP4 (ftyp box); nobody decodes them.
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00fake-sora-video" * 64
_THUMBNAIL = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
_SPRITESHEET = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
_PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==")
_IMAGE_BYTES = {"png": _PNG_1PX, "jpeg": _SPRITESHEET, "webp": _THUMBNAIL}
_IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

GPT_IMAGE = {"sizes": ("1024x1024", "1536x1024", "1024x1536", "auto"), "qualities": ("low", "medium", "high", "auto"),
             "max_n": 10}
IMAGE_RULES: dict[str, dict[str, Any]] = {
    "gpt-image-1": GPT_IMAGE, "gpt-image-1-mini": GPT_IMAGE, "gpt-image-1.5": GPT_IMAGE,
    "dall-e-3": {"sizes": ("1024x1024", "1792x1024", "1024x1792"), "qualities": ("standard", "hd"), "max_n": 1,
                 "styles": ("vivid", "natural")},
    "dall-e-2": {"sizes": ("256x256", "512x512", "1024x1024"), "qualities": ("standard",), "max_n": 10},
}
_GPT_ONLY = ("background", "moderation", "output_format", "output_compression", "partial_images", "stream")
_IMAGE_FIELDS = frozenset({"model", "prompt", "n", "size", "quality", "style", "response_format", "user",
                           "safety_identifier", *_GPT_ONLY})


# ---------------------------------------------------------------- error bodies


def openai_error(status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> Failure:
    """A Failure with OpenAI's error body ``{"error": {message, type, param, code, ...}}``."""
    body = {"message": message, "type": type, "param": param, "code": code, **extra}
    # OpenAI sends x-request-id on every response, errors included.
    return Failure(status=status, json={"error": body},
                   headers={"x-request-id": f"req_{uuid.uuid4().hex[:16]}", **(headers or {})})


def rate_limited(retry_after: float | None = 1, code: str = "rate_limit_exceeded") -> Failure:
    """429 with ``Retry-After`` (seconds) when given."""
    headers = {} if retry_after is None else {"Retry-After": format_seconds(retry_after)}
    message = ("You exceeded your current quota, please check your plan and billing details."
               if code == "insufficient_quota" else "Rate limit reached for requests. Please try again later.")
    return openai_error(429, message, type="requests" if code != "insufficient_quota" else "insufficient_quota",
                        code=code, headers=headers)


def moderation_blocked(stage: str = "input") -> Failure:
    """400 ``moderation_blocked``: the safety system rejected the request."""
    return openai_error(400, "Your request was blocked by our moderation system.",
                        type="image_generation_user_error", code="moderation_blocked",
                        moderation_details={"moderation_stage": stage, "categories": ["violence"]})


def server_error(status: int = 500) -> Failure:
    """A 5xx with OpenAI's ``server_error`` body."""
    return openai_error(status, "The server had an error while processing your request. Sorry about that!",
                        type="server_error", code="server_error")


# ---------------------------------------------------------------- scripts and records


@dataclass
class SoraJob(StatusScript):
    """Script of one created video.

    ``statuses`` is what successive ``GET /videos/{id}`` return (the last repeats): a status name or
    a dict with ``status`` and any of ``progress``/``error``; progress is filled in (queued 0,
    in_progress evenly rising, completed 100). ``error`` is the ``{code, message}`` of a failed
    entry. ``content`` is the mp4 served once completed. Failures are consumed one per attempt;
    ``poll_failures`` is keyed by 1-based poll number. ``poll_after_ms`` adds the
    ``openai-poll-after-ms`` header to status responses.
    """

    statuses: list[str | dict[str, Any]] = field(default_factory=lambda: [QUEUED, IN_PROGRESS, IN_PROGRESS, COMPLETED])
    error: dict[str, Any] | None = None
    content: bytes | None = None
    create_failures: list[Failure] = field(default_factory=list)
    poll_failures: dict[int, Failure] = field(default_factory=dict)
    content_failures: list[Failure] = field(default_factory=list)
    poll_after_ms: int | None = None
    delay: float = 0.0

    @classmethod
    def failed(cls, code: str = "video_generation_failed", message: str = "Video generation failed.",
               **kwargs: Any) -> SoraJob:
        """A job that runs, then fails with ``error{code, message}``."""
        kwargs.setdefault("statuses", [QUEUED, IN_PROGRESS, FAILED])
        return cls(error={"code": code, "message": message}, **kwargs)

    @classmethod
    def moderated(cls, message: str = "The generated video was blocked by our moderation system.",
                  **kwargs: Any) -> SoraJob:
        """A job that fails in flight with ``error.code = moderation_blocked`` (output moderation)."""
        return cls.failed("moderation_blocked", message, **kwargs)

    @classmethod
    def blocked(cls, **kwargs: Any) -> SoraJob:
        """A create the safety system rejects: 400 ``moderation_blocked`` (every attempt)."""
        return cls(create_failures=[moderation_blocked() for _ in range(8)], **kwargs)

    def entries(self) -> list[dict[str, Any]]:
        """``statuses`` expanded with progress (and the error on failed entries)."""
        out = self.status_dicts()
        running = sum(1 for e in out if e["status"] == IN_PROGRESS)
        seen = 0
        last = 0
        for entry in out:
            status = entry["status"]
            if status == QUEUED:
                entry.setdefault("progress", 0)
            elif status == IN_PROGRESS:
                seen += 1
                entry.setdefault("progress", round(100 * seen / (running + 1)))
            elif status == COMPLETED:
                entry.setdefault("progress", 100)
            else:
                entry.setdefault("progress", last)
                entry.setdefault("error", self.error or {"code": "video_generation_failed",
                                                         "message": "Video generation failed."})
            last = entry["progress"]
        return out


@dataclass
class SoraCreate:
    """An accepted create (or remix) as received."""

    video_id: str
    kind: str  # "multipart" | "json" | "remix"
    fields: dict[str, Any]
    files: dict[str, tuple[str, bytes, str]]
    headers: Headers
    query: dict[str, str]
    source_video_id: str | None = None


@dataclass
class VideoState:
    """Server-side state of one video."""

    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    script: SoraJob
    entries: list[dict[str, Any]]
    created_at: int
    remixed_from: str | None = None
    status: str = QUEUED
    progress: int = 0
    error: dict[str, Any] | None = None
    step: int = 0
    polls: int = 0
    downloads: int = 0
    deleted: bool = False

    def body(self) -> dict[str, Any]:
        done = self.status in (COMPLETED, FAILED)
        return {
            "id": self.id, "object": "video", "model": self.model, "status": self.status, "progress": self.progress,
            "created_at": self.created_at, "completed_at": self.created_at + 42 if done else None,
            "expires_at": self.created_at + 3600 if self.status == COMPLETED else None,
            "prompt": self.prompt, "size": self.size, "seconds": self.seconds,
            "remixed_from_video_id": self.remixed_from, "error": self.error,
        }


@dataclass
class ImageCall:
    """An accepted image generation as received."""

    model: str
    json: dict[str, Any]
    headers: Headers
    query: dict[str, str]
    deployment: str | None = None


# ---------------------------------------------------------------- the fake


class FakeOpenAI(ScriptedFake[SoraJob]):
    """Loopback fake of OpenAI's Videos and Images APIs (see the module docstring).

    ``api_key=None`` accepts any ``Authorization: Bearer <x>``; otherwise it must be exact.
    """

    video_prefix = "/v1/videos"
    job_type = SoraJob
    failures_field = "create_failures"
    auth_help = "require exactly this key"

    def _init_state(self) -> None:
        super()._init_state()
        self._image_failures: deque[Failure] = deque()
        self.videos: dict[str, VideoState] = {}
        self.creates: list[SoraCreate] = []
        self.image_calls: list[ImageCall] = []
        self.image_attempts = 0
        self.poll_times: dict[str, list[float]] = {}

    # -- scripting / inspection --------------------------------------------------------------

    @property
    def create_attempts(self) -> int:
        """Video create and remix POSTs received, accepted or not."""
        return self.attempts

    def queue_image_failures(self, *failures: Failure) -> Self:
        """Answer the next image calls with these failures, one per call."""
        with self._lock:
            self._image_failures.extend(failures)
        return self

    def create_count(self) -> int:
        """Videos created (creates and remixes accepted)."""
        return len(self.creates)

    def polls(self, video_id: str) -> int:
        video = self.videos.get(video_id)
        return video.polls if video else 0

    def downloads(self, video_id: str) -> int:
        video = self.videos.get(video_id)
        return video.downloads if video else 0

    # -- routing -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        prefix = self.video_prefix
        app.router.add_post(prefix, self._create)
        app.router.add_get(prefix + "/{video_id}", self._retrieve)
        app.router.add_delete(prefix + "/{video_id}", self._delete)
        app.router.add_get(prefix + "/{video_id}/content", self._content)
        app.router.add_post(prefix + "/{video_id}/remix", self._remix)
        self.image_routes(app)
        app.router.add_get("/fake-images/{name}", self._image_file)

    def image_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/images/generations", self._images)

    def check_request(self, request: web.Request) -> web.Response | None:
        """401 unless ``Authorization: Bearer <key>`` (matching ``api_key`` when set)."""
        if self.check_auth(request):
            return None
        return failure_response(openai_error(
            401, "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key"))

    def video_model(self, model: str | None) -> tuple[str | None, web.Response | None]:
        """The Sora model a create names (default sora-2), or a 400 for an unknown one."""
        model = model or "sora-2"
        if model not in SORA_MODELS:
            return None, failure_response(openai_error(
                400, f"Invalid value: '{model}'. Supported values are: {', '.join(sorted(SORA_MODELS))}.",
                code="invalid_value", param="model"))
        return model, None

    def image_model(self, body: dict[str, Any], deployment: str | None) -> str:
        return body.get("model") or "dall-e-2"

    # -- videos ------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.count_attempt()
        denied = self.check_request(request)
        if denied is not None:
            return denied
        record = self.recorded(request)
        content_type = request.headers.get("Content-Type", "")
        files: dict[str, tuple[str, bytes, str]] = {}
        if content_type.startswith("multipart/form-data"):
            kind = "multipart"
            fields_, files = _parse_multipart(content_type, record.body)
            fields: dict[str, Any] = dict(fields_)
        elif content_type.startswith("application/json"):
            kind = "json"
            if not isinstance(record.json, dict):
                return failure_response(openai_error(400, "We could not parse the JSON body of your request.",
                                                    code="invalid_json"))
            fields = dict(record.json)
        else:
            return failure_response(openai_error(
                400, "Unsupported content type: use multipart/form-data or application/json.",
                code="unsupported_content_type"))
        problem = self._validate_create(fields, files, kind)
        if problem is not None:
            return problem
        model, problem = self.video_model(fields.get("model"))
        if problem is not None:
            return problem
        assert model is not None  # video_model names a model whenever it finds no problem
        size = fields.get("size")
        if size in PRO_SIZES and not _is_pro(model):
            return failure_response(openai_error(
                400, f"Invalid value: '{size}'. {model} supports 720x1280 and 1280x720.", code="invalid_value",
                param="size"))
        script, failed = await self.next_script(request)
        if failed is not None:
            return failed
        video = self._new_video(script, model, fields["prompt"], fields.get("seconds") or "4",
                                size or "720x1280")
        with self._lock:
            self.videos[video.id] = video
            self.creates.append(SoraCreate(video.id, kind, fields, files, record.headers, record.query))
        return json_response(200, video.body(), {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"})

    def _validate_create(self, fields: dict[str, Any], files: dict[str, tuple[str, bytes, str]],
                         kind: str) -> web.Response | None:
        unknown = sorted((set(fields) | set(files)) - CREATE_FIELDS)
        if unknown:
            return failure_response(openai_error(400, f"Unknown parameter: '{unknown[0]}'.", code="unknown_parameter",
                                                param=unknown[0]))
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return failure_response(openai_error(400, "Missing required parameter: 'prompt'.",
                                                code="missing_required_parameter", param="prompt"))
        if len(prompt) > 32000:
            return failure_response(openai_error(400, "Invalid 'prompt': string too long.",
                                                code="string_above_max_length", param="prompt"))
        seconds = fields.get("seconds")
        if seconds is not None:
            if not isinstance(seconds, str):
                return failure_response(openai_error(
                    400, f"Invalid type for 'seconds': expected one of '4', '8', or '12', but got "
                         f"{type(seconds).__name__} instead.", code="invalid_type", param="seconds"))
            if seconds not in SECONDS:
                return failure_response(openai_error(
                    400, f"Invalid value: '{seconds}'. Supported values are: '4', '8', and '12'.",
                    code="invalid_value", param="seconds"))
        size = fields.get("size")
        if size is not None and size not in SIZES:
            return failure_response(openai_error(
                400, f"Invalid value: '{size}'. Supported values are: {', '.join(SIZES)}.", code="invalid_value",
                param="size"))
        return self._validate_reference(fields.get("input_reference"), files.get("input_reference"), kind)

    @staticmethod
    def _validate_reference(value: Any, file: tuple[str, bytes, str] | None, kind: str) -> web.Response | None:
        if file is not None:
            _, content, ctype = file
            if ctype not in REFERENCE_TYPES or not content:
                return failure_response(openai_error(
                    400, f"Invalid file format for 'input_reference': {ctype}. Supported formats are "
                         "image/jpeg, image/png and image/webp.", code="invalid_value", param="input_reference"))
            return None
        if value is None:
            return None
        if kind == "multipart" or not isinstance(value, dict) or len(value) != 1 or \
                not ({"image_url", "file_id"} & set(value)):
            return failure_response(openai_error(
                400, "Invalid 'input_reference': provide a file upload or an object with exactly one of "
                     "'image_url' or 'file_id'.", code="invalid_value", param="input_reference"))
        url = value.get("image_url")
        if url is not None and not (isinstance(url, str) and (url.startswith(("https://", "http://", "data:image/")))):
            return failure_response(openai_error(
                400, "Invalid 'input_reference.image_url': expected a URL or a base64 data URL.",
                code="invalid_value", param="input_reference.image_url"))
        return None

    @staticmethod
    def _new_video(script: SoraJob, model: str, prompt: str, seconds: str, size: str,
                   remixed_from: str | None = None) -> VideoState:
        return VideoState(id=f"video_{uuid.uuid4().hex}", model=model, prompt=prompt, seconds=seconds, size=size,
                          script=script, entries=script.entries(), created_at=int(time.time()),
                          remixed_from=remixed_from)

    def _video(self, request: web.Request) -> tuple[VideoState | None, web.Response | None]:
        denied = self.check_request(request)
        if denied is not None:
            return None, denied
        video_id = request.match_info["video_id"]
        video = self.videos.get(video_id)
        if video is None or video.deleted:
            return None, failure_response(openai_error(404, f"Video with id '{video_id}' not found.",
                                                      code="video_not_found", param="video_id"))
        return video, None

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        video, problem = self._video(request)
        if video is None:
            return problem  # type: ignore[return-value]
        video.polls += 1
        with self._lock:
            self.poll_times.setdefault(video.id, []).append(time.monotonic())
        script = video.script
        failed = await delayed_failure(request, script.delay, script.poll_failures.get(video.polls))
        if failed is not None:
            return failed  # does not advance the job
        entry = video.entries[min(video.step, len(video.entries) - 1)]
        video.step += 1
        video.status = entry["status"]
        video.progress = entry["progress"]
        video.error = entry.get("error") if video.status == FAILED else None
        headers = {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"}
        if script.poll_after_ms is not None and video.status in (QUEUED, IN_PROGRESS):
            headers["openai-poll-after-ms"] = str(script.poll_after_ms)
        return json_response(200, video.body(), headers)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        video, problem = self._video(request)
        if video is None:
            return problem  # type: ignore[return-value]
        video.deleted = True
        return json_response(200, {"id": video.id, "object": "video.deleted", "deleted": True})

    async def _content(self, request: web.Request) -> web.StreamResponse:
        video, problem = self._video(request)
        if video is None:
            return problem  # type: ignore[return-value]
        video.downloads += 1
        script = video.script
        if script.content_failures:
            return await apply_failure(request, script.content_failures.pop(0))
        variant = request.query.get("variant", "video")
        if variant not in ("video", "thumbnail", "spritesheet"):
            return failure_response(openai_error(400, f"Invalid value: '{variant}'.", code="invalid_value",
                                                param="variant"))
        if video.status != COMPLETED:
            return failure_response(openai_error(
                400, f"Video is not ready yet, use GET /v1/videos/{video.id} to check status.",
                code="video_not_ready"))
        if variant == "thumbnail":
            return web.Response(body=_THUMBNAIL, content_type="image/webp")
        if variant == "spritesheet":
            return web.Response(body=_SPRITESHEET, content_type="image/jpeg")
        body = script.content if script.content is not None else FAKE_MP4
        return web.Response(body=body, content_type="video/mp4")

    async def _remix(self, request: web.Request) -> web.StreamResponse:
        self.count_attempt()
        source, problem = self._video(request)
        if source is None:
            return problem  # type: ignore[return-value]
        record = self.recorded(request)
        body = record.json
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            return failure_response(openai_error(400, "Missing required parameter: 'prompt'.",
                                                code="missing_required_parameter", param="prompt"))
        extra = sorted(set(body) - {"prompt"})
        if extra:
            return failure_response(openai_error(400, f"Unknown parameter: '{extra[0]}'.", code="unknown_parameter",
                                                param=extra[0]))
        if source.status != COMPLETED:
            return failure_response(openai_error(400, "Only completed videos can be remixed.", code="invalid_value",
                                                param="video_id"))
        script, failure = self.take_script()  # a remix plays no delay
        if failure is not None:
            return await apply_failure(request, failure)
        video = self._new_video(script, source.model, body["prompt"], source.seconds, source.size,
                                remixed_from=source.id)
        with self._lock:
            self.videos[video.id] = video
            self.creates.append(SoraCreate(video.id, "remix", dict(body), {}, record.headers, record.query,
                                           source_video_id=source.id))
        return json_response(200, video.body())

    # -- images ------------------------------------------------------------------------------

    async def _images(self, request: web.Request, deployment: str | None = None) -> web.StreamResponse:
        with self._lock:
            self.image_attempts += 1
        denied = self.check_request(request)
        if denied is not None:
            return denied
        record = self.recorded(request)
        if not request.headers.get("Content-Type", "").startswith("application/json") or not isinstance(record.json, dict):
            return failure_response(openai_error(400, "We could not parse the JSON body of your request.",
                                                code="invalid_json"))
        body = record.json
        model = self.image_model(body, deployment)
        problem = _validate_image(model, body)
        if problem is not None:
            return problem
        with self._lock:
            failure = self._image_failures.popleft() if self._image_failures else None
        if failure is not None:
            return await apply_failure(request, failure)
        with self._lock:
            self.image_calls.append(ImageCall(model, dict(body), record.headers, record.query, deployment))
        return json_response(200, self._image_body(model, body), {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"})

    def _image_body(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        n = body.get("n") or 1
        created = int(time.time())
        if model.startswith("gpt-image"):
            fmt = body.get("output_format") or "png"
            encoded = base64.b64encode(_IMAGE_BYTES[fmt]).decode("ascii")
            size = body.get("size") or "1024x1024"
            return {"created": created, "data": [{"b64_json": encoded} for _ in range(n)],
                    "background": body.get("background") or "opaque", "output_format": fmt,
                    "quality": body.get("quality") or "high", "size": "1024x1024" if size == "auto" else size,
                    "usage": {"total_tokens": 100, "input_tokens": 50, "output_tokens": 50,
                              "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}}}
        revised = f"A detailed rendering of: {body.get('prompt', '')}" if model == "dall-e-3" else None
        items = []
        for _ in range(n):
            if body.get("response_format") == "b64_json":
                item: dict[str, Any] = {"b64_json": base64.b64encode(_PNG_1PX).decode("ascii")}
            else:
                item = {"url": f"{self.base_url}/fake-images/img-{uuid.uuid4().hex[:12]}.png"}
            if revised is not None:
                item["revised_prompt"] = revised
            items.append(item)
        return {"created": created, "data": items}

    async def _image_file(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=_PNG_1PX, content_type="image/png")

    # -- command line ------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--azure", action="store_true", help="serve Azure OpenAI's routes instead")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **options: Any) -> FakeOpenAI:
        fake_cls = FakeAzureOpenAI if args.azure else FakeOpenAI
        # ScriptedFake.from_args, bound to the class chosen (mypy takes only a subclass of this one).
        return cast(FakeOpenAI, super(FakeOpenAI, fake_cls).from_args(args, **options))  # type: ignore[misc]


class FakeAzureOpenAI(FakeOpenAI):
    """Loopback fake of Azure OpenAI: Sora 2 on ``/openai/v1/videos`` and deployment image endpoints.

    Requires ``api-key`` (exact when ``api_key`` is set) and an ``api-version`` query parameter (one
    of ``api_versions`` when given). ``deployments`` maps deployment names to models; None accepts
    any name (videos: sora-2 rules; images: the model of that name, else gpt-image-1 rules).
    """

    video_prefix = "/openai/v1/videos"

    def __init__(self, api_key: str | None = None, *, deployments: dict[str, str] | None = None,
                 api_versions: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.deployments = dict(deployments) if deployments is not None else None
        self.api_versions = list(api_versions) if api_versions is not None else None

    def image_routes(self, app: web.Application) -> None:
        async def images(request: web.Request) -> web.StreamResponse:
            return await self._images(request, request.match_info["deployment"])

        app.router.add_post("/openai/deployments/{deployment}/images/generations", images)

    def check_request(self, request: web.Request) -> web.Response | None:
        if not self.check_auth(request, None, "api-key"):
            return json_response(401, {"error": {
                "code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. "
                                          "Make sure to provide a valid key for an active subscription and use a "
                                          "correct regional API endpoint for your resource."}})
        version = request.query.get("api-version")
        if not version:
            return json_response(400, {"error": {
                "code": "MissingApiVersionParameter",
                "message": "The api-version query parameter (?api-version=) is required for all requests."}})
        if self.api_versions is not None and version not in self.api_versions:
            return json_response(400, {"error": {
                "code": "BadRequest", "message": f"API version not supported: {version}"}})
        return None

    def _deployment(self, name: str | None, default: str) -> tuple[str | None, web.Response | None]:
        if not name:
            return None, failure_response(openai_error(400, "Missing required parameter: 'model'.",
                                                      code="missing_required_parameter", param="model"))
        if self.deployments is None:
            return default if name not in IMAGE_RULES and name not in SORA_MODELS else name, None
        model = self.deployments.get(name)
        if model is None:
            return None, json_response(404, {"error": {
                "code": "DeploymentNotFound",
                "message": f"The API deployment for this resource does not exist: {name}"}})
        return model, None

    def video_model(self, model: str | None) -> tuple[str | None, web.Response | None]:
        return self._deployment(model, "sora-2")

    def image_model(self, body: dict[str, Any], deployment: str | None) -> str:
        model, _ = self._deployment(deployment, "gpt-image-1")
        return model or "gpt-image-1"

    async def _images(self, request: web.Request, deployment: str | None = None) -> web.StreamResponse:
        if self.deployments is not None and deployment not in self.deployments:
            denied = self.check_request(request)
            if denied is not None:
                return denied
            _, problem = self._deployment(deployment, "gpt-image-1")
            return problem  # type: ignore[return-value]
        return await super()._images(request, deployment)


def _is_pro(model: str) -> bool:
    return model.startswith("sora-2-pro")


def _validate_image(model: str, body: dict[str, Any]) -> web.Response | None:
    rules = IMAGE_RULES.get(model)
    if rules is None:
        return failure_response(openai_error(400, f"Invalid value: '{model}'. Supported values are: "
                                                 f"{', '.join(IMAGE_RULES)}.", code="invalid_value", param="model"))
    unknown = sorted(set(body) - _IMAGE_FIELDS)
    gpt = model.startswith("gpt-image")
    if not gpt:
        unknown += [k for k in _GPT_ONLY if k in body]
    if gpt:
        unknown += [k for k in ("response_format", "style") if k in body]
    if unknown:
        return failure_response(openai_error(400, f"Unknown parameter: '{unknown[0]}'.", code="unknown_parameter",
                                            param=unknown[0]))
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return failure_response(openai_error(400, "Missing required parameter: 'prompt'.",
                                            code="missing_required_parameter", param="prompt"))
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or n > rules["max_n"]:
        message = ("You must provide n=1 for this model." if rules["max_n"] == 1
                   else f"Invalid 'n': integer between 1 and {rules['max_n']} expected.")
        return failure_response(openai_error(400, message, code="invalid_value", param="n"))
    for key, allowed in (("size", rules["sizes"]), ("quality", rules["qualities"]),
                         ("style", rules.get("styles", ()))):
        value = body.get(key)
        if value is not None and value not in allowed:
            return failure_response(openai_error(
                400, f"Invalid value: '{value}'. Supported values are: {', '.join(allowed)}.", code="invalid_value",
                param=key))
    if body.get("response_format") not in (None, "url", "b64_json"):
        return failure_response(openai_error(400, "Invalid value for 'response_format'.", code="invalid_value",
                                            param="response_format"))
    if gpt and body.get("output_format") not in (None, "png", "jpeg", "webp"):
        return failure_response(openai_error(400, "Invalid value for 'output_format'.", code="invalid_value",
                                            param="output_format"))
    return None


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """Text fields and file parts ``(filename, bytes, content type)`` of a multipart body."""
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    for name, filename, payload, part_type in multipart_parts(content_type, body) or ():
        if filename is not None:
            files[name] = (filename, payload, part_type)
        else:
            fields[name] = payload.decode("utf-8")
    return fields, files


main = FakeOpenAI.main
"""``python -m tarash_router.testing.openai [--azure] [--port N] [--api-key K]``."""


if __name__ == "__main__":
    main()
