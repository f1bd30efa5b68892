"""Pooled connections, one wire per provider and event loop, with in-flight requests gated outside the pool.

A connection pool's cost per request can grow with the number of requests queued inside it
(httpcore scans its queue on every request and response). A semaphore sized to the pool keeps
that queue empty: excess requests wait on the semaphore, which is O(1).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ..settings import TarashSettings, get_settings
from .wire import Wire


def open_wire(settings: TarashSettings, size: int) -> Wire:
    """The wire `settings.transport` chooses (engine/wire.py), holding at most `size` connections."""
    choice = settings.transport
    timeout = httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)
    if choice != "httpx":
        try:
            from .wire_aiohttp import AiohttpWire
        except ImportError:
            if choice == "aiohttp":
                from ..errors import MissingExtraError

                raise MissingExtraError(
                    "TARASH_TRANSPORT=aiohttp needs aiohttp: pip install 'tarash-router[fast]'") from None
        else:
            return AiohttpWire(size, timeout)
    from .wire_httpx import HttpxWire

    return HttpxWire(size, timeout)


@dataclass
class PooledClient:
    wire: Wire
    gate: asyncio.Semaphore


class ClientPool:
    """Shared wires keyed by (event loop, provider); nothing is created per call."""

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
        if pooled is None or pooled.wire.is_closed:
            settings = self._settings or get_settings()
            size = size_of(settings)
            pooled = clients[key] = PooledClient(open_wire(settings, size), asyncio.Semaphore(size))
        return pooled

    async def aclose(self) -> None:
        """Close the clients of the running loop (call before the loop ends to release sockets)."""
        loop = asyncio.get_running_loop()
        clients = self._by_loop.pop(loop, {})
        for pooled in clients.values():
            await pooled.wire.aclose()


POOL = ClientPool()


async def aclose_clients() -> None:
    """Close this event loop's pooled connections."""
    await POOL.aclose()


__all__ = ["ClientPool", "POOL", "aclose_clients", "PooledClient", "open_wire"]
