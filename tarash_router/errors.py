"""Exception hierarchy shared by specs, engine, handlers and routing.

Every error raised to a caller is a `TarashException`. Messages never contain API keys or
request headers; `raw_response` holds only the provider's response body (already free of secrets).
"""

from __future__ import annotations

from typing import Any


class TarashException(Exception):
    """Base error: carries where it happened and whether retrying may help."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        provider: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        raw_response: dict[str, Any] | None = None,
        *,
        retryable: bool | None = None,
        job_may_exist: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.request_id = request_id
        self.raw_response = raw_response
        self.retryable = self.default_retryable if retryable is None else retryable
        # True when a remote job may have been created: the request must not be re-submitted.
        self.job_may_exist = job_may_exist
        # Filled in by routing with every attempt made before the failure.
        self.execution_metadata: Any = None

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        if not where or (self.model and self.message.startswith(self.model)):
            return self.message
        return f"[{where}] {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"model={self.model!r}, request_id={self.request_id!r}, retryable={self.retryable})"
        )


class ValidationError(TarashException):
    """The request cannot be served by this model (raised before any request is sent when possible)."""


class ContentModerationError(TarashException):
    """The provider refused the prompt or input media, or filtered the output."""


class HTTPError(TarashException):
    """An HTTP error response that no more specific class describes.

    `retry_after` (seconds) is set when the provider sent Retry-After (429 and 503 both may).
    """

    def __init__(self, message: str, *args: Any, status_code: int | None = None, retry_after: float | None = None,
                 **kwargs: Any) -> None:
        if "retryable" not in kwargs or kwargs["retryable"] is None:
            kwargs["retryable"] = status_code in RETRYABLE_STATUS_CODES
        super().__init__(message, *args, **kwargs)
        self.status_code = status_code
        self.retry_after = retry_after


class AuthenticationError(HTTPError):
    """Missing or rejected API key (401/403)."""


class RateLimitError(HTTPError):
    """The provider throttled us (429); `retry_after` is in seconds when the provider said."""

    def __init__(self, message: str, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("status_code", 429)
        kwargs.setdefault("retryable", True)
        super().__init__(message, *args, retry_after=retry_after, **kwargs)


class GenerationFailedError(TarashException):
    """The job ran but failed on the provider's side."""

    default_retryable = True


class HTTPConnectionError(TarashException):
    """The connection failed (refused, reset, DNS, TLS)."""

    default_retryable = True


class TimeoutError(TarashException):  # noqa: A001 - the public name the seed API uses
    """A request or the whole generation ran past its time limit."""

    default_retryable = True

    def __init__(self, message: str, *args: Any, timeout_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)
        self.timeout_seconds = timeout_seconds


class UnsafeURLError(ValidationError):
    """A URL was refused before anything was sent to it: it would carry credentials off the provider's
    trusted origins or down to plain http, escape its path slot, or reach a private address."""


class BudgetExceededError(ValidationError):
    """A route's cost guard refused the request before anything was sent: its estimate is over the
    budget per request, would take the period's spend past the route's limit, or cannot be made."""


class JournalUnavailableError(TarashException):
    """The job journal did not answer in time where a guarantee depends on it (an idempotency claim)."""

    default_retryable = True


class JobMayExistError(TarashException):
    """A previous call may have created a paid job whose id was never recorded (it crashed during the
    submit); sending the request again could pay twice. Reconcile first (`tarash-router jobs list
    --state submitting`), or opt in to resubmitting."""

    def __init__(self, message: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("job_may_exist", True)
        super().__init__(message, *args, **kwargs)


class AccountAtLimitError(TarashException):
    """The provider account was at one of its caps (jobs in flight, creates a minute) and this client
    does not wait its turn (`TARASH_AT_LIMIT=raise`, as task queues want): nothing was sent. Try again
    after `retry_after` seconds, the store's hint (exact for a per-minute cap; for an in-flight cap it
    cannot know when a job finishes, so it is only a floor). Not retried by routing: a retry at once
    would meet the same cap."""

    def __init__(self, message: str, *args: Any, retry_after: float, **kwargs: Any) -> None:
        kwargs.setdefault("retryable", False)
        super().__init__(message, *args, **kwargs)
        self.retry_after = retry_after


class WebhookError(TarashException):
    """A webhook delivery was refused: `reason` is `signature` (missing or bad), `stale` (timestamp
    outside the tolerance), `replay` (this delivery id was handled before), `unknown_job`, `malformed`,
    `unsupported` (the provider declares no webhook) or `secret` (the signing secret is not configured
    and could not be fetched from the provider's API, so nothing could be checked). Answer `replay`
    with 200 (the delivery was handled), `secret` with 503 (retry once the secret is to be had) and
    anything else with 400/401, so the provider retries only what may yet succeed."""

    def __init__(self, message: str, *args: Any, reason: str = "signature", **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)
        self.reason = reason


class MissingExtraError(TarashException):
    """A provider or store needs an optional package (a vendor SDK, redis) that is not installed."""

    default_retryable = False


class SpecError(TarashException):
    """A provider spec or routes file is invalid; names the file, line and key."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        # Other problems found in the same file at the same time: one run reports them all.
        self.more: list[SpecError] = []
        super().__init__(message)

    @classmethod
    def of(cls, errors: list[SpecError]) -> SpecError:
        """The first error, carrying the rest in `more`."""
        first, *rest = errors
        first.more = [e for e in rest if e is not first]
        return first

    @property
    def all(self) -> list[SpecError]:
        """This error and the others found with it."""
        return [self, *self.more]

    @property
    def location(self) -> str:
        parts = [self.file or "<spec>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def line_text(self) -> str:
        """`file:line:col: message [key]` for this error alone."""
        key = f" [{self.key}]" if self.key else ""
        return f"{self.location}: {self.message}{key}"

    def __str__(self) -> str:
        return "\n".join(e.line_text() for e in self.all)


class ConfigError(SpecError):
    """Settings, routes or configs are invalid."""


RETRYABLE_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})

ERROR_CLASSES: dict[str, type[TarashException]] = {
    cls.__name__: cls
    for cls in (
        TarashException,
        ValidationError,
        ContentModerationError,
        HTTPError,
        AuthenticationError,
        RateLimitError,
        GenerationFailedError,
        HTTPConnectionError,
        TimeoutError,
        UnsafeURLError,
        BudgetExceededError,
        JournalUnavailableError,
        JobMayExistError,
        MissingExtraError,
    )
}


def is_retryable_error(exc: BaseException) -> bool:
    """True when trying again (or falling back) may succeed."""
    return isinstance(exc, TarashException) and exc.retryable


__all__ = [
    "TarashException",
    "WebhookError",
    "ValidationError",
    "ContentModerationError",
    "HTTPError",
    "AuthenticationError",
    "RateLimitError",
    "GenerationFailedError",
    "HTTPConnectionError",
    "TimeoutError",
    "UnsafeURLError",
    "BudgetExceededError",
    "JournalUnavailableError",
    "JobMayExistError",
    "AccountAtLimitError",
    "MissingExtraError",
    "SpecError",
    "ConfigError",
    "is_retryable_error",
]
