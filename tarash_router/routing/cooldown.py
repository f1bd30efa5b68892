"""Per-target circuit breaker: closed -> open after N failures in a window -> half-open trial -> closed.

`CooldownStore` is the interface (async, so a shared backend never blocks the event loop);
`InMemoryCooldowns` serves one process, `RedisCooldowns` several. A shared store is wrapped in
`FailOpenCooldowns`: every call bounded by `journal_timeout`, and a store that fails or stalls is
treated as "every breaker closed" (the call goes ahead) rather than stopping the route.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from ..errors import ConfigError
from ..lazy import Lazy
from ..settings import get_settings
from .policy import CooldownPolicy

logger = logging.getLogger("tarash_router.routing")

_T = TypeVar("_T")


class CooldownStore(Protocol):
    """State of every target's breaker, keyed by 'provider/model'."""

    async def check(self, key: str, policy: CooldownPolicy, now: float | None = None) -> float | None:
        """None when the target may be tried (closed, or this caller gets the half-open trial);
        otherwise the seconds until it may be tried again."""

    async def remaining(self, key: str, now: float | None = None) -> float | None:
        """Seconds the target stays open, without taking the half-open trial (for `explain`)."""

    async def record_failure(self, key: str, policy: CooldownPolicy, now: float | None = None) -> None: ...

    async def record_success(self, key: str) -> None: ...


@dataclass
class _Breaker:
    failures: deque[float] = field(default_factory=deque)
    open_until: float | None = None
    trial_started: float | None = None  # a half-open trial is in flight since then


class InMemoryCooldowns:
    """Thread-safe, process-local breaker state."""

    def __init__(self) -> None:
        self._breakers: dict[str, _Breaker] = {}
        self._lock = threading.Lock()

    async def check(self, key: str, policy: CooldownPolicy, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None or breaker.open_until is None:
                return None
            if now < breaker.open_until:
                return breaker.open_until - now
            # Someone else is making the half-open trial; a trial that never reported back
            # (cancelled, crashed) expires after `duration` so the target is not shut out for good.
            if breaker.trial_started is not None and now - breaker.trial_started < policy.duration:
                return policy.duration - (now - breaker.trial_started)
            breaker.trial_started = now
            return None

    async def remaining(self, key: str, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None or breaker.open_until is None or now >= breaker.open_until:
                return None
            return breaker.open_until - now

    async def record_failure(self, key: str, policy: CooldownPolicy, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            breaker = self._breakers.setdefault(key, _Breaker())
            if breaker.trial_started is not None:  # the half-open trial failed: open again
                breaker.trial_started = None
                breaker.open_until = now + policy.duration
                breaker.failures.clear()
                return
            breaker.failures.append(now)
            while breaker.failures and breaker.failures[0] < now - policy.window:
                breaker.failures.popleft()
            if len(breaker.failures) >= policy.failures:
                breaker.open_until = now + policy.duration
                breaker.failures.clear()

    async def record_success(self, key: str) -> None:
        with self._lock:
            self._breakers.pop(key, None)

    def reset(self) -> None:
        with self._lock:
            self._breakers.clear()


class FailOpenCooldowns:
    """A shared store's calls bounded in time; when the store fails, breakers read as closed."""

    def __init__(self, store: CooldownStore, timeout: float, skip_after_failure: float = 5.0) -> None:
        self.store = store
        self.timeout = timeout
        self.skip_after_failure = skip_after_failure
        self._down_until = 0.0

    async def _call(self, name: str, call: Callable[[], Awaitable[_T]]) -> _T | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await call()
        except (Exception, TimeoutError) as exc:  # noqa: BLE001 - a breaker store must never stop a route
            self._down_until = time.monotonic() + self.skip_after_failure
            logger.warning("cooldown store %s failed (%s); treating breakers as closed for %gs", name,
                           "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__,
                           self.skip_after_failure)
            return None

    async def check(self, key: str, policy: CooldownPolicy, now: float | None = None) -> float | None:
        return await self._call("check", lambda: self.store.check(key, policy, now))

    async def remaining(self, key: str, now: float | None = None) -> float | None:
        return await self._call("remaining", lambda: self.store.remaining(key, now))

    async def record_failure(self, key: str, policy: CooldownPolicy, now: float | None = None) -> None:
        await self._call("record_failure", lambda: self.store.record_failure(key, policy, now))

    async def record_success(self, key: str) -> None:
        await self._call("record_success", lambda: self.store.record_success(key))


_WRAPPED: weakref.WeakKeyDictionary[object, FailOpenCooldowns] = weakref.WeakKeyDictionary()
_WRAPPED_LOCK = threading.Lock()


def fail_open(store: CooldownStore) -> CooldownStore:
    """`store` bounded by `journal_timeout` and failing open. Stores from `open_cooldowns` already are; a
    custom one passed to a Router is wrapped once (the same wrapper each time, so it stays skipped
    after a failure)."""
    if isinstance(store, (InMemoryCooldowns, FailOpenCooldowns)):
        return store
    with _WRAPPED_LOCK:
        wrapped = _WRAPPED.get(store)
        if wrapped is None:
            wrapped = _WRAPPED[store] = FailOpenCooldowns(store, get_settings().journal_timeout)
        return wrapped


def open_cooldowns(url: str, timeout: float | None = None) -> CooldownStore:
    """`memory` or `redis://host:6379/0` (shared by every process using the same Redis); calls on a
    shared store are bounded by `timeout` (default: settings.journal_timeout) and fail open."""
    if url == "memory":
        return InMemoryCooldowns()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_cooldowns import RedisCooldowns  # needs the redis extra: imported when asked for

        timeout = timeout if timeout is not None else get_settings().journal_timeout
        return FailOpenCooldowns(RedisCooldowns(url, socket_timeout=timeout), timeout)
    raise ConfigError(f"unknown cooldown store {url!r}: use memory or redis://host:port/db")


def _from_settings() -> CooldownStore:
    return open_cooldowns(get_settings().cooldowns)


_DEFAULT: Lazy[CooldownStore] = Lazy(_from_settings)


def default_cooldowns() -> CooldownStore:
    """The process-wide breaker state, from `TARASH_COOLDOWNS` (default: in memory)."""
    return _DEFAULT.get()


__all__ = ["CooldownStore", "InMemoryCooldowns", "FailOpenCooldowns", "fail_open", "open_cooldowns",
           "default_cooldowns"]
