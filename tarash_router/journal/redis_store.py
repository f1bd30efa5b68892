"""Redis journal: several processes or machines share jobs, idempotency claims and cooldowns.

Consistency: every write is atomic on one key (SET NX for a claim; optimistic WATCH/MULTI for a
forward-only job update; a Lua compare-and-set on the owner for claim updates), so two processes
can never both win a claim or move a job backwards. Records expire after `ttl` seconds.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from .records import Claim, JobRecord, can_move

_CAS_OWNER = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if cjson.decode(current)['owner'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['owner'] == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class RedisJobStore:
    """Journal in Redis (`redis.asyncio`), keys under `prefix`."""

    def __init__(self, url: str, prefix: str = "tarash", ttl: float = 7 * 24 * 3600,
                 socket_timeout: float = 2.0) -> None:
        from ..extras import require_sdk

        self._module = require_sdk("redis.asyncio", "redis", "redis journal")
        self._url = url
        self._prefix = prefix
        self._ttl = int(ttl)
        # A stalled server (accepts, never answers) costs a bounded wait, not a hung call.
        self._socket_timeout = socket_timeout
        # redis.asyncio connections belong to the event loop that made them: one client per loop.
        self._clients: weakref.WeakKeyDictionary[Any, tuple[Any, Any, Any]] = weakref.WeakKeyDictionary()

    def _conn(self) -> tuple[Any, Any, Any]:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            client = self._module.from_url(self._url, decode_responses=True, socket_timeout=self._socket_timeout,
                                           socket_connect_timeout=self._socket_timeout)
            entry = (client, client.register_script(_CAS_OWNER), client.register_script(_RELEASE))
            self._clients[loop] = entry
        return entry

    @property
    def _redis(self) -> Any:
        return self._conn()[0]

    @property
    def _cas_owner(self) -> Any:
        return self._conn()[1]

    @property
    def _release(self) -> Any:
        return self._conn()[2]

    def _job(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def _claim(self, key: str) -> str:
        return f"{self._prefix}:claim:{key}"

    async def put(self, record: JobRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._job(record.job_id), record.model_dump_json(), ex=self._ttl)
            pipe.zadd(f"{self._prefix}:jobs", {record.job_id: record.created_at})
            await pipe.execute()

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self._redis.get(self._job(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    async def advance(self, job_id: str, state: str, **changes: Any) -> JobRecord | None:
        from redis.exceptions import WatchError

        key = self._job(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        await pipe.unwatch()
                        return None
                    record = JobRecord.model_validate_json(raw)
                    if not can_move(record.state, state):
                        await pipe.unwatch()
                        return record
                    record = record.model_copy(update={"state": state, "updated_at": time.time(), **changes})
                    pipe.multi()
                    pipe.set(key, record.model_dump_json(), keepttl=True)
                    await pipe.execute()
                    return record
                except WatchError:
                    continue

    async def delete(self, job_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._job(job_id))
            pipe.zrem(f"{self._prefix}:jobs", job_id)
            await pipe.execute()

    async def list(self, limit: int = 100, state: str | None = None) -> list[JobRecord]:
        # Newest first; with a state filter, scan a bounded window of recent jobs.
        window = limit if state is None else max(limit * 20, 1000)
        ids = await self._redis.zrevrange(f"{self._prefix}:jobs", 0, window - 1)
        if not ids:
            return []
        raws = await self._redis.mget([self._job(i) for i in ids])
        records = [JobRecord.model_validate_json(r) for r in raws if r]
        return [r for r in records if state is None or r.state == state][:limit]

    async def claim(self, claim: Claim) -> Claim:
        key = self._claim(claim.key)
        if await self._redis.set(key, claim.model_dump_json(), nx=True, ex=self._ttl):
            return claim
        raw = await self._redis.get(key)
        return Claim.model_validate_json(raw) if raw else await self.claim(claim)

    async def get_claim(self, key: str) -> Claim | None:
        raw = await self._redis.get(self._claim(key))
        return Claim.model_validate_json(raw) if raw else None

    async def update_claim(self, key: str, holder: str, **changes: Any) -> bool:
        current = await self.get_claim(key)
        if current is None or current.owner != holder:
            return False
        updated = current.model_copy(update=changes)
        return bool(await self._cas_owner(keys=[self._claim(key)], args=[holder, updated.model_dump_json()]))

    async def take_over(self, key: str, old_owner: str, new_owner: str) -> bool:
        return await self.update_claim(key, old_owner, owner=new_owner, heartbeat=time.time())

    async def release(self, key: str, owner: str) -> None:
        await self._release(keys=[self._claim(key)], args=[owner])

    async def close(self) -> None:
        """Close this event loop's connections."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()


__all__ = ["RedisJobStore"]
