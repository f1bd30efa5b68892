"""The job journal: every accepted provider job recorded, so a crash or a second process never loses
a paid result or pays for it twice. Backends: memory (default), SQLite, Redis (`TARASH_JOURNAL`)."""

from __future__ import annotations

from ..errors import ConfigError
from ..lazy import Lazy
from ..settings import get_settings
from .records import Claim, JobRecord, fingerprint
from .store import JobStore, MemoryJobStore

def open_journal(url: str) -> JobStore:
    """A journal from a URL: `memory`, `sqlite:///path/jobs.db`, `redis://host:6379/0`."""
    if url == "memory":
        return MemoryJobStore()
    if url.startswith("sqlite:///"):
        from .sqlite_store import SQLiteJobStore

        # As SQLAlchemy writes them: sqlite:///relative/jobs.db, sqlite:////absolute/jobs.db
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigError(f"sqlite journal needs a path, e.g. sqlite:////var/lib/tarash/jobs.db (got {url!r})")
        return SQLiteJobStore(path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_store import RedisJobStore

        return RedisJobStore(url)
    raise ConfigError(f"unknown journal {url!r}: use memory, sqlite:///path or redis://host:port/db")


_JOURNAL: Lazy[JobStore] = Lazy(lambda: open_journal(get_settings().journal))


def get_journal() -> JobStore:
    """The process-wide journal, opened from settings on first use."""
    return _JOURNAL.get()


def set_journal(store: JobStore | None) -> None:
    """Use `store` from now on (None: reopen from settings on next use)."""
    _JOURNAL.set(store)


__all__ = ["JobRecord", "Claim", "JobStore", "MemoryJobStore", "open_journal", "get_journal", "set_journal",
           "fingerprint"]
