"""The gateway's own settings (`TARASH_SERVER_*`), read when it starts."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TARASH_", extra="ignore")

    # Bearer keys callers present (comma-separated); the gateway refuses to start without one.
    server_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    # Seconds between status checks behind one /events stream.
    server_events_interval: float = Field(default=2.0, gt=0)
    # A background pass every this many seconds finishes jobs not updated for `server_reconcile_after`
    # (a webhook that never came); 0 turns it off.
    server_reconcile_every: float = Field(default=60.0, ge=0)
    server_reconcile_after: float = Field(default=300.0, gt=0)
    # The gateway's URL as providers reach it (https://gateway.example). When set, jobs of providers
    # that declare a webhook are submitted with webhook_url = this + /v1/webhooks/{provider}, so they
    # finish without status polls; other providers' jobs are polled.
    server_public_url: str | None = None

    @field_validator("server_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return [k.strip() for k in value.split(",") if k.strip()] if isinstance(value, str) else value

    @field_validator("server_public_url", mode="after")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("TARASH_SERVER_PUBLIC_URL is the gateway's base URL, like https://gateway.example "
                             "(http or https, no query or fragment)")
        return url


__all__ = ["ServerSettings"]
