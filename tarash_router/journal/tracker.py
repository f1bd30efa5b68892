"""`JobTracker`: how any transport (the spec engine or an SDK handler) journals the jobs it runs.

Writes never fail a generation: a journal outage is logged, the paid job goes on.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ..models import redact_secrets
from . import get_journal
from .records import JobRecord
from .store import JobStore

logger = logging.getLogger("tarash_router.journal")


class JobTracker:
    """Records one job: `submitted` once the provider accepted it, then forward-only `advance`s."""

    def __init__(self, *, provider: str, model: str, modality: str, config: Any, base_url: str = "",
                 idempotency_key: str | None = None, fingerprint: str = "", journal: JobStore | None = None) -> None:
        self.provider = provider
        self.model = model
        self.modality = modality
        self.config = config
        self.base_url = base_url
        self.idempotency_key = idempotency_key
        self.fingerprint = fingerprint
        self.journal = journal if journal is not None else get_journal()
        self.job_id: str | None = None
        self.state: str | None = None
        self.intent_id: str | None = None  # the `submitting` record written before the POST

    def _record(self, job_id: str, state: str, job: dict[str, Any], **extra: Any) -> JobRecord:
        config = self.config
        return JobRecord(
            job_id=job_id, provider=self.provider, model=self.model, modality=self.modality,  # type: ignore[arg-type]
            state=state, job=job, base_url=self.base_url,  # type: ignore[arg-type]
            # Credentials in provider_config stay out of the journal; resume takes them again.
            provider_config=redact_secrets(config.provider_config), timeout=config.timeout,
            poll_interval=config.poll_interval, max_poll_attempts=config.max_poll_attempts,
            fingerprint=self.fingerprint, idempotency_key=self.idempotency_key, **extra)

    async def submitting(self) -> None:
        """Before the POST: leave a trace, so a crash while the provider may accept the job is visible
        (`tarash-router jobs list --state submitting`) and an idempotency successor does not resubmit."""
        self.intent_id = f"submitting-{uuid.uuid4().hex}"
        try:
            await self.journal.put(self._record(self.intent_id, "submitting", {}))
            if self.idempotency_key:
                from .idempotency import mark_claim_submitting

                await mark_claim_submitting()
        except Exception as exc:  # noqa: BLE001 - a journal outage must not stop a generation
            logger.warning("journal write failed before submitting: %s", type(exc).__name__)

    async def submit_failed(self, *, job_may_exist: bool, error: dict[str, Any]) -> None:
        """The POST failed: drop the intent when no job can exist; else keep it for an operator."""
        if self.intent_id is None:
            return
        if not job_may_exist:
            await self.drop_intent()
            return
        try:
            await self.journal.advance(self.intent_id, "submitting", error=error)
        except Exception as exc:  # noqa: BLE001
            logger.warning("journal update failed for %s: %s", self.intent_id, type(exc).__name__)

    async def drop_intent(self) -> None:
        """No job can exist (the submit was refused), or a synchronous provider answered in full."""
        intent, self.intent_id = self.intent_id, None
        if intent is None:
            return
        try:
            await self.journal.delete(intent)
            if self.idempotency_key:
                from .idempotency import mark_claim_running

                await mark_claim_running()
        except Exception as exc:  # noqa: BLE001
            logger.warning("journal update failed for %s: %s", intent, type(exc).__name__)

    def attach(self, record: JobRecord) -> None:
        """Track a job that is already journaled (resume)."""
        self.job_id, self.state = record.job_id, record.state

    async def submitted(self, job_id: str, job: dict[str, Any], state: str = "queued") -> None:
        self.job_id = job_id
        record = self._record(job_id, state if state in ("queued", "processing") else "queued", job)
        try:
            await self.journal.put(record)
            self.state = record.state
            if self.intent_id is not None:  # the accepted job supersedes its intent
                await self.journal.delete(self.intent_id)
                self.intent_id = None
            if self.idempotency_key:
                from .idempotency import record_job_on_claim

                await record_job_on_claim(job_id)
        except Exception as exc:  # noqa: BLE001 - a journal outage must not lose a paid job
            logger.warning("journal write failed for job %s: %s", job_id, type(exc).__name__)

    async def advance(self, state: str, **changes: Any) -> None:
        """Move the job forward (no-op before submit or when the state is unchanged)."""
        if self.job_id is None or state == self.state:
            return
        try:
            await self.journal.advance(self.job_id, state, **changes)
            self.state = state
        except Exception as exc:  # noqa: BLE001 - a journal outage must not lose a paid job
            logger.warning("journal update failed for job %s: %s", self.job_id, type(exc).__name__)


__all__ = ["JobTracker"]
