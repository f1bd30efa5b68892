"""The wire on aiohttp (`TARASH_TRANSPORT=aiohttp`, and `auto` when the `fast` extra is installed).

aiohttp is used directly, without httpx's request and response objects on top: that is most of
what an HTTP request costs this library. What httpx would do for us is done here, the same way:
JSON and form bodies are encoded as httpx encodes them, query parameters merge as httpx merges
them, proxies come from the environment (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY) and every aiohttp
error comes out as the httpx exception class that says what happened to the request.

Two choices differ from aiohttp's defaults, on purpose: no cookie jar (a cookie one caller's
answer set must not ride on another caller's request), and no `trust_env`, which would also read
~/.netrc for credentials and look up proxies in a thread on every request.
"""

from __future__ import annotations

import base64
import functools
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from yarl import URL

from .wire import json_body, ssl_context, with_query

_NO_CONTENT_TYPE = ("Content-Type",)  # raw bytes go out without one, as httpx sends them


def httpx_error(exc: aiohttp.ClientError) -> httpx.TransportError:
    """The httpx exception for an aiohttp error (its text is aiohttp's: the caller scrubs it).

    The class decides whether a failed submit may be sent again: a connect that failed sent nothing
    (ConnectError, ConnectTimeout), a connection that broke after it was made may have delivered it."""
    text = str(exc) or type(exc).__name__
    cls: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        cls = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError):  # the answer (or the next chunk of it) was slow
        cls = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):  # DNS, refused, TLS handshake, the proxy's connect
        cls = httpx.ConnectError
    elif isinstance(exc, aiohttp.ClientHttpProxyError):  # the proxy refused to tunnel: nothing reached the provider
        cls = httpx.ProxyError
    elif isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        cls = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ClientResponseError):  # an answer that is not HTTP
        cls = httpx.RemoteProtocolError
    else:  # disconnected, reset or cut short mid-exchange
        cls = httpx.ReadError
    return cls(text)


class AiohttpResponse:
    __slots__ = ("status", "headers", "_response")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.status = response.status
        self.headers = response.headers  # a case-insensitive multidict
        self._response = response

    @property
    def url(self) -> str:
        return str(self._response.url)  # written out only when asked (a redirect, a stream)

    async def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        content = self._response.content
        failure: httpx.TransportError | None = None
        try:
            if chunk_size is None:
                async for chunk in content.iter_any():
                    yield chunk
            else:
                async for chunk in content.iter_chunked(chunk_size):
                    yield chunk
        except aiohttp.ClientError as exc:
            failure = httpx_error(exc)
        if failure is not None:
            raise failure  # outside the except block: aiohttp's error stays out of the chain

    async def read(self) -> bytes:
        failure: httpx.TransportError | None = None
        try:
            return await self._response.read()
        except aiohttp.ClientError as exc:
            failure = httpx_error(exc)
        raise failure  # outside the except block: aiohttp's error stays out of the chain

    async def aclose(self) -> None:
        # Read to its end, the connection goes back to the pool; cut short, it is closed.
        self._response.release()


class AiohttpWire:
    """One aiohttp session and connector, following no redirect (the HTTP seam does, hop by hop)."""

    def __init__(self, size: int, timeout: httpx.Timeout) -> None:
        connector = aiohttp.TCPConnector(limit=size, limit_per_host=0, ssl=ssl_context())
        self._default_timeout = _client_timeout(timeout.pool, timeout.connect, timeout.read)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), timeout=self._default_timeout,
            trust_env=False)
        # Read once, as httpx reads them; sorted into a tuple to key the per-host cache.
        self._proxies = tuple(sorted(urllib.request.getproxies_environment().items()))

    @property
    def is_closed(self) -> bool:
        return self._session.closed

    async def open(self, method: str, url: str, *, headers: Mapping[str, str], params: Any = None,
                   json: Any = None, data: Any = None, files: Any = None, content: bytes | None = None,
                   timeout: httpx.Timeout | None) -> AiohttpResponse:
        if params:
            url = with_query(url, params)
        body: bytes | None = content
        skip: tuple[str, ...] | None = None  # None, not empty: aiohttp's fast path
        if json is not None:
            body = json_body(json)
            if not _has(headers, "content-type"):
                headers = {**headers, "Content-Type": "application/json"}
        elif data is not None or files is not None:
            body, headers = _form(method, url, headers, data, files)
        elif content is not None and not _has(headers, "content-type"):
            skip = _NO_CONTENT_TYPE
        proxy, proxy_auth = self._proxy_for(url) if self._proxies else _NO_PROXY
        proxy_headers = None
        if proxy_auth is not None:  # on the tunnel's CONNECT for https; on the request itself for http
            if url.startswith("https:"):
                proxy_headers = {"Proxy-Authorization": proxy_auth}
            else:
                headers = {**headers, "Proxy-Authorization": proxy_auth}
        failure: httpx.TransportError | None = None
        try:
            response = await self._session.request(
                method, url, headers=headers, data=body, allow_redirects=False, skip_auto_headers=skip,
                timeout=self._default_timeout if timeout is None else _client_timeout(timeout.pool, timeout.connect,
                                                                                      timeout.read),
                proxy=proxy, proxy_headers=proxy_headers)
        except aiohttp.ClientError as exc:
            failure = httpx_error(exc)
        if failure is not None:
            raise failure  # outside the except block: aiohttp's error stays out of the chain
        return AiohttpResponse(response)

    def _proxy_for(self, url: str) -> tuple[URL | None, str | None]:
        parts = urlsplit(url)
        return _proxy(parts.scheme, parts.hostname or "", self._proxies)

    async def aclose(self) -> None:
        await self._session.close()


_NO_PROXY: tuple[None, None] = (None, None)


@functools.lru_cache(maxsize=1024)
def _proxy(scheme: str, host: str, proxies: tuple[tuple[str, str], ...]) -> tuple[URL | None, str | None]:
    """The proxy for a request to `host`, and the Proxy-Authorization its URL's credentials give
    (as httpx sends them)."""
    table = dict(proxies)
    if urllib.request.proxy_bypass_environment(host, table):  # type: ignore[attr-defined]  # not in typeshed
        return _NO_PROXY
    found = table.get(scheme) or table.get("all")
    if not found:
        return _NO_PROXY
    proxy = URL(found)
    if proxy.user is None:
        return proxy, None
    credentials = base64.b64encode(f"{proxy.user}:{proxy.password or ''}".encode()).decode("ascii")
    return proxy.with_user(None), f"Basic {credentials}"


def _has(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name for key in headers)


def _form(method: str, url: str, headers: Mapping[str, str], data: Any, files: Any) -> tuple[bytes, dict[str, str]]:
    """A form or multipart body encoded by httpx (rare: uploads), with the headers it needs."""
    encoded = httpx.Request(method, url, data=data, files=files)
    body = encoded.read()
    merged = dict(headers)
    for name in ("Content-Type", "Content-Length"):
        if name in encoded.headers and not _has(merged, name.lower()):
            merged[name] = encoded.headers[name]
    return body, merged


@functools.lru_cache(maxsize=256)  # most requests share the settings' timeouts
def _client_timeout(pool: float | None, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    # aiohttp's `connect` covers waiting for a pooled connection and making one; httpx splits the two.
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read,
                                 connect=None if pool is None else pool + (connect or 0.0))


__all__ = ["AiohttpWire", "httpx_error"]
