"""A YAML family's status stream (`protocol.stream`): one long request whose Server-Sent Events are
the poll's status objects, as fal serves them (https://fal.ai/docs/inference-api/queue/status-stream).

Everything the provider sends is bounded: each event or line (`status_stream_max_event_bytes`), the
whole stream (the provider's `max_response_bytes`), the silence between bytes
(`status_stream_idle_timeout`; keep-alive comments count as bytes) and the job's deadline. Any of
those, a dropped connection, an error status, a body that is not an event stream or an event that is
not a JSON object raise a TarashException: the lifecycle then polls from where the stream stopped.
When every stream slot of the provider is taken (`status_stream_max`), nothing is sent and the
iterator ends at once: that job polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import httpx

from ...errors import HTTPError, TarashException
from ..classify import error_from_response, error_from_transport
from ..http import NoStreamSlot, ResponseTooLarge, Streamed, open_stream
from ..sse import EventDecoder, EventTooLarge
from ..transport import Call, Status

logger = logging.getLogger("tarash_router.engine")
EVENT_STREAM = "text/event-stream"
FINISHED = ("completed", "failed")
DRAIN_SECONDS = 1.0  # how long the end of a stream is awaited after its final event
_ERROR_BODY_MAX = 64 * 1024  # an error answer to the stream request is read only for its message

# (call, the event's JSON object, its text) -> the Status a poll answering that object would give
ReadStatus = Callable[[Call, dict[str, Any], str], Status]


async def follow_stream(call: Call, read_status: ReadStatus) -> AsyncIterator[Status]:
    """The Status of each event of the job's status stream, until the provider closes it."""
    stream = call.family.stream
    assert stream is not None
    prepared = call.state.build(stream.request, call.handle)  # an untrusted URL raises: never sent
    settings = call.settings
    remaining = call.time_left()
    if remaining <= 0:
        raise TimeoutError
    idle = settings.status_stream_idle_timeout
    timeout = httpx.Timeout(idle, connect=min(settings.connect_timeout, remaining))
    logs: list[Any] = []
    failure: TarashException | None = None
    try:
        async with open_stream(call.pool.streams(call.provider), prepared.method, prepared.url,
                               headers=prepared.headers, secret_headers=prepared.secret_headers,
                               params=prepared.query or None, timeout=timeout) as response:
            await _check_answer(call, response)
            # Closed explicitly, each generator in turn: one left to the garbage collector would
            # close later, on a task of its own.
            async with contextlib.aclosing(_event_data(response, call, idle)) as events:
                async for text in events:
                    data = _json_object(call, text)
                    status = read_status(call, data, text)
                    if stream.incremental_logs:  # shown as a poll shows them: every log so far
                        logs.extend(status.logs or ())
                        status.logs = list(logs) if logs else status.logs
                    if status.state in FINISHED:  # the provider closes the stream now: read it to its end
                        await _drain(events)
                    yield status
    except NoStreamSlot:
        logger.debug("%s job %s: every status stream slot is taken; polling", call.provider, call.job_id)
        return
    except httpx.HTTPError as exc:
        failure = error_from_transport(exc, call.provider, call.model, "status stream", call.job_id, idle,
                                       prepared.headers.values())
    except ResponseTooLarge as exc:
        failure = _broken(call, f"{exc} in all (limit: max_response_bytes)")
    except EventTooLarge as exc:
        failure = _broken(call, f"{exc} (limit: status_stream_max_event_bytes)")
    if failure is not None:
        raise failure  # outside the except block: the transport error's text stays out of the chain


async def _drain(events: AsyncIterator[str]) -> None:
    """Read what follows the final event, briefly: a response read to its end leaves its connection
    reusable and nothing half-read behind; one that does not end soon is closed as it is."""
    with contextlib.suppress(TimeoutError, TarashException, httpx.HTTPError, ResponseTooLarge, EventTooLarge):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in events:
                pass


async def _check_answer(call: Call, response: Streamed) -> None:
    """An error status raises the provider's error (its rules, phase `poll`); a 2xx that is not an
    event stream raises too."""
    if response.status >= 300:
        content = await response.read(_ERROR_BODY_MAX)
        text = content.decode("utf-8", "replace")
        try:
            data = json.loads(text) if text else None
        except (ValueError, RecursionError):
            data = None
        raise error_from_response(call.family.provider, "poll", response.status, response.headers, text, data,
                                  model=call.model, request_id=call.job_id, job_may_exist=True)
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != EVENT_STREAM:
        raise _broken(call, f"expected {EVENT_STREAM}, got {kind or 'no content type'!r}")


async def _event_data(response: Streamed, call: Call, idle: float) -> AsyncGenerator[str, None]:
    """Each event's data, reading within the idle timeout and the byte limits."""
    settings = call.settings
    limit = call.family.provider.file.max_response_bytes or settings.max_response_bytes
    decoder = EventDecoder(settings.status_stream_max_event_bytes)
    total = 0
    async with contextlib.aclosing(response.chunks()) as chunks:
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:  # this read's own timeout (the deadline's surfaces in the lifecycle)
                raise _broken(call, f"nothing received for {idle:g}s (status_stream_idle_timeout)") from None
            total += len(chunk)
            if total > limit:
                raise ResponseTooLarge(limit, response.status)
            for data in decoder.feed(chunk):
                yield data


def _json_object(call: Call, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise _broken(call, f"an event is not a JSON object: {' '.join(text.split())[:120]!r}")
    return data


def _broken(call: Call, reason: str) -> HTTPError:
    return HTTPError(f"status stream: {reason}", provider=call.provider, model=call.model, request_id=call.job_id,
                     retryable=True, job_may_exist=True)


__all__ = ["follow_stream", "EVENT_STREAM"]
