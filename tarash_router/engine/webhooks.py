"""Webhook deliveries in: check the provider's signature, then complete the journaled job once.

A provider that reports finished jobs by webhook declares it in its provider file (`webhook:`):
where the submit carries the caller's URL, how deliveries are signed, and where a delivery keeps
the job id, status and result. `WebhookReceiver.handle` is what a web route calls with the raw
request: it refuses a bad signature, a timestamp outside `settings.webhook_tolerance` and a
delivery it has seen before (`WebhookError`, with its `reason`), finds the job in the journal by
the provider's id and records it completed or failed. The response is extracted with the family's
own response paths, exactly as the spec transport's fetch does. Journal states only move forward,
so a second delivery of a finished job (providers retry) changes nothing and returns the same Job.

Signatures:
- `fal-ed25519` (https://docs.fal.ai/model-apis/model-endpoints/webhooks): ED25519 over
  `request_id \\n user_id \\n timestamp \\n sha256_hex(body)`, headers `X-Fal-Webhook-Request-Id`,
  `-User-Id`, `-Timestamp`, `-Signature` (hex); public keys from the JWKS at
  `settings.fal_webhook_jwks_url`, cached for a day (refetched early, at most once a minute, when
  no cached key verifies: keys rotate).
- `standard-webhooks` (https://www.standardwebhooks.com/, Replicate:
  https://replicate.com/docs/topics/webhooks/verify-webhook): HMAC-SHA256 with the `whsec_` secret
  over `webhook-id.webhook-timestamp.body`; `webhook-signature` lists `v1,<base64>` entries. The
  secret is `TARASH_<PROVIDER>_WEBHOOK_SECRET`, else fetched from the provider's API where its file
  says how (`webhook.secret`; engine/webhook_secrets.py) and kept by the client.

ED25519 needs the `cryptography` package (extra `webhooks`); HMAC needs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import GenerationFailedError, TarashException, ValidationError, WebhookError
from ..extras import require_sdk
from ..journal.records import TERMINAL_STATES, Claim
from ..models import ImageGenerationConfig, Job, VideoGenerationConfig
from ..specs.jsonpaths import JsonPath
from .classify import error_from_response
from .transport import Call
from .transports.spec import SpecTransport, empty_request
from .webhook_secrets import SecretCache

if TYPE_CHECKING:
    from ..journal.records import JobRecord
    from ..settings import TarashSettings
    from ..specs.compiled import FamilySpec, ProviderSpec
    from ..specs.schema import WebhookSpec

logger = logging.getLogger("tarash_router.webhooks")
JWKS_TTL = 24 * 3600.0  # how long fetched keys are trusted before they are fetched again
JWKS_MIN_REFRESH = 60.0  # an unknown signature refetches the keys at most this often
JWKS_MAX_KEYS = 16
JWKS_MAX_BYTES = 64 * 1024


class ProviderWebhookUrl:
    """A webhook URL chosen per target, for a submit whose targets may be of several providers (the
    gateway's): `template` with `{provider}` in it, for a target whose provider declares a webhook;
    a target whose provider declares none is submitted without one, and polled."""

    def __init__(self, template: str) -> None:
        if "{provider}" not in template:
            raise ValueError("a per-provider webhook URL names the provider: put {provider} in it")
        self.template = template

    def for_target(self, family: FamilySpec | None) -> str | None:
        if family is None or family.provider.file.webhook is None:
            return None
        return self.template.replace("{provider}", family.provider.name)

    def __repr__(self) -> str:
        return f"ProviderWebhookUrl({self.template!r})"


def webhook_url_for(family: FamilySpec | None, config: Any, url: str | ProviderWebhookUrl | None) -> str | None:
    """The URL the target's submit carries: a plain URL is checked (a provider without a webhook refuses
    it); a per-provider one gives the target's own, or none."""
    if isinstance(url, ProviderWebhookUrl):
        url = url.for_target(family)
        if url is None:
            return None
    if url is not None:
        check_webhook_url(family, config, url)
    return url


def check_webhook_url(family: FamilySpec | None, config: Any, url: str) -> None:
    """Refuse `webhook_url` before anything is sent when the target's provider declares no webhook."""
    provider = config.provider
    if family is None or family.provider.file.webhook is None:
        raise ValidationError(f"{provider} has no webhook declared in its provider file, so webhook_url cannot be "
                              "sent; submit without it and follow the job with get_job/wait",
                              provider=provider, model=config.model)
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ValidationError(f"webhook_url must be an http(s) URL, got {url!r}", provider=provider, model=config.model)


class JwksCache:
    """ED25519 public keys from a JWKS URL, kept `ttl` seconds (at most JWKS_MAX_KEYS of them)."""

    def __init__(self, url: str, ttl: float = JWKS_TTL) -> None:
        self.url = url
        self.ttl = ttl
        self._keys: list[bytes] = []
        self._fetched = float("-inf")
        # One fetch at a time per event loop: a burst of deliveries waits for the first fetch.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def _fresh(self, refresh: bool) -> bool:
        age = time.monotonic() - self._fetched
        return bool(self._keys) and age < self.ttl and not (refresh and age >= JWKS_MIN_REFRESH)

    async def keys(self, *, refresh: bool = False) -> list[bytes]:
        """The cached keys; fetched when missing or older than `ttl`, or (`refresh`) when older than a minute."""
        if self._fresh(refresh):
            return self._keys
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self._fresh(refresh):  # fetched while this delivery waited
                return self._keys
            return await self._refetch()

    async def _refetch(self) -> list[bytes]:
        try:
            self._keys = await self._fetch()
        except (httpx.HTTPError, ValueError) as exc:
            if not self._keys:
                raise WebhookError(f"could not fetch the webhook signing keys from {self.url}: {type(exc).__name__}",
                                   reason="signature", retryable=True) from None
            logger.warning("JWKS refresh from %s failed (%s); using the cached keys", self.url, type(exc).__name__)
        self._fetched = time.monotonic()
        return self._keys

    async def _fetch(self) -> list[bytes]:
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as http:
            response = await http.get(self.url)
        response.raise_for_status()
        if len(response.content) > JWKS_MAX_BYTES:
            raise ValueError("JWKS too large")
        keys = []
        for jwk in response.json().get("keys", [])[:JWKS_MAX_KEYS]:
            if isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("x"):
                keys.append(_b64url(jwk["x"]))
        if not keys:
            raise ValueError("no Ed25519 key in the JWKS")
        return keys


def verify_fal(headers: Mapping[str, str], body: bytes, keys: list[bytes]) -> bool:
    """True when one of `keys` signed this delivery (fal's scheme; see the module docstring)."""
    ed25519 = require_sdk("cryptography.hazmat.primitives.asymmetric.ed25519", "webhooks", "fal webhooks")
    try:
        signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    except ValueError:
        return False
    message = "\n".join([headers["x-fal-webhook-request-id"], headers["x-fal-webhook-user-id"],
                         headers["x-fal-webhook-timestamp"], hashlib.sha256(body).hexdigest()]).encode()
    for key in keys:
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
            return True
        except Exception:  # noqa: BLE001 - InvalidSignature, or a malformed key: try the next one
            continue
    return False


def verify_standard(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """True when `webhook-signature` holds a v1 HMAC-SHA256 of this delivery under `secret` (whsec_...)."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookError("the webhook secret is not a whsec_<base64> secret", reason="signature") from None
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for entry in headers["webhook-signature"].split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False


# signature scheme -> (the headers a delivery must carry, the delivery id header, the timestamp header)
_HEADERS = {
    "fal-ed25519": (("x-fal-webhook-request-id", "x-fal-webhook-user-id", "x-fal-webhook-timestamp",
                     "x-fal-webhook-signature"), None, "x-fal-webhook-timestamp"),
    "standard-webhooks": (("webhook-id", "webhook-timestamp", "webhook-signature"), "webhook-id",
                          "webhook-timestamp"),
}


class WebhookReceiver:
    """Verifies deliveries and completes their jobs for one client (its settings, specs and journal)."""

    def __init__(self, settings: TarashSettings) -> None:
        self.settings = settings
        self.jwks = JwksCache(settings.fal_webhook_jwks_url)
        self.secrets = SecretCache()

    async def handle(self, runtime: Any, provider: str, headers: Mapping[str, str], body: bytes | str, *,
                     api_key: str | None = None, base_url: str | None = None) -> Job:
        """Verify one delivery and complete its job in the journal (once); the job as it now stands.
        `api_key` and `base_url` are for fetching a signing secret that is not configured (Replicate's):
        by default the provider's key variable and its file's base URL."""
        registry = runtime.registry
        if not registry.has_provider(provider):
            raise WebhookError(f"unknown provider {provider!r}", provider=provider, reason="unsupported")
        spec: ProviderSpec = registry.providers[registry.provider_name(provider)]
        webhook = spec.file.webhook
        if webhook is None:
            raise WebhookError(f"{spec.name} declares no webhook in its provider file", provider=spec.name,
                               reason="unsupported")
        raw = body.encode() if isinstance(body, str) else bytes(body)
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        delivery = await self._verify(runtime, spec, webhook.signature, lowered, raw, api_key, base_url)
        try:
            data = json.loads(raw)
        except ValueError:
            raise WebhookError("the delivery body is not JSON", provider=spec.name, reason="malformed") from None
        job_id = JsonPath(webhook.id).first(data)
        if job_id is None:
            raise WebhookError(f"the delivery has no job id at {webhook.id}", provider=spec.name, reason="malformed")
        journal = runtime.journal
        record = await journal.get(str(job_id))
        if record is None or record.provider != spec.name:
            raise WebhookError(f"no journaled {spec.name} job {job_id!r} (journal: {self.settings.journal})",
                               provider=spec.name, request_id=str(job_id), reason="unknown_job")
        owner = uuid.uuid4().hex
        claim = Claim(key=f"webhook:{spec.name}:{delivery}", fingerprint=hashlib.sha256(raw).hexdigest(),
                      owner=owner, state="completed", job_id=record.job_id, modality=record.modality)
        if (await journal.claim(claim)).owner != owner:
            raise WebhookError(f"delivery {delivery} was handled before (a replay)", provider=spec.name,
                               request_id=record.job_id, reason="replay")
        try:
            return await complete(runtime, record, webhook, data)
        except BaseException:
            await journal.release(claim.key, owner)  # the provider's retry may still complete it
            raise

    async def _verify(self, runtime: Any, spec: ProviderSpec, scheme: str, headers: dict[str, str], body: bytes,
                      api_key: str | None, base_url: str | None) -> str:
        """Check headers, timestamp and signature; the delivery's id (what a replay repeats)."""
        required, id_header, ts_header = _HEADERS[scheme]
        missing = [h for h in required if not headers.get(h)]
        if missing:
            raise WebhookError(f"the delivery lacks {', '.join(missing)}", provider=spec.name, reason="signature")
        try:
            sent = float(headers[ts_header])
        except ValueError:
            raise WebhookError(f"{ts_header} is not a Unix time", provider=spec.name, reason="signature") from None
        skew = abs(time.time() - sent)
        if skew > self.settings.webhook_tolerance:
            raise WebhookError(f"the delivery's timestamp is {int(skew)} s from now (tolerance: "
                               f"{int(self.settings.webhook_tolerance)} s): stale or replayed",
                               provider=spec.name, reason="stale")
        if scheme == "fal-ed25519":
            ok = verify_fal(headers, body, await self.jwks.keys())
            if not ok:  # fal may have rotated its keys since they were cached
                ok = verify_fal(headers, body, await self.jwks.keys(refresh=True))
            delivery = f"{headers['x-fal-webhook-request-id']}:{headers[ts_header]}"
        else:
            configured = self._configured_secret(spec)
            if configured is not None:
                ok = verify_standard(headers, body, configured)
            else:  # fetched from the provider's API, and again if it no longer verifies (rotated)
                fetch = {"api_key": api_key, "base_url": base_url}
                ok = verify_standard(headers, body, await self._fetched_secret(runtime, spec, **fetch))
                if not ok:
                    ok = verify_standard(headers, body, await self._fetched_secret(runtime, spec, refresh=True,
                                                                                   **fetch))
            delivery = headers[id_header]  # type: ignore[index]
        if not ok:
            raise WebhookError("the delivery's signature does not verify", provider=spec.name, reason="signature")
        return delivery

    def _configured_secret(self, spec: ProviderSpec) -> str | None:
        secret = getattr(self.settings, f"{spec.name.replace('-', '_')}_webhook_secret", None)
        if secret is None:
            return None
        return secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)

    async def _fetched_secret(self, runtime: Any, spec: ProviderSpec, **options: Any) -> str:
        if spec.webhook_secret is None:
            raise WebhookError(f"no webhook secret for {spec.name}: set TARASH_{spec.name.upper()}_WEBHOOK_SECRET "
                               "(the whsec_... secret of the account)", provider=spec.name, reason="secret")
        return await self.secrets.secret(runtime, spec, **options)


async def complete(runtime: Any, record: JobRecord, webhook: WebhookSpec, data: Any) -> Job:
    """Record what a verified delivery says about a journaled job; a finished job is left as it is."""
    if record.state in TERMINAL_STATES:
        return record.to_job()
    family = runtime.registry.resolve(record.provider, record.model, record.modality)
    status_map = webhook.status_map or (family.provider.protocol.status_map if family.provider.protocol else {})
    raw_status = JsonPath(webhook.status).first(data) if webhook.status else None
    state = "completed" if raw_status is None else status_map.get(str(raw_status), "processing")
    journal = runtime.journal
    if state in ("queued", "processing"):  # a progress event (e.g. Replicate `start`)
        updated = await journal.advance(record.job_id, "processing")
        return (updated or record).to_job()
    result = JsonPath(webhook.result).first(data)
    message = JsonPath(webhook.error).first(data) if webhook.error else None
    call = _call(runtime, family, record)
    failure: TarashException | None = None
    if state == "completed" and message is None:
        try:
            response = SpecTransport.extract_response(call, result, record.job_id)
        except TarashException as exc:  # a refusal, or a result without the video
            failure = exc
        else:
            updated = await journal.advance(record.job_id, "completed", result=response.model_dump(mode="json"))
            await _free_slot(runtime, family, call, record)
            return (updated or record).to_job(response=response if updated and updated.state == "completed" else None)
    if failure is None:
        text = json.dumps(data) if not isinstance(data, str) else data
        failure = error_from_response(family.provider, "job", None, {}, text, data, model=record.model,
                                      request_id=record.job_id, job_may_exist=True)
        if message is not None and type(failure) is GenerationFailedError:
            failure.message = str(message)
    error = {"type": type(failure).__name__, "message": failure.message}
    updated = await journal.advance(record.job_id, "failed", error=error)
    await _free_slot(runtime, family, call, record)
    return (updated or record).to_job()


async def _free_slot(runtime: Any, family: FamilySpec, call: Call, record: JobRecord) -> None:
    """The finished job's account slot (see engine/limits.py) is free again."""
    limiter = runtime.limiter(family, call.config)
    if limiter is not None:
        await limiter.release(record.job_id)


def _call(runtime: Any, family: FamilySpec, record: JobRecord) -> Call:
    """The call a journaled job's response is extracted with (nothing is sent: no key, no URL)."""
    config_cls = VideoGenerationConfig if record.modality == "video" else ImageGenerationConfig
    config = config_cls(provider=record.provider, model=record.model, timeout=record.timeout,
                        poll_interval=record.poll_interval, max_poll_attempts=record.max_poll_attempts)
    return Call(family=family, config=config, request=empty_request(record.modality), modality=record.modality,
                settings=runtime.settings, pool=runtime.pool, job_id=record.job_id, handle=dict(record.job))


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


__all__ = ["WebhookReceiver", "JwksCache", "ProviderWebhookUrl", "check_webhook_url", "complete", "verify_fal",
           "verify_standard", "webhook_url_for"]
