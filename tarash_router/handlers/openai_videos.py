"""Sora 2 videos through the `openai` SDK: OpenAI (`openai_videos`) and Azure's v1 surface
(`azure_openai_videos`).

The family spec renders the SDK arguments (`model`, `prompt`, `seconds` as text, `size` as WxH,
`input_reference`); this module does the transport:

- create: `videos.create` (multipart, the SDK's only form) for text-only requests and for bytes,
  which go as the `input_reference` file part (the family marks them `{"file": <data URI>}`);
  a URL or data: URI goes as `{"image_url": ...}` in a JSON create (`POST /videos`), the form the
  SDK's multipart encoder cannot send. `extra_params.video_id` makes it a remix
  (`POST /videos/{id}/remix`, prompt only);
- poll `videos.retrieve` (raw, to read the `openai-poll-after-ms` hint) until completed or failed,
  reporting `progress` as percent;
- download `GET /videos/{id}/content` streamed: into memory once (MediaContent bytes), or into the
  file named by `provider_config["download_path"]` (written to a temp file, then renamed) and
  returned as a `file://` URI.

No remote cancel exists (DELETE removes a video, it is not documented to stop one); on deadline or
cancellation the job is left to finish on the provider's side.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.classify import error_from_response
from ..engine.render import JobContext, prepare_job
from ..engine.runner import call_progress, poll_retry_wait
from ..journal.idempotency import CURRENT_FINGERPRINT
from ..errors import GenerationFailedError, HTTPError, TarashException, ValidationError
from ..errors import TimeoutError as GenerationTimeoutError
from ..journal.records import JobRecord
from ..utils import to_float
from ..journal.tracker import JobTracker
from ..models import VideoGenerationRequest, VideoGenerationResponse, VideoGenerationUpdate
from ..settings import get_settings
from ..specs.compiled import FamilySpec
from .openai_common import (
    AzureClients, OpenAIClients, capture, data_uri_to_file, describe_request, import_openai, request_timeout,
    sdk_error, split_sdk_kwargs, warn_deprecated,
)

logger = logging.getLogger("tarash_router.handlers.openai")

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


class OpenAIVideosHandler(OpenAIClients):
    """`handler: openai_videos` — Sora 2 on api.openai.com (Bearer key)."""

    async def run(self, family: FamilySpec, config: Any, request: Any, on_progress: Any,
                  modality: str) -> VideoGenerationResponse:
        openai = import_openai(family.provider.name)
        if modality != "video":
            raise ValidationError(f"{config.model} generates videos, not {modality}s",
                                  provider=family.provider.name, model=config.model)
        job = prepare_job(family, config, request)
        call = plan_call(job)
        warn_deprecated(family)
        client = self.async_client(job, openai)
        tracker = JobTracker(provider=family.provider.name, model=config.model, modality="video", config=config,
                             base_url=job.base_url, idempotency_key=request.idempotency_key,
                             fingerprint=CURRENT_FINGERPRINT.get())
        return await _VideoRun(family, job, call, client, openai, on_progress, tracker=tracker).run()

    async def resume(self, family: FamilySpec, record: JobRecord, config: Any, on_progress: Any) -> Any:
        """Follow a journaled video (e.g. after a crash) to its bytes without creating another."""
        openai = import_openai(family.provider.name)
        job = prepare_job(family, config, VideoGenerationRequest(prompt=""), validate=False)
        tracker = JobTracker(provider=family.provider.name, model=config.model, modality="video", config=config,
                             base_url=job.base_url)
        tracker.attach(record)
        run = _VideoRun(family, job, None, self.async_client(job, openai), openai, on_progress, tracker=tracker,
                        video_id=record.job_id)
        return await run.run()

    def render(self, family: FamilySpec, config: Any, request: Any) -> dict[str, Any]:
        openai = import_openai(family.provider.name)
        job = prepare_job(family, config, request, dry_run=True)
        call = plan_call(job)
        sent = capture(_CANNED_VIDEO, lambda http: self.dry_run_client(job, openai, http),
                       lambda client: invoke(client, call, openai))
        auth = family.provider.file.auth
        return describe_request(sent, auth.header if auth else "Authorization")


class AzureOpenAIVideosHandler(AzureClients, OpenAIVideosHandler):
    """`handler: azure_openai_videos` — Sora 2 on Azure's v1 surface.

    `{endpoint}/openai/v1/videos?api-version=...` with the `api-key` header; `model` is the
    deployment name. The client is built on `base_url={endpoint}/openai/v1`: AzureOpenAI with
    `azure_endpoint` would send `/openai/videos`, which no Azure Sora route serves. Default
    api-version `preview` (the version Azure documents for Sora 2 on the v1 surface).
    """

    DEFAULT_API_VERSION = "preview"

    def azure_target(self, endpoint: str) -> dict[str, Any]:
        return {"base_url": f"{endpoint}/openai/v1"}


@dataclass
class _VideoRun:
    """One video generation in flight: create once, poll, download."""

    family: FamilySpec
    job: JobContext
    call: VideoCall
    client: Any
    openai: Any
    on_progress: Any
    video_id: str | None = None
    video: dict[str, Any] = field(default_factory=dict)
    polls: int = 0
    tracker: JobTracker | None = None

    @property
    def provider(self) -> str:
        return self.family.provider.name

    async def run(self) -> VideoGenerationResponse:
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + self.job.config.timeout
        try:
            async with asyncio.timeout_at(self.deadline):
                return await self._lifecycle()
        except builtins.TimeoutError:
            raise GenerationTimeoutError(
                f"generation did not finish within {self.job.config.timeout:g}s", provider=self.provider,
                model=self.job.model, request_id=self.video_id, timeout_seconds=self.job.config.timeout,
                job_may_exist=self.video_id is not None) from None

    async def _lifecycle(self) -> VideoGenerationResponse:
        if self.video_id is None:
            video = await self._create()
            status = STATUS.get(video.get("status"), "processing")
            hint = None
        else:  # resuming a journaled video: no create, poll first
            video, hint = await self._poll(None, first=True)
            status = STATUS.get(video.get("status"), "processing")
        while status not in ("completed", "failed"):
            await self._emit(status, video)
            if status == "processing" and self.tracker is not None:
                await self.tracker.advance("processing")
            video, hint = await self._poll(hint)
            status = STATUS.get(video.get("status"), "processing")
        if status == "failed":
            await self._emit("failed", video, error=_error_message(video))
            if self.tracker is not None:
                await self.tracker.advance("failed", error={"type": "GenerationFailed",
                                                            "message": _error_message(video) or "failed"})
            raise error_from_response(self.family.provider, "job", None, {}, "", video, model=self.job.model,
                                      request_id=self.video_id, job_may_exist=True)
        return await self._finish(video)

    # ------------------------------------------------------------ requests

    async def _create(self) -> dict[str, Any]:
        timeout = request_timeout(self.deadline)
        if self.tracker is not None:
            await self.tracker.submitting()
        try:
            created = await invoke(self.client, self.call, self.openai, timeout)
        except Exception as exc:
            error = self._error(exc, "submit")
            if self.tracker is not None:
                await self.tracker.submit_failed(job_may_exist=error.job_may_exist,
                                                 error={"type": type(error).__name__, "message": error.message})
            raise error from None
        self.video = created.model_dump(mode="json", exclude_unset=True)
        self.video_id = created.id
        if self.tracker is not None:
            status = STATUS.get(self.video.get("status"), "queued")
            await self.tracker.submitted(created.id, {"video_id": created.id}, status)
        return self.video

    async def _poll(self, hint: float | None, first: bool = False) -> tuple[dict[str, Any], float | None]:
        """Wait, then retrieve until a poll succeeds; failed polls are retried within limits."""
        config = self.job.config
        settings = get_settings()
        delay = 0.0 if first else _wait(config.poll_interval, hint)
        errors = 0
        while True:
            await asyncio.sleep(delay)
            if self.polls >= config.max_poll_attempts:
                raise GenerationTimeoutError(
                    f"job not finished after {self.polls} polls (max_poll_attempts)", provider=self.provider,
                    model=self.job.model, request_id=self.video_id, job_may_exist=True,
                    timeout_seconds=self.polls * config.poll_interval)
            self.polls += 1
            timeout = request_timeout(self.deadline)
            try:
                raw = await self.client.videos.with_raw_response.retrieve(self.video_id, timeout=timeout)
                video = raw.http_response.json()
            except Exception as exc:
                error = self._error(exc, "poll")
                errors += 1
                if not error.retryable or errors > settings.max_poll_errors:
                    raise error from None
                delay = self._retry_wait(error, errors)
                logger.info("%s poll of video %s failed (%s); polling again in %.2fs", self.provider,
                            self.video_id, type(error).__name__, delay)
                continue
            self.video = video
            return video, _hint_seconds(raw.headers.get(POLL_HINT_HEADER))

    async def _finish(self, video: dict[str, Any]) -> VideoGenerationResponse:
        target = self.job.config.provider_config.get(DOWNLOAD_PATH_KEY)
        content, content_type = await self._download(Path(target) if target else None)
        fields = self.family.response.extract(video, {"request": self.job.request, "model": self.job.model})
        response = VideoGenerationResponse(
            request_id=self.video_id or "", video=content, content_type=content_type,
            duration=to_float(fields.get("duration")), resolution=fields.get("resolution"),
            aspect_ratio=fields.get("aspect_ratio") or self.job.request.aspect_ratio,
            raw_response=video, provider=self.provider, model=self.job.model)
        if self.tracker is not None:  # the bytes stay out of the journal; resume downloads them again
            await self.tracker.advance("completed")
        await self._emit("completed", video, percent=100, result=response)
        return response

    async def _download(self, target: Path | None) -> tuple[Any, str]:
        """The video bytes (held once), or streamed into `target`; GETs are retried like polls."""
        settings = get_settings()
        errors = 0
        while True:
            timeout = request_timeout(self.deadline)
            try:
                return await self._download_once(target, timeout)
            except Exception as exc:
                error = self._error(exc, "result")
                errors += 1
                if not error.retryable or errors > settings.max_poll_errors:
                    raise error from None
                await asyncio.sleep(self._retry_wait(error, errors))

    async def _download_once(self, target: Path | None, timeout: float) -> tuple[Any, str]:
        streaming = self.client.videos.with_streaming_response.download_content
        async with streaming(self.video_id, timeout=timeout) as response:
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
            if not content_type.startswith("video/"):
                content_type = "video/mp4"
            if target is None:
                content = await response.read()
                if not content:
                    raise GenerationFailedError("the video content is empty", provider=self.provider,
                                                model=self.job.model, request_id=self.video_id,
                                                job_may_exist=True)
                return {"content": content, "content_type": content_type}, content_type
            try:
                await _stream_to_file(response, target)
            except OSError as exc:
                raise TarashException(f"could not write the video to {target}: {exc.strerror or exc}",
                                      provider=self.provider, model=self.job.model, request_id=self.video_id,
                                      retryable=False, job_may_exist=True) from None
            return target.resolve().as_uri(), content_type

    # ------------------------------------------------------------ helpers

    def _error(self, exc: Exception, phase: str) -> TarashException:
        if isinstance(exc, TarashException):
            return exc
        if isinstance(exc, json.JSONDecodeError):  # a 2xx whose body is not the JSON Video object
            return HTTPError(f"{phase}: the response is not JSON", provider=self.provider, model=self.job.model,
                             request_id=self.video_id, retryable=phase != "submit", job_may_exist=phase != "submit")
        mapped = sdk_error(exc, self.family, self.job.model, phase, self.video_id, self.openai)
        if mapped is None:
            raise exc
        return mapped

    def _retry_wait(self, error: TarashException, attempt: int) -> float:
        return poll_retry_wait(error, attempt, self.job.config.poll_interval)

    async def _emit(self, status: str, video: dict[str, Any], *, percent: int | None = None,
                    error: str | None = None, result: Any = None) -> None:
        if self.on_progress is None:
            return
        if percent is None:
            percent = _percent(video.get("progress"))
        update = VideoGenerationUpdate(
            request_id=self.video_id or "", status=status, progress_percent=percent, update=video, error=error,
            provider=self.provider, model=self.job.model, result=result)
        await call_progress(self.on_progress, update)


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


def _wait(poll_interval: float, hint: float | None) -> float:
    """The configured interval, or longer when the provider asked for it (capped)."""
    if hint is None:
        return poll_interval
    return max(poll_interval, min(hint, get_settings().max_retry_wait))


def _hint_seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value) / 1000) if value else None
    except ValueError:
        return None


def _percent(value: Any) -> int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0, min(100, int(value)))
    return None




def _error_message(video: dict[str, Any]) -> str | None:
    error = video.get("error")
    if isinstance(error, dict):
        return error.get("message") or error.get("code")
    return None


__all__ = ["OpenAIVideosHandler", "AzureOpenAIVideosHandler", "plan_call", "VideoCall"]
