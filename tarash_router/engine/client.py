"""Pooled httpx clients, one per provider and event loop, with in-flight requests gated outside the pool.

httpcore's pool scans its queue of waiting requests on every request and response, so cost per
request grows with the number waiting inside it. A semaphore sized to the pool keeps that queue
empty: excess requests wait on the semaphore, which is O(1).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ..settings import TarashSettings, get_settings


@dataclass
class PooledClient:
    client: httpx.AsyncClient
    gate: asyncio.Semaphore


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client (building one loads the CA bundle: ~80 ms)."""
    return httpx.create_ssl_context()


def _fast_transport(choice: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The connection layer under httpx: aiohttp's (through the maintained `httpx-aiohttp` transport,
    extra `fast`) when chosen or, with `auto`, when installed; else httpx's own (None). Requests and
    answers stay httpx objects, so redirects, limits and errors are handled the same either way."""
    if choice == "httpx":
        return None
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        if choice == "aiohttp":
            from ..errors import MissingExtraError

            raise MissingExtraError(
                "TARASH_TRANSPORT=aiohttp needs httpx-aiohttp: pip install 'tarash-router[fast]'") from None
        return None
    return AiohttpTransport(verify=_ssl_context(), limits=limits, trust_env=True)


class ClientPool:
    """Shared clients keyed by (event loop, provider); nothing is created per call."""

    def __init__(self, settings: TarashSettings | None = None) -> None:
        self._settings = settings  # pool size and timeouts; None: the process-wide settings
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, PooledClient]] = (
            weakref.WeakKeyDictionary())

    def get(self, provider: str) -> PooledClient:
        """The pooled client for `provider`'s requests."""
        return self._client(provider, lambda settings: settings.max_connections)

    def streams(self, provider: str) -> PooledClient:
        """The client holding `provider`'s status streams: connections of their own, since a stream holds
        one for a whole job, at most `status_stream_max` at once (`http.open_stream` never waits)."""
        return self._client(f"{provider} streams", lambda settings: settings.status_stream_max)

    def _client(self, key: str, size_of: Callable[[TarashSettings], int]) -> PooledClient:
        loop = asyncio.get_running_loop()
        clients = self._by_loop.get(loop)
        if clients is None:
            clients = self._by_loop[loop] = {}
        pooled = clients.get(key)
        if pooled is None or pooled.client.is_closed:
            settings = self._settings or get_settings()
            size = size_of(settings)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            client = httpx.AsyncClient(
                verify=_ssl_context(),
                limits=limits,
                transport=_fast_transport(settings.transport, limits),
                timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout),
                follow_redirects=False,  # http.send follows them, dropping credentials across origins
            )
            pooled = clients[key] = PooledClient(client, asyncio.Semaphore(size))
        return pooled

    async def aclose(self) -> None:
        """Close the clients of the running loop (call before the loop ends to release sockets)."""
        loop = asyncio.get_running_loop()
        clients = self._by_loop.pop(loop, {})
        for pooled in clients.values():
            await pooled.client.aclose()


POOL = ClientPool()


async def aclose_clients() -> None:
    """Close this event loop's pooled connections."""
    await POOL.aclose()


__all__ = ["ClientPool", "POOL", "aclose_clients", "PooledClient"]
