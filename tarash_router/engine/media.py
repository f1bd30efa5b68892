"""Turn request media (URL, data: URI or bytes) into the form a provider accepts inline."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Collection
from typing import Any, cast

import httpx

from ..errors import HTTPConnectionError, ValidationError
from ..models import request_field
from .client import POOL, ClientPool
from .http import ResponseTooLarge, send
from .netguard import check_public_url


def to_data_uri(content: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(content).decode('ascii')}"


def media_kind(media: Any) -> str:
    """'bytes', 'data_uri' or 'url' (anything with a scheme such as https:// or gs://)."""
    if isinstance(media, dict) and "content" in media:
        return "bytes"
    if isinstance(media, str):
        if media.startswith("data:"):
            return "data_uri"
        if "://" in media:
            return "url"
    raise ValidationError(
        "media must be a URL, a data: URI or {'content': bytes, 'content_type': str}; "
        f"got {type(media).__name__}{' without a scheme' if isinstance(media, str) else ''}")


def convert_media(media: Any, accepts: Collection[str], provider: str, max_inline_bytes: int | None = None) -> str:
    """The media as a string the provider takes: URLs pass through, bytes become a data: URI."""
    kind = media_kind(media)
    if kind == "url":
        if "url" not in accepts:
            raise ValidationError(f"{provider} does not take media URLs; pass bytes instead", provider=provider)
        return cast(str, media)
    if kind == "bytes":
        content = media["content"]
        if max_inline_bytes is not None and len(content) > max_inline_bytes:
            raise ValidationError(
                f"{provider} takes at most {max_inline_bytes} bytes inline, got {len(content)}; "
                "upload the file and pass its URL", provider=provider)
        media = to_data_uri(content, media.get("content_type") or "application/octet-stream")
    if "data_uri" not in accepts:
        raise ValidationError(f"{provider} takes media only as URLs; upload the file and pass its URL",
                              provider=provider)
    return cast(str, media)  # a data: URI, given or built above


async def fetch_media(urls: list[str], provider: str, max_bytes: int,
                      pool: ClientPool | None = None) -> dict[str, dict[str, Any]]:
    """Download URL media for providers that only take inline bytes; url -> MediaContent.

    Every hop is vetted by `check_public_url` (no private, loopback or metadata addresses unless
    TARASH_ALLOW_PRIVATE_URLS is set) and the body is capped at `max_bytes`. `pool`: whose
    connections to use (default: the process-wide pool).
    """
    pooled = (pool or POOL).get(f"media:{provider}")

    async def fetch(url: str) -> tuple[str, dict[str, Any]]:
        failure: Exception | None = None
        try:
            received = await send(pooled, "GET", url, headers={"Accept": "*/*"}, max_bytes=max_bytes,
                                  url_guard=check_public_url)
        except ResponseTooLarge:
            failure = ValidationError(f"input media {url} is larger than {max_bytes} bytes", provider=provider)
        except httpx.HTTPError as exc:
            failure = HTTPConnectionError(f"could not fetch input media {url}: {type(exc).__name__}",
                                          provider=provider)
        if failure is not None:
            raise failure  # outside the except block: no transport exception left in its context
        if received.status >= 400:
            raise ValidationError(f"could not fetch input media {url}: HTTP {received.status}", provider=provider)
        content_type = received.headers.get("content-type", "application/octet-stream").split(";")[0]
        return url, {"content": received.content, "content_type": content_type}

    return dict(await asyncio.gather(*(fetch(u) for u in dict.fromkeys(urls))))


def media_bytes(request: Any) -> list[dict[str, Any]]:
    """Every bytes item (MediaContent) among a request's images, video and mask."""
    return [i for i in _media(request) if isinstance(i, dict) and "content" in i]


def media_urls(request: Any) -> list[str]:
    """Every URL among a request's images, video and mask."""
    # Only http(s) is fetched; other schemes (gs://, s3://) stay URLs and the spec's media rules decide.
    return [i for i in _media(request) if isinstance(i, str) and i.startswith(("http://", "https://"))]


def _media(request: Any) -> list[Any]:
    """A request's images, video and mask, each as given (URL, bytes item or None)."""
    return [i["image"] for i in request.image_list] + [request_field(request, n) for n in ("video", "mask_image")]


__all__ = ["convert_media", "media_kind", "to_data_uri", "fetch_media", "media_urls", "media_bytes"]
