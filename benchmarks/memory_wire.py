"""B7: the engine's own CPU per job, with no network under it.

Both clients send the same six requests per Fal job (submit, four status polls, result) through one
in-memory wire that answers as fal's queue does: `tarash` through the whole engine (routing,
lifecycle, render, extract, journal), `hand` as a hand-written client would. The wire is the same for
both, so the difference is the engine's own cost, without the socket noise that makes B1's
tarash-minus-aiohttp a difference of two noisy medians.

Like a real pool, the wire holds at most `size` exchanges at once (the engine's `max_connections`,
20 by default, for both sides): with 200 jobs in flight requests wait for a connection, at the wire
for the hand client as at aiohttp's connector, and at the engine's gate for tarash (which then never
waits at the wire). Without the limit the hand client would never wait, which no bare transport does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from .baselines import MODEL, Close, Job, _fal_job

BASE_URL = "http://127.0.0.1:9"  # never connected to: the wire answers in process
POLLS = 4  # a job completes on its fourth status poll, as in B1
DEFAULT_CONNECTIONS = 20  # TarashSettings.max_connections' default


class MemoryResponse:
    __slots__ = ("status", "headers", "url", "_body")

    def __init__(self, url: str, body: bytes) -> None:
        self.status = 200
        self.headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json",
                                                     "Content-Length": str(len(body))}))
        self.url = url
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        yield self._body

    async def aclose(self) -> None:
        return None


class MemoryWire:
    """The engine's wire interface (`tarash_router.engine.wire.Wire`), answered in process."""

    is_closed = False

    def __init__(self, size: int = DEFAULT_CONNECTIONS) -> None:
        self._ids = itertools.count()
        self._polls: dict[str, int] = {}
        self._connections = asyncio.Semaphore(size)  # made on the loop that first waits on it
        self.requests = 0
        self.exchanging = self.most_at_once = 0  # exchanges holding a connection now, and at most

    async def open(self, method: str, url: str, *, headers: Mapping[str, str], params: Any = None, json: Any = None,
                   data: Any = None, files: Any = None, content: bytes | None = None, timeout: Any) -> MemoryResponse:
        from tarash_router.engine.wire import json_body, with_query

        self.requests += 1
        if params:
            url = with_query(url, params)
        if json is not None:
            json_body(json)  # encoded as a wire would
        await self._connections.acquire()
        self.exchanging += 1
        self.most_at_once = max(self.most_at_once, self.exchanging)
        try:
            await asyncio.sleep(0)  # one pass of the event loop, as a socket's answer takes
        finally:
            self.exchanging -= 1
            self._connections.release()
        return MemoryResponse(url, self._answer(method, url))

    def _answer(self, method: str, url: str) -> bytes:
        if method == "POST":
            job = f"req-{next(self._ids)}"
            self._polls[job] = 0
            base = f"{BASE_URL}/{MODEL}/requests/{job}"
            return json.dumps({"request_id": job, "status": "IN_QUEUE", "queue_position": 0, "status_url":
                               f"{base}/status", "response_url": base, "cancel_url": f"{base}/cancel"}).encode()
        path = url.split("?")[0]
        job = path.split("/requests/")[1].split("/")[0]
        if path.endswith("/status"):
            self._polls[job] += 1
            state = "COMPLETED" if self._polls[job] >= POLLS else "IN_PROGRESS"
            return json.dumps({"status": state, "request_id": job, "logs": [],
                               "response_url": f"{BASE_URL}/{MODEL}/requests/{job}"}).encode()
        del self._polls[job]
        return json.dumps({"video": {"url": f"https://v3.fal.media/files/bench/{job}.mp4", "content_type":
                                     "video/mp4", "file_name": f"{job}.mp4", "file_size": 1048576}}).encode()

    async def aclose(self) -> None:
        return None


def hand_job(poll_interval: float, wire: MemoryWire | None = None) -> tuple[Job, Close]:
    """The six requests by hand, through the same wire."""
    wire = wire or MemoryWire()

    async def get(url: str, params: dict[str, str] | None) -> Any:
        return json.loads(await (await wire.open("GET", url, headers={}, params=params, timeout=None)).read())

    async def post(url: str, body: dict[str, Any]) -> Any:
        return json.loads(await (await wire.open("POST", url, headers={}, json=body, timeout=None)).read())

    async def close() -> None:
        return None

    return _fal_job(get, post, BASE_URL, poll_interval), close


def engine_on_memory_wire(opened: list[MemoryWire]) -> None:
    """Make the engine open a MemoryWire for every provider (this benchmark process only); each one
    opened is added to `opened`, for its request count."""
    import tarash_router.engine.client as pool

    def open_wire(settings: Any, size: int) -> MemoryWire:
        opened.append(MemoryWire(size))
        return opened[-1]

    pool.open_wire = open_wire  # type: ignore[assignment]
