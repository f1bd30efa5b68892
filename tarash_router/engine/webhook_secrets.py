"""Webhook signing secrets fetched from the provider's API (`webhook.secret` in its provider file), for
an account whose secret is not configured: Replicate answers `GET /v1/webhooks/default/secret` with
`{"key": "whsec_..."}` (https://replicate.com/docs/topics/webhooks/verify-webhook).

A secret is fetched with the provider's API key, sent only to the provider's base URL or an origin its
file trusts, and kept by the client that fetched it (per base URL and key). It is never logged, never
put in an error and never shown by a repr.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import weakref
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import TarashException, WebhookError
from ..settings import resolve_api_key
from .http import ResponseTooLarge, send
from .render import USER_AGENT
from .url_safety import check_credentialed_url, check_url_shape, trusted_origins

if TYPE_CHECKING:
    from ..specs.compiled import ProviderSpec

SECRET_MAX_BYTES = 64 * 1024
REFETCH_AFTER = 60.0  # a signature the kept secret does not verify fetches it again, at most this often


class SecretCache:
    """The secrets one client fetched: (provider, base URL, key digest) -> (secret, when fetched)."""

    def __init__(self) -> None:
        self._secrets: dict[tuple[str, str, str], tuple[str, float]] = {}
        # One fetch at a time per event loop: a burst of deliveries waits for the first one.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<SecretCache: {len(self._secrets)} secret(s), not shown>"

    async def secret(self, runtime: Any, spec: ProviderSpec, *, api_key: str | None = None,
                     base_url: str | None = None, refresh: bool = False) -> str:
        """The provider's signing secret, fetched on first use; with `refresh`, fetched again unless that
        was done less than a minute ago (a signature that does not verify may mean it was rotated)."""
        auth = spec.file.auth
        try:
            key = resolve_api_key(api_key, auth.env, auth.join_env) if auth is not None else None
        except ValueError as exc:  # names the variable, never the value
            raise WebhookError(f"{exc}", provider=spec.name, reason="secret") from None
        if key is None:
            variable = f"TARASH_{spec.name.upper().replace('-', '_')}_WEBHOOK_SECRET"
            names = " or ".join(auth.env) if auth is not None and auth.env else "an API key"
            raise WebhookError(f"no webhook secret for {spec.name}: set {variable}, or {names} to fetch it from "
                               f"{spec.name}'s API", provider=spec.name, reason="secret")
        base = (base_url or spec.file.base_url or "").rstrip("/")
        slot = (spec.name, base, hashlib.sha256(key.encode()).hexdigest())
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            kept = self._secrets.get(slot)
            if kept is not None and not (refresh and time.monotonic() - kept[1] >= REFETCH_AFTER):
                return kept[0]
            secret = await _fetch(runtime, spec, base, key)
            self._secrets[slot] = (secret, time.monotonic())
            return secret


async def _fetch(runtime: Any, spec: ProviderSpec, base_url: str, key: str) -> str:
    template = spec.webhook_secret
    assert template is not None and spec.file.auth is not None
    url = str(template.url.render({"base_url": base_url}))
    try:
        check_url_shape(url, spec.name, None)
        check_credentialed_url(url, trusted_origins(base_url, spec.file.trusted_origins, {}), spec.name)
    except TarashException as exc:  # refused before anything was sent
        raise WebhookError(f"could not fetch the {spec.name} webhook signing secret: {exc.message}",
                           provider=spec.name, reason="secret") from None
    auth = spec.file.auth
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
               auth.header: f"{auth.scheme} {key}" if auth.scheme else key}
    settings = runtime.settings
    failure: str | None = None
    try:
        received = await send(runtime.pool.get(spec.name), "GET", url, headers=headers,
                              secret_headers=spec.secret_headers, max_bytes=SECRET_MAX_BYTES,
                              timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout))
    except (httpx.HTTPError, ResponseTooLarge) as exc:  # the text names no header value (http.send)
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        raise WebhookError(f"could not fetch the {spec.name} webhook signing secret ({failure})", provider=spec.name,
                           reason="secret", retryable=True)
    if received.status >= 400:
        refused = received.status in (401, 403)
        why = "the API key was refused" if refused else "the provider answered with an error"
        raise WebhookError(f"could not fetch the {spec.name} webhook signing secret: HTTP {received.status} ({why})",
                           provider=spec.name, reason="secret", raw_response={"status_code": received.status},
                           retryable=not refused and received.status != 404)
    try:
        secret = template.key.first(json.loads(received.content))
    except (ValueError, RecursionError):
        secret = None
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise WebhookError(f"the {spec.name} webhook secret answer has no whsec_ secret at {template.key.expression}",
                           provider=spec.name, reason="secret")
    return secret


__all__ = ["SecretCache"]
