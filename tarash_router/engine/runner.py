"""The generic async engine: run one generation through a spec's job lifecycle.

submit (once) -> poll until a terminal status -> fetch the result -> extract. Poll and result
errors are retried as polls (GETs are idempotent); the submit is sent once, and routing decides
from `job_may_exist` whether it may be sent again. On deadline, cancellation or giving up the
remote job is cancelled where the spec can. Every accepted job is journaled (resume, idempotency).
"""

from __future__ import annotations

import asyncio
import builtins
import codecs
import inspect
import json
import logging
import random
from typing import Any

import httpx

from ..errors import GenerationFailedError, HTTPError, TarashException, UnsafeURLError
from ..errors import TimeoutError as GenerationTimeoutError
from ..journal import get_journal
from ..journal.idempotency import CURRENT_FINGERPRINT
from ..journal.records import JobRecord
from ..journal.store import JobStore
from ..journal.tracker import JobTracker
from ..models import (
    GenerationConfig, GenerationRequest, ImageGenerationResponse, ImageGenerationUpdate, VideoGenerationResponse,
    VideoGenerationUpdate,
)
from ..settings import get_settings
from ..specs.compiled import FamilySpec
from ..specs.params import check_request
from ..utils import generate_unique_id, to_float
from .classify import error_from_response, error_from_transport, output_refusal
from .client import POOL
from .http import Received, ResponseTooLarge
from .http import send as http_send
from .media import fetch_media, media_bytes, media_urls
from .render import JobContext, PreparedRequest, prepare_job

logger = logging.getLogger("tarash_router.engine")
TERMINAL = ("completed", "failed")
_CANCEL_TIMEOUT = 5.0
_CANCEL_MAX_BYTES = 1024 * 1024  # a cancel answer is read only for its status


def _charset(headers: Any) -> str:
    """The body's declared charset (UTF-8 unless the provider says otherwise and Python knows it)."""
    _, _, params = headers.get("content-type", "").partition(";")
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            try:
                return codecs.lookup(value.strip('"')).name
            except LookupError:
                break
    return "utf-8"


class Reply:
    """A response body that was read in full: status, headers, text and parsed JSON (when JSON)."""

    __slots__ = ("status", "headers", "text", "data", "content")

    def __init__(self, response: Received) -> None:
        self.status = response.status
        self.headers = response.headers
        self.content = response.content
        self.text = ""
        self.data: Any = None
        if self.content:
            try:
                self.text = response.content.decode(_charset(response.headers))
                self.data = json.loads(self.text)
            except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting is malformed too
                self.data = None


class Generation:
    """One generation in flight: the job context, the provider's job handle and progress reporting."""

    def __init__(self, jc: JobContext, modality: str, on_progress: Any, journal: JobStore | None = None,
                 idempotency_key: str | None = None, fingerprint: str = "") -> None:
        self.jc = jc
        self.modality = modality
        self.on_progress = on_progress
        self.tracker = None if journal is None else JobTracker(
            provider=jc.provider, model=jc.model, modality=modality, config=jc.config, base_url=jc.base_url,
            idempotency_key=idempotency_key, fingerprint=fingerprint, journal=journal)
        self.settings = get_settings()
        self.job: dict[str, Any] = {}
        self.job_id: str | None = None
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + jc.config.timeout
        self.submitted_at = self.loop.time()
        self.terminal = False  # the provider reported the job finished (completed or failed)
        self._timeout: asyncio.Timeout | None = None  # the deadline in force while run() is active

    # ------------------------------------------------------------ HTTP

    async def send(self, prepared: PreparedRequest, phase: str, allow_empty: set[int] | None = None) -> Reply:
        """Send one request within the deadline; an error status or unreadable body raises."""
        remaining = self.deadline - self.loop.time()
        if remaining <= 0:
            raise builtins.TimeoutError
        s = self.settings
        timeout = httpx.Timeout(min(s.request_timeout, remaining), connect=min(s.connect_timeout, remaining))
        failure: TarashException | None = None
        try:
            received = await self._transmit(prepared, timeout)
        except httpx.HTTPError as exc:
            failure = error_from_transport(exc, self.jc.provider, self.jc.model, phase, self.job_id,
                                           min(s.request_timeout, remaining), prepared.headers.values())
        except ResponseTooLarge as exc:
            failure = HTTPError(
                f"{phase}: {exc} (limit: max_response_bytes)", provider=self.jc.provider, model=self.jc.model,
                request_id=self.job_id, status_code=exc.status, raw_response={"status_code": exc.status},
                # Accepted but unreadable, a submit may have created a job: never sent again.
                retryable=phase != "submit", job_may_exist=phase != "upload" and (phase != "submit" or exc.status < 400))
        if failure is not None:
            raise failure  # outside the except block: the transport error's text stays out of the chain
        reply = Reply(received)
        # Past submit a job exists; at submit, only a 5xx other than 503 may hide a created job;
        # an upload creates none.
        may_exist = phase != "upload" and (phase != "submit" or (reply.status >= 500 and reply.status != 503))
        if reply.status >= 400:
            raise error_from_response(self.jc.family.provider, phase, reply.status, reply.headers, reply.text,
                                      reply.data, model=self.jc.model, request_id=self.job_id, job_may_exist=may_exist)
        if reply.data is None and phase != "cancel" and not (allow_empty and reply.status in allow_empty):
            snippet = " ".join(reply.text.split())[:120] if reply.text else "empty body"
            raise HTTPError(f"{phase}: expected a JSON body, got {snippet!r}", provider=self.jc.provider,
                            model=self.jc.model, request_id=self.job_id, status_code=reply.status,
                            raw_response={"status_code": reply.status, "body": reply.text[:2000]},
                            # A 2xx submit was accepted: the job exists even though we cannot read its id.
                            retryable=phase != "submit", job_may_exist=phase != "upload")
        return reply

    # ------------------------------------------------------------ lifecycle

    async def run(self, resume: JobRecord | None = None) -> VideoGenerationResponse | ImageGenerationResponse:
        """Run the whole lifecycle, or (with `resume`) follow a journaled job without submitting."""
        try:
            try:
                async with asyncio.timeout_at(self.deadline) as self._timeout:
                    if resume is not None:
                        return await self._follow_recorded(resume)
                    return await self._lifecycle()
            finally:
                self._timeout = None  # past the deadline's scope: journal writes run on no clock
        except builtins.TimeoutError:
            if await self._cancel_remote("deadline"):
                await self._record("cancelled", error={"type": "TimeoutError", "message": "deadline reached"})
            raise GenerationTimeoutError(
                f"generation did not finish within {self.jc.config.timeout:g}s", provider=self.jc.provider,
                model=self.jc.model, request_id=self.job_id, timeout_seconds=self.jc.config.timeout,
                job_may_exist=self.job_id is not None) from None
        except asyncio.CancelledError:
            if await self._cancel_remote("caller cancelled"):
                await self._record("cancelled", error={"type": "CancelledError", "message": "caller cancelled"})
            raise
        except TarashException as exc:
            error = {"type": type(exc).__name__, "message": exc.message}
            if self.terminal:  # the provider reported the job failed
                await self._record("failed", error=error)
            # Giving up on a job that may still run (e.g. polls kept failing): stop it so a
            # fallback target does not leave two paid jobs running. If the cancel fails, the
            # journal keeps the job open so `resume` can still collect it.
            # A job whose URLs we refuse to follow is left running and journaled for an operator:
            # its cancel URL came from the same untrusted source.
            elif self.job_id is not None and exc.job_may_exist and not isinstance(exc, UnsafeURLError):
                if await self._cancel_remote(f"giving up after {type(exc).__name__}"):
                    await self._record("cancelled", error=error)
            raise

    async def _lifecycle(self) -> VideoGenerationResponse | ImageGenerationResponse:
        family = self.jc.family
        reply = await self._submit()
        if family.poll is None:  # synchronous provider: the submit response is the result
            if self.tracker is not None:
                await self._off_the_clock(self.tracker.drop_intent())
            self.job_id = self._extract_job(reply.data) or self.job_id
            return await self._finish(reply.data)
        self.job_id = self.jc.job_id = self._extract_job(reply.data)
        if not self.job_id:
            raise GenerationFailedError("submit response has no job id", provider=self.jc.provider,
                                        model=self.jc.model, raw_response=_as_dict(reply.data), retryable=False,
                                        job_may_exist=True)
        status = self._map_status(self.job.get("status")) if self.job.get("status") is not None else "queued"
        await self._journal_submitted(status)
        if status != "completed":  # a finished job gets one completed update, with its result
            await self._emit(status, reply.data, queue_position=self.job.get("queue_position"))
        return await self._follow(status, reply.data)

    async def _follow(self, status: str, data: Any) -> VideoGenerationResponse | ImageGenerationResponse:
        """From an accepted job to its response: poll until done, fetch the result, extract."""
        self.terminal = status in TERMINAL
        if status != "completed":
            data = await self._poll_until_done()
        if self.jc.family.result is not None:
            data = (await self._get_with_retries(self.jc.family.result, "result")).data
        return await self._finish(data)

    async def _follow_recorded(self, record: JobRecord) -> VideoGenerationResponse | ImageGenerationResponse:
        self.job, self.job_id = dict(record.job), record.job_id
        self.jc.job_id = record.job_id
        if self.tracker is not None:
            self.tracker.attach(record)
        status = record.state if record.state in ("queued", "processing") else "queued"
        return await self._follow(status, None)

    # ------------------------------------------------------------ uploads

    async def upload(self, items: list[dict[str, Any]]) -> dict[int, str]:
        """Put large input files on the provider's storage; id(media) -> the URL to send instead."""
        provider = self.jc.family.provider
        urls: dict[int, str] = {}
        for index, item in enumerate(items):
            content_type = item.get("content_type") or "application/octet-stream"
            extension = content_type.split("/")[-1].split(";")[0] or "bin"
            file = {"name": f"input-{index}.{extension}", "filename": f"input-{index}.{extension}",
                    "content_type": content_type, "size": len(item["content"]), "content": item["content"]}
            steps: list[Any] = []
            for template in provider.upload_steps:
                prepared = self.jc.build(template, extra={"file": file, "steps": steps})
                reply = await self.send(prepared, "upload", allow_empty=set(range(200, 300)))
                steps.append(reply.data)
            url = provider.upload_url.render({"file": file, "steps": steps, "base_url": self.jc.base_url,
                                              "model": self.jc.model,
                                              "provider_config": self.jc.config.provider_config})
            if not isinstance(url, str) or not url:
                raise GenerationFailedError("the upload gave no file URL", provider=provider.name,
                                            model=self.jc.model, retryable=False)
            urls[id(item)] = url
        return urls

    # ------------------------------------------------------------ journal

    async def _journal_submitted(self, status: str) -> None:
        if self.tracker is not None and self.job_id is not None:
            state = "processing" if status == "processing" else "queued"
            await self._off_the_clock(self.tracker.submitted(self.job_id, self.job, state))

    async def _record(self, state: str, **changes: Any) -> None:
        if self.tracker is not None:
            await self._off_the_clock(self.tracker.advance(state, **changes))

    async def _off_the_clock(self, write: Any) -> None:
        """Run a journal write without letting it eat into the job's deadline or trip its cancel: the
        deadline is held back while the (bounded, never raising) write runs, then moved later by the
        time it took. A slow journal delays the caller; it never costs them their paid job."""
        if self._timeout is None:
            await write
            return
        started = self.loop.time()
        self._timeout.reschedule(None)
        try:
            await write
        finally:
            self.deadline += self.loop.time() - started
            self._timeout.reschedule(self.deadline)

    async def _submit(self) -> Reply:
        # Sent once: whether a failed submit may be retried is routing's call (see RetryPolicy),
        # made from `job_may_exist` on the error. The journal holds a `submitting` intent meanwhile.
        prepared = self.jc.build(self.jc.family.submit)
        if self.tracker is not None:
            await self._off_the_clock(self.tracker.submitting())
        try:
            reply = await self.send(prepared, "submit")
        except TarashException as exc:
            if self.tracker is not None:
                await self._off_the_clock(self.tracker.submit_failed(
                    job_may_exist=exc.job_may_exist, error={"type": type(exc).__name__, "message": exc.message}))
            raise
        self.submitted_at = self.loop.time()
        return reply

    def _extract_job(self, data: Any) -> str | None:
        paths = self.jc.family.provider.job_paths
        self.job = {name: path.first(data) for name, path in paths.items()}
        job_id = self.job.get("id")
        return str(job_id) if job_id is not None else None

    async def _poll_until_done(self) -> Any:
        config = self.jc.config
        family = self.jc.family
        extract = family.poll_extract
        assert extract is not None
        prepared = self.jc.build(family.poll, self.job)
        polls = errors = 0
        delay = config.poll_interval
        while True:
            await asyncio.sleep(delay)
            if polls >= config.max_poll_attempts:  # run() cancels the remote job on the way out
                raise GenerationTimeoutError(
                    f"job not finished after {polls} polls (max_poll_attempts)", provider=self.jc.provider,
                    model=self.jc.model, request_id=self.job_id, job_may_exist=True,
                    timeout_seconds=polls * config.poll_interval)
            polls += 1
            try:
                reply = await self.send(prepared, "poll", allow_empty=set(extract.status_codes))
            except TarashException as exc:
                errors += 1
                if not exc.retryable or errors > self.settings.max_poll_errors:
                    raise
                delay = self._retry_wait(exc, errors)
                logger.info("%s poll of job %s failed (%s); polling again in %.2fs", self.jc.provider,
                            self.job_id, type(exc).__name__, delay)
                continue
            errors = 0
            delay = self._next_poll_delay(extract.hinted_delay(reply.headers))
            data = reply.data
            status = (extract.status_codes[reply.status] if reply.status in extract.status_codes
                      else self._map_status(extract.raw_status(reply.status, data)))
            error = extract.get("error", data)
            if error is not None and status == "completed":
                status = "failed"
            self.terminal = status in TERMINAL
            if status == "completed":
                return data  # the completed update goes out with the extracted result
            if status == "processing":
                await self._record("processing")
            await self._emit(status, data, queue_position=extract.get("queue_position", data),
                             logs=extract.get("logs", data), percent=extract.percent(data),
                             error=str(error) if error is not None else None)
            if status == "failed":
                raise error_from_response(family.provider, "job", None, reply.headers, reply.text, data,
                                          model=self.jc.model, request_id=self.job_id, job_may_exist=True)

    def _next_poll_delay(self, hint: float | None) -> float:
        """The pause before the next poll: the configured interval, growing with the job's age
        (`poll_backoff` × time since submit, capped at `poll_interval_max`), and never shorter than
        the provider's own hint."""
        base = self.jc.config.poll_interval
        age = self.loop.time() - self.submitted_at
        delay = max(base, min(self.settings.poll_backoff * age, self.settings.poll_interval_max))
        return max(delay, min(hint, self.settings.poll_interval_max)) if hint is not None else delay

    async def _get_with_retries(self, template: Any, phase: str) -> Reply:
        prepared = self.jc.build(template, self.job)
        errors = 0
        while True:
            try:
                return await self.send(prepared, phase)
            except TarashException as exc:
                errors += 1
                if not exc.retryable or errors > self.settings.max_poll_errors:
                    raise
                await asyncio.sleep(self._retry_wait(exc, errors))

    def _retry_wait(self, exc: TarashException, attempt: int) -> float:
        return poll_retry_wait(exc, attempt, self.jc.config.poll_interval)

    def _map_status(self, raw: Any) -> str:
        if raw is None:
            return "processing"
        mapped = self.jc.family.provider.protocol.status_map.get(str(raw))  # type: ignore[union-attr]
        if mapped is None:
            logger.warning("%s job %s: unknown status %r treated as processing", self.jc.provider, self.job_id, raw)
            return "processing"
        return mapped

    # ------------------------------------------------------------ result and progress

    async def _finish(self, data: Any) -> VideoGenerationResponse | ImageGenerationResponse:
        refusal = output_refusal(self.jc.family.provider, data, model=self.jc.model, request_id=self.job_id)
        if refusal is not None:
            raise refusal
        fields = self.jc.family.response.extract(data, {"request": self.jc.request, "model": self.jc.model})
        request_id = self.job_id or generate_unique_id()
        raw = _as_dict(data)
        common = {"request_id": request_id, "raw_response": raw, "provider": self.jc.provider, "model": self.jc.model}
        if self.modality == "video":
            if not isinstance(fields.get("video"), (str, dict)):
                raise GenerationFailedError("the result has no video", provider=self.jc.provider, model=self.jc.model,
                                            request_id=request_id, raw_response=raw, retryable=False,
                                            job_may_exist=True)
            response: Any = VideoGenerationResponse(
                video=fields["video"], content_type=fields.get("content_type"), audio_url=fields.get("audio_url"),
                duration=to_float(fields.get("duration")), resolution=fields.get("resolution"),
                aspect_ratio=fields.get("aspect_ratio"), **common)
        else:
            images = [i for i in fields.get("images", []) if isinstance(i, str)]
            if not images:
                raise GenerationFailedError("the result has no images", provider=self.jc.provider,
                                            model=self.jc.model, request_id=request_id, raw_response=raw,
                                            retryable=False, job_may_exist=True)
            response = ImageGenerationResponse(
                images=images, content_type=fields.get("content_type") or "image/png",
                revised_prompt=fields.get("revised_prompt"), **common)
        await self._record("completed", result=response.model_dump(mode="json"))
        await self._emit("completed", raw, percent=100, result=response)
        return response

    async def _emit(self, status: str, data: Any, *, queue_position: Any = None, logs: Any = None,
                    percent: int | None = None, error: str | None = None, result: Any = None) -> None:
        if self.on_progress is None:
            return
        cls = VideoGenerationUpdate if self.modality == "video" else ImageGenerationUpdate
        update = cls(
            request_id=self.job_id or "", status=status, progress_percent=percent,
            queue_position=queue_position if isinstance(queue_position, int) else None,
            logs=_logs(logs), update=_as_dict(data), error=error,
            provider=self.jc.provider, model=self.jc.model, result=result)
        await call_progress(self.on_progress, update)

    async def _transmit(self, prepared: PreparedRequest, timeout: Any, max_bytes: int | None = None) -> Received:
        limit = max_bytes or self.jc.family.provider.file.max_response_bytes or self.settings.max_response_bytes
        return await http_send(
            POOL.get(self.jc.provider), prepared.method, prepared.url, headers=prepared.headers,
            secret_headers=prepared.secret_headers, params=prepared.query or None, json=prepared.json,
            data=prepared.form, files=prepared.files, content=prepared.content, timeout=timeout, max_bytes=limit)

    async def _cancel_remote(self, reason: str) -> bool:
        """Best effort: ask the provider to stop the job so it is not billed further. True if it said yes."""
        template = self.jc.family.cancel
        if template is None or self.job_id is None:
            return False
        try:
            prepared = self.jc.build(template, self.job)
        except TarashException as exc:  # e.g. a cancel URL on an untrusted origin: never sent
            logger.warning("%s job %s: cancel not sent (%s)", self.jc.provider, self.job_id, exc.message)
            return False

        async def _send() -> bool:
            response = await self._transmit(prepared, _CANCEL_TIMEOUT, max_bytes=_CANCEL_MAX_BYTES)
            logger.info("%s job %s cancelled (%s): HTTP %s", self.jc.provider, self.job_id, reason, response.status)
            return response.status < 300

        try:
            return await asyncio.shield(asyncio.wait_for(_send(), _CANCEL_TIMEOUT))
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - cancel is best effort
            logger.warning("%s job %s: cancel failed (%s)", self.jc.provider, self.job_id, type(exc).__name__)
            return False


def poll_retry_wait(exc: TarashException, attempt: int, poll_interval: float) -> float:
    """The pause before re-trying a failed poll/GET: Retry-After when given, else exponential backoff
    from the poll interval with jitter; never past settings.max_retry_wait. Shared by SDK handlers."""
    cap = get_settings().max_retry_wait
    hinted = getattr(exc, "retry_after", None)
    if hinted is not None:
        return min(hinted, cap)
    base = max(poll_interval, 0.05) * (2 ** (attempt - 1))
    return min(cap, base) * random.uniform(0.5, 1.0)


async def call_progress(callback: Any, update: Any) -> None:
    """Call a sync or async progress callback; its failure is logged, never fatal to a paid job."""
    try:
        result = callback(update)
        if inspect.isawaitable(result):
            await result
    except Exception:  # noqa: BLE001
        logger.exception("progress callback raised; the generation continues")


def _logs(value: Any) -> list[Any] | None:
    """Provider logs as a list: lists pass through, a log string (Replicate) becomes its lines."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value:
        return value.splitlines()
    return None


def _as_dict(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {"output": data}


async def run_generation(family: FamilySpec, config: GenerationConfig, request: GenerationRequest,
                         on_progress: Any, modality: str) -> VideoGenerationResponse | ImageGenerationResponse:
    """Validate, render and run one generation through `family`'s protocol, journaling the job."""
    media = family.media
    fetched = None
    if media.download and (urls := media_urls(request)):
        check_request(family, config.model, request)  # refuse a bad request before downloading anything
        fetched = await fetch_media(urls, family.provider.name, media.max_download_bytes)
    uploaded = None
    if media.upload_over_bytes is not None and family.provider.upload_steps:
        large = [m for m in media_bytes(request) if len(m["content"]) > media.upload_over_bytes]
        if large:
            placeholder = prepare_job(family, config, request, fetched=fetched,
                                      uploaded={id(m): "" for m in large})
            uploaded = await Generation(placeholder, modality, None).upload(large)
    jc = prepare_job(family, config, request, fetched=fetched, uploaded=uploaded)
    key = getattr(request, "idempotency_key", None)
    return await Generation(jc, modality, on_progress, journal=get_journal(), idempotency_key=key,
                            fingerprint=CURRENT_FINGERPRINT.get()).run()


def _attach(record: JobRecord, config: GenerationConfig, on_progress: Any) -> Generation:
    """A Generation bound to a journaled job (no submit)."""
    from ..models import ImageGenerationRequest, VideoGenerationRequest
    from ..specs.registry import get_registry

    family = get_registry().resolve(record.provider, record.model, record.modality)
    request = (VideoGenerationRequest if record.modality == "video" else ImageGenerationRequest)(prompt="")
    jc = prepare_job(family, config, request, validate=False)  # base URL from the caller, not the journal
    generation = Generation(jc, record.modality, on_progress, journal=get_journal(),
                            idempotency_key=record.idempotency_key, fingerprint=record.fingerprint)
    generation.job, generation.job_id = dict(record.job), record.job_id
    jc.job_id = record.job_id
    if generation.tracker is not None:
        generation.tracker.attach(record)
    return generation


async def resume_generation(record: JobRecord, config: GenerationConfig, on_progress: Any) -> Any:
    """Follow a journaled job to its result without submitting anything."""
    return await _attach(record, config, on_progress).run(resume=record)


async def cancel_recorded(record: JobRecord, config: GenerationConfig) -> bool:
    """Ask the provider to cancel a journaled job; True (and journaled as cancelled) if it agreed."""
    generation = _attach(record, config, None)
    if await generation._cancel_remote("requested"):
        await generation._record("cancelled", error={"type": "Cancelled", "message": "cancelled on request"})
        return True
    return False


__all__ = ["run_generation", "Generation", "call_progress"]
