"""Process-wide telemetry state: the OpenTelemetry sink (built on first use, or from `configure`)
and the callback for clients without an `on_event` of their own."""

from __future__ import annotations

import logging
import threading
from typing import Any

from .events import OnEvent

logger = logging.getLogger("tarash_router.telemetry")

_UNBUILT = object()
_lock = threading.Lock()
_sink: Any = _UNBUILT  # the OtelSink in use; None when OpenTelemetry is absent or turned off
_providers: tuple[Any, Any] = (None, None)  # (tracer, meter) providers given to `configure`
_process_on_event: OnEvent | None = None


def _build(tracer_provider: Any, meter_provider: Any) -> Any:
    try:
        from .otel import OtelSink  # imports opentelemetry: the one place that may fail
    except ImportError as exc:
        logger.debug("OpenTelemetry not installed (%s): no spans or metrics", exc)
        return None
    return OtelSink(tracer_provider, meter_provider)


def otel_sink() -> Any:
    """The OpenTelemetry sink, built (and OpenTelemetry imported) on first use; None without it."""
    global _sink
    sink = _sink
    if sink is _UNBUILT:
        with _lock:
            if _sink is _UNBUILT:
                _sink = _build(*_providers)
            sink = _sink
    return sink


def configure(*, tracer_provider: Any = None, meter_provider: Any = None, enabled: bool = True) -> None:
    """Use these OpenTelemetry providers for tarash_router's spans and metrics instead of the global
    ones (None: the global one), e.g. an SDK provider with an in-memory exporter in tests.
    `enabled=False` turns OpenTelemetry off in this process; `configure()` goes back to the globals."""
    global _sink, _providers
    with _lock:
        _providers = (tracer_provider, meter_provider)
        _sink = _build(tracer_provider, meter_provider) if enabled else None


def providers() -> tuple[Any, Any]:
    """The (tracer, meter) providers given to `configure` (None: the global one)."""
    return _providers


def set_on_event(callback: OnEvent | None) -> None:
    """Send the events of every client without an `on_event` of its own (the module functions'
    default client included) to `callback`; None stops them."""
    global _process_on_event
    _process_on_event = callback


def process_on_event() -> OnEvent | None:
    return _process_on_event


__all__ = ["otel_sink", "configure", "providers", "set_on_event", "process_on_event"]
