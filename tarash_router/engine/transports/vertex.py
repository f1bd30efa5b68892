"""Google Vertex AI (Veo videos, Imagen images) through the google-genai SDK.

The family spec maps the unified request to the SDK's arguments (`source` and `config` for
`generate_videos`, `prompt` and `config` for `generate_images`); this handler does the transport:
- builds one `genai.Client(vertexai=True, ...)` per (event loop, base URL, key, project, location,
  credentials), from `config.provider_config` (`project`, `location`, and `credentials_path` for
  a service-account file, `credentials` for a google-auth object or `access_token` for a bearer
  token; else Application Default Credentials), or express mode with `config.api_key`;
- turns image strings into SDK images: a data: URI into bytes, a gs:// URI into `gcs_uri`, and an
  https URL is downloaded first and sent as bytes (Vertex takes only gs:// URIs as `gcs_uri`:
  https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation);
- submits once and polls the operation (`:fetchPredictOperation`), one request per verb (the
  lifecycle paces the polls and keeps the deadline), and maps SDK errors to
  `tarash_router.errors` (ClientError 400 -> ValidationError, 403 -> AuthenticationError unless
  the message is about safety, 429 -> RateLimitError, ServerError -> retryable HTTPError,
  Responsible-AI filtering -> ContentModerationError).
`raw_response` is the provider's JSON as received (captured at the HTTP layer), with base64
media bodies elided.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import mimetypes
import os
import re
import weakref
from dataclasses import dataclass
from typing import Any

import httpx

from ...errors import (
    AuthenticationError, ContentModerationError, GenerationFailedError, HTTPError, RateLimitError, TarashException,
    ValidationError,
)
from ...extras import require_sdk
from ...models import ImageGenerationResponse, VideoGenerationResponse
from ...settings import get_settings
from ...specs.compiled import FamilySpec
from ...specs.params import check_request
from ...utils import generate_unique_id
from ..classify import ErrorContext, ErrorOrigin, error_from_transport, parse_retry_after
from ..media import fetch_media, media_kind, to_data_uri
from ..render import REDACTED, prepare_job
from ..transport import BaseTransport, Call, Status

logger = logging.getLogger("tarash_router.transports.vertex")

EXTRA = "google"
DEFAULT_LOCATION = "us-central1"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
# Words Google uses when a prompt or media is refused for safety (not a documented code).
_SAFETY = re.compile(r"(?i)usage guidelines|responsible ai|safety|prohibited|sensitive words")
_SAFETY_400 = re.compile(r"(?i)usage guidelines|responsible ai|blocked for safety|safety (filter|reasons|policy)"
                         r"|sensitive words")
_B64_KEYS = ("bytesBase64Encoded", "encodedVideo")
_MAX_RAW_B64 = 256
# Transport-level headers left out of a dry run.
_NOISE_HEADERS = {"host", "content-length", "accept-encoding", "connection", "accept"}

# Responses of the current generation, recorded by an httpx hook (one list per task context).
_CAPTURE: contextvars.ContextVar[list[httpx.Response] | None] = contextvars.ContextVar(
    "tarash_vertex_capture", default=None)


async def _record_response(response: httpx.Response) -> None:
    sink = _CAPTURE.get()
    if sink is not None:
        await response.aread()
        sink.append(response)


class _Captured(Exception):
    """Raised by the dry-run transport with the request the SDK was about to send."""

    def __init__(self, request: httpx.Request) -> None:
        super().__init__("captured")
        self.request = request


@dataclass
class _Working:
    genai: Any
    client: Any
    sdk_call: _SdkCall | None


class VertexTransport(BaseTransport):
    """`handler: google_vertex`: Veo (`generate_videos`, a long-running operation) and Imagen
    (`generate_images`, one synchronous call) on Vertex AI."""

    journal_results = False  # inline video/image bytes stay out of the journal

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[object, ...], Any]] = (
            weakref.WeakKeyDictionary())

    # ------------------------------------------------------------------ verbs

    async def prepare(self, call: Call) -> None:
        genai = require_sdk("google.genai", EXTRA, call.provider)
        if call.job_id is not None:  # following a journaled operation
            if call.modality != "video":
                raise ValidationError("only video operations can be resumed", provider=call.provider,
                                      model=call.model, request_id=call.job_id)
            call.state = _Working(genai, self._client(genai, call), None)
            return
        if not call.checked:  # refuse a bad request before downloading anything
            for warning in check_request(call.family, call.model, call.request, drop=call.config.adapt):
                logger.warning("%s", warning)
        request = await _inline_web_media(call.family, call.request, call.pool)
        job = prepare_job(call.family, call.config, request, validate=False, api_key=call.api_key)
        sdk_call = _SdkCall(job.payload, call.modality, call.provider, call.model)
        sdk_call.validate(genai)
        call.state = _Working(genai, self._client(genai, call), sdk_call)

    async def submit(self, call: Call) -> Status:
        work: _Working = call.state
        sdk_call = work.sdk_call
        assert sdk_call is not None
        with _capturing() as captured:
            try:
                if call.modality != "video":
                    result = await _generate_images_async(work.client.aio.models, call.model, sdk_call)
                    return Status("completed", data=_raw(captured), native=result)
                operation = await work.client.aio.models.generate_videos(model=call.model, source=sdk_call.source,
                                                                         config=sdk_call.config)
            except Exception as exc:  # noqa: BLE001 - every SDK failure is mapped
                raise _map_error(work.genai, exc, "submit", call.provider, call.model, None) from None
            raw = _raw(captured)
        if not operation.name:
            raise GenerationFailedError("the operation has no name", provider=call.provider, model=call.model,
                                        raw_response=raw, job_may_exist=True)
        state = "completed" if operation.done else "queued"
        return Status(state, data=raw, job_id=operation.name, handle={"operation": operation.name}, native=operation)

    async def poll(self, call: Call) -> Status:
        work: _Working = call.state
        with _capturing() as captured:
            try:
                operation = await work.client.aio.operations.get(
                    work.genai.types.GenerateVideosOperation(name=call.job_id))
            except Exception as exc:  # noqa: BLE001
                raise _map_error(work.genai, exc, "poll", call.provider, call.model, call.job_id) from None
            raw = _raw(captured)
        if operation.done:
            return Status("completed", data=raw, native=operation)
        return Status("processing", data=raw, percent=_percent(operation.metadata), native=operation)

    async def fetch(self, call: Call, status: Status) -> Any:
        raw = status.data if isinstance(status.data, dict) else {}
        if call.modality == "video":
            return _video_response(call, status.native, raw)
        return _images_response(call, status.native, raw)

    def _client(self, genai: Any, call: Call) -> Any:
        """One SDK client per event loop and connection settings (never one per call)."""
        config, provider, limits = call.config, call.provider, call.settings
        settings = _client_settings(config)
        key = (provider, config.base_url, config.api_key, config.api_version, settings["project"],
               settings["location"], settings["credentials_key"])
        loop = asyncio.get_running_loop()
        clients = self._clients.setdefault(loop, {})
        client = clients.get(key)
        if client is None:
            http = httpx.AsyncClient(
                timeout=httpx.Timeout(limits.request_timeout, connect=limits.connect_timeout),
                limits=httpx.Limits(max_connections=limits.max_connections,
                                    max_keepalive_connections=limits.max_connections),
                event_hooks={"response": [_record_response]})
            client = clients[key] = _make_client(genai, config, settings, async_client=http,
                                                 request_timeout=limits.request_timeout)
        return client

    # ------------------------------------------------------------------ render

    def render(self, call: Call) -> dict[str, Any]:
        """The first request the SDK would send (submit), captured without network; secrets masked."""
        family, config, request = call.family, call.config, call.request
        genai = require_sdk("google.genai", EXTRA, family.provider.name)
        modality = family.modality
        placeholders: dict[str, str] = {}
        request = _placeholder_web_media(request, placeholders)
        job = prepare_job(family, config, request, dry_run=True)
        sdk_call = _SdkCall(job.payload, modality, family.provider.name, config.model)
        sdk_call.validate(genai)

        def capture(http_request: httpx.Request) -> httpx.Response:
            raise _Captured(http_request)

        settings = _client_settings(config, dry_run=True)
        client = _make_client(genai, config, settings, sync_client=httpx.Client(
            transport=httpx.MockTransport(capture)))
        try:
            if modality == "video":
                client.models.generate_videos(model=config.model, source=sdk_call.source, config=sdk_call.config)
            else:
                _generate_images(client.models, config.model, sdk_call)
        except _Captured as captured:
            sent = captured.request
        else:  # pragma: no cover - the transport always raises
            raise RuntimeError("the SDK sent no request")
        headers = {k: v for k, v in sent.headers.items() if k.lower() not in _NOISE_HEADERS}
        for name in headers:
            if name.lower() == "authorization":
                headers[name] = f"Bearer {REDACTED}"
            elif name.lower() == "x-goog-api-key":
                headers[name] = REDACTED
        text = sent.content.decode("utf-8")
        for encoded, shown in placeholders.items():
            text = text.replace(encoded, shown)
        return {"method": sent.method, "url": str(sent.url), "headers": headers, "json": json.loads(text)}


# ---------------------------------------------------------------------- responses


def _video_response(call: Call, operation: Any, raw: dict[str, Any]) -> VideoGenerationResponse:
    common: ErrorContext = {"provider": call.provider, "model": call.model, "request_id": call.job_id,
                            "raw_response": raw, "job_may_exist": True}
    if operation.error:
        message = str(operation.error.get("message") or operation.error)
        cls = ContentModerationError if _SAFETY.search(message) else GenerationFailedError
        raise cls(message, **common)
    result = operation.response or operation.result
    videos = (result.generated_videos or []) if result is not None else []
    video = videos[0].video if videos and videos[0].video is not None else None
    if video is None or not (video.uri or video.video_bytes):
        reasons = (result.rai_media_filtered_reasons or []) if result is not None else []
        if reasons or (result is not None and result.rai_media_filtered_count):
            raise ContentModerationError(
                "; ".join(reasons) or "Google filtered the generated video (raiMediaFilteredCount)", **common)
        raise GenerationFailedError("the operation finished without a video", **common)
    content_type = video.mime_type or "video/mp4"
    output: Any = video.uri if video.uri else {"content": video.video_bytes, "content_type": content_type}
    return VideoGenerationResponse(request_id=call.job_id, video=output, content_type=content_type,
                                   raw_response=raw, provider=call.provider, model=call.model)


def _images_response(call: Call, result: Any, raw: dict[str, Any]) -> ImageGenerationResponse:
    request_id = f"vertex-image-{generate_unique_id()}"
    images: list[str] = []
    reasons: list[str] = []
    content_type = None
    for generated in result.generated_images or []:
        image = generated.image
        if image is not None and image.gcs_uri:
            images.append(image.gcs_uri)
        elif image is not None and image.image_bytes:
            images.append(to_data_uri(image.image_bytes, image.mime_type or "image/png"))
        elif generated.rai_filtered_reason:
            reasons.append(generated.rai_filtered_reason)
            continue
        else:
            continue
        content_type = content_type or (image.mime_type if image is not None else None)
    if not images:
        cls = ContentModerationError if reasons else GenerationFailedError
        raise cls("; ".join(reasons) or "the response has no images", provider=call.provider, model=call.model,
                  request_id=request_id, raw_response=raw, job_may_exist=True)
    return ImageGenerationResponse(request_id=request_id, images=images, content_type=content_type or "image/png",
                                   raw_response=raw, provider=call.provider, model=call.model)


# ---------------------------------------------------------------------- SDK arguments


class _SdkCall:
    """The rendered family body as SDK arguments, media strings turned into SDK image/video dicts."""

    def __init__(self, payload: dict[str, Any], modality: str, provider: str, model: str) -> None:
        self.provider, self.model, self.modality = provider, model, modality
        payload = dict(payload)
        config = dict(payload.pop("config", None) or {})
        source = dict(payload.pop("source", None) or {})
        prompt = payload.pop("prompt", None)
        config.update(payload)  # extra_params merged at the top of the payload are config fields
        if modality == "video":
            if prompt is not None:
                source.setdefault("prompt", prompt)
            if source.get("image") is not None:
                source["image"] = self._media(source["image"], "image")
            if source.get("video") is not None:
                source["video"] = self._media(source["video"], "video")
            if config.get("last_frame") is not None:
                config["last_frame"] = self._media(config["last_frame"], "image")
            refs = [dict(r) for r in config.get("reference_images") or [] if r]
            for ref in refs:
                ref["image"] = self._media(ref.get("image"), "image")
            config["reference_images"] = refs
        self.source = {k: v for k, v in source.items() if v is not None}
        self.prompt = prompt
        self.config = {k: v for k, v in config.items() if v is not None and v != []}

    def _media(self, value: Any, kind: str) -> Any:
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            raise ValidationError(f"{kind} must be a URL, a data: URI or bytes", provider=self.provider,
                                  model=self.model)
        if value.startswith("data:"):
            header, _, data = value.partition(",")
            mime = header[5:].split(";")[0] or ("video/mp4" if kind == "video" else "image/png")
            if ";base64" not in header:
                raise ValidationError(f"{kind} data: URIs must be base64-encoded", provider=self.provider,
                                      model=self.model)
            content = base64.b64decode(data)
            return {f"{kind}_bytes": content, "mime_type": mime}
        if value.startswith("gs://"):
            mime = mimetypes.guess_type(value)[0] or ("video/mp4" if kind == "video" else "image/png")
            return {"gcs_uri" if kind == "image" else "uri": value, "mime_type": mime}
        raise ValidationError(
            f"Vertex AI takes {kind}s as bytes, data: URIs or gs:// URIs; could not use {value[:80]!r}",
            provider=self.provider, model=self.model)

    def validate(self, genai: Any) -> None:
        """Check the SDK config before anything is sent (an unknown extra param fails here)."""
        types = genai.types
        model_cls = types.GenerateVideosConfig if self.modality == "video" else types.GenerateImagesConfig
        try:
            model_cls.model_validate(self.config)
            if self.modality == "video":
                types.GenerateVideosSource.model_validate(self.source)
        except Exception as exc:  # noqa: BLE001 - pydantic.ValidationError
            errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
            what = errors[0]["msg"] if errors else str(exc)
            raise ValidationError(f"{self.model} does not take {where or 'this config'}: {what}",
                                  provider=self.provider, model=self.model) from None


def _generate_images(models: Any, model: str, call: _SdkCall) -> Any:
    return models.generate_images(model=model, prompt=call.prompt, config=call.config)


async def _generate_images_async(models: Any, model: str, call: _SdkCall) -> Any:
    return await models.generate_images(model=model, prompt=call.prompt, config=call.config)


# ---------------------------------------------------------------------- media


async def _inline_web_media(family: FamilySpec, request: Any, pool: Any = None) -> Any:
    """Download http(s) images/videos so they go inline; gs:// URIs and bytes pass through."""
    urls = [u for u in _request_media(request) if isinstance(u, str) and media_kind(u) == "url"
            and u.lower().startswith(("http://", "https://"))]
    if not urls:
        return request
    fetched = await fetch_media(urls, family.provider.name, family.media.max_download_bytes, pool)
    return _replace_media(request, lambda m: fetched.get(m, m) if isinstance(m, str) else m)


def _placeholder_web_media(request: Any, placeholders: dict[str, str]) -> Any:
    """Dry run: stand-in bytes for http(s) media, shown as the engine shows media it fetches at send time."""

    def swap(media: Any) -> Any:
        if isinstance(media, str) and media.lower().startswith(("http://", "https://")):
            marker = f"tarash-placeholder-{len(placeholders)}".encode()
            placeholders[base64.b64encode(marker).decode("ascii")] = f"<bytes of {media}, fetched at send time>"
            return {"content": marker, "content_type": mimetypes.guess_type(media.split("?")[0])[0] or "image/png"}
        return media

    return _replace_media(request, swap)


def _request_media(request: Any) -> list[Any]:
    items = [i["image"] for i in request.image_list]
    return items + [getattr(request, "video", None)]


def _replace_media(request: Any, swap: Any) -> Any:
    update: dict[str, Any] = {"image_list": [{**i, "image": swap(i["image"])} for i in request.image_list]}
    if getattr(request, "video", None) is not None:
        update["video"] = swap(request.video)
    return request.model_copy(update=update)


# ---------------------------------------------------------------------- client


def _client_settings(config: Any, dry_run: bool = False) -> dict[str, Any]:
    pc = dict(config.provider_config or {})
    unknown = sorted(set(pc) - {"project", "location", "credentials_path", "credentials", "access_token"})
    if unknown:
        raise ValidationError(f"unknown provider_config keys for Vertex AI: {', '.join(unknown)} (known: project, "
                              "location, credentials_path, credentials, access_token)", provider=config.provider,
                              model=config.model)
    project = pc.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    location = pc.get("location") or os.environ.get("GOOGLE_CLOUD_LOCATION") or DEFAULT_LOCATION
    if pc.get("credentials") is not None:
        cred_key: Any = ("object", id(pc["credentials"]))
    elif pc.get("credentials_path"):
        cred_key = ("file", str(pc["credentials_path"]))
    elif pc.get("access_token"):
        cred_key = ("token", pc["access_token"])
    else:
        cred_key = ("adc",)
    if dry_run and not config.api_key:
        project = project or "PROJECT_ID"
    return {"project": project, "location": location, "credentials_key": cred_key, "provider_config": pc}


def _credentials(config: Any, pc: dict[str, Any], dry_run: bool) -> Any:
    if dry_run:
        from google.oauth2.credentials import Credentials  # a stand-in token: nothing is refreshed

        return Credentials(token=REDACTED)  # type: ignore[no-untyped-call]  # google-auth is unannotated
    if pc.get("credentials") is not None:
        return pc["credentials"]
    if pc.get("credentials_path"):
        from google.oauth2 import service_account

        try:
            return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(pc["credentials_path"]), scopes=SCOPES)
        except (OSError, ValueError) as exc:
            raise AuthenticationError(f"cannot read the service account file: {type(exc).__name__}: {exc}",
                                      provider=config.provider, model=config.model, retryable=False) from None
    if pc.get("access_token"):
        from google.oauth2.credentials import Credentials

        return Credentials(token=str(pc["access_token"]))  # type: ignore[no-untyped-call]
    return None  # Application Default Credentials, loaded by the SDK on first use


def _make_client(genai: Any, config: Any, settings: dict[str, Any], *, async_client: Any = None,
                 sync_client: Any = None, request_timeout: float | None = None) -> Any:
    dry_run = sync_client is not None
    timeout = request_timeout if request_timeout is not None else get_settings().request_timeout
    options: dict[str, Any] = {"timeout": int(timeout * 1000)}
    if config.base_url:
        options["base_url"] = config.base_url.rstrip("/") + "/"
    if config.api_version:
        options["api_version"] = config.api_version
    if async_client is not None:
        options["httpx_async_client"] = async_client
    if sync_client is not None:
        options["httpx_client"] = sync_client
    kwargs: dict[str, Any] = {"vertexai": True, "http_options": genai.types.HttpOptions(**options)}
    if config.api_key and not settings["project"]:
        kwargs["api_key"] = REDACTED if dry_run else config.api_key  # express mode
    else:
        kwargs.update(project=settings["project"], location=settings["location"],
                      credentials=_credentials(config, settings["provider_config"], dry_run))
    try:
        return genai.Client(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the SDK's configuration and ADC errors
        raise AuthenticationError(f"cannot set up the Vertex AI client: {type(exc).__name__}: {exc}",
                                  provider=config.provider, model=config.model, retryable=False) from None


# ---------------------------------------------------------------------- errors and helpers


def _map_error(genai: Any, exc: Exception, phase: str, provider: str, model: str,
               request_id: str | None) -> TarashException:
    if isinstance(exc, TarashException):
        return exc
    common: ErrorOrigin = {"provider": provider, "model": model, "request_id": request_id}
    if isinstance(exc, genai.errors.APIError):
        code = int(exc.code or 0)
        message = str(exc.message or exc.status or "no message")
        body = exc.details
        raw = {"status_code": code, "body": body}
        text = f"HTTP {code}: {message}"
        # At submit a 5xx other than 503 may hide a created job; past submit a job exists.
        may_exist = phase != "submit" or (code >= 500 and code != 503)
        if code == 429:
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            return RateLimitError(text, retry_after=parse_retry_after(headers), raw_response=raw,
                                  job_may_exist=may_exist, **common)
        if code in (400, 403) and (_SAFETY_400 if code == 400 else _SAFETY).search(message):
            return ContentModerationError(text, raw_response=raw, job_may_exist=may_exist, **common)
        if code in (401, 403):
            return AuthenticationError(text, status_code=code, raw_response=raw, job_may_exist=may_exist, **common)
        if code in (400, 422):
            return ValidationError(text, raw_response=raw, job_may_exist=may_exist, **common)
        return HTTPError(text, status_code=code or None, raw_response=raw, job_may_exist=may_exist,
                         retryable=code >= 500 or code in (408,), **common)
    if isinstance(exc, httpx.HTTPError):
        return error_from_transport(exc, provider, model, phase, request_id, get_settings().request_timeout)
    if isinstance(exc, json.JSONDecodeError):
        return HTTPError(f"{phase}: the response is not JSON ({exc.msg})", retryable=phase != "submit",
                         job_may_exist=phase != "submit", **common)
    auth_errors = _google_auth_errors()
    if auth_errors and isinstance(exc, auth_errors):
        return AuthenticationError(f"Google credentials: {type(exc).__name__}: {exc}", retryable=False,
                                   job_may_exist=phase != "submit", **common)
    if isinstance(exc, (ValueError, TypeError)) and phase == "submit":
        return ValidationError(f"{type(exc).__name__}: {exc}", **common)
    return GenerationFailedError(f"{phase} failed: {type(exc).__name__}: {exc}", job_may_exist=phase != "submit",
                                 **common)


def _google_auth_errors() -> tuple[type[BaseException], ...]:
    try:
        from google.auth import exceptions
    except ImportError:  # pragma: no cover - google-auth comes with google-genai
        return ()
    return (exceptions.GoogleAuthError,)


def _percent(metadata: Any) -> int | None:
    """A progress percent if the operation metadata has one (Vertex documents none; some answer with it)."""
    if not isinstance(metadata, dict):
        return None
    for key in ("progressPercent", "progress_percent", "progressPercentage"):
        value = metadata.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return max(0, min(100, int(value)))
    return None


class _capturing:
    """Record the HTTP responses of one SDK call (the SDK does not hand them out)."""

    def __enter__(self) -> list[httpx.Response]:
        self.sink: list[httpx.Response] = []
        self.token = _CAPTURE.set(self.sink)
        return self.sink

    def __exit__(self, *exc: Any) -> None:
        try:
            _CAPTURE.reset(self.token)
        except ValueError:  # the coroutine is being closed from another context (its loop was dropped)
            pass


def _raw(captured: list[httpx.Response]) -> dict[str, Any]:
    """The last response of one SDK call as JSON, base64 media bodies elided."""
    for response in reversed(captured):
        try:
            data = json.loads(response.content)
        except ValueError:
            continue
        return _elide(data) if isinstance(data, dict) else {"output": data}
    return {}


def _elide(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (f"<{len(v) * 3 // 4} bytes, base64>" if k in _B64_KEYS and isinstance(v, str)
                    and len(v) > _MAX_RAW_B64 else _elide(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_elide(v) for v in value]
    return value


__all__ = ["VertexTransport"]
