"""Save a generated file to disk: streamed, capped, on guarded hops, never half-written.

A result URL comes from the provider's response, so it is not trusted: no credential goes with it,
every hop (redirects included) must be a public address unless its origin is one the caller
configured (a local gateway, a test server), the body stops at a byte cap and the whole transfer
at a deadline. The file appears under its name only once it is complete.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from ..errors import HTTPConnectionError, HTTPError, UnsafeURLError
from .client import POOL, ClientPool
from .netguard import check_public_url
from .url_safety import Origin, origin_of
from .wire import Wire, WireResponse

MAX_REDIRECTS = 5
_CHUNK = 256 * 1024
Progress = Callable[[int, "int | None"], None]  # (bytes so far, total when the server said)


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    content_type: str | None


async def download(url: str, dest: Path, *, max_bytes: int, timeout: float, trusted: frozenset[Origin] = frozenset(),
                   pool: ClientPool | None = None, on_progress: Progress | None = None) -> Downloaded:
    """Stream `url` to `dest`. Raises UnsafeURLError for a refused hop, HTTPError for an error status
    or a body over `max_bytes`, HTTPConnectionError when the transfer fails or passes `timeout`."""
    pooled = (pool or POOL).get("download")
    partial = dest.with_name(f".{dest.name}.part")
    failure: Exception | None = None
    try:
        async with asyncio.timeout(timeout), pooled.gate:
            response = await _follow(pooled.wire, url, trusted)
            try:
                size = await _save(response, partial, max_bytes, on_progress)
                content_type = response.headers.get("content-type")
            finally:
                await response.aclose()
        os.replace(partial, dest)
        return Downloaded(dest, size, content_type)
    except TimeoutError:
        failure = HTTPConnectionError(f"download of the result did not finish within {timeout:g}s")
    except httpx.HTTPError as exc:
        failure = HTTPConnectionError(f"download of the result failed: {type(exc).__name__}")
    finally:
        partial.unlink(missing_ok=True)
    raise failure  # outside the except blocks: no transport exception quoted in the chain


async def _follow(wire: Wire, url: str, trusted: frozenset[Origin]) -> WireResponse:
    for _ in range(MAX_REDIRECTS + 1):
        if origin_of(url) not in trusted:
            await check_public_url(url)
        response = await wire.open("GET", url, headers={"Accept": "*/*"}, timeout=None)
        location = response.headers.get("location")
        if response.status in (301, 302, 303, 307, 308) and location:
            url = urljoin(response.url, location)
            await response.aclose()
            continue
        if response.status >= 400:
            await response.aclose()
            raise HTTPError(f"download of the result failed: HTTP {response.status}", status_code=response.status)
        return response
    raise UnsafeURLError(f"download of the result: more than {MAX_REDIRECTS} redirects")


async def _save(response: WireResponse, partial: Path, max_bytes: int, on_progress: Progress | None) -> int:
    declared = response.headers.get("content-length")
    total = int(declared) if declared is not None and declared.isdigit() else None
    if total is not None and total > max_bytes:
        raise HTTPError(f"the result is {total} bytes, over the download limit of {max_bytes}")
    size = 0
    out = await asyncio.to_thread(open, partial, "wb")  # disk work off the event loop: it may serve others
    try:
        async for chunk in response.iter_bytes(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise HTTPError(f"the result passed the download limit of {max_bytes} bytes")
            await asyncio.to_thread(out.write, chunk)
            if on_progress is not None:
                on_progress(size, total)
    finally:
        await asyncio.to_thread(out.close)
    return size


__all__ = ["Downloaded", "download"]
