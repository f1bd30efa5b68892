"""Refuse URLs that reach private networks, so fetching a caller's media URL is not an SSRF.

Checked after DNS resolution and again on every redirect hop (through `http.send`'s `url_guard`).
Residual risk: httpx resolves the name again when it connects, so a DNS server that answers
differently within milliseconds (rebinding) could still steer the connection; run the library
behind an egress proxy or firewall if callers you do not trust supply media URLs.
`TARASH_ALLOW_PRIVATE_URLS=1` turns the check off (local development, loopback test servers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import cast
from urllib.parse import urlsplit

from ..errors import UnsafeURLError
from ..settings import get_settings

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal"})


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address (also inside IPv4-mapped, 6to4 and NAT64 forms)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    return ip.is_global and not ip.is_multicast


async def check_public_url(url: str) -> None:
    """Raise UnsafeURLError unless `url` is http(s) and every address its host resolves to is public."""
    if get_settings().allow_private_urls:
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeURLError(f"refused to fetch {_shown(url)}: only http(s) URLs with a host are fetched")
    if host in _METADATA_NAMES or host == "localhost" or host.endswith(".localhost"):
        raise UnsafeURLError(f"refused to fetch {_shown(url)}: {host} is a private host "
                             "(set TARASH_ALLOW_PRIVATE_URLS=1 to allow it in development)")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError:
            raise UnsafeURLError(f"refused to fetch {_shown(url)}: its host does not resolve") from None
        # An IP family's socket address starts with the host, a string.
        addresses = [ipaddress.ip_address(cast(str, info[4][0]).split("%")[0]) for info in infos]
    private = [str(a) for a in addresses if not is_public_address(a)]
    if private:
        raise UnsafeURLError(f"refused to fetch {_shown(url)}: {host} resolves to a private, loopback or "
                             f"link-local address ({private[0]}); set TARASH_ALLOW_PRIVATE_URLS=1 to allow it "
                             "in development")


def _shown(url: str) -> str:
    """The URL without user info, query or fragment: a signed media URL's signature stays out of messages."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url.split("?")[0]
    return repr(shown) if len(shown) <= 120 else f"{shown[:100]!r}...({len(shown)} chars)"
