"""The engine's one HTTP seam: send a request, follow redirects safely, read a bounded body.

Redirects are followed here, not by httpx: httpx drops `Authorization` on a cross-origin redirect
but keeps other credential headers (`x-goog-api-key`, `api-key`). Every hop drops every secret
header when the origin changes, refuses to carry credentials from https down to http, and can be
vetted by a `url_guard` (the SSRF check for media downloads). Bodies are read streaming and refused
past `max_bytes`, so a hostile 400 MB status response costs at most the cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from ..errors import UnsafeURLError, ValidationError
from .client import PooledClient
from .url_safety import origin_of

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# Dropped on any cross-origin hop whatever the provider file says.
ALWAYS_SECRET = frozenset({"authorization", "cookie", "proxy-authorization"})
UrlGuard = Callable[[str], Awaitable[None]]


class ResponseTooLarge(Exception):
    """The response body passed the byte limit; the caller decides what that means for its phase."""

    def __init__(self, limit: int, status: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit
        self.status = status


class Received:
    """A response read in full (within the byte limit)."""

    __slots__ = ("status", "headers", "content", "url")

    def __init__(self, status: int, headers: httpx.Headers, content: bytes, url: str) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        self.url = url


async def send(pooled: PooledClient, method: str, url: str, *, headers: Mapping[str, str],
               secret_headers: frozenset[str] = frozenset(), params: Any = None, json: Any = None,
               data: Any = None, files: Any = None, content: bytes | None = None,
               timeout: httpx.Timeout | float | None = None, max_bytes: int, max_redirects: int = 5,
               url_guard: UrlGuard | None = None) -> Received:
    """Send one request (and its redirects) through the pooled client; raises httpx errors as they come,
    `ResponseTooLarge` past `max_bytes`, `UnsafeURLError` for a refused hop."""
    secrets = ALWAYS_SECRET | secret_headers
    headers = dict(headers)
    start = origin_of(url)
    async with pooled.gate:
        for hop in range(max_redirects + 1):
            if url_guard is not None:
                await url_guard(url)
            request = _build(pooled.client, method, url, headers, params, json, data, files, content, timeout)
            response = await pooled.client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code not in REDIRECT_CODES or not location or hop == max_redirects:
                    body = await _read_capped(response, max_bytes)
                    return Received(response.status_code, response.headers, body, str(response.url))
                next_url = str(response.url.join(location))
            finally:
                await response.aclose()
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, json, data, files, content = "GET", None, None, None, None
            params = None  # the Location is a whole URL
            headers = _headers_for_hop(headers, secrets, start, url, next_url)
            url = next_url
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns on its last hop


def _build(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], params: Any, json: Any,
           data: Any, files: Any, content: bytes | None, timeout: Any) -> httpx.Request:
    try:
        return client.build_request(method, url, params=params, headers=headers, json=json, data=data,
                                    files=files, content=content, timeout=timeout)
    except (UnicodeEncodeError, ValueError) as exc:
        # Never echo the value: it may be a credential.
        bad = [k for k, v in headers.items() if not v.isascii() or any(c in v for c in "\r\n\0")]
        raise ValidationError(f"request header {', '.join(bad) or '?'} has a value an HTTP header cannot carry "
                              f"({type(exc).__name__})") from None


def _headers_for_hop(headers: dict[str, str], secrets: frozenset[str], start: Any, current: str,
                     next_url: str) -> dict[str, str]:
    """Headers for the next hop: credentials only while the origin stays the one first asked."""
    carries = [k for k in headers if k.lower() in secrets]
    if not carries:
        return headers
    here, there = origin_of(current), origin_of(next_url)
    if here is not None and there is not None and here[0] == "https" and there[0] == "http":
        raise UnsafeURLError("refused a redirect from https to plain http while carrying credentials",
                             retryable=False)
    if there == start:
        return headers
    return {k: v for k, v in headers.items() if k.lower() not in secrets}


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(max_bytes, response.status_code)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded bytes: a gzip bomb hits the cap too
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(max_bytes, response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def scrub(text: str, values: Any) -> str:
    """`text` with every header value in `values` (long enough to matter) replaced by ***."""
    for value in values:
        if isinstance(value, str) and len(value) >= 6:
            text = text.replace(value, "***")
            for part in value.split():
                if len(part) >= 6:
                    text = text.replace(part, "***")
    return text


__all__ = ["send", "Received", "ResponseTooLarge", "UrlGuard", "scrub", "REDIRECT_CODES"]
