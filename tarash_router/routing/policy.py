"""Routing policies: error kinds, retry/backoff, fallback, cooldown, durations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import (
    AuthenticationError, ContentModerationError, GenerationFailedError, HTTPConnectionError, HTTPError,
    RateLimitError, TarashException, TimeoutError, ValidationError,
)

ERROR_KINDS = ("rate_limit", "server_error", "connection", "timeout", "generation_failed", "moderation",
               "validation", "auth", "client_error", "other")
ErrorKind = Literal["rate_limit", "server_error", "connection", "timeout", "generation_failed", "moderation",
                    "validation", "auth", "client_error", "other"]
DEFAULT_RETRY_ON: tuple[ErrorKind, ...] = ("rate_limit", "server_error", "connection", "timeout")
DEFAULT_FALLBACK_ON: tuple[ErrorKind, ...] = (
    "rate_limit", "server_error", "connection", "timeout", "generation_failed")
# Failures that say something about the target's health (used by the cooldown breaker).
HEALTH_KINDS = frozenset({"rate_limit", "server_error", "connection", "timeout", "generation_failed"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """'500ms', '30s', '15m', '1h' or a number of seconds -> seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 15m or 1h, found {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, found {value!r}")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 500ms, 30s, 15m or 1h, found {value!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def error_kind(exc: BaseException) -> str:
    """The routing class of an error (what `retry.on` and `fallback_on` list)."""
    if isinstance(exc, RateLimitError):
        return "rate_limit"
    if isinstance(exc, AuthenticationError):
        return "auth"
    if isinstance(exc, HTTPError):
        if exc.status_code is not None and exc.status_code >= 500:
            return "server_error"
        if exc.status_code == 408:
            return "timeout"
        return "client_error" if exc.status_code else "server_error"
    if isinstance(exc, HTTPConnectionError):
        return "connection"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ContentModerationError):
        return "moderation"
    if isinstance(exc, ValidationError):
        return "validation"
    if isinstance(exc, GenerationFailedError):
        return "generation_failed"
    return "other"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between retries of one target; Retry-After wins when the provider sends it."""

    initial: float = 1.0
    max: float = 30.0
    jitter: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    """Tries per target (first try included) and on which error kinds to try again."""

    attempts: int = 3
    on: frozenset[str] = frozenset(DEFAULT_RETRY_ON)
    backoff: Backoff = field(default_factory=Backoff)

    def should_retry(self, exc: BaseException) -> bool:
        # Never send a job again when the provider may have created it (a paid video twice).
        if isinstance(exc, TarashException) and exc.job_may_exist:
            return False
        # A failure its raiser marked final (e.g. a deadline spent waiting at an account's limit,
        # which an immediate retry would meet again) is not retried, whatever its kind.
        if isinstance(exc, TarashException) and not exc.retryable:
            return False
        return error_kind(exc) in self.on


@dataclass(frozen=True)
class CooldownPolicy:
    """`failures` within `window` seconds open the target for `duration` seconds."""

    failures: int = 3
    window: float = 60.0
    duration: float = 30.0


@dataclass(frozen=True)
class RoutePolicy:
    """Everything that governs one routed call besides its targets."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fallback_on: frozenset[str] = frozenset(DEFAULT_FALLBACK_ON)
    skip_unsupported: bool = True
    cooldown: CooldownPolicy | None = None
    deadline: float | None = None
    max_attempts: int | None = None
    strategy: str = "fallback"
    resubmit_if_unknown: bool = False
    budget: Any = None  # budget.Budget: the most one request may cost (routing/budget.py)
    spend_limit: Any = None  # budget.SpendLimit: the most the route may spend in a period


__all__ = [
    "ERROR_KINDS", "ErrorKind", "DEFAULT_RETRY_ON", "DEFAULT_FALLBACK_ON", "parse_duration", "error_kind", "Backoff",
    "RetryPolicy", "CooldownPolicy", "RoutePolicy",
]
