"""`JobTracker`: how any transport (the spec engine or an SDK handler) journals the jobs it runs.

Writes never fail a generation: each is bounded by `journal_timeout`, and an outage is logged while
the paid job goes on. `waited` tells the caller how long the journal held it, so that time can be
kept off the job's deadline.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from ..models import Cost, redact_secrets
from ..settings import get_settings
from .bounded import BoundedJobStore
from .idempotency import HeldClaim
from .records import JobRecord
from .store import JobStore, MemoryJobStore

logger = logging.getLogger("tarash_router.journal")


class JobTracker:
    """Records one job: a `submitting` intent before the POST, `submitted` once the provider accepted
    it, then forward-only `advance`s. No method raises over a journal failure.

    Call order for a transport: `submitting()` just before the submit request; then either
    `submitted(job_id, job, state)` (accepted; replaces the intent), `submit_failed(job_may_exist=...,
    error=...)` (the POST failed) or `drop_intent()` (a synchronous provider answered in full); then
    `advance(state, ...)` as the job moves. `waited` is the total time (monotonic seconds) spent in
    these calls.
    """

    def __init__(self, *, provider: str, model: str, modality: str, config: Any, journal: JobStore,
                 base_url: str = "", idempotency_key: str | None = None, fingerprint: str = "",
                 claim: HeldClaim | None = None, estimated_cost: Cost | None = None) -> None:
        self.provider = provider
        self.model = model
        self.modality = modality
        self.config = config
        self.base_url = base_url
        self.idempotency_key = idempotency_key
        self.fingerprint = fingerprint
        self.estimated_cost = estimated_cost
        if not isinstance(journal, (MemoryJobStore, BoundedJobStore)):  # a store passed in unbounded
            journal = BoundedJobStore(journal, get_settings().journal_timeout)
        self.journal = journal
        self.in_process = isinstance(journal, MemoryJobStore)  # its writes never wait on I/O
        self.claim = claim  # the idempotency claim this job runs under, if any
        self.job_id: str | None = None
        self.state: str | None = None
        self.intent_id: str | None = None  # the `submitting` record written before the POST
        self.waited = 0.0  # seconds spent inside this tracker's journal calls
        self._first: JobRecord | None = None  # the first record written (the intent, usually)

    def _record(self, job_id: str, state: str, job: dict[str, Any]) -> JobRecord:
        """A new record of this job: the first one validated, the next ones copies of it (same job)."""
        if self._first is None:
            config = self.config
            self._first = JobRecord(
                job_id=job_id, provider=self.provider, model=self.model, modality=self.modality,
                state=state, job=job, base_url=self.base_url,
                # Credentials in provider_config stay out of the journal; resume takes them again.
                provider_config=redact_secrets(config.provider_config), timeout=config.timeout,
                poll_interval=config.poll_interval, max_poll_attempts=config.max_poll_attempts,
                fingerprint=self.fingerprint, idempotency_key=self.idempotency_key,
                estimated_cost=self.estimated_cost)
            return self._first
        now = time.time()
        return self._first.model_copy(update={"job_id": job_id, "state": state, "job": dict(job),
                                              "created_at": now, "updated_at": now})

    async def _quietly(self, what: str, call: Awaitable[Any], subject: str | None = None) -> bool:
        """One journal call, timed into `waited`; a failure is logged as `what` (and `subject`, the job
        or intent: the text is made only then), with the error's type only, never a value that could
        hold a secret, and swallowed. True when it went through."""
        started = time.monotonic()
        try:
            await call
            return True
        except Exception as exc:  # noqa: BLE001 - a journal outage must not stop or lose a paid job
            logger.warning("journal %s failed: %s", what if subject is None else f"{what} {subject}",
                           type(exc).__name__)
            return False
        finally:
            self.waited += time.monotonic() - started

    async def submitting(self) -> None:
        """Before the POST: write the intent (state `submitting`, under `intent_id`) and mark the held
        idempotency claim `submitting`, so a crash while the provider may accept the job is visible
        (`tarash-router jobs list --state submitting`) and a successor does not resubmit blindly."""
        self.intent_id = f"submitting-{uuid.uuid4().hex}"
        intent = self._record(self.intent_id, "submitting", {})
        await self._quietly("write of", self.journal.put(intent), self.intent_id)
        if self.claim is not None:  # on its own: the claim guards against a blind resubmit even if the put failed
            await self._quietly("claim update before submitting", self.claim.mark_submitting())

    async def submit_failed(self, *, job_may_exist: bool, error: dict[str, Any]) -> None:
        """The POST failed. `job_may_exist=False`: nothing can have been created, the intent is removed
        (and the claim is an ordinary running one again). True: the intent stays `submitting`, with
        `error` ({type, message}), for an operator to reconcile with the provider."""
        if self.intent_id is None:
            return
        if not job_may_exist:
            await self.drop_intent()
            return
        update = self.journal.advance(self.intent_id, "submitting", error=error)
        await self._quietly("update of", update, self.intent_id)

    async def drop_intent(self) -> None:
        """No job can exist (the submit was refused), or a synchronous provider answered in full."""
        intent, self.intent_id = self.intent_id, None
        if intent is None:
            return
        await self._quietly("delete of", self.journal.delete(intent), intent)
        if self.claim is not None:
            await self._quietly("claim update after a refused submit", self.claim.mark_running())

    def attach(self, record: JobRecord) -> None:
        """Track a job that is already journaled (resume)."""
        self.job_id, self.state = record.job_id, record.state

    async def submitted(self, job_id: str, job: dict[str, Any], state: str = "queued") -> None:
        """The provider accepted `job_id` (`job`: the handle from its answer; `state`: queued or
        processing): record it, drop the intent it supersedes and put the job id on the held claim."""
        self.job_id = job_id
        record = self._record(job_id, state if state in ("queued", "processing") else "queued", job)
        if await self._quietly("write of job", self.journal.put(record), job_id):
            self.state = record.state
            if self.intent_id is not None:  # superseded; kept when the job itself could not be written
                intent, self.intent_id = self.intent_id, None
                await self._quietly("delete of", self.journal.delete(intent), intent)
        if self.claim is not None:  # a successor resumes this job instead of submitting again
            await self._quietly("claim update for job", self.claim.record_job(job_id), job_id)

    async def advance(self, state: str, **changes: Any) -> None:
        """Move the job forward (no-op before submit or when the state is unchanged)."""
        if self.job_id is None or state == self.state:
            return
        if await self._quietly("update of job", self.journal.advance(self.job_id, state, **changes), self.job_id):
            self.state = state


__all__ = ["JobTracker"]
