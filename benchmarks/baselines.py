"""Hand-written B1 clients that tarash-router is measured against: each does the same six requests
per Fal job (submit, four status polls, result) with the same headers and body, and nothing else.

* ``httpx``: one shared ``httpx.AsyncClient`` on httpx's own transport (10 connections), the usual
  way to write this by hand;
* ``httpx-aiohttp``: the same httpx code over the ``httpx-aiohttp`` transport with the engine's pool
  size, i.e. the engine's own transport with no engine on top: tarash minus this is the engine's
  own cost per job;
* ``aiohttp``: one ``aiohttp.ClientSession``, the fastest maintained Python client;
* ``floor``: bare asyncio streams speaking just enough HTTP/1.1 for the fake (keep-alive,
  Content-Length bodies). Not a usable client: the distance to it is what any client costs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

MODEL = "fal-ai/veo3/fast"
API_KEY = "bench"
PROMPT = 'A slow dolly shot of a "red" fox crossing a snowy field at dawn, 35mm film look — job {i}'
HEADERS = {"Authorization": f"Key {API_KEY}", "Accept": "application/json"}
ENGINE_POOL = 20  # TarashSettings.max_connections' default: the pool the engine itself uses

Job = Callable[[int], Awaitable[str]]
Close = Callable[[], Awaitable[None]]
# get(url, params) / post(url, json) -> decoded JSON body; raise on a non-2xx answer.
Get = Callable[[str, dict[str, str] | None], Awaitable[Any]]
Post = Callable[[str, dict[str, Any]], Awaitable[Any]]


def _fal_job(get: Get, post: Post, url: str, poll_interval: float) -> Job:
    """The job every baseline runs; only the HTTP verbs differ between them."""
    submit_url = f"{url}/{MODEL}"

    async def job(i: int) -> str:
        body = {"prompt": PROMPT.format(i=i), "duration": "8s", "aspect_ratio": "16:9"}
        handle = await post(submit_url, body)
        while True:
            await asyncio.sleep(poll_interval)
            if (await get(handle["status_url"], {"logs": "1"}))["status"] == "COMPLETED":
                break
        return (await get(handle["response_url"], None))["video"]["url"]

    return job


def httpx_job(url: str, poll_interval: float, pool: int, *, over_aiohttp: bool = False) -> tuple[Job, Close]:
    import httpx

    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    transport = None
    if over_aiohttp:
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits)
    client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0, connect=10.0), transport=transport)

    async def get(target: str, params: dict[str, str] | None) -> Any:
        r = await client.get(target, params=params, headers=HEADERS)
        r.raise_for_status()
        return r.json()

    async def post(target: str, body: dict[str, Any]) -> Any:
        r = await client.post(target, json=body, headers=HEADERS)
        r.raise_for_status()
        return r.json()

    return _fal_job(get, post, url, poll_interval), client.aclose


def aiohttp_job(url: str, poll_interval: float, pool: int) -> tuple[Job, Close]:
    import aiohttp

    session: aiohttp.ClientSession | None = None

    def opened() -> aiohttp.ClientSession:
        nonlocal session
        if session is None:  # a session belongs to the running loop: make it inside it
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool), headers=HEADERS,
                                            timeout=aiohttp.ClientTimeout(total=60, connect=10))
        return session

    async def get(target: str, params: dict[str, str] | None) -> Any:
        async with opened().get(target, params=params, raise_for_status=True) as r:
            return await r.json()

    async def post(target: str, body: dict[str, Any]) -> Any:
        async with opened().post(target, json=body, raise_for_status=True) as r:
            return await r.json()

    async def close() -> None:
        if session is not None:
            await session.close()

    return _fal_job(get, post, url, poll_interval), close


class _BarePool:
    """Keep-alive HTTP/1.1 over asyncio streams, at most `size` connections to one loopback host."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.authority = parts.netloc
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(size)
        self.open: list[asyncio.StreamWriter] = []

    async def request(self, method: str, target: str, body: bytes = b"") -> Any:
        parts = urlsplit(target)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.authority}\r\nAuthorization: {HEADERS['Authorization']}"
                f"\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        async with self.slots:
            if self.free:
                reader, writer = self.free.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self.open.append(writer)
            writer.write(head.encode() + body)
            status_line, _, rest = (await reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
            length = 0
            for line in rest.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            self.free.append((reader, writer))
        if not status_line.split()[1].startswith(b"2"):
            raise RuntimeError(f"{method} {target}: {status_line.decode()}")
        return json.loads(payload)

    async def close(self) -> None:
        for writer in self.open:
            writer.close()


def floor_job(url: str, poll_interval: float, pool: int) -> tuple[Job, Close]:
    bare: _BarePool | None = None

    def opened() -> _BarePool:
        nonlocal bare
        if bare is None:  # its semaphore belongs to the running loop
            bare = _BarePool(url, pool)
        return bare

    async def get(target: str, params: dict[str, str] | None) -> Any:
        return await opened().request("GET", f"{target}?{urlencode(params)}" if params else target)

    async def post(target: str, body: dict[str, Any]) -> Any:
        return await opened().request("POST", target, json.dumps(body).encode())

    async def close() -> None:
        if bare is not None:
            await bare.close()

    return _fal_job(get, post, url, poll_interval), close


def baseline(impl: str, url: str, poll_interval: float, pool: int) -> tuple[Job, Close]:
    """The named baseline; `pool` sizes the plain-httpx client only (the others use the engine's)."""
    if impl == "httpx":
        return httpx_job(url, poll_interval, pool)
    if impl == "httpx-aiohttp":
        return httpx_job(url, poll_interval, ENGINE_POOL, over_aiohttp=True)
    if impl == "aiohttp":
        return aiohttp_job(url, poll_interval, ENGINE_POOL)
    if impl == "floor":
        return floor_job(url, poll_interval, ENGINE_POOL)
    raise ValueError(f"unknown baseline {impl!r}")


BASELINES = ("httpx", "httpx-aiohttp", "aiohttp", "floor")
