"""fal's status stream (`protocol.stream`, Server-Sent Events) as the way a job waits: the real engine
against the loopback fake fal, which serves the stream for real (text/event-stream, one event per
status, closed after COMPLETED) and breaks it on purpose (`FalJob.stream_fault`).

A job costs one submit, one stream and one result request; whatever goes wrong with the stream, the
job is followed to its end by polling, never submitted twice, and nothing is left open (the leak
checks of tests/leaks.py). The Makefile runs this file on both connection layers.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import video_config
from leaks import port_of, run_fresh
from tarash_router import GenerationFailedError, TimeoutError, generate_video_async
from tarash_router.client import Client
from tarash_router.errors import SpecError
from tarash_router.models import VideoGenerationRequest, VideoGenerationUpdate
from tarash_router.specs.registry import SpecRegistry, get_registry
from tarash_router.testing import Failure, FakeFal, FalJob

REQUEST = VideoGenerationRequest(prompt="a lighthouse in a storm")
FIVE_STEPS = ["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]


def wire(fal: FakeFal) -> Counter[str]:
    """The requests the fake received, by kind."""
    kinds: Counter[str] = Counter()
    for request in fal.requests:
        path = request.path.rstrip("/")
        if "/requests/" not in path:
            kinds["submit" if request.method == "POST" else "other"] += 1
        elif path.endswith("/status/stream"):
            kinds["stream"] += 1
        elif path.endswith("/status"):
            kinds["poll"] += 1
        elif path.endswith("/cancel"):
            kinds["cancel"] += 1
        else:
            kinds["result"] += 1
    return kinds


def generate(fal: FakeFal, on_progress: Any = None, **overrides: Any) -> Any:
    """`generate_video_async` in a fresh event loop, with the leak checks."""
    config = video_config(fal, **overrides)
    return run_fresh(lambda: generate_video_async(config, REQUEST, on_progress), port_of(fal))


def same_apart_from_the_id(response: Any) -> str:
    return response.model_dump_json(exclude={"execution_metadata"}).replace(response.request_id, "<id>")


# ------------------------------------------------------------------ one request instead of polls

def test_a_job_waits_on_one_stream_request_and_answers_as_polling_does(fal, setting):
    fal.queue(FalJob(statuses=FIVE_STEPS))
    streamed = generate(fal)
    assert wire(fal) == {"submit": 1, "stream": 1, "result": 1}
    stream_request = next(r for r in fal.requests if r.path.endswith("/status/stream"))
    assert stream_request.query == {"logs": "1"} and stream_request.headers["Accept"] == "text/event-stream"
    assert stream_request.headers["Authorization"].startswith("Key ")

    fal.clear()
    setting("TARASH_STATUS_STREAM", "0")
    fal.queue(FalJob(statuses=FIVE_STEPS))
    polled = generate(fal)
    assert wire(fal)["stream"] == 0 and wire(fal)["poll"] == 5
    assert same_apart_from_the_id(streamed) == same_apart_from_the_id(polled)


def test_queue_positions_and_logs_reach_on_progress_and_the_journal_follows(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]))
    updates: list[VideoGenerationUpdate] = []
    journaled: list[str] = []

    async def scenario() -> Any:
        async with Client(journal="memory") as client:
            async def on_progress(update: VideoGenerationUpdate) -> None:
                updates.append(update)
                record = await client.runtime.journal.get(update.request_id)
                journaled.append(record.state if record else "-")

            return await client.generate_video_async(video_config(fal), REQUEST, on_progress)

    response = asyncio.run(scenario())
    assert wire(fal) == {"submit": 1, "stream": 1, "result": 1}
    # The submit's answer, then one update per event, then the result.
    assert [u.status for u in updates] == ["queued", "queued", "queued", "queued", "processing", "processing",
                                           "completed"]
    assert [u.queue_position for u in updates if u.status == "queued"] == [2, 2, 1, 0]
    # fal sends each event's new logs only; an update shows every log so far, as a poll does.
    assert [[line["message"] for line in u.logs] for u in updates[4:6]] == [["step 1/2"], ["step 1/2", "step 2/2"]]
    assert updates[-1].result is not None and updates[-1].result.video == response.video
    assert journaled[4:6] == ["processing", "processing"] and journaled[-1] == "completed"


def test_a_job_that_fails_on_the_stream_raises_as_a_polled_one_does(fal):
    fal.queue(FalJob.completed_with_error())
    with pytest.raises(GenerationFailedError) as info:
        generate(fal)
    assert info.value.request_id == fal.submits[0].request_id and "Runner disconnected" in str(info.value)
    assert wire(fal)["stream"] == 1 and wire(fal)["poll"] == 0 and wire(fal)["submit"] == 1


def test_wait_on_a_submitted_job_follows_the_stream(fal):
    fal.queue(FalJob(statuses=FIVE_STEPS))

    async def scenario() -> Any:
        async with Client(journal="memory") as client:
            job = await client.submit_video_async(video_config(fal), REQUEST)
            return await client.wait_async(job.id, api_key=video_config(fal).api_key, base_url=fal.base_url)

    assert asyncio.run(scenario()).video
    assert wire(fal) == {"submit": 1, "stream": 1, "result": 1}


def test_with_streams_off_jobs_poll(fal, setting):
    setting("TARASH_STATUS_STREAM", "0")
    fal.queue(FalJob(statuses=FIVE_STEPS))
    assert generate(fal).video
    assert wire(fal) == {"submit": 1, "poll": 5, "result": 1}


# ------------------------------------------------------------------ a broken stream: polling takes over

FAULTS = {
    "connection reset mid-stream": {"stream_fault": "drop"},
    "an event that is not JSON": {"stream_fault": "malformed"},
    "closed before COMPLETED": {"stream_fault": "end"},
    "a 500 instead of the stream": {"stream_failure": Failure.server_error(500)},
    "a 404: no stream for this job": {"stream_failure": Failure(status=404, json={"detail": "Not Found"})},
    "a 200 that is not an event stream": {"stream_failure": Failure(status=200, json={"status": "IN_QUEUE"})},
    "a 429": {"stream_failure": Failure.rate_limited(0.01)},
}


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
def test_a_broken_stream_falls_back_to_polling_and_the_job_completes_once(fal, fault):
    fal.queue(FalJob(statuses=FIVE_STEPS, **fault))
    response = generate(fal)
    counts = wire(fal)
    assert response.request_id == fal.submits[0].request_id and response.video
    assert counts["submit"] == 1 and counts["stream"] == 1 and counts["poll"] >= 1 and counts["result"] == 1


@pytest.mark.parametrize(("fault", "variable", "value"), [
    ("oversized", "TARASH_STATUS_STREAM_MAX_EVENT_BYTES", "4096"),  # one event of 2 MiB
    ("idle", "TARASH_STATUS_STREAM_IDLE_TIMEOUT", "0.3"),  # silence, never closed
    ("flood", "TARASH_MAX_RESPONSE_BYTES", "65536"),  # keep-alive comments without end
], ids=["oversized event", "idle stream", "endless comments"])
def test_a_hostile_stream_is_cut_off_by_its_bounds_and_polling_finishes_the_job(fal, setting, fault, variable, value):
    setting(variable, value)
    fal.queue(FalJob(statuses=FIVE_STEPS, stream_fault=fault))
    started = time.monotonic()
    assert generate(fal).video
    assert time.monotonic() - started < 5
    counts = wire(fal)
    assert counts["submit"] == 1 and counts["stream"] == 1 and counts["poll"] >= 1


def test_the_idle_timeout_counts_keep_alive_comments_as_life(fal, setting):
    setting("TARASH_STATUS_STREAM_IDLE_TIMEOUT", "0.3")
    job = FalJob(statuses=["IN_PROGRESS"], stream_keepalive=0.05)  # holds, commenting every 50 ms
    fal.queue(job)

    async def scenario() -> None:
        task = asyncio.create_task(generate_video_async(video_config(fal), REQUEST))
        await asyncio.sleep(1.0)
        fal.jobs[fal.submits[0].request_id].entries.append({"status": "COMPLETED"})  # it finishes now
        await task

    run_fresh(scenario, port_of(fal))
    assert wire(fal) == {"submit": 1, "stream": 1, "result": 1}


def test_when_every_stream_slot_is_taken_further_jobs_poll(fal, setting):
    setting("TARASH_STATUS_STREAM_MAX", "1")
    statuses = ["IN_QUEUE"] * 30 + ["COMPLETED"]  # 0.3 s of events: the first stream is still open
    fal.queue(*(FalJob(statuses=statuses) for _ in range(3)))

    async def three() -> list[Any]:
        return await asyncio.gather(*(generate_video_async(video_config(fal), REQUEST) for _ in range(3)))

    assert all(r.video for r in run_fresh(three, port_of(fal)))
    counts = wire(fal)
    assert counts["submit"] == 3 and counts["stream"] == 1 and counts["poll"] >= 2 and counts["result"] == 3


# ------------------------------------------------------------------ deadline and cancel while streaming

def test_the_deadline_stops_the_stream_and_cancels_the_job(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))  # never finishes: the stream holds with keep-alives
    started = time.monotonic()
    journaled: list[Any] = []

    async def scenario() -> None:
        async with Client(journal="memory") as client:
            try:
                await client.generate_video_async(video_config(fal, timeout=0.5), REQUEST)
            finally:
                journaled.extend(await client.runtime.journal.list(10))

    with pytest.raises(TimeoutError) as info:
        run_fresh(scenario, port_of(fal))
    assert time.monotonic() - started < 5
    assert info.value.job_may_exist and info.value.request_id == fal.submits[0].request_id
    assert fal.cancels == [fal.submits[0].request_id]
    assert wire(fal) == {"submit": 1, "stream": 1, "cancel": 1}
    assert [(r.job_id, r.state) for r in journaled] == [(fal.submits[0].request_id, "cancelled")]


async def test_a_caller_cancel_while_streaming_cancels_the_job(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))
    task = asyncio.create_task(generate_video_async(video_config(fal), REQUEST))
    while not (fal.submits and fal.status_streams(fal.submits[0].request_id)):
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fal.cancels == [fal.submits[0].request_id]
    assert wire(fal) == {"submit": 1, "stream": 1, "cancel": 1}


# ------------------------------------------------------------------ the declaration

PROVIDER = """\
spec_version: 1
provider: acme
base_url: https://api.acme.test
protocol:
  submit: {method: POST, url: "{{ base_url }}/v1/{{ model }}"}
  job: {id: $.id, status_url: $.urls.status}
  poll: {url: "{{ job.status_url }}", status: $.state}
  stream: {url: "{{ job.status_url }}/events", incremental_logs: true}
  status_map: {waiting: queued, running: processing, done: completed}
"""
FAMILY = """\
spec_version: 1
provider: acme
models: [acme/video-1]
modality: video
body: {prompt: "{{ request.prompt }}"}
response: {video: $.url}
"""


def load(tmp_path: Path, provider: str = PROVIDER, family: str = FAMILY) -> Any:
    (tmp_path / "acme").mkdir(exist_ok=True)
    (tmp_path / "acme" / "provider.yaml").write_text(textwrap.dedent(provider))
    (tmp_path / "acme" / "video.yaml").write_text(textwrap.dedent(family))
    registry = SpecRegistry()
    registry.load_paths([tmp_path])
    return registry.resolve("acme", "acme/video-1", "video")


def load_error(tmp_path: Path, provider: str = PROVIDER, family: str = FAMILY) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(tmp_path, provider, family)
    return info.value


def test_fal_declares_its_stream_and_a_declared_one_compiles(tmp_path):
    fal_family = get_registry().resolve("fal", "fal-ai/veo3/fast", "video")
    assert fal_family.stream is not None and fal_family.stream.incremental_logs
    family = load(tmp_path)
    assert family.stream is not None and family.stream.request.method == "GET"


def test_a_stream_without_a_poll_is_refused_at_its_line(tmp_path):
    provider = PROVIDER.replace('  poll: {url: "{{ job.status_url }}", status: $.state}\n', "")
    error = load_error(tmp_path, provider)
    assert error.file.endswith("provider.yaml") and error.line == 7 and error.key == "protocol.stream"
    assert "needs `protocol.poll`" in error.message


def test_a_typo_in_the_stream_names_the_key_and_its_line(tmp_path):
    error = load_error(tmp_path, PROVIDER.replace("incremental_logs", "incremental_log"))
    assert error.line == 8 and "unknown key 'incremental_log'" in error.message
    assert "did you mean 'incremental_logs'" in error.message


def test_a_stream_template_reads_what_a_poll_may_read(tmp_path):
    error = load_error(tmp_path, PROVIDER.replace("{{ job.status_url }}/events", "{{ request.prompt }}/events"))
    assert error.line == 8 and "request" in error.message


def test_a_family_that_replaces_the_poll_follows_no_stream_unless_it_declares_one(tmp_path):
    own_poll = FAMILY + 'protocol:\n  poll: {url: "{{ base_url }}/v2/{{ job.id }}", status: $.state}\n'
    assert load(tmp_path, family=own_poll).stream is None
    with_stream = own_poll + '  stream: {url: "{{ base_url }}/v2/{{ job.id }}/events"}\n'
    assert load(tmp_path, family=with_stream).stream is not None
    assert load(tmp_path, family=FAMILY + "protocol:\n  stream: null\n").stream is None
    no_poll = FAMILY + 'protocol:\n  poll: null\n  stream: {url: "{{ base_url }}/x"}\n'
    assert "needs `protocol.poll`" in load_error(tmp_path, family=no_poll).message
