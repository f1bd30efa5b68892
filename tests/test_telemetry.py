"""Telemetry: OpenTelemetry spans (one per call, one per attempt) and metrics, seen by the SDK's
in-memory exporter and reader, and `on_event` callbacks; real engine over the loopback fake Fal."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import video_config
from tarash_router import ContentModerationError, generate_video, submit_video, telemetry
from tarash_router.client import Client
from tarash_router.models import VideoGenerationRequest
from tarash_router.telemetry import TelemetryEvent, cost_of
from tarash_router.testing import Failure, FalJob

pytest.importorskip("opentelemetry.sdk", reason="the `otel` extra is not installed")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

SECRET = "SECRET-KEY-telemetry-51c9"
PROMPT = "a lighthouse keeper feeding a very particular cat"
VEO = "fal-ai/veo3/fast"
KLING = "fal-ai/kling-video/v2.6/pro/text-to-video"

ROUTES = """\
spec_version: 1
routes:
  video-main:
    modality: video
    targets:
      - {provider: fal, model: fal-ai/veo3/fast, base_url: BASE, api_key_env: TEST_TELEMETRY_KEY, poll_interval: 5ms}
      - {provider: fal, model: fal-ai/kling-video/v2.6/pro/text-to-video, base_url: BASE,
         api_key_env: TEST_TELEMETRY_KEY, poll_interval: 5ms}
    retry: {attempts: 2, backoff: {initial: 10ms, max: 20ms}}
    deadline: 30s
"""


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def points(self, name: str) -> dict[frozenset, float]:
        """Each data point of metric `name`, by its attributes: a sum's value, a histogram's count."""
        data = self.metrics.get_metrics_data()
        found: dict[frozenset, float] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = point.count if hasattr(point, "count") else point.value
                            found[frozenset(point.attributes.items())] = value
        return found

    def total(self, name: str, **attributes: object) -> float:
        """The sum over the points of `name` whose attributes include `attributes`."""
        wanted = {f"tarash.{k}" if k != "error_type" else "error.type": v for k, v in attributes.items()}
        return sum(v for k, v in self.points(name).items() if wanted.items() <= dict(k).items())

    def everything(self) -> str:
        """Every span (attributes, events, status, resource) and every metric point, as JSON."""
        data = self.metrics.get_metrics_data()
        return "\n".join([s.to_json() for s in self.finished()] + [data.to_json() if data else ""])


@pytest.fixture(scope="module")
def otel_providers() -> Iterator[Otel]:
    """SDK providers for tarash_router alone (the process's global providers stay untouched)."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader]))
    yield Otel(spans, reader)
    telemetry.configure()


@pytest.fixture
def otel(otel_providers: Otel) -> Otel:
    otel_providers.spans.clear()
    return otel_providers


@pytest.fixture
def routes(tmp_path, fal, monkeypatch) -> Path:
    monkeypatch.setenv("TEST_TELEMETRY_KEY", SECRET)
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.replace("BASE", fal.base_url))
    return path


def attrs(span: ReadableSpan) -> dict:
    return dict(span.attributes or {})


def test_one_span_per_attempt_through_a_retry_and_a_fallback(otel, fal, routes):
    jobs_before = {o: otel.total("tarash.jobs", outcome=o, model=m)
                   for o, m in (("retry", VEO), ("fallback", VEO), ("completed", KLING))}
    calls_before = otel.total("tarash.generation.duration", route="video-main", outcome="completed")
    fal.queue(FalJob(submit_failures=[Failure.server_error(503)] * 2))  # veo: both tries; kling is accepted
    events: list[TelemetryEvent] = []
    with Client(routes=[routes], on_event=events.append) as client:
        response = client.generate_video("video-main", VideoGenerationRequest(prompt=PROMPT))

    [call] = otel.named("tarash.generate")
    attempts = sorted(otel.named("tarash.attempt"), key=lambda s: attrs(s)["tarash.attempt"])
    assert len(attempts) == len(response.execution_metadata.attempts) == 3
    assert all(a.parent.span_id == call.context.span_id and a.context.trace_id == call.context.trace_id
               for a in attempts)
    assert [(attrs(a)["tarash.model"], attrs(a)["tarash.retry"], attrs(a)["tarash.outcome"]) for a in attempts] == [
        (VEO, 0, "retry"), (VEO, 1, "fallback"), (KLING, 0, "completed")]
    for failed in attempts[:2]:
        assert failed.status.status_code is StatusCode.ERROR and attrs(failed)["error.type"] == "HTTPError"
        assert attrs(failed)["tarash.reason"] == "server_error"
        assert [e.name for e in failed.events] == ["exception"]
    served = attrs(attempts[2])
    assert attempts[2].status.status_code is StatusCode.UNSET and "error.type" not in served
    assert served["tarash.provider"] == "fal" and served["tarash.route"] == "video-main"
    assert served["tarash.modality"] == "video" and served["tarash.family"] == "fal/kling-v2.6-text-to-video"
    assert served["tarash.job_id"] == response.request_id and served["tarash.queue_wait_s"] >= 0
    assert all(a.start_time <= a.end_time and call.start_time <= a.start_time and a.end_time <= call.end_time
               for a in attempts)
    assert attempts[0].end_time <= attempts[1].start_time  # ended when it failed, not when the retry was decided
    assert {k: v for k, v in attrs(call).items()} == {
        "tarash.operation": "generate", "tarash.modality": "video", "tarash.route": "video-main",
        "tarash.outcome": "completed", "tarash.provider": "fal", "tarash.model": KLING, "tarash.attempts": 3,
        "tarash.fallback": True, "tarash.job_id": response.request_id}
    assert call.instrumentation_scope.name == "tarash_router"

    # Metrics: one job per try, by outcome; nothing left in flight; the call's duration recorded.
    assert otel.total("tarash.jobs", outcome="retry", model=VEO, error_type="HTTPError") >= 1
    assert {o: otel.total("tarash.jobs", outcome=o, model=m) - jobs_before[o]
            for o, m in (("retry", VEO), ("fallback", VEO), ("completed", KLING))} == {
        "retry": 1, "fallback": 1, "completed": 1}
    assert otel.total("tarash.jobs.in_flight") == 0
    assert otel.total("tarash.job.duration", model=KLING, outcome="completed") >= 1
    assert otel.total("tarash.job.queue_wait", model=KLING) >= 1
    assert otel.total("tarash.generation.duration", route="video-main", outcome="completed") == calls_before + 1

    # on_event: the same story, in order.
    assert [(e.kind, e.model, e.retry, e.outcome) for e in events] == [
        ("attempt_start", VEO, 0, None), ("attempt_end", VEO, 0, "retry"),
        ("attempt_start", VEO, 1, None), ("attempt_end", VEO, 1, "fallback"),
        ("fallback", KLING, None, "fallback"),
        ("attempt_start", KLING, 0, None), ("attempt_end", KLING, 0, "completed"),
        ("success", KLING, 0, "completed")]
    assert events[1].error_type == "HTTPError" and events[1].elapsed > 0 and events[1].route == "video-main"
    assert events[4].reason == f"fal/{VEO} failed with HTTPError"
    assert events[-1].job_id == response.request_id and events[-1].attempt == 3
    seen = otel.everything() + repr(events)
    assert SECRET not in seen and PROMPT not in seen


def test_a_failed_call_is_an_error_span_and_a_failure_event(otel, fal):
    fal.queue(FalJob.moderated(msg=f"the prompt '{PROMPT}' was flagged"))
    events: list[TelemetryEvent] = []
    with Client(on_event=events.append) as client, pytest.raises(ContentModerationError):
        client.generate_video(video_config(fal, api_key=SECRET), VideoGenerationRequest(prompt=PROMPT))
    [call], [attempt] = otel.named("tarash.generate"), otel.named("tarash.attempt")
    for span in (call, attempt):
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)["error.type"] == "ContentModerationError" and attrs(span)["tarash.outcome"] == "failed"
    assert "route" not in "".join(attrs(call))  # a config, not a route
    assert [(e.kind, e.outcome) for e in events] == [("attempt_start", None), ("attempt_end", "failed"),
                                                     ("failure", "failed")]
    assert events[-1].error_type == "ContentModerationError"
    assert events[-1].error_message == "HTTP 422: the prompt '***' was flagged"  # the prompt masked, the rest kept
    assert PROMPT not in otel.everything()


def test_a_skipped_target_is_an_attempt_span_with_its_reason(otel, fal, routes):
    events: list[TelemetryEvent] = []
    with Client(routes=[routes], on_event=events.append) as client:
        client.generate_video("video-main", VideoGenerationRequest(prompt="x", duration_seconds=5))
    skipped, served = sorted(otel.named("tarash.attempt"), key=lambda s: attrs(s)["tarash.attempt"])
    assert attrs(skipped)["tarash.outcome"] == "skipped" and "allowed: 4, 6, 8" in attrs(skipped)["tarash.reason"]
    assert skipped.status.status_code is StatusCode.UNSET and attrs(served)["tarash.outcome"] == "completed"
    assert [e.kind for e in events] == ["skip", "attempt_start", "attempt_end", "success"]


@pytest.mark.parametrize("job", [
    FalJob(),
    FalJob(submit_failures=[Failure.server_error(500)]),
    FalJob(submit_failures=[Failure(status=401, json={"detail": f"bad key {SECRET}"})]),
    FalJob.moderated(msg=f"flagged: {PROMPT} (key {SECRET})"),
    FalJob.completed_with_error(),
])
def test_no_key_and_no_prompt_in_any_span_event_or_metric(otel, fal, job):
    fal.queue(job)
    events: list[TelemetryEvent] = []
    config = video_config(fal, api_key=SECRET, timeout=2, max_poll_attempts=20)
    try:
        with Client(on_event=events.append) as client:
            client.generate_video(config, VideoGenerationRequest(prompt=PROMPT, negative_prompt="blurry, dark"))
    except Exception:  # noqa: BLE001 - failures are part of what is checked
        pass
    assert fal.submit_attempts >= 1 and otel.named("tarash.generate")  # the key was sent; spans were made
    seen = otel.everything() + "\n".join(repr(e) for e in events)
    assert SECRET not in seen and PROMPT not in seen and "blurry, dark" not in seen
    assert "Authorization" not in seen and "Key " not in seen


def test_the_prompt_goes_on_the_call_span_only_when_asked(otel, fal, setting):
    setting("TARASH_TELEMETRY_PROMPTS", "1")
    generate_video(video_config(fal), VideoGenerationRequest(prompt=PROMPT))
    [call] = otel.named("tarash.generate")
    assert attrs(call)["tarash.prompt"] == PROMPT
    assert all("tarash.prompt" not in attrs(a) for a in otel.named("tarash.attempt"))


def test_telemetry_off_makes_no_spans_but_keeps_callbacks(otel, fal, setting):
    setting("TARASH_TELEMETRY", "0")
    events: list[TelemetryEvent] = []
    telemetry.set_on_event(events.append)  # the default client's callback
    try:
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    finally:
        telemetry.set_on_event(None)
    assert otel.finished() == [] and [e.kind for e in events][-1] == "success"


def test_submit_is_a_submit_span_with_outcome_submitted(otel, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))
    job = submit_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    [call], [attempt] = otel.named("tarash.submit"), otel.named("tarash.attempt")
    assert attrs(call)["tarash.operation"] == "submit" and attrs(call)["tarash.outcome"] == "submitted"
    assert attrs(attempt)["tarash.outcome"] == "submitted" and attrs(attempt)["tarash.job_id"] == job.id
    assert otel.total("tarash.jobs.in_flight") == 0


def test_a_cancelled_call_ends_its_spans_and_leaves_nothing_in_flight(otel, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))  # never finishes

    async def run() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(Client().generate_video_async(video_config(fal), VideoGenerationRequest(
                prompt="x")), 0.5)

    asyncio.run(run())
    [call], [attempt] = otel.named("tarash.generate"), otel.named("tarash.attempt")
    assert attrs(call)["tarash.outcome"] == attrs(attempt)["tarash.outcome"] == "cancelled"
    assert attempt.parent.span_id == call.context.span_id
    assert otel.total("tarash.jobs.in_flight") == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_callback_that_raises_is_logged_and_the_job_goes_on(otel, fal, caplog, kind):
    calls: list[str] = []

    def broken(event: TelemetryEvent) -> None:
        calls.append(event.kind)
        raise RuntimeError("logging tool down")

    async def broken_async(event: TelemetryEvent) -> None:
        await asyncio.sleep(0)
        broken(event)

    with Client(on_event=broken if kind == "sync" else broken_async) as client:
        response = client.generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    assert response.video and calls == ["attempt_start", "attempt_end", "success"]
    assert caplog.text.count("on_event callback raised") == 3
    assert attrs(otel.named("tarash.generate")[0])["tarash.outcome"] == "completed"


def test_a_failing_telemetry_step_is_logged_and_the_job_goes_on(otel, fal, caplog, monkeypatch):
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter bug")

    monkeypatch.setattr(telemetry.CallTelemetry, "_settle", broken)
    response = generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    assert response.video and "telemetry failed in attempt_succeeded" in caplog.text


def test_cost_is_read_from_the_attempt_or_the_response_when_either_has_one():
    @dataclass
    class Priced:
        cost: object = None

    @dataclass
    class Cost:
        amount: float
        currency: str

    assert cost_of(Priced(), object()) is None
    assert cost_of(Priced(Cost(0.4, "USD"))) == (0.4, "USD")
    assert cost_of(Priced(), Priced({"amount": "1.25", "currency": "EUR"})) == (1.25, "EUR")
    assert cost_of(Priced({"amount": None}), Priced({"amount": 2})) == (2.0, "USD")


def test_prometheus_serves_the_metrics(otel_providers, fal):
    pytest.importorskip("opentelemetry.exporter.prometheus")
    pytest.importorskip("prometheus_client")
    before = telemetry.providers()
    try:
        port = telemetry.serve_prometheus(0, "127.0.0.1")
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    finally:
        telemetry.configure(tracer_provider=before[0], meter_provider=before[1])
    assert 'tarash_jobs_total{' in text and 'tarash_outcome="completed"' in text
    assert "tarash_job_duration_seconds_bucket" in text and "tarash_generation_duration_seconds_count" in text


def _run(script: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(root), "TARASH_ALLOW_PRIVATE_URLS": "1",
                                           "PATH": "/usr/bin:/bin"})


def test_the_global_providers_are_used_by_default():
    out = _run("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import tarash_router
        from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
        from tarash_router.testing import FakeFal

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with FakeFal() as fal:
            config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key="k", base_url=fal.base_url,
                                           poll_interval=0.01)
            tarash_router.generate_video(config, VideoGenerationRequest(prompt="x"))  # before the app's SDK
            trace.set_tracer_provider(provider)  # the app configures OpenTelemetry late: still seen
            with trace.get_tracer("app").start_as_current_span("app request"):  # the sync call's caller
                tarash_router.generate_video(config, VideoGenerationRequest(prompt="x"))
        spans = {s.context.span_id: s for s in exporter.get_finished_spans()}
        print(sorted((s.name, spans[s.parent.span_id].name if s.parent else None) for s in spans.values()))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted([("app request", None), ("tarash.generate", "app request"),
                                             ("tarash.attempt", "tarash.generate")]))


def test_without_opentelemetry_nothing_is_imported_and_callbacks_still_work():
    out = _run("""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ImportError(f"blocked {name}")
                return None

        sys.meta_path.insert(0, Block())

        import tarash_router
        from tarash_router.client import Client
        from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
        from tarash_router.testing import FakeFal

        events = []
        with FakeFal() as fal:
            config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key="k", base_url=fal.base_url,
                                           poll_interval=0.01)
            response = tarash_router.generate_video(config, VideoGenerationRequest(prompt="x"))
            with Client(on_event=lambda e: events.append(e.kind)) as client:
                client.generate_video(config, VideoGenerationRequest(prompt="x"))
        from tarash_router import telemetry
        assert telemetry.otel_sink() is None
        assert not [m for m in sys.modules if m.split(".")[0] == "opentelemetry"]
        print(response.video.endswith(".mp4"), events)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True ['attempt_start', 'attempt_end', 'success']"


def test_importing_tarash_router_imports_no_opentelemetry():
    out = _run("""
        import sys
        import tarash_router
        from tarash_router import telemetry, Client
        print([m for m in sys.modules if m.split(".")[0] == "opentelemetry"])
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
