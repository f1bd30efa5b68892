"""Per-target circuit breaker: closed -> open after N failures in a window -> half-open trial -> closed.

`CooldownStore` is the interface; `InMemoryCooldowns` serves one process. A shared backend (Redis)
implements the same three methods so several processes agree that a target is cooling down.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from ..lazy import Lazy
from .policy import CooldownPolicy


class CooldownStore(Protocol):
    """State of every target's breaker, keyed by 'provider/model'."""

    def check(self, key: str, policy: CooldownPolicy, now: float | None = None) -> float | None:
        """None when the target may be tried (closed, or this caller gets the half-open trial);
        otherwise the seconds until it may be tried again."""

    def remaining(self, key: str, now: float | None = None) -> float | None:
        """Seconds the target stays open, without taking the half-open trial (for `explain`)."""

    def record_failure(self, key: str, policy: CooldownPolicy, now: float | None = None) -> None: ...

    def record_success(self, key: str) -> None: ...


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

    def check(self, key: str, policy: CooldownPolicy, now: float | None = None) -> float | None:
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

    def remaining(self, key: str, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None or breaker.open_until is None or now >= breaker.open_until:
                return None
            return breaker.open_until - now

    def record_failure(self, key: str, policy: CooldownPolicy, now: float | None = None) -> None:
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

    def record_success(self, key: str) -> None:
        with self._lock:
            self._breakers.pop(key, None)

    def reset(self) -> None:
        with self._lock:
            self._breakers.clear()


def open_cooldowns(url: str) -> CooldownStore:
    """`memory` or `redis://host:6379/0` (shared by every process using the same Redis)."""
    if url == "memory":
        return InMemoryCooldowns()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_cooldowns import RedisCooldowns

        return RedisCooldowns(url)
    from ..errors import ConfigError

    raise ConfigError(f"unknown cooldown store {url!r}: use memory or redis://host:port/db")


def _from_settings() -> CooldownStore:
    from ..settings import get_settings

    return open_cooldowns(get_settings().cooldowns)


_DEFAULT: Lazy[CooldownStore] = Lazy(_from_settings)


def default_cooldowns() -> CooldownStore:
    """The process-wide breaker state, from `TARASH_COOLDOWNS` (default: in memory)."""
    return _DEFAULT.get()


__all__ = ["CooldownStore", "InMemoryCooldowns", "open_cooldowns", "default_cooldowns"]
