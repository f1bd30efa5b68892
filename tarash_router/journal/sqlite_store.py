"""SQLite journal: durable on one machine, shared by the processes that open the same file.

Writes run in `BEGIN IMMEDIATE` transactions so a forward-only update or a claim is atomic across
processes; the database runs in WAL mode so readers never block writers. Every call, opening the
file included, runs on the store's own worker thread: a file locked by another process makes that
call wait (at most the busy timeout), never the event loop, and a stuck call never takes a thread
from the loop's shared executor (which also resolves host names for HTTP).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .records import Claim, JobRecord, can_move

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, data TEXT NOT NULL);
"""


class SQLiteJobStore:
    """Journal in one SQLite file; the file is opened on first use, on the worker thread."""

    def __init__(self, path: str | Path, busy_timeout: float = 2.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        # One thread per store: calls run in order, and the connection only ever sees that thread.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tarash-sqlite")

    def _connection(self) -> sqlite3.Connection:
        """The open connection (worker thread only). An open that fails (file locked while switching
        to WAL, directory not writable) raises for this call and is tried again by the next."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    async def _on_worker(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        def transaction() -> _T:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # never leave a transaction open for the next call
                    db.execute("ROLLBACK")
                raise
            return result

        return await self._on_worker(transaction)

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._on_worker(lambda: self._connection().execute(sql, params).fetchall())

    async def put(self, record: JobRecord) -> None:
        await self._write(lambda db: db.execute(
            "INSERT OR REPLACE INTO jobs (job_id, state, created_at, data) VALUES (?, ?, ?, ?)",
            (record.job_id, record.state, record.created_at, record.model_dump_json())))

    async def get(self, job_id: str) -> JobRecord | None:
        rows = await self._read("SELECT data FROM jobs WHERE job_id = ?", (job_id,))
        return JobRecord.model_validate_json(rows[0][0]) if rows else None

    async def delete(self, job_id: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,)))

    async def advance(self, job_id: str, state: str, **changes: Any) -> JobRecord | None:
        def update(db: sqlite3.Connection) -> JobRecord | None:
            row = db.execute("SELECT data FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            record = JobRecord.model_validate_json(row[0])
            if can_move(record.state, state):
                record = record.model_copy(update={"state": state, "updated_at": time.time(), **changes})
                db.execute("UPDATE jobs SET state = ?, data = ? WHERE job_id = ?",
                           (record.state, record.model_dump_json(), job_id))
            return record

        return await self._write(update)

    async def list(self, limit: int = 100, state: str | None = None) -> list[JobRecord]:
        if state is None:
            rows = await self._read("SELECT data FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        else:
            rows = await self._read("SELECT data FROM jobs WHERE state = ? ORDER BY created_at DESC LIMIT ?",
                                    (state, limit))
        return [JobRecord.model_validate_json(r[0]) for r in rows]

    async def claim(self, claim: Claim) -> Claim:
        def insert(db: sqlite3.Connection) -> Claim:
            db.execute("INSERT OR IGNORE INTO claims (key, owner, data) VALUES (?, ?, ?)",
                       (claim.key, claim.owner, claim.model_dump_json()))
            row = db.execute("SELECT data FROM claims WHERE key = ?", (claim.key,)).fetchone()
            return Claim.model_validate_json(row[0])

        return await self._write(insert)

    async def get_claim(self, key: str) -> Claim | None:
        rows = await self._read("SELECT data FROM claims WHERE key = ?", (key,))
        return Claim.model_validate_json(rows[0][0]) if rows else None

    async def update_claim(self, key: str, holder: str, **changes: Any) -> bool:
        def update(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT data FROM claims WHERE key = ? AND owner = ?", (key, holder)).fetchone()
            if row is None:
                return False
            claim = Claim.model_validate_json(row[0]).model_copy(update=changes)
            db.execute("UPDATE claims SET owner = ?, data = ? WHERE key = ?", (claim.owner, claim.model_dump_json(), key))
            return True

        return await self._write(update)

    async def take_over(self, key: str, old_owner: str, new_owner: str) -> bool:
        return await self.update_claim(key, old_owner, owner=new_owner, heartbeat=time.time())

    async def release(self, key: str, owner: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, owner)))

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._on_worker(close)


__all__ = ["SQLiteJobStore"]
