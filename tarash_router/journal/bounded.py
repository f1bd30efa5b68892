"""Every journal call bounded in time, and a stalled journal skipped instead of waited on again.

A journal that does not answer (Redis stopped, a SQLite file locked by another process) must never
hang a generation: each call gets `journal_timeout` seconds; a call that fails or times out raises
`JournalUnavailableError` and marks the store down for a short while, during which calls fail at
once (callers log and go on, or refuse what needs the journal, such as an idempotency claim).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..errors import JournalUnavailableError
from .records import Claim, JobRecord
from .store import JobStore

logger = logging.getLogger("tarash_router.journal")

_T = TypeVar("_T")


class BoundedJobStore:
    """A `JobStore` whose every call finishes within `timeout` seconds or raises JournalUnavailableError."""

    def __init__(self, store: JobStore, timeout: float, skip_after_failure: float = 5.0) -> None:
        self.store = store
        self.timeout = timeout
        self.skip_after_failure = skip_after_failure  # seconds a failed store is skipped before the next try
        self._down_until = 0.0

    async def _call(self, name: str, call: Callable[[], Awaitable[_T]]) -> _T:
        if time.monotonic() < self._down_until:
            raise JournalUnavailableError(
                f"journal unavailable (skipped for {self.skip_after_failure:g}s after a failure)")
        try:
            async with asyncio.timeout(self.timeout):
                return await call()
        except (Exception, TimeoutError) as exc:  # noqa: BLE001 - any backend failure means "down"
            self._down_until = time.monotonic() + self.skip_after_failure
            reason = f"no answer within {self.timeout:g}s" if isinstance(exc, TimeoutError) else type(exc).__name__
            logger.warning("journal %s failed: %s", name, reason)
            raise JournalUnavailableError(f"journal {name} failed: {reason}") from None

    async def put(self, record: JobRecord) -> None:
        await self._call("put", lambda: self.store.put(record))

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._call("get", lambda: self.store.get(job_id))

    async def advance(self, job_id: str, state: str, **changes: Any) -> JobRecord | None:
        return await self._call("advance", lambda: self.store.advance(job_id, state, **changes))

    async def list(self, limit: int = 100, state: str | None = None) -> list[JobRecord]:
        return await self._call("list", lambda: self.store.list(limit, state=state))

    async def delete(self, job_id: str) -> None:
        await self._call("delete", lambda: self.store.delete(job_id))

    async def claim(self, claim: Claim) -> Claim:
        return await self._call("claim", lambda: self.store.claim(claim))

    async def get_claim(self, key: str) -> Claim | None:
        return await self._call("get_claim", lambda: self.store.get_claim(key))

    async def update_claim(self, key: str, holder: str, **changes: Any) -> bool:
        return await self._call("update_claim", lambda: self.store.update_claim(key, holder, **changes))

    async def take_over(self, key: str, old_owner: str, new_owner: str) -> bool:
        return await self._call("take_over", lambda: self.store.take_over(key, old_owner, new_owner))

    async def release(self, key: str, owner: str) -> None:
        await self._call("release", lambda: self.store.release(key, owner))

    async def close(self) -> None:
        """Close the backend; a store that does not answer is left behind, not waited on."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.store.close()
        except (Exception, TimeoutError) as exc:  # noqa: BLE001 - closing never fails the caller
            logger.warning("journal close failed: %s", type(exc).__name__)


__all__ = ["BoundedJobStore"]
