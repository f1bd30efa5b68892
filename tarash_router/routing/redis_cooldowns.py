"""Circuit-breaker state in Redis, so every process routing through the same targets agrees.

Consistency: each operation is one Lua script on one target's keys, run atomically by Redis and
timed with Redis's own clock (`TIME`), so processes on machines with skewed clocks still agree on
when a breaker opens and closes, and exactly one caller gets the half-open trial. The state is
eventually consistent with the outcome of calls in flight: a failure counts when it is recorded.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from .policy import CooldownPolicy

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6"

_CHECK = _NOW + """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return '-1' end
if now < open_until then return tostring(open_until - now) end
local trial = tonumber(redis.call('HGET', KEYS[1], 'trial') or '0')
local duration = tonumber(ARGV[1])
if trial > 0 and now - trial < duration then return tostring(duration - (now - trial)) end
redis.call('HSET', KEYS[1], 'trial', tostring(now))
return '-1'
"""
_REMAINING = _NOW + """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > now then return tostring(open_until - now) end
return '-1'
"""
_FAILURE = _NOW + """
local failures, window, duration = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = math.ceil(window + duration) + 1
if tonumber(redis.call('HGET', KEYS[1], 'trial') or '0') > 0 then
  redis.call('HSET', KEYS[1], 'trial', '0', 'open_until', tostring(now + duration))
  redis.call('DEL', KEYS[2])
  redis.call('EXPIRE', KEYS[1], ttl)
  return 1
end
redis.call('ZADD', KEYS[2], now, tostring(now) .. ':' .. ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('EXPIRE', KEYS[2], ttl)
if redis.call('ZCARD', KEYS[2]) >= failures then
  redis.call('HSET', KEYS[1], 'trial', '0', 'open_until', tostring(now + duration))
  redis.call('DEL', KEYS[2])
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 1
"""


class RedisCooldowns:
    """`CooldownStore` on Redis (`redis.asyncio`, one client per event loop; one atomic script per call)."""

    def __init__(self, url: str, prefix: str = "tarash:cooldown", socket_timeout: float = 2.0) -> None:
        from ..extras import require_sdk

        self._module = require_sdk("redis.asyncio", "redis", "redis cooldowns")
        self._url = url
        self._prefix = prefix
        self._socket_timeout = socket_timeout
        self._clients: weakref.WeakKeyDictionary[Any, tuple[Any, Any, Any, Any]] = weakref.WeakKeyDictionary()
        self._seq = 0

    def _conn(self) -> tuple[Any, Any, Any, Any]:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            client = self._module.from_url(self._url, decode_responses=True, socket_timeout=self._socket_timeout,
                                           socket_connect_timeout=self._socket_timeout)
            entry = (client, client.register_script(_CHECK), client.register_script(_REMAINING),
                     client.register_script(_FAILURE))
            self._clients[loop] = entry
        return entry

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}:{key}", f"{self._prefix}:{key}:failures"]

    @staticmethod
    def _seconds(value: Any) -> float | None:
        seconds = float(value)
        return None if seconds < 0 else seconds

    async def check(self, key: str, policy: CooldownPolicy, now: float | None = None) -> float | None:
        return self._seconds(await self._conn()[1](keys=self._keys(key), args=[policy.duration]))

    async def remaining(self, key: str, now: float | None = None) -> float | None:
        return self._seconds(await self._conn()[2](keys=self._keys(key)))

    async def record_failure(self, key: str, policy: CooldownPolicy, now: float | None = None) -> None:
        self._seq += 1  # distinct members for failures recorded in the same microsecond
        await self._conn()[3](keys=self._keys(key), args=[policy.failures, policy.window, policy.duration, self._seq])

    async def record_success(self, key: str) -> None:
        await self._conn()[0].delete(*self._keys(key))


__all__ = ["RedisCooldowns"]
