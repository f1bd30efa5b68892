"""The job journal: states move forward, resume after a crash, idempotency keys, for every backend."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import API_KEY, video_config
from journal_helpers import redis_server
from tarash_router import (
    ContentModerationError, GenerationFailedError, ValidationError, generate_video, generate_video_async, resume,
)
from tarash_router.journal import open_journal, set_journal
from tarash_router.journal.records import Claim, JobRecord
from tarash_router.models import VideoGenerationRequest
from tarash_router.testing import FalJob


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "redis"])
def journal_url(request, tmp_path):
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    return request.getfixturevalue("redis_url")


@pytest.fixture
def journal(journal_url):
    store = open_journal(journal_url)
    set_journal(store)
    if journal_url.startswith("redis"):
        asyncio.run(_flush(store))
        store = open_journal(journal_url)  # a fresh client for the test's own event loops
        set_journal(store)
    yield store
    set_journal(None)


async def _flush(store) -> None:
    await getattr(store, "store", store)._redis.flushdb()
    await store.close()


def test_states_move_forward_only(journal):
    async def scenario():
        await journal.put(JobRecord(job_id="j1", provider="fal", model="m", modality="video"))
        await journal.advance("j1", "processing")
        assert (await journal.advance("j1", "queued")).state == "processing"
        await journal.advance("j1", "completed", result={"video": "u"})
        assert (await journal.advance("j1", "processing")).state == "completed"
        assert (await journal.get("j1")).result == {"video": "u"}
        assert [r.job_id for r in await journal.list()] == ["j1"]
        assert await journal.advance("missing", "completed") is None
    asyncio.run(scenario())


def test_finished_and_running_records_read_back_whole_and_filter_by_state(journal):
    """A finished job's record comes back as it was written (the memory store keeps it as JSON text),
    next to running ones; `list` filters by state and stops at its limit, newest first."""
    from tarash_router.models import Cost

    cost = Cost(currency="USD", amount=0.4, basis="8 s × $0.05/s = $0.40")

    async def scenario():
        for i in range(4):
            await journal.put(JobRecord(job_id=f"j{i}", provider="fal", model="m", modality="video",
                                        job={"status_url": f"https://queue.fal.run/r/{i}/status"},
                                        estimated_cost=cost))
        done = await journal.advance("j1", "completed", result={"video": "u", "cost": cost.model_dump(mode="json")})
        await journal.advance("j3", "completed", result={"video": "v"})
        assert await journal.get("j1") == done
        assert (await journal.get("j1")).estimated_cost == cost
        assert (await journal.get("j2")).job == {"status_url": "https://queue.fal.run/r/2/status"}
        assert [r.job_id for r in await journal.list(state="completed")] == ["j3", "j1"]
        assert [r.job_id for r in await journal.list(limit=1, state="completed")] == ["j3"]
        assert [r.job_id for r in await journal.list(state="submitted")] == ["j2", "j0"]
    asyncio.run(scenario())


def test_claims_are_exclusive(journal):
    async def scenario():
        first = await journal.claim(Claim(key="k", fingerprint="f", owner="a"))
        second = await journal.claim(Claim(key="k", fingerprint="f", owner="b"))
        assert first.owner == second.owner == "a"
        assert not await journal.update_claim("k", "b", state="completed")
        assert await journal.take_over("k", "a", "b") and not await journal.take_over("k", "a", "c")
        await journal.release("k", "a")  # not the owner any more: ignored
        assert (await journal.get_claim("k")).owner == "b"
        await journal.release("k", "b")
        assert await journal.get_claim("k") is None
    asyncio.run(scenario())


def test_generation_is_journaled(journal, fal):
    response = generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    record = asyncio.run(journal.get(response.request_id))
    assert record.state == "completed" and record.result["video"] == response.video
    assert record.job["status_url"].startswith(fal.base_url)
    assert API_KEY not in record.model_dump_json()


def test_resume_collects_a_job_without_submitting(journal, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 3 + ["COMPLETED"]))

    async def start_and_abandon():
        task = asyncio.create_task(generate_video_async(video_config(fal, model="fal-ai/veo3"),
                                                        VideoGenerationRequest(prompt="x")))
        while not fal.submits:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        return task

    # Stand-in for a crash: the process stops polling without cancelling the remote job.
    loop = asyncio.new_event_loop()
    task = loop.run_until_complete(start_and_abandon())
    task.remove_done_callback  # noqa: B018 - keep a reference; the loop is dropped without cancelling
    job_id = fal.submits[0].request_id
    response = resume(job_id, api_key=API_KEY, base_url=fal.base_url)
    assert response.request_id == job_id and response.video.endswith(".mp4")
    assert fal.submit_count() == 1 and fal.cancels == []


def test_resume_of_a_finished_or_unknown_job(journal, fal):
    response = generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    before = len(fal.requests)
    assert resume(response.request_id).video == response.video
    assert len(fal.requests) == before
    with pytest.raises(ValidationError, match="no journaled job"):
        resume("nope")
    fal.queue(FalJob.completed_with_error())
    with pytest.raises(GenerationFailedError):
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    with pytest.raises(GenerationFailedError, match="failed"):
        resume(fal.submits[-1].request_id)


def test_idempotency_key_same_process(journal, fal):
    request = VideoGenerationRequest(prompt="x", idempotency_key="order-17")

    async def twice():
        return await asyncio.gather(generate_video_async(video_config(fal), request),
                                    generate_video_async(video_config(fal), request))

    first, second = asyncio.run(twice())
    assert first.request_id == second.request_id and fal.submit_count() == 1
    assert generate_video(video_config(fal), request).request_id == first.request_id
    with pytest.raises(ValidationError, match="different request"):
        generate_video(video_config(fal), VideoGenerationRequest(prompt="y", idempotency_key="order-17"))
    assert fal.submit_count() == 1


def test_failed_call_releases_its_key(journal, fal):
    fal.queue(FalJob.moderated())
    request = VideoGenerationRequest(prompt="x", idempotency_key="retry-me")
    with pytest.raises(ContentModerationError):
        generate_video(video_config(fal), request)
    assert generate_video(video_config(fal), request).video
    assert fal.submit_count() == 2


CHILD = textwrap.dedent("""
    import sys
    from tarash_router import generate_video
    from tarash_router.journal import open_journal, set_journal
    from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
    base_url, journal, key, model = sys.argv[1:5]
    set_journal(open_journal(journal))
    config = VideoGenerationConfig(provider="fal", model=model, api_key="k", base_url=base_url,
                                   poll_interval=0.02, timeout=60)
    response = generate_video(config, VideoGenerationRequest(prompt="x", idempotency_key=key or None))
    print(response.request_id, flush=True)
""")


def child(fal, journal_url, key="", model="fal-ai/veo3/fast") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, fal.base_url, journal_url, key, model],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_process_killed_after_submit_then_resumed(backend, fal, tmp_path, request):
    url = f"sqlite:///{tmp_path}/jobs.db" if backend == "sqlite" else request.getfixturevalue("redis_url")
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 400 + ["COMPLETED"]))
    proc = child(fal, url)
    deadline = time.monotonic() + 20
    while not (fal.submits and (fal.status_polls(fal.submits[0].request_id) >= 2
                                or fal.status_streams(fal.submits[0].request_id) >= 1)) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    job_id = fal.submits[0].request_id
    fal.jobs[job_id].step = 400  # the provider finishes meanwhile
    set_journal(open_journal(url))
    try:
        response = resume(job_id, api_key="k", base_url=fal.base_url)
    finally:
        set_journal(None)
    assert response.request_id == job_id and fal.submit_count() == 1


def test_two_processes_same_key_submit_once(fal, redis_url):
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 20 + ["COMPLETED"]))
    procs = [child(fal, redis_url, key="shared-key-1") for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    ids = {o[0].strip() for o in outputs}
    assert len(ids) == 1 and fal.submit_count() == 1


def test_unknown_journal_url():
    from tarash_router import ConfigError

    with pytest.raises(ConfigError, match="unknown journal"):
        open_journal("mongodb://x")


def test_jobs_cli_list_show_resume_cancel(fal, tmp_path, capsys, monkeypatch):
    from tarash_router.cli import main

    monkeypatch.setenv("FAL_KEY", API_KEY)
    url = f"sqlite:///{tmp_path}/cli.db"
    set_journal(open_journal(url))
    try:
        done = generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
        fal.queue(FalJob(statuses=["IN_QUEUE"] * 1000))

        async def start_then_drop():
            task = asyncio.create_task(generate_video_async(video_config(fal), VideoGenerationRequest(prompt="y")))
            while len(fal.submits) < 2:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.02)
            return task

        asyncio.new_event_loop().run_until_complete(start_then_drop())
        pending = fal.submits[1].request_id
    finally:
        set_journal(None)
    assert main(["jobs", "list", "--journal", url]) == 0
    listing = capsys.readouterr().out
    assert done.request_id in listing and pending in listing
    assert main(["jobs", "show", done.request_id, "--journal", url]) == 0
    assert '"state": "completed"' in capsys.readouterr().out
    assert main(["jobs", "cancel", pending, "--journal", url, "--base-url", fal.base_url]) == 0
    assert fal.cancels == [pending]
    assert main(["jobs", "resume", done.request_id, "--journal", url]) == 0
    assert done.video in capsys.readouterr().out
    assert main(["jobs", "show", "missing", "--journal", url]) == 1


def test_resume_a_family_whose_request_needs_inputs(journal, fal):
    # Re-attaching never re-validates: the original request (with its required image) is not journaled.
    model = "fal-ai/kling-video/o1/image-to-video"
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 5 + ["COMPLETED"]))
    request = VideoGenerationRequest(prompt="x", image_list=[{"image": "https://x/a.png", "type": "first_frame"}])

    async def start_and_abandon():
        task = asyncio.create_task(generate_video_async(video_config(fal, model=model), request))
        while not fal.submits or await journal.get(fal.submits[0].request_id) is None:
            await asyncio.sleep(0.005)
        return task

    asyncio.new_event_loop().run_until_complete(start_and_abandon())
    assert resume(fal.submits[0].request_id, api_key=API_KEY, base_url=fal.base_url).video
    assert fal.submit_count() == 1
