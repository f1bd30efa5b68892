"""Where a rendered request may go: credentials only to trusted origins, paths that stay in their slot.

A provider's response (status/result/cancel URLs, job ids) and the journal (URLs read back by
`resume`) are not trusted: a URL they supply gets our API key only if its origin is the provider's
base URL, an origin its provider file lists (`trusted_origins`) or one the caller configured.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import UnsafeURLError

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Whitespace, control characters and backslashes have no place in a URL we send.
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


@functools.lru_cache(maxsize=4096)  # a provider's submit URL is the same job after job
def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL, default ports filled in; None otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def trusted_origins(base_url: str | None, listed: Iterable[str], provider_config: dict[str, Any]) -> frozenset[Origin]:
    """The origins that may receive credentials: the base URL, the provider file's list, and any URL
    the caller put in `provider_config` (e.g. a storage proxy): configuration is trusted, responses are not."""
    configured = tuple(v for v in provider_config.values() if isinstance(v, str) and v.startswith(("http://", "https://")))
    return _origins((base_url or "", *listed, *configured))


@functools.lru_cache(maxsize=256)  # the same few base URLs and lists, job after job
def _origins(urls: tuple[str, ...]) -> frozenset[Origin]:
    return frozenset(o for o in map(origin_of, urls) if o is not None)


def check_url_shape(url: str, provider: str, model: str | None = None) -> None:
    """Refuse a URL whose path could climb out of its slot (`..`, encoded or not) or that carries a
    fragment, whitespace, control characters or backslashes (from a model id or a provider's job id)."""
    problem = None
    if _BAD_CHARS.search(url):
        problem = "contains whitespace, a control character or a backslash"
    elif "#" in url:
        problem = "contains a fragment ('#')"
    elif "%" in url or "/." in url or url.startswith("."):  # else no dot segment is possible
        path = urlsplit(url).path
        segments = unquote(unquote(path)).split("/")
        if any(s in (".", "..") for s in segments):
            problem = "has a '.' or '..' path segment"
    if problem is not None:
        raise UnsafeURLError(f"refused to send a request: its URL {problem}: {_shown(url)}",
                             provider=provider, model=model, retryable=False)


def check_credentialed_url(url: str, trusted: frozenset[Origin], provider: str, model: str | None = None,
                           request_id: str | None = None) -> None:
    """Refuse to attach credentials to `url` unless its origin is trusted (https never downgraded to http)."""
    if url.startswith(_written_forms(trusted)):  # a provider's status URL: new each job, parsed by no one
        return
    origin = origin_of(url)
    if origin is not None and origin in trusted:
        return
    if origin is not None and origin[0] == "http" and any(t[0] == "https" and t[1] == origin[1] for t in trusted):
        reason = "it downgrades the provider's https origin to plain http"
    else:
        shown = f"{origin[0]}://{origin[1]}:{origin[2]}" if origin else _shown(url)
        reason = (f"its origin {shown} is not the provider's base URL nor listed in trusted_origins "
                  "of the provider file")
    # The job (if any) stays journaled: nothing is lost, and nothing reached the other host.
    raise UnsafeURLError(f"refused to send the {provider} API key: {reason}", provider=provider, model=model,
                         request_id=request_id, retryable=False, job_may_exist=request_id is not None)


@functools.lru_cache(maxsize=256)
def _written_forms(trusted: frozenset[Origin]) -> tuple[str, ...]:
    """How a URL of a trusted origin begins when written plainly, up to its path's first slash:
    `https://queue.fal.run/` (and with its port, `https://queue.fal.run:443/`). A URL that starts so
    has that origin: the authority ends at the slash, with no userinfo or other port before it."""
    forms = []
    for scheme, host, port in trusted:
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address is bracketed
        forms.append(f"{scheme}://{shown}:{port}/")
        if port == _DEFAULT_PORTS[scheme]:
            forms.append(f"{scheme}://{shown}/")
    return tuple(forms)


def _shown(url: str) -> str:
    text = repr(url)
    return text if len(text) <= 120 else f"{text[:100]}...({len(url)} chars)"


__all__ = ["origin_of", "trusted_origins", "check_url_shape", "check_credentialed_url"]
