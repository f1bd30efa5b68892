"""Map provider failures (HTTP errors, transport errors, failed jobs) to exceptions via spec rules."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any, TypedDict

import httpx

from ..errors import (
    AuthenticationError, GenerationFailedError, HTTPConnectionError, HTTPError, RateLimitError, TarashException,
    TimeoutError, ValidationError,
)
from ..specs.compiled import ProviderSpec
from .http import scrub

_MAX_TEXT = 2000


class ErrorOrigin(TypedDict):
    """Where a failure happened: keyword arguments every `TarashException` takes."""

    provider: str | None
    model: str | None
    request_id: str | None


class ErrorContext(ErrorOrigin, total=False):
    """Where a failure happened and what came back."""

    raw_response: dict[str, Any] | None
    job_may_exist: bool


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `Retry-After` (delta or HTTP date) or `retry-after-ms`."""
    get = headers.get
    ms = get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def raw_body(status: int | None, data: Any, text: str) -> dict[str, Any]:
    """What we keep of an error response: status and body (never request headers)."""
    body = data if data is not None else (text[:_MAX_TEXT] if text else None)
    return {"status_code": status, "body": body}


def default_message(data: Any, text: str) -> str:
    """Best-effort human message from common error body shapes."""
    if isinstance(data, dict):
        for key in ("detail", "error", "message", "title"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                inner = value.get("message") or value.get("msg")
                if isinstance(inner, str):
                    return inner
            if isinstance(value, list) and value:
                found = [v.get("msg") or v.get("message") for v in value if isinstance(v, dict)]
                msgs = [m for m in found if isinstance(m, str)]
                if msgs:
                    return "; ".join(msgs)
    snippet = " ".join(text.split())[:200]
    return snippet or "no response body"


def error_from_response(
    provider: ProviderSpec, phase: str, status: int | None, headers: Mapping[str, str], text: str,
    data: Any, *, model: str, request_id: str | None, job_may_exist: bool,
) -> TarashException:
    """The exception for an error response (or a failed job when phase == 'job')."""
    in_body = phase in ("job", "output")
    raw = data if in_body and isinstance(data, dict) else raw_body(status, data, text)
    common: ErrorContext = {"provider": provider.name, "model": model, "request_id": request_id,
                            "raw_response": raw, "job_may_exist": job_may_exist}
    rule = next((r for r in provider.error_rules if r.matches(phase, status, text, data)), None)
    if rule is not None:
        message = rule.message_text or (rule.message.first(data) if rule.message else None) or \
            default_message(data, text)
        if phase == "output" and rule.message is None and rule.message_text is None:
            what = rule.json_path.expression if rule.json_path else "the result"
            message = f"the provider refused the output ({what} = {rule.equals!r})" if rule.equals is not None \
                else f"the provider refused the output ({what})"
        return _instantiate(rule.error_class, str(message), status, headers, rule.retryable, common)
    message = default_message(data, text)
    if in_body:
        return GenerationFailedError(message, **common)
    return _instantiate(_default_class(status), message, status, headers, None, common)


def output_refusal(provider: ProviderSpec, data: Any, *, model: str, request_id: str | None) -> TarashException | None:
    """The error for a successful result that an `output` rule marks as refused, else None."""
    # Output rules are opt-in (`phase: output`): most providers have none, so no rule is asked.
    if not any(r.phases is not None and "output" in r.phases and r.matches("output", None, "", data)
               for r in provider.error_rules):
        return None
    return error_from_response(provider, "output", None, {}, "", data, model=model, request_id=request_id,
                               job_may_exist=True)


def _default_class(status: int | None) -> type[TarashException]:
    if status in (400, 422):
        return ValidationError
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return RateLimitError
    return HTTPError


def _instantiate(cls: type[TarashException], message: str, status: int | None, headers: Any,
                 retryable: bool | None, common: ErrorContext) -> TarashException:
    prefix = f"HTTP {status}: " if status else ""
    if issubclass(cls, HTTPError):
        return cls(prefix + message, status_code=status, retry_after=parse_retry_after(headers),
                   retryable=retryable, **common)
    return cls(prefix + message, retryable=retryable, **common)


def error_from_transport(exc: Exception, provider: str, model: str, phase: str, request_id: str | None,
                         timeout: float | None, header_values: Any = ()) -> TarashException:
    """The exception for a request that got no usable response.

    Raise it outside the `except` block that caught `exc`: the transport error's text may quote a
    request header (h11 quotes an illegal value whole), so it must not ride along as `__context__`.
    """
    # A refused or failed connect never reached the provider, so no job can exist.
    reached = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    may_exist = phase != "upload" and (phase != "submit" or reached)  # an upload creates no job
    common: ErrorContext = {"provider": provider, "model": model, "request_id": request_id,
                            "job_may_exist": may_exist}
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError(f"{phase} request timed out ({name})", timeout_seconds=timeout, **common)
    if isinstance(exc, httpx.LocalProtocolError):  # about our own request: its text may quote a header
        return HTTPConnectionError(f"{phase} request failed: {name} (the request could not be encoded)", **common)
    return HTTPConnectionError(f"{phase} request failed: {name}: {scrub(str(exc), header_values)}", **common)


__all__ = ["ErrorContext", "ErrorOrigin", "error_from_response", "error_from_transport", "parse_retry_after",
           "raw_body"]
