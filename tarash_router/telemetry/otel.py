"""The OpenTelemetry side: the tracer, the meter and its instruments, behind a few plain methods.

Imported only when the `otel` extra is installed (this import is what fails without it). It uses
the OpenTelemetry API alone: which SDK, exporters and providers run is the application's choice;
without one configured every call here is the API's no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context, metrics, trace
from opentelemetry.trace import ProxyTracerProvider, Span, Status, StatusCode

try:  # what get_meter_provider() returns until the application sets one
    from opentelemetry.metrics._internal import _ProxyMeterProvider as ProxyMeterProvider
except ImportError:  # moved: then assume the application set one
    ProxyMeterProvider = ()  # type: ignore[assignment,misc]

SCOPE = "tarash_router"

# Generation jobs run from seconds to an hour; the SDK's default buckets are made for milliseconds.
SECONDS_BUCKETS: Sequence[float] = (0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600)

Attributes = Mapping[str, Any]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tarash-router")
    except PackageNotFoundError:  # a source tree
        return "0.0.0"


class OtelSink:
    """Spans and metrics for tarash_router, from the given providers (default: the global ones)."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.given = tracer_provider is not None or meter_provider is not None
        version = _version()
        self.tracer = trace.get_tracer(SCOPE, version, tracer_provider)
        meter = metrics.get_meter(SCOPE, version, meter_provider)
        self.jobs = meter.create_counter(
            "tarash.jobs", unit="{job}", description="Tries at a provider, by outcome")
        self.job_duration = meter.create_histogram(
            "tarash.job.duration", unit="s", description="Time one try at a provider took, submit to result",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.queue_wait = meter.create_histogram(
            "tarash.job.queue_wait", unit="s", description="Time a job waited in the provider's queue",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.in_flight = meter.create_up_down_counter(
            "tarash.jobs.in_flight", unit="{job}", description="Tries at a provider running now")
        self.generation_duration = meter.create_histogram(
            "tarash.generation.duration", unit="s",
            description="Time a whole call took, every try, retry and fallback included",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.cost = meter.create_counter(
            "tarash.cost", unit="{currency}", description="Cost of jobs, in the currency of tarash.cost.currency")

    def active(self) -> bool:
        """Whether anything would record: providers were given, or the application set a global one.
        Until then every span and measurement would be a no-op, so calls skip them (and their cost)."""
        return self.given or not (isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
                                  and isinstance(metrics.get_meter_provider(), ProxyMeterProvider))

    # ------------------------------------------------------------ spans

    def start(self, name: str, attributes: Attributes, parent: Span | None = None,
              current: bool = True) -> tuple[Span, object | None]:
        """Start a span (a child of `parent`, else of the current one) and, with `current`, make it
        current, so what runs inside (an instrumented HTTP client, say) nests under it. Returns the
        span and the token that `leave` takes."""
        where = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(name, context=where, attributes=attributes)
        return span, context.attach(trace.set_span_in_context(span)) if current else None

    @staticmethod
    def leave(token: object) -> None:
        """Make the span that was current before `start` current again."""
        context.detach(token)  # type: ignore[arg-type]

    @staticmethod
    def end(span: Span, attributes: Attributes, error: tuple[str, str] | None = None,
            end_ns: int | None = None) -> None:
        """Finish a span with its last attributes; an error (type, masked message) sets status ERROR,
        `error.type` and an `exception` event."""
        span.set_attributes(attributes)
        if error is not None:
            kind, message = error
            span.set_attribute("error.type", kind)
            span.add_event("exception", {"exception.type": kind, "exception.message": message})
            span.set_status(Status(StatusCode.ERROR, message))
        span.end(end_time=end_ns)

    # ------------------------------------------------------------ metrics

    def attempt_began(self, attributes: Attributes) -> None:
        self.in_flight.add(1, attributes)

    def attempt_ended(self, attributes: Attributes) -> None:
        self.in_flight.add(-1, attributes)

    def attempt_settled(self, attributes: Attributes, seconds: float, queue_wait: float | None,
                        cost: tuple[float, str] | None) -> None:
        self.jobs.add(1, attributes)
        self.job_duration.record(seconds, attributes)
        if queue_wait is not None:
            self.queue_wait.record(queue_wait, attributes)
        if cost is not None:
            amount, currency = cost
            self.cost.add(amount, {**attributes, "tarash.cost.currency": currency})

    def call_settled(self, attributes: Attributes, seconds: float) -> None:
        self.generation_duration.record(seconds, attributes)


__all__ = ["OtelSink", "SCOPE", "SECONDS_BUCKETS"]
