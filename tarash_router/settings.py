"""Process-wide settings, read from `TARASH_*` environment variables (pydantic-settings).

API keys are not settings fields: each provider spec names the environment variable its
key lives in (`auth.env`), and `resolve_api_key` reads it at call time, so a key set after
import still works and no key is ever stored on a settings object that might be printed.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_paths(cls: type, value: object) -> object:
    if isinstance(value, str):
        return [p for p in value.replace(",", os.pathsep).split(os.pathsep) if p.strip()]
    return value


class TarashSettings(BaseSettings):
    """Settings for spec/route discovery, connection pools and HTTP timeouts."""

    model_config = SettingsConfigDict(env_prefix="TARASH_", extra="ignore")

    # Extra directories of provider specs, loaded after the built-in ones (os.pathsep or comma separated).
    spec_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    route_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    # Connections per provider host; in-flight requests beyond this wait outside httpx's pool.
    max_connections: int = Field(default=20, ge=1)
    # Upper bound for one HTTP request; the generation deadline may cut it shorter.
    request_timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    # Consecutive failed polls tolerated before the job is given up on.
    max_poll_errors: int = Field(default=5, ge=0)
    # Longest wait between retries, whatever Retry-After says.
    max_retry_wait: float = Field(default=30.0, ge=0)
    # Polling backs off on long jobs: the pause between polls grows to this fraction of the time the
    # job has run so far (never below config.poll_interval, never above poll_interval_max), so the
    # caller learns of a finished job within ~10% of its duration while long jobs cost few requests.
    poll_backoff: float = Field(default=0.1, ge=0)
    poll_interval_max: float = Field(default=30.0, gt=0)
    # Status streams (docs/jobs.md): a provider file may declare one (`protocol.stream`, fal's
    # Server-Sent Events); a job then waits on one long request instead of polling, and polls from
    # where it stopped if it breaks. 0 turns them off: every job polls.
    status_stream: bool = True
    # A stream that sends nothing (not even the provider's keep-alive comment) for this long is given
    # up for polling.
    status_stream_idle_timeout: float = Field(default=45.0, gt=0)
    # Largest single event (or line) read from a stream; a larger one breaks the stream for polling.
    status_stream_max_event_bytes: int = Field(1024 * 1024, gt=0)
    # Streams held open at once per provider (each holds a connection, apart from the request pool);
    # jobs beyond this poll.
    status_stream_max: int = Field(default=100, ge=1)
    # Job journal: "memory" (default), "sqlite:///path/to/jobs.db" or "redis://host:6379/0".
    journal: str = "memory"
    # Circuit-breaker state for routes: "memory" (per process) or "redis://host:6379/0" (shared).
    cooldowns: str = "memory"
    # Account limits (jobs in flight, creates per minute): "memory" (one process) or "redis://..."
    # (every process on that Redis); TARASH_LIMITS overrides the provider files' caps as JSON,
    # e.g. {"fal": {"in_flight": 20}}.
    limits_store: str = "memory"
    limits: str = ""
    # What a job does when its account is at a cap: "wait" its turn within its deadline, or "raise"
    # AccountAtLimitError at once, nothing sent (a task queue then retries the task later instead of
    # holding a worker while it waits).
    at_limit: Literal["wait", "raise"] = "wait"
    # A process waiting on someone else's idempotency key takes it over after this many silent seconds.
    idempotency_lease: float = Field(default=30.0, gt=0)
    # Longest wait for one journal, claim or cooldown operation; a slower store is treated as down.
    journal_timeout: float = Field(default=2.0, gt=0)
    # Largest JSON body read from a provider (status, result, error); media downloads have their own cap.
    max_response_bytes: int = Field(32 * 1024 * 1024, gt=0)
    # Media and result URLs may point at loopback/private/link-local addresses (local development, tests).
    allow_private_urls: bool = False
    # The connection layer (engine/wire.py): "auto" (aiohttp when installed, extra `fast`; else
    # httpx), "aiohttp" or "httpx".
    transport: Literal["auto", "aiohttp", "httpx"] = "auto"
    # Webhooks (docs/webhooks.md). fal signs deliveries with ED25519 keys published as a JWKS
    # (https://docs.fal.ai/model-apis/model-endpoints/webhooks); the keys are cached for a day.
    fal_webhook_jwks_url: str = "https://rest.alpha.fal.ai/.well-known/jwks.json"
    # Replicate signs deliveries with the account's `whsec_...` secret (Standard Webhooks;
    # https://replicate.com/docs/topics/webhooks/verify-webhook). Unset: the client fetches it once with
    # the API token from GET /v1/webhooks/default/secret and keeps it.
    replicate_webhook_secret: SecretStr | None = None
    # A delivery whose timestamp is further than this from now is refused (replayed or stale).
    webhook_tolerance: float = Field(default=300.0, gt=0)
    # OpenTelemetry spans and metrics (docs/telemetry.md), sent when the `otel` extra is installed;
    # TARASH_TELEMETRY=0 turns them off. Prompts go on spans only when TARASH_TELEMETRY_PROMPTS=1.
    telemetry: bool = True
    telemetry_prompts: bool = False

    _split_dirs = field_validator("spec_dirs", "route_dirs", mode="before")(_split_paths)


@lru_cache(maxsize=1)
def get_settings() -> TarashSettings:
    """The settings of this process (read once; call `get_settings.cache_clear()` to re-read)."""
    return TarashSettings()


def resolve_api_key(explicit: str | None, env_names: list[str], join_env: list[str] | None = None) -> str | None:
    """The config's key, else the first set environment variable, else a joined id:secret pair.

    Surrounding whitespace is stripped (the usual `.env` / Kubernetes-secret trailing newline); a key
    with any other character an HTTP header cannot carry raises ValueError naming where it came
    from, never its value.
    """
    if explicit and explicit.strip():
        return _clean_key(explicit, "config.api_key")
    for name in env_names:
        value = os.environ.get(name)
        if value and value.strip():
            return _clean_key(value, name)
    if join_env and all((os.environ.get(n) or "").strip() for n in join_env):
        return ":".join(_clean_key(os.environ[n], n) for n in join_env)
    return None


def _clean_key(value: str, source: str) -> str:
    key = value.strip()
    if not _HEADER_SAFE.fullmatch(key):
        raise ValueError(f"the API key in {source} contains a character an HTTP header cannot carry "
                         "(a space, control character or non-ASCII letter); check how it was set")
    return key


# Visible ASCII only; inner spaces are refused too (no provider issues keys with spaces).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


__all__ = ["TarashSettings", "get_settings", "resolve_api_key"]
