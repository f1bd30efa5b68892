"""Money spent through a route per period (hour, day, week, month, in UTC), counted in one process
(memory) or shared by every process on one Redis: the store behind `spend_limit:`.

Amounts are kept in millionths of the currency (integers), so sums never drift. A reservation is one
atomic check-and-add: it succeeds only if the period's spend stays within the limit, so two processes
racing for the last dollars cannot both get them. Adjusting (a provider's real cost, a job that never
ran) moves an existing period's count and never creates one.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from datetime import datetime, timedelta, UTC
from typing import Any, Protocol

from ..errors import ConfigError
from ..extras import require_sdk

MICROS = 1_000_000
PERIODS = ("hour", "day", "week", "month")


def to_micros(amount: float) -> int:
    return round(amount * MICROS)


def period_of(per: str, now: datetime | None = None) -> tuple[str, float]:
    """The current period's name (`day:2026-12-05`) and how long its count must be kept, in seconds."""
    now = now or datetime.now(UTC)
    if per == "hour":
        start, length = now.replace(minute=0, second=0, microsecond=0), timedelta(hours=1)
        name = start.strftime("%Y-%m-%dT%H")
    elif per == "day":
        start, length = now.replace(hour=0, minute=0, second=0, microsecond=0), timedelta(days=1)
        name = start.strftime("%Y-%m-%d")
    elif per == "week":
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        start, length = day - timedelta(days=day.weekday()), timedelta(weeks=1)
        name = start.strftime("%G-W%V")
    elif per == "month":
        start, length = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), timedelta(days=31)
        name = start.strftime("%Y-%m")
    else:
        raise ValueError(f"unknown period {per!r} (known: {', '.join(PERIODS)})")
    left = (start + length - now).total_seconds()
    return f"{per}:{name}", left + 3600.0  # kept an hour past its end, for late adjustments


class SpendStore(Protocol):
    async def reserve(self, key: str, amount: int, limit: int, ttl: float) -> tuple[bool, int]:
        """Add `amount` to the count at `key` if it stays within `limit`: (added?, the count now)."""

    async def adjust(self, key: str, delta: int) -> None:
        """Move an existing count by `delta` (a refund is negative)."""

    async def spent(self, key: str) -> int: ...


class MemorySpend:
    """One process's counts (every thread and event loop of the process shares them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (micros, expires at)

    def _live(self, key: str, now: float) -> int:
        count, expires = self._counts.get(key, (0, 0.0))
        return count if expires > now else 0

    async def reserve(self, key: str, amount: int, limit: int, ttl: float) -> tuple[bool, int]:
        now = time.time()
        with self._lock:
            count = self._live(key, now)
            if count + amount > limit:
                return False, count
            self._counts[key] = (count + amount, now + ttl)
            return True, count + amount

    async def adjust(self, key: str, delta: int) -> None:
        now = time.time()
        with self._lock:
            if key in self._counts and self._counts[key][1] > now:
                count, expires = self._counts[key]
                self._counts[key] = (max(0, count + delta), expires)

    async def spent(self, key: str) -> int:
        with self._lock:
            return self._live(key, time.time())


_RESERVE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if count + amount > limit then return {0, count} end
count = redis.call('INCRBY', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, count}
"""
_ADJUST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return 1
"""


class RedisSpend:
    """Counts shared by every process on one Redis (extra `redis`); each call is one atomic script."""

    def __init__(self, url: str, socket_timeout: float = 2.0, prefix: str = "tarash:spend") -> None:
        self._module = require_sdk("redis.asyncio", "redis", "spend limits")
        self._url, self._timeout, self._prefix = url, socket_timeout, prefix
        self._clients: weakref.WeakKeyDictionary[Any, tuple[Any, Any, Any]] = weakref.WeakKeyDictionary()

    def _conn(self) -> tuple[Any, Any, Any]:
        loop = asyncio.get_running_loop()  # a redis.asyncio client belongs to the loop it was made on
        entry = self._clients.get(loop)
        if entry is None:
            client = self._module.from_url(self._url, socket_timeout=self._timeout,
                                           socket_connect_timeout=self._timeout)
            entry = (client, client.register_script(_RESERVE), client.register_script(_ADJUST))
            self._clients[loop] = entry
        return entry

    async def reserve(self, key: str, amount: int, limit: int, ttl: float) -> tuple[bool, int]:
        added, count = await self._conn()[1](keys=[f"{self._prefix}:{key}"], args=[amount, limit, int(ttl) + 1])
        return bool(int(added)), int(count)

    async def adjust(self, key: str, delta: int) -> None:
        await self._conn()[2](keys=[f"{self._prefix}:{key}"], args=[delta])

    async def spent(self, key: str) -> int:
        return int(await self._conn()[0].get(f"{self._prefix}:{key}") or 0)


_STORES: dict[str, SpendStore] = {}
_STORES_LOCK = threading.Lock()


def spend_store(url: str, timeout: float = 2.0) -> SpendStore:
    """The process's store for `url`: `memory` (this process) or `redis://host:6379/0` (every process
    on that Redis), made once, so every router of the process counts in the same place."""
    with _STORES_LOCK:
        store = _STORES.get(url)
        if store is None:
            if url == "memory":
                store = MemorySpend()
            elif url.startswith(("redis://", "rediss://", "unix://")):
                store = RedisSpend(url, socket_timeout=timeout)
            else:
                raise ConfigError(f"unknown spend store {url!r}: use memory or redis://host:port/db")
            _STORES[url] = store
        return store


def reset_spend_stores() -> None:
    with _STORES_LOCK:
        _STORES.clear()


__all__ = ["SpendStore", "MemorySpend", "RedisSpend", "spend_store", "period_of", "to_micros", "MICROS",
           "PERIODS", "reset_spend_stores"]
