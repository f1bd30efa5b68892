"""Telemetry: OpenTelemetry spans and metrics for every routed call, and `on_event` callbacks.

With the `otel` extra installed, every call (generate_* / submit_*) is a `tarash.generate` or
`tarash.submit` span with one `tarash.attempt` child per try at a target, and the `tarash.*`
metrics move; the library uses the OpenTelemetry API and the global providers the application
configured (none configured: the API's no-ops). Without the extra nothing is imported and a call
costs a None check. `TARASH_TELEMETRY=0` turns the OpenTelemetry side off. Names: docs/telemetry.md.

    configure(tracer_provider=..., meter_provider=...)   # providers for tarash_router alone
    set_on_event(callback)                                  # for clients without an on_event of their own
    serve_prometheus(9464)                                  # /metrics (extra `prometheus`)
"""

from __future__ import annotations

from typing import Any

from .call import CallTelemetry, cost_of
from .events import EventKind, OnEvent, TelemetryEvent
from .state import configure, otel_sink, process_on_event, providers, set_on_event


def watch_call(settings: Any, on_event: OnEvent | None, *, operation: str, modality: str, route: str | None,
               request: Any) -> CallTelemetry | None:
    """A `CallTelemetry` for one routed call, or None when there is nothing to tell (no OpenTelemetry
    and no callback): routing then skips every telemetry step."""
    callback = on_event if on_event is not None else process_on_event()
    sink = otel_sink() if settings.telemetry else None
    if sink is not None and not sink.active():  # the OpenTelemetry API with no SDK set up: all no-ops
        sink = None
    if sink is None and callback is None:
        return None
    return CallTelemetry(sink, callback, operation=operation, modality=modality, route=route, request=request,
                         prompts=settings.telemetry_prompts)


def serve_prometheus(port: int = 9464, addr: str = "0.0.0.0") -> int:
    """Serve tarash_router's metrics for Prometheus at http://addr:port/metrics (extra `prometheus`)
    and return the port (useful with port 0). Spans are left as they are."""
    from .prometheus import serve

    return serve(port, addr)


__all__ = ["TelemetryEvent", "EventKind", "OnEvent", "CallTelemetry", "configure", "providers", "set_on_event",
           "watch_call", "serve_prometheus", "otel_sink", "cost_of"]
