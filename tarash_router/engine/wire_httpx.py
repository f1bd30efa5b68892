"""The wire on httpx's own connection layer (`TARASH_TRANSPORT=httpx`; `auto` without aiohttp)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from .wire import ssl_context


class HttpxResponse:
    __slots__ = ("status", "headers", "url", "_response")

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.url = str(response.url)
        self._response = response

    def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes(chunk_size)

    async def read(self) -> bytes:
        return await self._response.aread()

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxWire:
    """An httpx.AsyncClient that follows no redirect (the HTTP seam does, hop by hop) and keeps no
    cookie (one caller's answer must not set what another caller's request carries)."""

    def __init__(self, size: int, timeout: httpx.Timeout) -> None:
        self._client = httpx.AsyncClient(
            verify=ssl_context(), timeout=timeout, follow_redirects=False,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # accepts none
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size))

    @property
    def is_closed(self) -> bool:
        return self._client.is_closed

    async def open(self, method: str, url: str, *, headers: Mapping[str, str], params: Any = None,
                   json: Any = None, data: Any = None, files: Any = None, content: bytes | None = None,
                   timeout: httpx.Timeout | None) -> HttpxResponse:
        request = self._client.build_request(method, url, params=params, headers=headers, json=json, data=data,
                                             files=files, content=content,
                                             timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
        return HttpxResponse(await self._client.send(request, stream=True))

    async def aclose(self) -> None:
        await self._client.aclose()


__all__ = ["HttpxWire"]
