"""The connection layer under the HTTP seam: one request out, one open response back.

`http.send` and `http.open_stream` own everything around a request (redirects, credentials across
origins, byte caps, error scrubbing); a wire only moves bytes. Two wires speak the same small
interface: aiohttp's (`TARASH_TRANSPORT=aiohttp`, the default with `auto` when the `fast` extra is
installed: a fraction of httpx's CPU per request, docs/performance.md) and httpx's own (`httpx`, always there); the
pool (`engine/client.py`) opens the one the settings choose. Both raise httpx's exception classes,
so the engine reads one vocabulary of transport errors.
"""

from __future__ import annotations

import functools
import json as jsonlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

import httpx



class WireResponse(Protocol):
    """A response whose body has not been read yet."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive."""
        ...

    @property
    def url(self) -> str:
        """The URL this response answered (one hop: a wire never follows a redirect)."""
        ...

    def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The body decoded (gzip, deflate...), chunk by chunk as it arrives."""
        ...

    async def read(self) -> bytes:
        """The whole body (the caller checked its declared length against its cap)."""
        ...

    async def aclose(self) -> None: ...


class Wire(Protocol):
    """One pool of connections for one provider on one event loop."""

    @property
    def is_closed(self) -> bool: ...

    async def open(self, method: str, url: str, *, headers: Mapping[str, str], params: Any = None,
                   json: Any = None, data: Any = None, files: Any = None, content: bytes | None = None,
                   timeout: httpx.Timeout | None) -> WireResponse:
        """Send one request (no redirect followed) and return its response, body unread."""
        ...

    async def aclose(self) -> None: ...


@functools.lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """One TLS context for every wire (building one loads the CA bundle: ~80 ms)."""
    return httpx.create_ssl_context()


def json_body(value: Any) -> bytes:
    """A JSON request body, encoded as httpx encodes one (compact, UTF-8, no NaN)."""
    return jsonlib.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def with_query(url: str, params: Mapping[str, Any]) -> str:
    """`url` with `params` merged into its query as httpx merges them (a given key replaces the
    URL's values for it; a list gives the key once per item)."""
    if "?" not in url and "#" not in url:
        try:
            return f"{url}?{_encoded(tuple(params.items()))}"
        except TypeError:  # a list value: not hashable, encoded below
            pass
    base, _, fragment = url.partition("#")
    path, mark, query = base.partition("?")
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in params] if mark else []
    for key, value in params.items():
        items = value if isinstance(value, (list, tuple)) else (value,)
        pairs.extend((str(key), _query_text(item)) for item in items)
    return f"{path}?{urlencode(pairs)}" + (f"#{fragment}" if fragment else "")


@functools.lru_cache(maxsize=512)  # a status poll sends the same parameters every time
def _encoded(items: tuple[tuple[Any, Any], ...]) -> str:
    return urlencode([(str(k), _query_text(v)) for k, v in items])


def _query_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


__all__ = ["Wire", "WireResponse", "ssl_context", "json_body", "with_query"]
