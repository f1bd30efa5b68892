"""Fake Stability AI v2beta Stable Image generate API on loopback.

Follows https://platform.stability.ai/docs/api-reference#tag/Generate:
``POST /v2beta/stable-image/generate/{ultra|core|sd3}`` with ``Authorization: Bearer <key>`` and
a ``multipart/form-data`` body (a JSON or urlencoded body is a 400, in Stability's error shape);
the answer is synchronous and depends on ``Accept``:
``application/json`` gives ``{"image": <base64>, "finish_reason", "seed"}``, ``image/*`` (or no
Accept) the raw image bytes with ``finish-reason`` and ``seed`` response headers. Errors use
``{"id": <hex>, "name": <snake_case>, "errors": [...]}``. Each accepted request follows a
:class:`StabilityScript` (finish reason, seed, image, scripted failures).

Choices where Stability's behaviour is not documented (UNVERIFIED): a non-multipart body and an
``Accept`` other than ``image/*``/``application/json`` are 400 ``bad_request``; unknown form
fields are ignored; an invalid or missing key is 401 ``unauthorized``.

Run standalone (benchmarks): ``python -m tarash_router.testing.stability --port 0``.
"""

from __future__ import annotations

import base64
import json as _json
import random
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._server import Failure, Headers, ScriptedFake, json_response, parse_multipart

__all__ = [
    "FakeStability", "StabilityGeneration", "StabilityScript", "stability_error", "rate_limited", "moderation_error",
]

ENDPOINTS = ("ultra", "core", "sd3")
ASPECT_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
STYLE_PRESETS = (
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance", "fantasy-art",
    "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami", "photographic", "pixel-art",
    "tile-texture",
)
OUTPUT_FORMATS = {"ultra": ("png", "jpeg", "webp"), "core": ("png", "jpeg", "webp"), "sd3": ("png", "jpeg")}
SD3_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3-large", "sd3-large-turbo", "sd3-medium")
MAX_SEED = 4294967294
MAX_PROMPT = 10000
MAX_REQUEST_BYTES = 10 * 1024 * 1024
FINISH_SUCCESS = "SUCCESS"
FINISH_FILTERED = "CONTENT_FILTERED"


def _png_1x1() -> bytes:
    """A valid 1x1 grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
            + chunk(b"IEND", b""))


# Stand-in bodies with each format's magic bytes (only PNG is a decodable image).
IMAGE_BYTES = {
    "png": _png_1x1(),
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9",
    "webp": b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00",
}


def _error_body(name: str, *errors: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "name": name, "errors": list(errors)}


def stability_error(status: int, name: str, *errors: str, headers: dict[str, str] | None = None) -> Failure:
    """A scripted failure in Stability's error shape: ``{"id", "name", "errors": [...]}``."""
    return Failure(status=status, json=_error_body(name, *errors), headers=dict(headers or {}))


def rate_limited(retry_after: float | None = None) -> Failure:
    """429 ``rate_limit_exceeded`` (Stability documents no Retry-After; pass one to script it)."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return stability_error(429, "rate_limit_exceeded",
                           "You have exceeded the rate limit of 150 requests within a 10 second period.",
                           headers=headers)


def moderation_error(message: str = "Your request was flagged by our content moderation system") -> Failure:
    """403 ``content_moderation``: the request was refused before generation (not charged)."""
    return stability_error(403, "content_moderation", message)


@dataclass
class StabilityScript:
    """What one generate request gets.

    ``failures`` are answered instead, one per attempt, before the request is accepted (a
    scripted 429 followed by success is two POSTs and one generation). ``seed`` None echoes the
    form's seed (a random one for 0 or none); ``image`` None is a tiny image in the requested
    ``output_format``. ``delay`` is added before the answer.
    """

    finish_reason: str = FINISH_SUCCESS
    seed: int | None = None
    image: bytes | None = None
    failures: list[Failure] = field(default_factory=list)
    delay: float = 0.0

    @classmethod
    def content_filtered(cls, **kwargs: Any) -> StabilityScript:
        """A 200 whose output violated policy: ``finish_reason: CONTENT_FILTERED`` (image blurred)."""
        return cls(finish_reason=FINISH_FILTERED, **kwargs)

    @classmethod
    def flagged(cls, message: str | None = None, **kwargs: Any) -> StabilityScript:
        """A request refused with 403 ``content_moderation``."""
        failure = moderation_error(message) if message else moderation_error()
        return cls(failures=[failure], **kwargs)


@dataclass
class StabilityGeneration:
    """An accepted generate request (one billed image), as received."""

    id: str
    endpoint: str
    form: dict[str, str | bytes]
    headers: Headers
    body: bytes
    accept: str  # "json" or "image"
    finish_reason: str
    seed: int
    output_format: str


def _error(status: int, name: str, *errors: str) -> web.Response:
    return json_response(status, _error_body(name, *errors))


class FakeStability(ScriptedFake[StabilityScript]):
    """Loopback fake of Stability's v2beta Stable Image generate endpoints.

    ``api_key=None`` accepts any ``Authorization: Bearer <x>``; otherwise the key must match.
    ``attempts`` counts every POST to a generate endpoint, accepted or not.
    """

    job_type = StabilityScript
    failures_field = "failures"

    def __init__(self, api_key: str | None = None, *, default_script: StabilityScript | None = None,
                 **kwargs: Any) -> None:
        super().__init__(api_key, default_job=default_script, **kwargs)

    def _init_state(self) -> None:
        super()._init_state()
        self.generations: list[StabilityGeneration] = []

    # -- scripting / inspection --------------------------------------------------------------

    @property
    def default_script(self) -> StabilityScript:
        """The script used once the queue is empty (copied per request)."""
        return self.default_job

    @default_script.setter
    def default_script(self, script: StabilityScript) -> None:
        self.default_job = script

    def generation_count(self, endpoint: str | None = None) -> int:
        """Accepted generate requests, optionally only those to ``endpoint`` (ultra, core or sd3)."""
        return sum(1 for g in self.generations if endpoint is None or g.endpoint == endpoint)

    # -- routing -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2beta/stable-image/generate/{endpoint}", self._generate)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, "not_found", f"{request.method} {request.path}: no such endpoint")

    # -- handler -----------------------------------------------------------------------------

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]
        if endpoint not in ENDPOINTS:
            return _error(404, "not_found", f"unknown endpoint {endpoint!r}")
        self.count_attempt()
        if not self.check_auth(request):
            return _error(401, "unauthorized", "authorization: invalid or missing header value")
        record = self.recorded(request)
        if len(record.body) > MAX_REQUEST_BYTES:
            return _error(413, "payload_too_large", "body: payloads cannot be larger than 10MiB in size")
        content_type = record.headers.get("content-type", "")
        form = parse_multipart(content_type, record.body)
        if form is None:
            shown = content_type.split(";")[0] or "none"
            return _error(400, "bad_request", f"content-type: must be multipart/form-data, got {shown}")
        accept = _accept_mode(record.headers.get("accept", ""))
        if accept is None:
            return _error(400, "bad_request", "accept: must be image/* or application/json")
        problems = _validate(endpoint, form)
        if problems:
            return _error(400, "bad_request", *problems)
        script, failed = await self.next_script(request)
        if failed is not None:
            return failed
        return self._success(endpoint, form, record.headers, record.body, accept, script)

    def _success(self, endpoint: str, form: dict[str, str | bytes], headers: Headers, body: bytes, accept: str,
                 script: StabilityScript) -> web.Response:
        output_format = str(form.get("output_format") or "png")
        image = script.image if script.image is not None else IMAGE_BYTES[output_format]
        seed = script.seed if script.seed is not None else int(form.get("seed") or 0) or random.randint(1, MAX_SEED)
        generation = StabilityGeneration(
            id=uuid.uuid4().hex, endpoint=endpoint, form=form, headers=headers, body=body, accept=accept,
            finish_reason=script.finish_reason, seed=seed, output_format=output_format)
        with self._lock:
            self.generations.append(generation)
        mime = f"image/{output_format}"
        if accept == "json":
            payload = {"image": base64.b64encode(image).decode("ascii"), "finish_reason": script.finish_reason,
                       "seed": seed}
            return web.Response(status=200, body=_json.dumps(payload).encode(),
                                headers={"Content-Type": f"application/json; type={mime}",
                                         "x-request-id": generation.id})
        return web.Response(status=200, body=image, headers={
            "Content-Type": mime, "finish-reason": script.finish_reason, "seed": str(seed),
            "x-request-id": generation.id})


def _accept_mode(accept: str) -> str | None:
    """``json`` for application/json, ``image`` for image/* (the default), None for anything else."""
    value = accept.strip().lower()
    if "application/json" in value:
        return "json"
    if not value or value.startswith("image/") or value == "*/*":
        return "image"
    return None


def _validate(endpoint: str, form: dict[str, str | bytes]) -> list[str]:
    """The form's problems, in the style of Stability's 400 ``errors`` list (empty when valid)."""
    problems: list[str] = []
    prompt = form.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append("prompt: is required")
    elif len(prompt) > MAX_PROMPT:
        problems.append(f"prompt: must be at most {MAX_PROMPT} characters")

    def choice(name: str, allowed: Sequence[str]) -> None:
        value = form.get(name)
        if value is not None and value not in allowed:
            problems.append(f"{name}: must be one of {', '.join(allowed)}")

    choice("aspect_ratio", ASPECT_RATIOS)
    choice("output_format", OUTPUT_FORMATS[endpoint])
    choice("style_preset", STYLE_PRESETS)
    seed = form.get("seed")
    if seed is not None and not (isinstance(seed, str) and seed.isdigit() and int(seed) <= MAX_SEED):
        problems.append(f"seed: must be an integer between 0 and {MAX_SEED}")
    if endpoint == "sd3":
        choice("model", SD3_MODELS)
        choice("mode", ("text-to-image", "image-to-image"))
        cfg = form.get("cfg_scale")
        if cfg is not None and not (_number(cfg) is not None and 1 <= _number(cfg) <= 10):  # type: ignore[operator]
            problems.append("cfg_scale: must be a number between 1 and 10")
        if form.get("mode") == "image-to-image" and not isinstance(form.get("image"), bytes):
            problems.append("image: is required for mode image-to-image")
    return problems


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


main = FakeStability.main
"""``python -m tarash_router.testing.stability [--port N] [--api-key K]``."""


if __name__ == "__main__":
    main()
