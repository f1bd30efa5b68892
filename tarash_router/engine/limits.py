"""Account limits: how many jobs one provider account may have in flight, and how many it may create
per minute, shared by every process that uses the same store (Redis) or by one process (memory).

A job takes a slot just before its submit and gives it back when it finishes (completed, failed or
cancelled), whichever process sees that; a slot nobody gives back (a process died) expires with the
job's deadline. A job over the cap waits its turn, within its deadline, instead of failing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import AccountAtLimitError, ConfigError
from ..extras import require_sdk

logger = logging.getLogger("tarash_router.limits")
WINDOW = 60.0  # seconds of the creates-per-minute window
_WAIT_STEP = (0.01, 0.5)  # first and longest pause between tries while waiting for a slot


@dataclass(frozen=True)
class Limits:
    """Caps for one provider account; None means no cap."""

    in_flight: int | None = None
    creates_per_minute: int | None = None

    @property
    def any(self) -> bool:
        return self.in_flight is not None or self.creates_per_minute is not None


def account_of(provider: str, api_key: str | None) -> str:
    """A provider account's name in the store: the provider and a short hash of its key (never the key)."""
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"{provider}:{digest}"


class SlotSource(Protocol):
    """What `acquire` needs of a store: a limit store, or one bounded in time."""

    async def try_acquire(self, account: str, slot: str, limits: Limits, ttl: float) -> float | None:
        """Take a slot now and return None, or return how long to wait before trying again."""


class LimitStore(SlotSource, Protocol):
    async def release(self, account: str, slot: str) -> None: ...

    async def rename(self, account: str, slot: str, job_id: str) -> None:
        """The slot taken before the submit belongs to `job_id` from now on (released by it)."""


class MemoryLimits:
    """One process's limits (threads and event loops of one process share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, dict[str, float]] = {}  # account -> slot -> expiry
        self._creates: dict[str, list[float]] = {}

    async def try_acquire(self, account: str, slot: str, limits: Limits, ttl: float) -> float | None:
        now = time.time()
        with self._lock:
            slots = {s: e for s, e in self._slots.get(account, {}).items() if e > now}
            creates = [t for t in self._creates.get(account, []) if t > now - WINDOW]
            self._slots[account], self._creates[account] = slots, creates
            if limits.in_flight is not None and len(slots) >= limits.in_flight:
                return _WAIT_STEP[0]
            if limits.creates_per_minute is not None and len(creates) >= limits.creates_per_minute:
                return max(creates[0] + WINDOW - now, _WAIT_STEP[0])
            slots[slot] = now + ttl
            creates.append(now)
            return None

    async def release(self, account: str, slot: str) -> None:
        with self._lock:
            self._slots.get(account, {}).pop(slot, None)

    async def rename(self, account: str, slot: str, job_id: str) -> None:
        with self._lock:
            slots = self._slots.get(account, {})
            if slot in slots:
                slots[job_id] = slots.pop(slot)


# KEYS: in-flight zset, creates zset. ARGV: now, slot, expiry, in_flight cap (-1: none), per-minute cap.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[1]) - 60)
local cap = tonumber(ARGV[4])
if cap >= 0 and redis.call('ZCARD', KEYS[1]) >= cap then return {1, '0.01'} end
local rate = tonumber(ARGV[5])
if rate >= 0 and redis.call('ZCARD', KEYS[2]) >= rate then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {1, tostring(tonumber(oldest[2]) + 60 - tonumber(ARGV[1]))}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], 86400)
redis.call('EXPIRE', KEYS[2], 120)
return {0, '0'}
"""
_RENAME = """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expiry then redis.call('ZREM', KEYS[1], ARGV[1]); redis.call('ZADD', KEYS[1], expiry, ARGV[2]) end
return 0
"""


class RedisLimits:
    """Limits shared by every process on one Redis (extra `redis`); each check is one atomic script."""

    def __init__(self, url: str, socket_timeout: float = 2.0) -> None:
        module = require_sdk("redis.asyncio", "redis", "account limits")
        self._client = module.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._rename = self._client.register_script(_RENAME)

    @staticmethod
    def _keys(account: str) -> list[str]:
        return [f"tarash:limits:{account}:inflight", f"tarash:limits:{account}:creates"]

    async def try_acquire(self, account: str, slot: str, limits: Limits, ttl: float) -> float | None:
        now = time.time()
        waited, seconds = await self._acquire(keys=self._keys(account), args=[
            now, slot, now + ttl, -1 if limits.in_flight is None else limits.in_flight,
            -1 if limits.creates_per_minute is None else limits.creates_per_minute])
        return None if int(waited) == 0 else max(float(seconds), _WAIT_STEP[0])

    async def release(self, account: str, slot: str) -> None:
        await self._client.zrem(self._keys(account)[0], slot)

    async def rename(self, account: str, slot: str, job_id: str) -> None:
        await self._rename(keys=self._keys(account)[:1], args=[slot, job_id])


def open_limits(url: str, timeout: float = 2.0) -> LimitStore:
    """`memory` (one process) or `redis://host:6379/0` (every process on that Redis)."""
    if url == "memory":
        return MemoryLimits()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLimits(url, socket_timeout=timeout)
    raise ConfigError(f"unknown limits store {url!r}: use memory or redis://host:port/db")


def limits_for(provider: str, declared: dict[str, Any] | None, overrides: str) -> Limits:
    """The provider file's `limits`, overridden by `TARASH_LIMITS` ({"fal": {"in_flight": 20}, ...})."""
    values = dict(declared or {})
    if overrides:
        try:
            parsed = json.loads(overrides)
        except ValueError as exc:
            raise ConfigError(f"TARASH_LIMITS is not JSON: {exc}") from None
        values.update((parsed or {}).get(provider) or {})
    unknown = set(values) - {"in_flight", "creates_per_minute"}
    if unknown:
        raise ConfigError(f"unknown limits for {provider}: {', '.join(sorted(unknown))} "
                          "(known: in_flight, creates_per_minute)")
    return Limits(**values)


def _new_slot() -> str:
    """A slot's name until its job has an id (`rename` then gives it the job's id)."""
    return f"pending-{uuid.uuid4().hex}"


async def acquire(store: SlotSource, account: str, limits: Limits, ttl: float) -> str:
    """Wait for a slot and return its name. The caller bounds the wait: the job lifecycle's deadline
    cancels it, and says the account stayed at its limit."""
    slot = _new_slot()
    pause = _WAIT_STEP[0]
    while True:
        wait = await store.try_acquire(account, slot, limits, ttl)
        if wait is None:
            return slot
        await asyncio.sleep(min(max(wait, pause), _WAIT_STEP[1]))
        pause = min(pause * 2, _WAIT_STEP[1])


class AccountLimiter:
    """One provider account's caps in one store, as a job's lifecycle uses them. A store that does not
    answer within `timeout` is skipped (logged): a limit is a courtesy to the provider, never a reason
    to lose a job. `wait=False`: a job over a cap raises AccountAtLimitError at once instead of waiting."""

    def __init__(self, store: LimitStore, account: str, limits: Limits, timeout: float = 2.0,
                 wait: bool = True) -> None:
        self.store, self.account, self.limits, self.timeout = store, account, limits, timeout
        self.wait = wait

    async def acquire(self, ttl: float) -> str | None:
        """A slot for one job (None: the store is down, the job goes without one)."""
        store = _Bounded(self.store, self.timeout)
        try:
            if self.wait:
                return await acquire(store, self.account, self.limits, ttl)
            slot = _new_slot()
            retry_after = await store.try_acquire(self.account, slot, self.limits, ttl)
        except _StoreDown as exc:
            logger.warning("account limits store unavailable (%s); sending without the limit", exc.kind)
            return None
        if retry_after is None:
            return slot
        provider = self.account.partition(":")[0]
        raise AccountAtLimitError(f"the {provider} account is at its limit ({self.describe()}); nothing was sent",
                                  provider=provider, retry_after=retry_after)

    def describe(self) -> str:
        return _describe(self.limits)

    async def release(self, slot: str) -> None:
        await self._quietly(self.store.release(self.account, slot))

    async def rename(self, slot: str, job_id: str) -> None:
        await self._quietly(self.store.rename(self.account, slot, job_id))

    async def _quietly(self, call: Any) -> None:
        try:
            await asyncio.wait_for(call, self.timeout)
        except Exception as exc:  # noqa: BLE001 - the slot expires on its own
            logger.warning("account limits store: %s (the slot expires on its own)", type(exc).__name__)


class _StoreDown(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class _Bounded:
    def __init__(self, store: LimitStore, timeout: float) -> None:
        self.store, self.timeout = store, timeout

    async def try_acquire(self, account: str, slot: str, limits: Limits, ttl: float) -> float | None:
        try:
            return await asyncio.wait_for(self.store.try_acquire(account, slot, limits, ttl), self.timeout)
        except Exception as exc:  # noqa: BLE001 - redis errors, timeouts
            raise _StoreDown(type(exc).__name__) from None


def _describe(limits: Limits) -> str:
    parts = []
    if limits.in_flight is not None:
        parts.append(f"{limits.in_flight} in flight")
    if limits.creates_per_minute is not None:
        parts.append(f"{limits.creates_per_minute} creates a minute")
    return ", ".join(parts)


__all__ = ["Limits", "LimitStore", "AccountLimiter", "MemoryLimits", "RedisLimits", "open_limits", "limits_for", "acquire",
           "account_of"]
