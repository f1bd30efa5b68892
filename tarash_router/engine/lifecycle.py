"""The one job lifecycle: prepare -> submit (once) -> wait (status stream or poll) -> fetch ->
completed | failed | cancelled, driving any transport (`engine/transport.py`).

What it owns, for every transport alike:
- the deadline (`config.timeout`), held back while the journal is written;
- waiting: on the transport's status stream when it offers one (`watch`), else by polling, and by
  polling from where the stream stopped if it ends or breaks early (never a second submit);
- poll pacing: `poll_interval`, growing with the job's age, never shorter than the provider's hint;
- the error budget: retryable poll/fetch failures are retried (Retry-After or backoff) up to
  `max_poll_errors` in a row; `max_poll_attempts` caps the polls;
- remote cancel when the deadline passes, the caller cancels, or it gives up on a job that may run;
- journal writes (a `submitting` intent, the accepted job, each state) and progress updates.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import GenerationFailedError, TarashException, UnsafeURLError
from ..errors import TimeoutError as GenerationTimeoutError
from ..journal.tracker import JobTracker
from ..models import ImageGenerationUpdate, Job, VideoGenerationUpdate, request_field
from . import cost
from .transport import Call, Status, Transport

if TYPE_CHECKING:
    from ..journal.idempotency import HeldClaim
    from .limits import AccountLimiter
    from ..journal.records import JobRecord
    from ..journal.store import JobStore
    from ..settings import TarashSettings

logger = logging.getLogger("tarash_router.engine")
TERMINAL = ("completed", "failed")
CANCEL_TIMEOUT = 5.0

_T = TypeVar("_T")


class Lifecycle:
    """One job driven through a transport; `run()` submits it, `follow()` picks up a journaled one."""

    def __init__(self, transport: Transport, call: Call, journal: JobStore | None = None,
                 claim: HeldClaim | None = None, record: JobRecord | None = None,
                 limiter: AccountLimiter | None = None) -> None:
        self.transport = transport
        self.call = call
        self.limiter = limiter  # the provider account's caps, when it has any
        self._slot: str | None = None  # the account slot this job holds, until it finishes
        self._waiting = False  # waiting for a slot (a deadline then says so: nothing was sent)
        self.settings = call.settings
        self.loop = call.loop = asyncio.get_running_loop()
        call.deadline = self.loop.time() + call.config.timeout
        self.submitted_at = self.loop.time()
        self.terminal = False  # the provider reported the job finished (completed or failed)
        self.sent = False  # the submit went out: from then on a paid job may exist
        self._timeout: asyncio.Timeout | None = None
        self.tracker = None if journal is None else JobTracker(
            provider=call.provider, model=call.model, modality=call.modality, config=call.config,
            base_url=_base_url(call), journal=journal, claim=claim,
            idempotency_key=record.idempotency_key if record else request_field(call.request, "idempotency_key"),
            fingerprint=record.fingerprint if record else (claim.fingerprint if claim else ""),
            estimated_cost=call.estimated_cost)
        if record is not None:
            self.sent = True
            call.job_id, call.handle = record.job_id, dict(record.job)
            if self.tracker is not None:
                self.tracker.attach(record)

    @property
    def job_id(self) -> str | None:
        return self.call.job_id

    # ------------------------------------------------------------ entry points

    def run(self) -> Awaitable[Any]:
        """Prepare, submit once and see the job through (to await)."""
        return self._guarded(self._submit_and_follow)

    async def follow(self, state: str = "queued") -> Any:
        """See an already accepted job (`call.job_id`, `call.handle`) through; nothing is submitted."""
        async def follow() -> Any:
            await self.transport.prepare(self.call)
            return await self._wait_and_fetch(state if state in ("queued", "processing") else "queued", first=True)

        return await self._guarded(follow)

    async def start(self) -> Job:
        """Prepare and submit once, journal the accepted job and return at once (no waiting). A
        synchronous provider answers in full: its job is journaled completed, with its response."""
        async def start() -> Job:
            call = self.call
            await self.transport.prepare(call)
            status = await self._submit()
            if status.job_id is None:
                if self.tracker is not None:
                    await self._off_the_clock(self.tracker.drop_intent())
                response = await self._fetch(status)
                if self.tracker is not None:  # kept so that get_job/wait find it like any other job
                    await self._off_the_clock(self.tracker.submitted(response.request_id, {}, "processing"))
                    await self._record("completed", **self._result(response))
                return self._job("completed", response=response, job_id=response.request_id)
            call.job_id, call.handle = status.job_id, dict(status.handle or {})
            if self.tracker is not None:
                state = "processing" if status.state == "processing" else "queued"
                await self._off_the_clock(self.tracker.submitted(status.job_id, call.handle, state))
            if status.state == "failed":
                self.terminal = True
                raise status.error or _failed(call, status)
            await self._emit(status)
            return self._job(status.state if status.state != "completed" else "processing", percent=status.percent)

        return await self._guarded(start)

    async def check(self) -> Job:
        """One status request for a journaled job (and the fetch when it has finished); the journal
        is brought up to date. Nothing is cancelled when the job is still running."""
        async def check() -> Job:
            await self.transport.prepare(self.call)
            status = await self.transport.poll(self.call)
            if status.state == "completed":
                response = await self._fetch(status)
                return self._job("completed", response=response)
            if status.state == "failed":
                error = status.error or _failed(self.call, status)
                await self._record("failed", error={"type": type(error).__name__, "message": error.message})
                return self._job("failed", error={"type": type(error).__name__, "message": error.message})
            if status.state == "processing":
                await self._record("processing")
            return self._job(status.state, percent=status.percent)

        try:
            async with asyncio.timeout_at(self.call.deadline):
                return await check()
        except builtins.TimeoutError:
            raise GenerationTimeoutError("the status request did not answer in time", provider=self.call.provider,
                                         model=self.call.model, request_id=self.job_id, job_may_exist=True) from None

    def _job(self, state: str, *, percent: int | None = None, response: Any = None,
             error: dict[str, Any] | None = None, job_id: str | None = None) -> Job:
        call, now = self.call, datetime.now(UTC)
        return Job(id=job_id or call.job_id or "", provider=call.provider, model=call.model, modality=call.modality,
                   state=state, progress=100 if state == "completed" else percent, response=response, error=error,
                   created_at=now, updated_at=now)

    def _priced(self, response: Any) -> Any:
        """The response with its cost, journaled with it: what the provider reports, else the estimate."""
        if "cost" not in type(response).model_fields or response.cost is not None:
            return response
        settled = cost.reported(self.call.family, response, self.call.request) or self.call.estimated_cost
        return response if settled is None else response.model_copy(update={"cost": settled})

    def _result(self, response: Any) -> dict[str, Any]:
        """The journal's copy of a response (none when the transport keeps media bytes out of it)."""
        if not getattr(self.transport, "journal_results", True):
            return {}
        return {"result": response.model_dump(mode="json")}

    async def cancel(self, reason: str = "requested") -> bool:
        """Ask the provider to stop the job; journaled as cancelled when it agreed."""
        await self.transport.prepare(self.call)
        if await self._cancel_remote(reason):
            await self._record("cancelled", error={"type": "Cancelled", "message": "cancelled on request"})
            return True
        return False

    # ------------------------------------------------------------ the state machine

    async def _guarded(self, body: Callable[[], Awaitable[_T]]) -> _T:
        call = self.call
        try:
            try:
                async with asyncio.timeout_at(call.deadline) as self._timeout:
                    return await body()
            finally:
                self._timeout = None  # past the deadline's scope: journal writes run on no clock
        except builtins.TimeoutError:
            if self._waiting and self.limiter is not None:
                raise GenerationTimeoutError(
                    f"the {call.provider} account stayed at its limit ({self.limiter.describe()}) until the "
                    f"deadline ({call.config.timeout:g}s); nothing was sent", provider=call.provider,
                    model=call.model, timeout_seconds=call.config.timeout, job_may_exist=False,
                    retryable=False) from None  # trying again at once would meet the same limit
            if await self._cancel_remote("deadline"):
                await self._record("cancelled", error={"type": "TimeoutError", "message": "deadline reached"})
            raise GenerationTimeoutError(
                f"generation did not finish within {call.config.timeout:g}s", provider=call.provider,
                model=call.model, request_id=self.job_id, timeout_seconds=call.config.timeout,
                job_may_exist=self.sent) from None
        except asyncio.CancelledError:
            if await self._cancel_remote("caller cancelled"):
                await self._record("cancelled", error={"type": "CancelledError", "message": "caller cancelled"})
            raise
        except TarashException as exc:
            error = {"type": type(exc).__name__, "message": exc.message}
            if self.terminal:  # the provider reported the job failed
                await self._record("failed", error=error)
            # Giving up on a job that may still run (polls kept failing): stop it, so a fallback
            # target does not leave two paid jobs running; if the cancel fails the journal keeps the
            # job open for `resume`. A job whose URLs were refused stays running and journaled for an
            # operator: its cancel URL came from the same untrusted source.
            elif self.job_id is not None and exc.job_may_exist and not isinstance(exc, UnsafeURLError):
                if await self._cancel_remote(f"giving up after {type(exc).__name__}"):
                    await self._record("cancelled", error=error)
            raise

    async def _submit_and_follow(self) -> Any:
        call = self.call
        await self.transport.prepare(call)
        status = await self._submit()
        if status.job_id is None:  # a synchronous provider: the submit answered in full
            if self.tracker is not None:
                await self._off_the_clock(self.tracker.drop_intent())
            if status.state != "completed":
                raise GenerationFailedError("the submit response has no job id", provider=call.provider,
                                            model=call.model, raw_response=_as_dict(status.data),
                                            retryable=False, job_may_exist=True)
            return await self._fetch(status)
        call.job_id, call.handle = status.job_id, dict(status.handle or {})
        if self.tracker is not None:
            state = "processing" if status.state == "processing" else "queued"
            await self._off_the_clock(self.tracker.submitted(status.job_id, call.handle, state))
        if status.state != "completed" and call.on_progress is not None:  # a finished job's update has its result
            await self._emit(status)
        if status.state == "failed":
            self.terminal = True
            raise status.error or _failed(call, status)
        if status.state == "completed":
            self.terminal = True
            return await self._fetch(status)
        return await self._wait_and_fetch(status.state)

    async def _submit(self) -> Status:
        # Sent once: whether a failed submit may be sent again is routing's call, made from
        # `job_may_exist`. The journal holds a `submitting` intent meanwhile.
        if self.limiter is not None:  # waits its turn at the account's caps, within the deadline
            self._waiting = True
            self._slot = await self.limiter.acquire(self.call.config.timeout)
            self._waiting = False
        if self.tracker is not None:
            await self._off_the_clock(self.tracker.submitting())
        self.sent = True
        submit = asyncio.ensure_future(self.transport.submit(self.call))
        try:
            status = await asyncio.shield(submit)
        except asyncio.CancelledError:
            await self._learn_job_id(submit)
            raise
        except TarashException as exc:
            if self.tracker is not None:
                await self._off_the_clock(self.tracker.submit_failed(
                    job_may_exist=exc.job_may_exist, error={"type": type(exc).__name__, "message": exc.message}))
            if not exc.job_may_exist:  # nothing runs at the provider: the slot is free again
                await self._release()
            raise
        self.submitted_at = self.loop.time()
        if status.job_id is not None and self.limiter is not None and self._slot is not None:
            await self.limiter.rename(self._slot, status.job_id)  # whoever sees it finish frees the slot
            self._slot = status.job_id
        elif status.job_id is None:  # answered in full: nothing left running
            await self._release()
        return status

    async def _release(self) -> None:
        slot = self._slot or (self.call.job_id if self.limiter is not None else None)
        self._slot = None
        if slot is not None and self.limiter is not None:
            await self.limiter.release(slot)

    async def _learn_job_id(self, submit: asyncio.Future[Status]) -> None:
        """The caller (or the deadline) stopped us while the submit was on the wire: the provider may
        be accepting a paid job right now. Wait briefly for its answer so the job can be cancelled
        (and is journaled if it cannot be) rather than left running unknown."""
        try:
            status = await asyncio.wait_for(asyncio.shield(submit), CANCEL_TIMEOUT)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - no answer: nothing more can be learnt
            submit.cancel()
            return
        if status.job_id is not None:
            self.call.job_id, self.call.handle = status.job_id, dict(status.handle or {})
            if self.tracker is not None:
                await self.tracker.submitted(status.job_id, self.call.handle, "queued")

    async def _wait_and_fetch(self, state: str, first: bool = False) -> Any:
        status = await self._watch_until_done()
        if status is None:  # no stream, or it stopped before the job finished: poll from here
            status = await self._poll_until_done(state, first)
        return await self._fetch(status)

    async def _watch_until_done(self) -> Status | None:
        """Follow the job on the transport's status stream, when it offers one and streams are on: each
        event is handled as a poll's answer would be. None when the stream ended or broke before the
        job finished (the caller polls on: nothing is submitted again); the deadline and a caller's
        cancel stop it like a poll."""
        watch = getattr(self.transport, "watch", None)
        events: AsyncIterator[Status] | None = (
            watch(self.call) if watch is not None and self.settings.status_stream else None)
        if events is None:
            return None
        call, received = self.call, 0
        # An async generator is closed when left; any other async iterator (`watch` may return one) has no aclose.
        closing = contextlib.AsyncExitStack()
        if hasattr(events, "aclose"):
            closing.push_async_callback(events.aclose)
        async with closing:
            while True:
                try:
                    status = await anext(events)
                except StopAsyncIteration:  # ended early; with no event at all there was no stream (slots full)
                    logger.log(logging.INFO if received else logging.DEBUG, "%s job %s: the status stream ended "
                               "before the job finished; polling", call.provider, self.job_id)
                    return None
                except TarashException as exc:
                    logger.info("%s job %s: the status stream broke (%s: %s); polling", call.provider, self.job_id,
                                type(exc).__name__, exc.message)
                    return None
                received += 1
                if await self._advance(status):
                    return status

    async def _advance(self, status: Status) -> bool:
        """Take in one status the provider reported (a poll's answer or a stream event): journal and
        report it; True once the job completed, raises when it failed."""
        self.terminal = status.state in TERMINAL
        if status.state == "completed":
            return True  # the completed update goes out with the fetched result
        tracker = self.tracker
        if status.state == "processing" and tracker is not None and tracker.state != "processing":
            await self._record("processing")  # once: the polls after it change nothing in the journal
        if self.call.on_progress is not None:
            await self._emit(status)
        if status.state == "failed":
            raise status.error or _failed(self.call, status)
        return False

    async def _poll_until_done(self, state: str, first: bool) -> Status:
        call, config = self.call, self.call.config
        polls = errors = 0
        delay = 0.0 if first else config.poll_interval
        while True:
            await asyncio.sleep(delay)
            if polls >= config.max_poll_attempts:  # _guarded cancels the remote job on the way out
                raise GenerationTimeoutError(
                    f"job not finished after {polls} polls (max_poll_attempts)", provider=call.provider,
                    model=call.model, request_id=self.job_id, job_may_exist=True,
                    timeout_seconds=polls * config.poll_interval)
            polls += 1
            try:
                status = await self.transport.poll(call)
            except TarashException as exc:
                errors += 1
                if not exc.retryable or errors > self.settings.max_poll_errors:
                    raise
                delay = self.retry_wait(exc, errors)
                logger.info("%s poll of job %s failed (%s); polling again in %.2fs", call.provider, self.job_id,
                            type(exc).__name__, delay)
                continue
            errors = 0
            delay = self.next_poll_delay(status.retry_after)
            if await self._advance(status):
                return status

    async def _fetch(self, status: Status) -> Any:
        errors = 0
        while True:
            try:
                response = await self.transport.fetch(self.call, status)
                break
            except TarashException as exc:
                errors += 1
                if not exc.retryable or errors > self.settings.max_poll_errors:
                    raise
                await asyncio.sleep(self.retry_wait(exc, errors))
        response = self._priced(response)
        await self._record("completed", **self._result(response))
        if self.call.on_progress is not None:
            await self._emit(status, result=response)
        return response

    # ------------------------------------------------------------ pacing

    def next_poll_delay(self, hint: float | None) -> float:
        """The pause before this job's next poll (`poll_pause`)."""
        return poll_pause(self.call.config.poll_interval, self.loop.time() - self.submitted_at, self.settings, hint)

    def retry_wait(self, exc: TarashException, attempt: int) -> float:
        return poll_retry_wait(exc, attempt, self.call.config.poll_interval, self.settings.max_retry_wait)

    # ------------------------------------------------------------ journal, progress, cancel

    async def _record(self, state: str, **changes: Any) -> None:
        if self.tracker is not None:
            await self._off_the_clock(self.tracker.advance(state, **changes))
        if state in ("completed", "failed", "cancelled"):
            await self._release()

    def _off_the_clock(self, write: Awaitable[Any]) -> Awaitable[Any]:
        """A journal write (to await) that does not eat into the deadline or trip its cancel: the
        deadline is held back while the (bounded, never raising) write runs, then moved later by the
        time it took. A slow journal delays the caller; it never costs them their paid job."""
        if self._timeout is None or self.tracker is None or self.tracker.in_process:
            return write  # an in-process journal answers at once: nothing to hold the deadline for
        return self._deadline_held(self._timeout, write)

    async def _deadline_held(self, timeout: asyncio.Timeout, write: Awaitable[Any]) -> None:
        started = self.loop.time()
        timeout.reschedule(None)
        try:
            await write
        finally:
            self.call.deadline += self.loop.time() - started
            timeout.reschedule(self.call.deadline)

    async def _emit(self, status: Status, result: Any = None) -> None:
        call = self.call
        if call.on_progress is None or getattr(self.transport, "reports_progress", False):
            return
        state = "completed" if result is not None else status.state
        error = None
        if state == "failed":
            error = status.error.message if status.error is not None else "failed"
        cls = VideoGenerationUpdate if call.modality == "video" else ImageGenerationUpdate
        update = cls(
            request_id=self.job_id or getattr(result, "request_id", None) or "", status=state,
            progress_percent=100 if result is not None else status.percent,
            queue_position=status.queue_position if isinstance(status.queue_position, int) else None,
            logs=status.logs, update=_as_dict(result.raw_response if result is not None else status.data),
            error=error, provider=call.provider, model=call.model, result=result)
        await call_progress(call.on_progress, update)

    async def _cancel_remote(self, reason: str) -> bool:
        """Best effort: ask the provider to stop the job so it is not billed further. True if it said yes."""
        call = self.call
        if call.job_id is None:
            return False
        try:
            agreed = await asyncio.shield(asyncio.wait_for(self.transport.cancel(call), CANCEL_TIMEOUT))
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - cancel is best effort
            detail = exc.message if isinstance(exc, TarashException) else type(exc).__name__
            logger.warning("%s job %s: cancel failed (%s)", call.provider, call.job_id, detail)
            return False
        if agreed:
            logger.info("%s job %s cancelled (%s)", call.provider, call.job_id, reason)
        return bool(agreed)


def poll_pause(poll_interval: float, age: float, settings: TarashSettings, hint: float | None = None) -> float:
    """The pause before the next poll of a job submitted `age` seconds ago: the configured interval,
    growing with the job's age (`poll_backoff` x age, capped at `poll_interval_max`), never shorter
    than the provider's own hint."""
    cap = settings.poll_interval_max
    delay = max(poll_interval, min(settings.poll_backoff * age, cap))
    return max(delay, min(hint, cap)) if hint is not None else delay


def poll_retry_wait(exc: TarashException, attempt: int, poll_interval: float, cap: float) -> float:
    """The pause before re-trying a failed poll or fetch: Retry-After when given, else exponential
    backoff from the poll interval with jitter; never past `cap` (settings.max_retry_wait)."""
    hinted: float | None = getattr(exc, "retry_after", None)
    if hinted is not None:
        return min(hinted, cap)
    base: float = max(poll_interval, 0.05) * (2 ** (attempt - 1))
    return min(cap, base) * random.uniform(0.5, 1.0)


async def call_progress(callback: Any, update: Any) -> None:
    """Call a sync or async progress callback; its failure is logged, never fatal to a paid job."""
    try:
        result = callback(update)
        if inspect.isawaitable(result):
            await result
    except Exception:  # noqa: BLE001
        logger.exception("progress callback raised; the generation continues")


def _failed(call: Call, status: Status) -> GenerationFailedError:
    return GenerationFailedError("the provider reported the job failed", provider=call.provider, model=call.model,
                                 request_id=call.job_id, raw_response=_as_dict(status.data), retryable=False,
                                 job_may_exist=True)


def _base_url(call: Call) -> str:
    return call.config.base_url or call.family.provider.default_base_url


def _as_dict(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {"output": data}


__all__ = ["Lifecycle", "call_progress", "poll_pause", "poll_retry_wait", "TERMINAL"]
