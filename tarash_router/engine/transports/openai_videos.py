"""Sora 2 videos through the `openai` SDK: OpenAI (`openai_videos`) and Azure's v1 surface
(`azure_openai_videos`).

The family spec renders the SDK arguments (`model`, `prompt`, `seconds` as text, `size` as WxH,
`input_reference`); this module does the transport:

- create: `videos.create` (multipart, the SDK's only form) for text-only requests and for bytes,
  which go as the `input_reference` file part (the family marks them `{"file": <data URI>}`);
  a URL or data: URI goes as `{"image_url": ...}` in a JSON create (`POST /videos`), the form the
  SDK's multipart encoder cannot send. `extra_params.video_id` makes it a remix
  (`POST /videos/{id}/remix`, prompt only);
- poll: `videos.retrieve` (raw, to read the `openai-poll-after-ms` hint), `progress` as percent;
- download `GET /videos/{id}/content` streamed: into memory once (MediaContent bytes), or into the
  file named by `provider_config["download_path"]` (written to a temp file, then renamed) and
  returned as a `file://` URI.

No remote cancel exists (DELETE removes a video, it is not documented to stop one); on deadline or
cancellation the job is left to finish on the provider's side. Pacing, retries, deadline, journal
and progress are the lifecycle's (engine/lifecycle.py), as for every transport.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import GenerationFailedError, HTTPError, TarashException, ValidationError
from ...models import VideoGenerationResponse
from ...utils import to_float
from ..classify import error_from_response
from ..render import JobContext, prepare_job
from ..transport import BaseTransport, Call, Status
from .openai_common import (
    AzureClients, OpenAIClients, capture, data_uri_to_file, describe_request, import_openai,
    sdk_error, split_sdk_kwargs, warn_deprecated,
)


# The Video object's lifecycle (SDK type `Video.status`) in our vocabulary.
STATUS = {"queued": "queued", "in_progress": "processing", "completed": "completed", "failed": "failed"}
POLL_HINT_HEADER = "openai-poll-after-ms"
DOWNLOAD_PATH_KEY = "download_path"
_CHUNK = 1 << 16
# A Video the dry-run transport answers with (only the request matters).
_CANNED_VIDEO = {"id": "video_dry_run", "object": "video", "model": "sora-2", "status": "queued", "progress": 0,
                 "created_at": 0, "seconds": "4", "size": "720x1280"}


@dataclass
class VideoCall:
    """What to send: a multipart create, a JSON create, or a remix of `video_id`."""

    kind: str  # "create" | "create_json" | "remix"
    body: dict[str, Any]
    video_id: str | None = None


def plan_call(job: JobContext) -> VideoCall:
    """Choose the create form from the rendered payload (ValidationError before anything is sent)."""
    payload = dict(job.payload)
    video_id = payload.pop("video_id", None)
    if video_id is not None:
        payload.pop("model", None)
        prompt = payload.pop("prompt", None)
        if payload:
            raise ValidationError(
                f"{job.model} remix (extra_params.video_id) takes only a prompt; it cannot take "
                f"{', '.join(sorted(payload))}", provider=job.provider, model=job.model)
        return VideoCall("remix", {"prompt": prompt}, video_id=str(video_id))
    reference = payload.get("input_reference")
    if isinstance(reference, dict) and set(reference) == {"file"}:
        try:
            payload["input_reference"] = data_uri_to_file(reference["file"], "input_reference")
        except ValidationError as exc:
            raise ValidationError(exc.message, provider=job.provider, model=job.model) from None
        return VideoCall("create", payload)
    if isinstance(reference, dict):  # {"image_url": ...} or {"file_id": ...}: JSON only
        return VideoCall("create_json", payload)
    return VideoCall("create", payload)


def invoke(client: Any, call: VideoCall, openai: Any, timeout: float | None = None) -> Any:
    """Send the create (a coroutine for an async client, the Video for a sync one)."""
    options = {} if timeout is None else {"timeout": timeout}
    if call.kind == "remix":
        return client.videos.remix(call.video_id, prompt=call.body["prompt"], **options)
    if call.kind == "create_json":
        return client.post("/videos", body=call.body, cast_to=openai.types.Video, options=options)
    known, extra = split_sdk_kwargs(client.videos.create, call.body)
    return client.videos.create(**known, extra_body=extra or None, **options)


@dataclass
class _Working:
    """Per-call state: the rendered job, the create to send, the SDK client and module."""

    job: JobContext
    call: VideoCall | None
    client: Any
    openai: Any


class OpenAIVideosTransport(OpenAIClients, BaseTransport):
    """`handler: openai_videos`: Sora 2 on api.openai.com (Bearer key)."""

    journal_results = False  # the video bytes stay out of the journal; resume downloads them again

    async def prepare(self, call: Call) -> None:
        openai = import_openai(call.provider)
        if call.job_id is not None:  # following an accepted video
            job = prepare_job(call.family, call.config, call.request, validate=False)
            call.state = _Working(job, None, self.async_client(job, openai), openai)
            return
        if call.modality != "video":
            raise ValidationError(f"{call.model} generates videos, not {call.modality}s", provider=call.provider,
                                  model=call.model)
        job = prepare_job(call.family, call.config, call.request, validate=not call.checked, api_key=call.api_key)
        plan = plan_call(job)
        warn_deprecated(call.family)
        call.state = _Working(job, plan, self.async_client(job, openai), openai)

    async def submit(self, call: Call) -> Status:
        work: _Working = call.state
        assert work.call is not None
        try:
            created = await invoke(work.client, work.call, work.openai, call.request_timeout())
        except Exception as exc:  # noqa: BLE001 - every SDK failure is mapped
            raise _error(exc, call, "submit") from None
        video = created.model_dump(mode="json", exclude_unset=True)
        return Status(STATUS.get(video.get("status"), "queued"), data=video, job_id=created.id,
                      handle={"video_id": created.id}, percent=_percent(video.get("progress")))

    async def poll(self, call: Call) -> Status:
        work: _Working = call.state
        try:
            raw = await work.client.videos.with_raw_response.retrieve(call.job_id,
                                                                     timeout=call.request_timeout())
            video = raw.http_response.json()
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, call, "poll") from None
        state = STATUS.get(video.get("status"), "processing")
        failure = None
        if state == "failed":
            failure = error_from_response(call.family.provider, "job", None, {}, "", video, model=call.model,
                                          request_id=call.job_id, job_may_exist=True)
        return Status(state, data=video, percent=_percent(video.get("progress")), error=failure, native=video,
                      retry_after=_hint_seconds(raw.headers.get(POLL_HINT_HEADER)))

    async def fetch(self, call: Call, status: Status) -> VideoGenerationResponse:
        video = status.native if isinstance(status.native, dict) else (status.data or {})
        target = call.config.provider_config.get(DOWNLOAD_PATH_KEY)
        try:
            content, content_type = await _download(call, Path(target) if target else None)
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, call, "result") from None
        fields = call.family.response.extract(video, {"request": call.request, "model": call.model})
        return VideoGenerationResponse(
            request_id=call.job_id or "", video=content, content_type=content_type,
            duration=to_float(fields.get("duration")), resolution=fields.get("resolution"),
            aspect_ratio=fields.get("aspect_ratio") or call.request.aspect_ratio,
            raw_response=video, provider=call.provider, model=call.model)

    def render(self, call: Call) -> dict[str, Any]:
        openai = import_openai(call.provider)
        job = prepare_job(call.family, call.config, call.request, dry_run=True)
        plan = plan_call(job)
        sent = capture(_CANNED_VIDEO, lambda http: self.dry_run_client(job, openai, http),
                       lambda client: invoke(client, plan, openai))
        auth = call.family.provider.file.auth
        return describe_request(sent, auth.header if auth else "Authorization")


class AzureOpenAIVideosTransport(AzureClients, OpenAIVideosTransport):
    """`handler: azure_openai_videos`: Sora 2 on Azure's v1 surface.

    `{endpoint}/openai/v1/videos?api-version=...` with the `api-key` header; `model` is the
    deployment name. The client is built on `base_url={endpoint}/openai/v1`: AzureOpenAI with
    `azure_endpoint` would send `/openai/videos`, which no Azure Sora route serves. Default
    api-version `preview` (the version Azure documents for Sora 2 on the v1 surface).
    """

    DEFAULT_API_VERSION = "preview"

    def azure_target(self, endpoint: str) -> dict[str, Any]:
        return {"base_url": f"{endpoint}/openai/v1"}


async def _download(call: Call, target: Path | None) -> tuple[Any, str]:
    """The video bytes (held once), or streamed into `target` (the lifecycle retries a failed GET)."""
    work: _Working = call.state
    streaming = work.client.videos.with_streaming_response.download_content
    async with streaming(call.job_id, timeout=call.request_timeout()) as response:
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        if not content_type.startswith("video/"):
            content_type = "video/mp4"
        if target is None:
            content = await response.read()
            if not content:
                raise GenerationFailedError("the video content is empty", provider=call.provider,
                                            model=call.model, request_id=call.job_id, job_may_exist=True)
            return {"content": content, "content_type": content_type}, content_type
        try:
            await _stream_to_file(response, target)
        except OSError as exc:
            raise TarashException(f"could not write the video to {target}: {exc.strerror or exc}",
                                  provider=call.provider, model=call.model, request_id=call.job_id,
                                  retryable=False, job_may_exist=True) from None
        return Path(os.path.abspath(target)).as_uri(), content_type  # noqa: ASYNC240 - no disk access


def _error(exc: Exception, call: Call, phase: str) -> TarashException:
    if isinstance(exc, TarashException):
        return exc
    if isinstance(exc, TimeoutError):  # the builtin: the deadline, which the lifecycle reports
        raise exc
    if isinstance(exc, json.JSONDecodeError):  # a 2xx whose body is not the JSON Video object
        return HTTPError(f"{phase}: the response is not JSON", provider=call.provider, model=call.model,
                         request_id=call.job_id, retryable=phase != "submit", job_may_exist=phase != "submit")
    mapped = sdk_error(exc, call.family, call.model, phase, call.job_id, call.state.openai)
    if mapped is None:
        raise exc
    return mapped


async def _stream_to_file(response: Any, target: Path) -> None:
    """Write the body to a temp file beside `target`, then rename: no half-written video is left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in response.iter_bytes(_CHUNK):
                await asyncio.to_thread(out.write, chunk)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _hint_seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value) / 1000) if value else None
    except ValueError:
        return None


def _percent(value: Any) -> int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0, min(100, int(value)))
    return None




__all__ = ["OpenAIVideosTransport", "AzureOpenAIVideosTransport", "plan_call", "VideoCall"]
