"""The generic HTTP transport: executes a YAML family's declared protocol (submit, poll, result,
cancel requests; a status stream; JSONPath extractors; status map; error rules) over the engine's
HTTP seam."""

from __future__ import annotations

import codecs
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Collection
from typing import Any

import httpx

from ...errors import GenerationFailedError, HTTPError, TarashException
from ...utils import generate_unique_id, to_float
from ..classify import error_from_response, error_from_transport, output_refusal
from ..http import Received, ResponseTooLarge, checked_header_values
from ..http import send as http_send
from ..media import fetch_media, media_bytes, media_urls
from ..render import JobContext, PreparedRequest, prepare_job
from ..transport import Call, Status
from .spec_stream import follow_stream
from ...models import ImageGenerationRequest, ImageGenerationResponse, VideoGenerationRequest, VideoGenerationResponse
from ...specs.params import check_request

logger = logging.getLogger("tarash_router.engine")
_CANCEL_MAX_BYTES = 1024 * 1024  # a cancel answer is read only for its status
# The response fields each kind of result reads (a video's result is not searched for images).
_VIDEO_FIELDS = frozenset({"video", "content_type", "audio_url", "duration", "resolution", "aspect_ratio"})
_IMAGE_FIELDS = frozenset({"images", "content_type", "revised_prompt"})


@functools.lru_cache(maxsize=256)  # far from the deadline every request has the settings' timeouts
def _timeout(read: float, connect: float) -> httpx.Timeout:
    return httpx.Timeout(read, connect=connect)


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


class SpecTransport:
    """Runs any YAML family: one instance serves every spec family (the family is on the call)."""

    journal_results = True

    # ------------------------------------------------------------ verbs

    async def prepare(self, call: Call) -> None:
        family, config, request = call.family, call.config, call.request
        if call.job_id is not None:  # following an accepted job: nothing to validate or upload
            call.state = prepare_job(family, config, request, validate=False)
            call.state.job_id = call.job_id
            return
        media = family.media
        fetched = None
        validate, key = not call.checked, call.api_key
        if media.download and (urls := media_urls(request)):
            if validate:  # refuse a bad request before downloading anything
                check_request(family, config.model, request, drop=config.adapt)
                validate = False
            fetched = await fetch_media(urls, family.provider.name, media.max_download_bytes, call.pool)
        uploaded = None
        if media.upload_over_bytes is not None and family.provider.upload_steps:
            large = [m for m in media_bytes(request) if len(m["content"]) > media.upload_over_bytes]
            if large:
                placeholder = prepare_job(family, config, request, fetched=fetched, validate=validate,
                                          uploaded={id(m): "" for m in large}, api_key=key)
                validate = False
                uploaded = await self._upload(call, placeholder, large)
        call.state = prepare_job(family, config, request, fetched=fetched, uploaded=uploaded, validate=validate,
                                 api_key=key)

    async def submit(self, call: Call) -> Status:
        jc: JobContext = call.state
        assert call.family.submit is not None  # an HTTP (`protocol`) provider always has one
        prepared = jc.build(call.family.submit)
        if call.webhook_url is not None:
            _add_webhook(prepared, call.family.provider.file.webhook, call.webhook_url)
        reply = await self._send(call, prepared, "submit")
        handle = self._handle(call, reply.data)
        job_id = handle.get("id")
        if call.family.poll is None:  # synchronous provider: the submit response is the result
            return Status("completed", data=reply.data, native=reply.data,
                          handle={"sync_id": job_id} if job_id is not None else None)
        if job_id is None:
            raise GenerationFailedError("submit response has no job id", provider=call.provider, model=call.model,
                                        raw_response=_as_dict(reply.data), retryable=False, job_may_exist=True)
        raw_status = handle.get("status")
        state = self._map_status(call, raw_status) if raw_status is not None else "queued"
        jc.job_id = str(job_id)
        failure = None
        if state == "failed":  # e.g. a create that waited (Prefer: wait) and saw the job fail
            failure = error_from_response(call.family.provider, "job", None, reply.headers, reply.text, reply.data,
                                          model=call.model, request_id=jc.job_id, job_may_exist=True)
        return Status(state, data=reply.data, job_id=str(job_id), handle=handle, error=failure,
                      queue_position=_int(handle.get("queue_position")), native=reply.data)

    async def poll(self, call: Call) -> Status:
        jc: JobContext = call.state
        extract = call.family.poll_extract
        assert extract is not None and call.family.poll is not None
        if jc.poll_request is None:  # the same request every time: rendered once per job
            jc.poll_request = jc.build(call.family.poll, call.handle)
        reply = await self._send(call, jc.poll_request, "poll", allow_empty=extract.status_codes)
        data = reply.data
        state = (extract.status_codes[reply.status] if reply.status in extract.status_codes
                 else self._map_status(call, extract.raw_status(reply.status, data)))
        status = self._status(call, state, data, reply.headers, reply.text)
        status.retry_after = extract.hinted_delay(reply.headers)
        return status

    def watch(self, call: Call) -> AsyncIterator[Status] | None:
        """The job's status stream, when the family declares one (`protocol.stream`); else None."""
        if call.family.stream is None or call.job_id is None:
            return None
        return follow_stream(call, self._stream_status)

    def _stream_status(self, call: Call, data: dict[str, Any], text: str) -> Status:
        """One stream event, read as the poll's answer would be."""
        extract = call.family.poll_extract
        assert extract is not None
        return self._status(call, self._map_status(call, extract.body_status(data)), data, {}, text)

    def _status(self, call: Call, state: str, data: Any, headers: Any, text: str) -> Status:
        """What a status object says, read with the poll's paths: a finished job carrying an error failed."""
        extract = call.family.poll_extract
        assert extract is not None
        error = extract.get("error", data)
        if error is not None and state == "completed":
            state = "failed"
        failure = None
        if state == "failed":
            failure = error_from_response(call.family.provider, "job", None, headers, text, data,
                                          model=call.model, request_id=call.job_id, job_may_exist=True)
        return Status(state, data=data, percent=extract.percent(data),
                      queue_position=_int(extract.get("queue_position", data)),
                      logs=_logs(extract.get("logs", data)), error=failure, native=data)

    async def fetch(self, call: Call, status: Status) -> Any:
        data = status.native
        if call.family.result is not None and call.job_id is not None:
            data = (await self._send(call, call.state.build(call.family.result, call.handle), "result")).data
        return self.extract_response(call, data, call.job_id or (status.handle or {}).get("sync_id"))

    async def cancel(self, call: Call) -> bool:
        template = call.family.cancel
        if template is None or call.job_id is None:
            return False
        prepared = call.state.build(template, call.handle)  # an untrusted cancel URL raises: never sent
        response = await self._transmit(call, prepared, httpx.Timeout(5.0), max_bytes=_CANCEL_MAX_BYTES)
        logger.info("%s job %s cancel: HTTP %s", call.provider, call.job_id, response.status)
        return response.status < 300

    def render(self, call: Call) -> dict[str, Any]:
        job = prepare_job(call.family, call.config, call.request, dry_run=True)
        assert call.family.submit is not None  # an HTTP (`protocol`) provider always has one
        return job.build(call.family.submit, dry_run=True).redacted()

    # ------------------------------------------------------------ HTTP

    async def _send(self, call: Call, prepared: PreparedRequest, phase: str,
                    allow_empty: Collection[int] | None = None) -> Reply:
        """Send one request within the deadline; an error status or unreadable body raises."""
        remaining = call.time_left()
        if remaining <= 0:
            raise TimeoutError
        s = call.settings
        timeout = _timeout(min(s.request_timeout, remaining), min(s.connect_timeout, remaining))
        failure: TarashException | None = None
        try:
            received = await self._transmit(call, prepared, timeout)
        except httpx.HTTPError as exc:
            failure = error_from_transport(exc, call.provider, call.model, phase, call.job_id,
                                           min(s.request_timeout, remaining), prepared.headers.values())
        except ResponseTooLarge as exc:
            failure = HTTPError(
                f"{phase}: {exc} (limit: max_response_bytes)", provider=call.provider, model=call.model,
                request_id=call.job_id, status_code=exc.status, raw_response={"status_code": exc.status},
                # Accepted but unreadable, a submit may have created a job: never sent again.
                retryable=phase != "submit", job_may_exist=phase != "upload" and (phase != "submit" or exc.status < 400))
        if failure is not None:
            raise failure  # outside the except block: the transport error's text stays out of the chain
        reply = Reply(received)
        # Past submit a job exists; at submit, only a 5xx other than 503 may hide a created job;
        # an upload creates none.
        may_exist = phase != "upload" and (phase != "submit" or (reply.status >= 500 and reply.status != 503))
        if reply.status >= 400:
            raise error_from_response(call.family.provider, phase, reply.status, reply.headers, reply.text,
                                      reply.data, model=call.model, request_id=call.job_id, job_may_exist=may_exist)
        if reply.data is None and phase != "cancel" and not (allow_empty and reply.status in allow_empty):
            snippet = " ".join(reply.text.split())[:120] if reply.text else "empty body"
            raise HTTPError(f"{phase}: expected a JSON body, got {snippet!r}", provider=call.provider,
                            model=call.model, request_id=call.job_id, status_code=reply.status,
                            raw_response={"status_code": reply.status, "body": reply.text[:2000]},
                            # A 2xx submit was accepted: the job exists even though we cannot read its id.
                            retryable=phase != "submit", job_may_exist=phase != "upload")
        return reply

    def _transmit(self, call: Call, prepared: PreparedRequest, timeout: Any,
                  max_bytes: int | None = None) -> Awaitable[Received]:
        """The send of `prepared` (to await): no coroutine of its own, one less frame per request."""
        limit = max_bytes or call.family.provider.file.max_response_bytes or call.settings.max_response_bytes
        checked = prepared.checked_values
        if checked is None:
            checked = prepared.checked_values = checked_header_values(prepared.headers)
        return http_send(
            call.client(), prepared.method, prepared.url, headers=prepared.headers,
            secret_headers=prepared.secret_headers, params=prepared.query or None, json=prepared.json,
            data=prepared.form, files=prepared.files, content=prepared.content, timeout=timeout, max_bytes=limit,
            checked=checked)

    async def _upload(self, call: Call, jc: JobContext, items: list[dict[str, Any]]) -> dict[int, str]:
        """Put large input files on the provider's storage; id(media) -> the URL to send instead."""
        provider = call.family.provider
        urls: dict[int, str] = {}
        for index, item in enumerate(items):
            content_type = item.get("content_type") or "application/octet-stream"
            extension = content_type.split("/")[-1].split(";")[0] or "bin"
            file = {"name": f"input-{index}.{extension}", "filename": f"input-{index}.{extension}",
                    "content_type": content_type, "size": len(item["content"]), "content": item["content"]}
            steps: list[Any] = []
            for template in provider.upload_steps:
                prepared = jc.build(template, extra={"file": file, "steps": steps})
                reply = await self._send(call, prepared, "upload", allow_empty=range(200, 300))
                steps.append(reply.data)
            assert provider.upload_url is not None  # compiled with the upload steps
            url = provider.upload_url.render({"file": file, "steps": steps, "base_url": jc.base_url,
                                              "model": jc.model, "provider_config": jc.config.provider_config})
            if not isinstance(url, str) or not url:
                raise GenerationFailedError("the upload gave no file URL", provider=provider.name,
                                            model=jc.model, retryable=False)
            urls[id(item)] = url
        return urls

    # ------------------------------------------------------------ extraction

    @staticmethod
    def _handle(call: Call, data: Any) -> dict[str, Any]:
        handle = {name: path.first(data) for name, path in call.family.provider.job_paths.items()}
        if handle.get("id") is not None:
            handle["id"] = str(handle["id"])
        return handle

    @staticmethod
    def _map_status(call: Call, raw: Any) -> str:
        if raw is None:
            return "processing"
        mapped = call.family.provider.protocol.status_map.get(str(raw))  # type: ignore[union-attr]
        if mapped is None:
            logger.warning("%s job %s: unknown status %r treated as processing", call.provider, call.job_id, raw)
            return "processing"
        return mapped

    @staticmethod
    def extract_response(call: Call, data: Any, job_id: str | None) -> Any:
        """The response in a result (the fetched result, or what a webhook delivered), read with the
        family's response paths; a refusal or a result without the media raises."""
        refusal = output_refusal(call.family.provider, data, model=call.model, request_id=job_id)
        if refusal is not None:
            raise refusal
        fields = call.family.response.extract(data, {"request": call.request, "model": call.model},
                                              only=_VIDEO_FIELDS if call.modality == "video" else _IMAGE_FIELDS)
        request_id = job_id or generate_unique_id()
        raw = _as_dict(data)
        common = {"request_id": request_id, "raw_response": raw, "provider": call.provider, "model": call.model}
        if call.modality == "video":
            if not isinstance(fields.get("video"), (str, dict)):
                raise GenerationFailedError("the result has no video", provider=call.provider, model=call.model,
                                            request_id=request_id, raw_response=raw, retryable=False,
                                            job_may_exist=True)
            return VideoGenerationResponse(
                video=fields["video"], content_type=fields.get("content_type"), audio_url=fields.get("audio_url"),
                duration=to_float(fields.get("duration")), resolution=fields.get("resolution"),
                aspect_ratio=fields.get("aspect_ratio"), **common)
        images = [i for i in fields.get("images", []) if isinstance(i, str)]
        if not images:
            raise GenerationFailedError("the result has no images", provider=call.provider, model=call.model,
                                        request_id=request_id, raw_response=raw, retryable=False, job_may_exist=True)
        return ImageGenerationResponse(images=images, content_type=fields.get("content_type") or "image/png",
                                       revised_prompt=fields.get("revised_prompt"), **common)


def _add_webhook(prepared: PreparedRequest, webhook: Any, url: str) -> None:
    """Put the caller's webhook URL on the submit where the provider file's `webhook:` says."""
    if webhook.query is not None:
        prepared.query = {**prepared.query, webhook.query: url}
    if webhook.body is not None:
        prepared.json = {**(prepared.json if isinstance(prepared.json, dict) else {}), webhook.body: url,
                         **webhook.body_extra}


def empty_request(modality: str) -> Any:
    """The request a journaled job is followed with (the original is not journaled)."""
    return (VideoGenerationRequest if modality == "video" else ImageGenerationRequest)(prompt="")


def _charset(headers: Any) -> str:
    """The body's declared charset (UTF-8 unless the provider says otherwise and Python knows it)."""
    return _charset_of(headers.get("content-type", ""))


@functools.lru_cache(maxsize=64)  # a provider sends the same few content types
def _charset_of(content_type: str) -> str:
    _, _, params = content_type.partition(";")
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            try:
                return codecs.lookup(value.strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _logs(value: Any) -> list[Any] | None:
    """Provider logs as a list: lists pass through, a log string (Replicate) becomes its lines."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value:
        return value.splitlines()
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_dict(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {"output": data}


__all__ = ["SpecTransport", "Reply", "empty_request"]
