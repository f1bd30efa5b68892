"""The journal interface and its in-memory backend.

Every backend offers the same async methods; states move forward only (a late "processing" write
never overwrites "completed"), and `claim` is atomic across everyone sharing the backend.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from .records import TERMINAL_STATES, Claim, JobRecord, can_move


class JobStore(Protocol):
    """Where jobs and idempotency claims live: memory, SQLite (one machine) or Redis (shared)."""

    async def put(self, record: JobRecord) -> None: ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def advance(self, job_id: str, state: str, **changes: Any) -> JobRecord | None:
        """Move a job forward (ignored if it would move backwards); returns the stored record."""

    async def list(self, limit: int = 100, state: str | None = None) -> list[JobRecord]:
        """Newest first; only jobs in `state` when given."""

    async def delete(self, job_id: str) -> None:
        """Forget a job (a `submitting` intent superseded by the accepted job)."""

    async def claim(self, claim: Claim) -> Claim:
        """Store `claim` if its key is free; else return the claim already there (nothing written)."""

    async def get_claim(self, key: str) -> Claim | None: ...

    async def update_claim(self, key: str, holder: str, **changes: Any) -> bool:
        """Change a claim this owner holds; False when someone else holds it now."""

    async def take_over(self, key: str, old_owner: str, new_owner: str) -> bool:
        """Atomically hand a stale claim to a new owner (compare-and-set on the owner)."""

    async def release(self, key: str, owner: str) -> None:
        """Drop a claim (the call failed), so a later call with the key may run again."""

    async def close(self) -> None: ...


class MemoryJobStore:
    """Process-local journal; keeps the most recent `max_records` jobs.

    A finished job's record is kept as its JSON text: a long-running process holds thousands of them,
    and as objects each would be a dozen containers for every garbage collection to walk. Records of
    running jobs stay objects (they change as the job moves). Records are frozen, so one handed out
    can be shared."""

    def __init__(self, max_records: int = 10_000) -> None:
        self._jobs: OrderedDict[str, JobRecord | str] = OrderedDict()
        self._claims: dict[str, Claim] = {}
        self._max = max_records
        self._lock = threading.Lock()

    async def put(self, record: JobRecord) -> None:
        with self._lock:
            self._jobs[record.job_id] = _kept(record)
            self._jobs.move_to_end(record.job_id)
            while len(self._jobs) > self._max:
                self._jobs.popitem(last=False)

    async def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            kept = self._jobs.get(job_id)
        return None if kept is None else _record(kept)

    async def advance(self, job_id: str, state: str, **changes: Any) -> JobRecord | None:
        with self._lock:
            kept = self._jobs.get(job_id)
            if kept is None:
                return None
            record = _record(kept)
            if can_move(record.state, state):
                record = record.model_copy(update={"state": state, "updated_at": time.time(), **changes})
                self._jobs[job_id] = _kept(record)
            return record

    async def list(self, limit: int = 100, state: str | None = None) -> list[JobRecord]:
        with self._lock:
            kept = list(reversed(self._jobs.values()))
        found: list[JobRecord] = []
        for record in map(_record, kept):
            if len(found) == limit:
                break
            if state is None or record.state == state:
                found.append(record)
        return found

    async def delete(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    async def claim(self, claim: Claim) -> Claim:
        with self._lock:
            existing = self._claims.get(claim.key)
            if existing is not None:
                return existing.model_copy()
            self._claims[claim.key] = claim.model_copy()
            return claim

    async def get_claim(self, key: str) -> Claim | None:
        with self._lock:
            claim = self._claims.get(key)
            return claim.model_copy() if claim else None

    async def update_claim(self, key: str, holder: str, **changes: Any) -> bool:
        with self._lock:
            claim = self._claims.get(key)
            if claim is None or claim.owner != holder:
                return False
            self._claims[key] = claim.model_copy(update=changes)
            return True

    async def take_over(self, key: str, old_owner: str, new_owner: str) -> bool:
        return await self.update_claim(key, old_owner, owner=new_owner, heartbeat=time.time())

    async def release(self, key: str, owner: str) -> None:
        with self._lock:
            claim = self._claims.get(key)
            if claim is not None and claim.owner == owner:
                del self._claims[key]

    async def close(self) -> None:
        return None


def _kept(record: JobRecord) -> JobRecord | str:
    """How the memory store holds a record: a finished job's as JSON text, which the collector skips."""
    return record.model_dump_json() if record.state in TERMINAL_STATES else record


def _record(kept: JobRecord | str) -> JobRecord:
    return JobRecord.model_validate_json(kept) if isinstance(kept, str) else kept


__all__ = ["JobStore", "MemoryJobStore"]
