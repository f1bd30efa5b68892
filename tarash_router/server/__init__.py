"""The HTTP gateway (`tarash-router serve`, extra `server`): jobs over HTTP for callers in any language."""

from __future__ import annotations

from typing import Any

from ..extras import require_sdk


def serve(host: str = "127.0.0.1", port: int = 8000, **client_options: Any) -> None:
    """Run the gateway with uvicorn on a Client configured from `TARASH_*` settings (journal, routes,
    spec dirs), caller keys from `TARASH_SERVER_KEYS` and, when set, its public URL for providers'
    webhooks from `TARASH_SERVER_PUBLIC_URL`."""
    uvicorn = require_sdk("uvicorn", "server", "the gateway")
    require_sdk("starlette", "server", "the gateway")
    from ..client import Client
    from .app import create_app
    from .settings import ServerSettings

    settings = ServerSettings()
    app = create_app(Client(**client_options), settings.server_keys, events_interval=settings.server_events_interval,
                     reconcile_every=settings.server_reconcile_every or None,
                     reconcile_after=settings.server_reconcile_after, public_url=settings.server_public_url)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)


__all__ = ["serve"]
