"""The engine's one HTTP seam: send a request, follow redirects safely, read a bounded body.

Redirects are followed here, not by httpx: httpx drops `Authorization` on a cross-origin redirect
but keeps other credential headers (`x-goog-api-key`, `api-key`). Every hop drops every secret
header when the origin changes, refuses to carry credentials from https down to http, and can be
vetted by a `url_guard` (the SSRF check for media downloads). Bodies are read streaming and refused
past `max_bytes`, so a hostile 400 MB status response costs at most the cap. Transport errors come
out with no request header value in their text and no chained exception that quotes one.
`open_stream` sends the same way and holds the response open, for a body read as it arrives.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urljoin

import httpx

from ..errors import UnsafeURLError, ValidationError
from .client import PooledClient
from .url_safety import Origin, origin_of
from .wire import Wire, WireResponse

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# Dropped on any cross-origin hop whatever the provider file says.
ALWAYS_SECRET = frozenset({"authorization", "cookie", "proxy-authorization"})
# They describe a body that is no longer sent once a redirect turns the request into a GET.
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})
UrlGuard = Callable[[str], Awaitable[None]]
T = TypeVar("T")

# h11 quotes a header it cannot encode whole ("Illegal header value b'Key sk-...\n'") as an escaped
# bytes repr, so the raw value cannot be searched for: everything after the phrase goes.
_H11_ILLEGAL = re.compile(r"(Illegal header (?:value|name))\b.*", re.DOTALL)
# What no header name or value may hold: the line breaks and NUL that would split a request.
_UNSENDABLE = re.compile(r"[\r\n\0]")


class ResponseTooLarge(Exception):
    """The response body passed the byte limit; the caller decides what that means for its phase."""

    def __init__(self, limit: int, status: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit
        self.status = status


class Received:
    """A response read in full (within the byte limit)."""

    __slots__ = ("status", "headers", "content", "_response")

    def __init__(self, response: WireResponse, content: bytes) -> None:
        self.status = response.status
        self.headers = response.headers  # case-insensitive
        self.content = content
        self._response = response

    @property
    def url(self) -> str:
        """The URL that answered, after redirects (written out only when asked)."""
        return self._response.url


async def send(pooled: PooledClient, method: str, url: str, *, headers: Mapping[str, str],
               secret_headers: frozenset[str] = frozenset(), params: Any = None, json: Any = None,
               data: Any = None, files: Any = None, content: bytes | None = None,
               timeout: httpx.Timeout | float | None = None, max_bytes: int, max_redirects: int = 5,
               url_guard: UrlGuard | None = None, checked: list[Any] | None = None) -> Received:
    """Send one request (and its redirects) through the pooled client. `checked`: what
    `checked_header_values(headers)` gave for these headers, when the caller sends them again.

    Raises httpx errors (text scrubbed of header values, nothing chained), `httpx.TooManyRedirects`
    past `max_redirects`, `ResponseTooLarge` past `max_bytes`, `UnsafeURLError` for a refused hop
    and `ValidationError` for a header value HTTP cannot carry.
    """
    values = checked if checked is not None else checked_header_values(headers)
    gate = pooled.gate
    await gate.acquire()  # not `async with`: two fewer coroutines per request
    try:
        response = await _follow(pooled.wire, method, url, headers, values, secret_headers, params, json, data,
                                 files, content, _timeout(timeout), max_redirects, url_guard)
        failure: Exception
        try:
            try:
                return Received(response, await _read_capped(response, max_bytes))
            finally:
                await response.aclose()
        except (httpx.HTTPError, ValueError) as exc:
            failure = _failure(exc, values)
        raise failure  # outside the except block: the original stays out of the chain
    finally:
        gate.release()


class NoStreamSlot(Exception):
    """Every stream the pooled client allows is open: the caller does without one (it polls)."""


class Streamed:
    """A response whose body is read as it arrives (a status stream); errors come out scrubbed."""

    __slots__ = ("status", "headers", "url", "_response", "_values")

    def __init__(self, response: WireResponse, values: list[Any]) -> None:
        self.status = response.status
        self.headers = response.headers  # case-insensitive
        self.url = response.url  # after redirects
        self._response = response
        self._values = values

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The (decoded) body, chunk by chunk as it arrives."""
        async with contextlib.aclosing(_generator(self._response.iter_bytes())) as iterator:
            while True:
                try:
                    chunk = await _scrubbed(self._values, anext(iterator))
                except StopAsyncIteration:
                    return
                yield chunk

    async def read(self, max_bytes: int) -> bytes:
        """The whole body (an error answer), refused past `max_bytes`."""
        return await _scrubbed(self._values, _read_capped(self._response, max_bytes))


@contextlib.asynccontextmanager
async def open_stream(pooled: PooledClient, method: str, url: str, *, headers: Mapping[str, str],
                      secret_headers: frozenset[str] = frozenset(), params: Any = None,
                      timeout: httpx.Timeout | float | None = None, max_redirects: int = 5,
                      url_guard: UrlGuard | None = None) -> AsyncIterator[Streamed]:
    """Send one request (redirects followed as `send` does) and hold its response open for reading as
    it arrives. An open stream holds one of the pooled client's slots; when none is free it raises
    `NoStreamSlot` at once instead of waiting (a stream may stay open for the whole job)."""
    if pooled.gate.locked():
        raise NoStreamSlot
    values = checked_header_values(headers)
    async with pooled.gate:
        response = await _follow(pooled.wire, method, url, headers, values, secret_headers, params, None, None,
                                 None, None, _timeout(timeout), max_redirects, url_guard)
        try:
            yield Streamed(response, values)
        finally:
            with contextlib.suppress(httpx.HTTPError):  # closing a broken stream: the first error is the one
                await response.aclose()


async def _follow(wire: Wire, method: str, url: str, headers: Mapping[str, str], values: list[Any],
                  secret_headers: frozenset[str], params: Any, json: Any, data: Any, files: Any,
                  content: bytes | None, timeout: httpx.Timeout | None, max_redirects: int,
                  url_guard: UrlGuard | None) -> WireResponse:
    """Send the request and follow its redirects; the final response, open, its body unread.
    `values`: the header values, scrubbed from any error's text."""
    first_url = url  # its origin is the one credentials may go to, worked out only if a redirect comes
    for _ in range(max_redirects + 1):
        if url_guard is not None:
            await url_guard(url)
        failure: Exception | None = None
        try:
            response = await wire.open(method, url, headers=headers, params=params, json=json, data=data,
                                       files=files, content=content, timeout=timeout)
        except (httpx.HTTPError, ValueError) as exc:
            failure = _failure(exc, values)
        if failure is not None:
            raise failure  # outside the except block: the original stays out of the chain
        location = response.headers.get("location")
        if response.status not in REDIRECT_CODES or not location:
            return response
        next_url = urljoin(response.url, location)
        await _scrubbed(values, response.aclose())
        # As browsers and httpx do: 303 (and 301/302 after a POST) fetch the new URL with a GET.
        status = response.status
        if method != "HEAD" and (status == 303 or (status in (301, 302) and method == "POST")):
            method, json, data, files, content = "GET", None, None, None, None
            headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
        params = None  # the Location is a whole URL
        secrets = ALWAYS_SECRET | {name.lower() for name in secret_headers}
        headers = _headers_for_hop(headers, secrets, origin_of(first_url), url, next_url)
        url = next_url
    raise httpx.TooManyRedirects(f"more than {max_redirects} redirects")


async def _scrubbed(values: Iterable[Any], operation: Awaitable[T]) -> T:
    """Await one step of an exchange; an httpx error comes out with no header value in its text and
    nothing chained, an illegal header value (aiohttp's ValueError) as httpx.LocalProtocolError."""
    failure: Exception
    try:
        return await operation
    except (httpx.HTTPError, ValueError) as exc:
        failure = _failure(exc, values)
    raise failure  # outside the except block: the original stays out of the chain


def _failure(exc: httpx.HTTPError | ValueError, values: Iterable[Any]) -> Exception:
    """What an exchange's error is raised as: the httpx error with no header value in its text, or for
    aiohttp's ValueError over a header value with a control character, httpx.LocalProtocolError."""
    if isinstance(exc, httpx.HTTPError):
        return scrubbed_copy(exc, values)
    return httpx.LocalProtocolError(f"illegal header value ({scrub(str(exc), values)})")


def _timeout(timeout: httpx.Timeout | float | None) -> httpx.Timeout | None:
    """None: the wire's default (the settings' request and connect timeouts)."""
    return timeout if timeout is None or isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def checked_header_values(headers: Mapping[str, str]) -> list[Any]:
    """The header values (to scrub from errors), once every name and value is one HTTP can carry:
    ValidationError for one that is not ASCII, httpx.LocalProtocolError for a line break or NUL
    (what h11 raises), each naming the header and never echoing its value (it may be a credential)."""
    values = list(headers.values())
    every = "".join(headers) + "".join(values)  # one scan in the usual case: all fine
    if every.isascii() and not _UNSENDABLE.search(every):
        return values
    for name, value in headers.items():
        if not (name.isascii() and value.isascii()):
            raise ValidationError(f"request header {_named(name)} has a value an HTTP header cannot carry "
                                  "(it is not ASCII)")
        if _UNSENDABLE.search(name) or _UNSENDABLE.search(value):
            raise httpx.LocalProtocolError(f"Illegal header value in {_named(name)} (a line break or NUL)")
    return values


def _named(name: str) -> str:
    return name if name.isascii() and not _UNSENDABLE.search(name) else repr(name)


def _headers_for_hop(headers: Mapping[str, str], secrets: frozenset[str], start: Origin | None, current: str,
                     next_url: str) -> Mapping[str, str]:
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


async def _read_capped(response: WireResponse, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(max_bytes, response.status)
    headers = response.headers
    if declared is not None and declared.isdigit() and "content-encoding" not in headers \
            and "transfer-encoding" not in headers:
        return await response.read()  # framed by its length alone and not decoded: it cannot pass the cap
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.iter_bytes():  # decoded bytes: a gzip bomb hits the cap too
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(max_bytes, response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def scrub(text: str, values: Iterable[Any]) -> str:
    """`text` with h11's quoted illegal header and every header value in `values` (long enough to
    matter, also as a bytes repr and word by word) replaced by ***."""
    text = _H11_ILLEGAL.sub(r"\1 ***", text)
    for value in values:
        if not isinstance(value, str):
            continue
        shown = repr(value.encode("utf-8", "replace"))[2:-1]
        for form in sorted({value, shown, *value.split(), *shown.split()}, key=len, reverse=True):
            if len(form) >= 6:
                text = text.replace(form, "***")
    return text


def scrubbed_copy(exc: httpx.HTTPError, values: Iterable[Any]) -> httpx.HTTPError:
    """An exception of the same httpx class whose text quotes no header value, for the same request."""
    copy: httpx.HTTPError
    try:
        copy = type(exc)(scrub(str(exc), values))
    except TypeError:  # a subclass with another constructor: keep the family, lose the detail
        copy = httpx.TransportError(f"{type(exc).__name__}: {scrub(str(exc), values)}")
    request = getattr(exc, "_request", None)
    if request is not None:
        copy.request = request
    return copy


def _generator(iterator: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Both wires' body iterators are async generators, typed as iterators."""
    assert isinstance(iterator, AsyncGenerator)
    return iterator


class _HeaderValueFilter(logging.Filter):
    """Masks h11's quoted header in httpcore's DEBUG trace ("send_request_headers.failed
    exception=LocalProtocolError(...Illegal header value b'<the key>'...)")."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Illegal header" in message:
            record.msg, record.args = _H11_ILLEGAL.sub(r"\1 ***", message), None
        return True


# A filter on a logger does not see its children's records, so each httpcore logger gets one.
for _name in ("httpcore.http11", "httpcore.http2", "httpcore.connection", "httpcore.proxy", "httpcore.socks"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _HeaderValueFilter) for f in _logger.filters):
        _logger.addFilter(_HeaderValueFilter())
