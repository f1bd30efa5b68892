"""The job journal: every accepted provider job recorded, so a crash or a second process never loses
a paid result or pays for it twice. Backends: memory (default), SQLite, Redis (`TARASH_JOURNAL`)."""

from __future__ import annotations

from ..errors import ConfigError
from ..lazy import Lazy
from ..settings import get_settings
from .records import Claim, JobRecord, fingerprint
from .bounded import BoundedJobStore
from .store import JobStore, MemoryJobStore


def open_journal(url: str, timeout: float | None = None) -> JobStore:
    """A journal from a URL: `memory`, `sqlite:///path/jobs.db`, `redis://host:6379/0`; every call on it
    is bounded by `timeout` (default: settings.journal_timeout; see `BoundedJobStore`)."""
    timeout = timeout if timeout is not None else get_settings().journal_timeout
    store = _open_backend(url, timeout)
    return store if isinstance(store, MemoryJobStore) else BoundedJobStore(store, timeout)


def _open_backend(url: str, timeout: float) -> JobStore:
    if url == "memory":
        return MemoryJobStore()
    if url.startswith("sqlite:///"):
        from .sqlite_store import SQLiteJobStore

        # As SQLAlchemy writes them: sqlite:///relative/jobs.db, sqlite:////absolute/jobs.db
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigError(f"sqlite journal needs a path, e.g. sqlite:////var/lib/tarash/jobs.db (got {url!r})")
        return SQLiteJobStore(path, busy_timeout=timeout)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_store import RedisJobStore

        return RedisJobStore(url, socket_timeout=timeout)
    raise ConfigError(f"unknown journal {url!r}: use memory, sqlite:///path or redis://host:port/db")


_JOURNAL: Lazy[JobStore] = Lazy(lambda: open_journal(get_settings().journal))


def get_journal() -> JobStore:
    """The process-wide journal, opened from settings on first use."""
    return _JOURNAL.get()


def set_journal(store: JobStore | None) -> None:
    """Use `store` from now on (None: reopen from settings on next use); calls on it are bounded in time."""
    if store is not None and not isinstance(store, (MemoryJobStore, BoundedJobStore)):
        store = BoundedJobStore(store, get_settings().journal_timeout)
    _JOURNAL.set(store)


__all__ = ["JobRecord", "Claim", "JobStore", "MemoryJobStore", "BoundedJobStore", "open_journal", "get_journal", "set_journal",
           "fingerprint"]
