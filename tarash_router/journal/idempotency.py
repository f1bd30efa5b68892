"""Idempotency keys: one generation per key and request, in one process or across processes.

The first caller claims the key in the journal (atomically) and runs; later callers with the same
key and request wait for its result, or take the claim over when its owner stopped heartbeating,
resuming the owner's job from the journal instead of submitting again when one was accepted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import JobMayExistError, JournalUnavailableError, ValidationError
from ..errors import TimeoutError as GenerationTimeoutError
from ..settings import get_settings
from .records import TERMINAL_STATES, Claim, fingerprint
from .store import JobStore

logger = logging.getLogger("tarash_router.journal")


class HeldClaim:
    """The idempotency claim a call holds while it runs, handed down to the job tracker so the claim
    follows the job: `submitting` before the POST, the job id once accepted."""

    def __init__(self, journal: JobStore, key: str, owner: str, fingerprint: str) -> None:
        self.journal, self.key, self.owner, self.fingerprint = journal, key, owner, fingerprint

    async def mark_submitting(self) -> None:
        """Just before the POST: a successor that finds this claim without a job id knows a job may exist."""
        await self.journal.update_claim(self.key, self.owner, state="submitting", heartbeat=time.time())

    async def mark_running(self) -> None:
        """The submit was refused before any job could exist: an ordinary running claim again."""
        await self.journal.update_claim(self.key, self.owner, state="running", heartbeat=time.time())

    async def record_job(self, job_id: str) -> None:
        """The provider accepted `job_id`: a successor resumes it instead of submitting again."""
        await self.journal.update_claim(self.key, self.owner, job_id=job_id, heartbeat=time.time())


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _response(claim: Claim) -> Any:
    from ..models import ImageGenerationResponse, VideoGenerationResponse

    cls = VideoGenerationResponse if claim.modality == "video" else ImageGenerationResponse
    return cls.model_validate(claim.result)


async def run_idempotent(journal: JobStore, key: str, target: str, request: Any, modality: str, timeout: float,
                         run: Callable[[HeldClaim], Awaitable[Any]], resume: Callable[[str], Awaitable[Any]],
                         allow_resubmit: bool = False, lease: float | None = None) -> Any:
    """Run `run(claim)` at most once for (key, request); otherwise return or wait for the first result.
    `lease`: seconds without a heartbeat after which another owner's claim is taken over (default:
    settings.idempotency_lease).

    A claim whose owner died while submitting (no job id recorded) may hide an accepted, paid job:
    taking it over raises JobMayExistError unless `allow_resubmit`. Without a journal that answers,
    no guarantee can be given: JournalUnavailableError, and nothing is sent.
    """
    lease = lease if lease is not None else get_settings().idempotency_lease
    fp = fingerprint(target, request)
    owner = _new_owner()
    deadline = time.monotonic() + timeout
    while True:
        claim = await _claim(journal, key, key, fp, owner, modality, "an idempotent call")
        if claim.owner == owner:
            break
        if claim.state == "completed":
            return _response(claim)
        taken = await _wait(journal, key, claim, owner, deadline, lease)
        if isinstance(taken, Claim):
            if taken.state == "completed":
                return _response(taken)
            if taken.job_id:  # the owner died after submitting: collect its job, never submit again
                def collect(_held: HeldClaim, job: str = taken.job_id) -> Awaitable[Any]:
                    return resume(job)

                return await _own(journal, key, owner, lease, collect)
            if taken.state == "submitting" and not allow_resubmit:
                await _quietly(journal.update_claim(key, owner, heartbeat=0.0))  # the next caller hears the same
                raise await _may_exist(journal, key, fp)
            break  # the owner died before submitting: run it ourselves
        # the claim was released (the owner's call failed): try to claim it again
    return await _own(journal, key, owner, lease, run, fp)


async def _claim(journal: JobStore, claim_key: str, key: str, fp: str, owner: str, modality: str,
                 what: str) -> Claim:
    """Claim `claim_key` (or learn who holds it); refused when the journal does not answer (no
    guarantee can be given, so nothing is sent) or when the key was used for another request."""
    try:
        claim = await journal.claim(Claim(key=claim_key, fingerprint=fp, owner=owner, modality=modality))
    except JournalUnavailableError as exc:
        raise JournalUnavailableError(
            f"cannot claim idempotency key {key!r}: {exc.message}; nothing was sent ({what} needs the journal "
            "to guarantee one job per key)", retryable=True) from None
    if claim.fingerprint != fp:
        raise ValidationError(f"idempotency key {key!r} was already used for a different request")
    return claim


async def submit_once(journal: JobStore, key: str, target: str, request: Any, modality: str, timeout: float,
                      submit: Callable[[HeldClaim], Awaitable[Any]], allow_resubmit: bool = False,
                      lease: float | None = None) -> Any:
    """Submit at most once for (key, request) and return the `Job`: a later call with the key (a task
    queue delivering the same task twice, a retry after a lost answer) gets the first call's job as
    the journal holds it now, and nothing is sent. The claim lives beside generation keys, under
    `submit:<key>`, with the same leases, takeover and `submitting` rules as `run_idempotent`."""
    lease = lease if lease is not None else get_settings().idempotency_lease
    claim_key = f"submit:{key}"
    fp = fingerprint(target, request)
    owner = _new_owner()
    deadline = time.monotonic() + timeout
    while True:
        claim = await _claim(journal, claim_key, key, fp, owner, modality, "a keyed submit")
        if claim.owner == owner:
            break
        if claim.job_id:
            return await _submitted_job(journal, claim)
        taken = await _wait(journal, claim_key, claim, owner, deadline, lease)
        if isinstance(taken, Claim):
            if taken.job_id:  # the owner died after the provider accepted the job: that job is the answer
                await _quietly(journal.update_claim(claim_key, owner, state="completed", heartbeat=time.time()))
                return await _submitted_job(journal, taken)
            if taken.state == "submitting" and not allow_resubmit:
                await _quietly(journal.update_claim(claim_key, owner, heartbeat=0.0))
                raise await _may_exist(journal, key, fp)
            break  # the owner died before submitting: submit ourselves
    return await _own(journal, claim_key, owner, lease, submit, fp)


async def _submitted_job(journal: JobStore, claim: Claim) -> Any:
    """The job a keyed submit created, as the journal holds it now (else as it was at submit)."""
    from ..models import Job

    record = await journal.get(claim.job_id) if claim.job_id else None
    if record is not None:
        return record.to_job()
    if claim.result is not None:
        return Job.model_validate(claim.result)
    raise JobMayExistError(f"a submit with this idempotency key created job {claim.job_id}, which the journal no "
                           "longer holds", request_id=claim.job_id)


async def _may_exist(journal: JobStore, key: str, fp: str) -> JobMayExistError:
    """The error for a claim whose owner stopped mid-submit, naming the provider/model of its
    `submitting` intent when the journal still has it."""
    intents = await _quietly(journal.list(limit=1000, state="submitting")) or []
    intent = next((r for r in intents if r.idempotency_key == key and r.fingerprint == fp), None)
    where = f" to {intent.provider}/{intent.model} (journal record {intent.job_id})" if intent else ""
    return JobMayExistError(
        f"the call holding idempotency key {key!r} stopped while submitting{where}: the provider may have "
        "accepted (and will bill) a job whose id was never recorded. Check with the provider and "
        "`tarash-router jobs list --state submitting`, then use a new key, or opt in to resubmitting "
        "(allow_resubmit; a route's resubmit_if_unknown)",
        provider=intent.provider if intent else None, model=intent.model if intent else None)


async def _own(journal: JobStore, key: str, owner: str, lease: float, run: Callable[[HeldClaim], Awaitable[Any]],
               fp: str = "") -> Any:
    """Run while holding the claim: heartbeat it, then store the result (or release it on failure)."""

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            await _quietly(journal.update_claim(key, owner, heartbeat=time.time()))

    beating = asyncio.create_task(heartbeat())
    try:
        response = await run(HeldClaim(journal, key, owner, fp))
    except BaseException:
        await _abandon(journal, key, owner)
        raise
    finally:
        beating.cancel()
    # A journal failure here must not turn a paid success into an error.
    await _quietly(journal.update_claim(key, owner, state="completed", job_id=response.request_id,
                                        result=response.model_dump(mode="json"), heartbeat=time.time()))
    return response


async def _quietly(call: Awaitable[Any]) -> Any:
    """A claim write whose failure is logged and otherwise ignored (the heartbeat keeps beating, a
    paid success stays a success)."""
    try:
        return await call
    except JournalUnavailableError:
        return None  # the bounded journal logged it
    except Exception as exc:  # noqa: BLE001
        logger.warning("idempotency claim write failed: %s", type(exc).__name__)
        return None


async def _abandon(journal: JobStore, key: str, owner: str) -> None:
    """After a failed call: release the key, unless a job it accepted may still be running, in which
    case the claim is left for the next caller to take over at once and collect that job."""
    try:
        claim = await journal.get_claim(key)
        job = await journal.get(claim.job_id) if claim is not None and claim.job_id else None
        if claim is not None and ((claim.state == "submitting" and not claim.job_id)
                                  or (job is not None and job.state not in TERMINAL_STATES)):
            await journal.update_claim(key, owner, heartbeat=0.0)
        else:
            await journal.release(key, owner)
    except Exception as exc:  # noqa: BLE001 - the claim's lease runs out on its own
        if not isinstance(exc, JournalUnavailableError):  # that one the bounded journal logged
            logger.warning("idempotency claim not released: %s", type(exc).__name__)


async def _wait(journal: JobStore, key: str, claim: Claim, owner: str, deadline: float, lease: float) -> Claim | None:
    """Wait for another owner's result. Returns the finished claim, a claim we took over, or None
    when the owner released it."""
    delay = 0.02
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
        current = await journal.get_claim(key)
        if current is None:
            return None
        if current.state == "completed":
            return current
        if time.time() - current.heartbeat > lease and await journal.take_over(key, current.owner, owner):
            return current.model_copy(update={"owner": owner})
    raise GenerationTimeoutError(f"waited too long for the call holding idempotency key {key!r}",
                                 timeout_seconds=None)


__all__ = ["run_idempotent", "submit_once", "HeldClaim"]
