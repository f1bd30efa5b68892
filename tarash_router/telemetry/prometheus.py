"""tarash_router's metrics on a Prometheus /metrics endpoint (extra `prometheus`), for applications
that run no OpenTelemetry SDK of their own. One that does adds a `PrometheusMetricReader` to its
own `MeterProvider` instead (docs/telemetry.md)."""

from __future__ import annotations

import threading
from typing import Any

from ..extras import require_sdk
from .state import configure, providers

_lock = threading.Lock()
_provider: Any = None  # one per process: its reader registers with prometheus_client's registry


def serve(port: int, addr: str) -> int:
    exporter = require_sdk("opentelemetry.exporter.prometheus", "prometheus", "telemetry")
    sdk_metrics = require_sdk("opentelemetry.sdk.metrics", "otel", "telemetry")
    client = require_sdk("prometheus_client", "prometheus", "telemetry")
    global _provider
    with _lock:
        if _provider is None:
            _provider = sdk_metrics.MeterProvider(metric_readers=[exporter.PrometheusMetricReader()])
        if providers()[1] is not _provider:  # tarash_router's metrics only: the global provider is the app's
            configure(tracer_provider=providers()[0], meter_provider=_provider)
    started = client.start_http_server(port, addr)
    server = started[0] if isinstance(started, tuple) else None  # prometheus_client >= 0.20 returns it
    return int(server.server_port) if server is not None else port


__all__ = ["serve"]
