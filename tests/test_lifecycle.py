"""One lifecycle, three transports: the spec engine (fal), the OpenAI SDK (Sora) and the Vertex SDK
(Veo) behave the same on deadline, give-up, resume, cancel, journal and progress, each against its
loopback fake. Each test runs in its own `Client` (own memory journal)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conftest import unretired_specs
from tarash_router import AuthenticationError, GenerationFailedError, TimeoutError
from tarash_router.client import Client
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
from tarash_router.testing import FakeFal, FalJob
from tarash_router.testing._server import Failure
from tarash_router.testing.google import FakeGoogle, GoogleJob
from tarash_router.testing.openai import FakeOpenAI, SoraJob

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

OPENAI_KEY = "sk-lifecycle-test-1"
VERTEX_TOKEN = "ya29.lifecycle-test"
FAL_KEY = "fal-lifecycle-test"


@dataclass
class Backend:
    """One transport's fake, how to script a job on it, and what the provider can do."""

    name: str
    fake: Any
    config: Callable[..., VideoGenerationConfig]
    job: Callable[..., Any]  # job(running=N polls before done, poll_failures=..., cancel_fails=...)
    creates: Callable[[], int]
    can_cancel: bool


def _fal(fake: FakeFal) -> Backend:
    def job(running: int = 2, poll_failures: dict | None = None, cancel_fails: bool = False) -> FalJob:
        # The first status request fails alike whether it is the status stream or a poll.
        return FalJob(statuses=["IN_QUEUE"] + ["IN_PROGRESS"] * (running - 1) + ["COMPLETED"],
                      poll_failures=poll_failures or {}, stream_failure=(poll_failures or {}).get(1),
                      cancel_failures=[Failure(status=500)] * 3 if cancel_fails else [])

    return Backend("fal", fake, lambda **kw: VideoGenerationConfig(**{
        "provider": "fal", "model": "fal-ai/veo3/fast", "api_key": FAL_KEY, "base_url": fake.base_url,
        "poll_interval": 0.005, "timeout": 10, **kw}), job, lambda: fake.submit_count(), True)


def _openai(fake: FakeOpenAI) -> Backend:
    def job(running: int = 2, poll_failures: dict | None = None, cancel_fails: bool = False) -> SoraJob:
        return SoraJob(statuses=["queued"] + ["in_progress"] * (running - 1) + ["completed"],
                       poll_failures=poll_failures or {})

    return Backend("openai", fake, lambda **kw: VideoGenerationConfig(**{
        "provider": "openai", "model": "sora-2", "api_key": OPENAI_KEY, "base_url": f"{fake.base_url}/v1",
        "poll_interval": 0.005, "timeout": 10, **kw}), job, lambda: fake.create_count(), False)


def _vertex(fake: FakeGoogle) -> Backend:
    def job(running: int = 2, poll_failures: dict | None = None, cancel_fails: bool = False) -> GoogleJob:
        return GoogleJob(statuses=["running"] * running + ["done"], poll_failures=poll_failures or {})

    pc = {"project": "proj-7", "location": "us-central1", "access_token": VERTEX_TOKEN}
    return Backend("vertex", fake, lambda **kw: VideoGenerationConfig(**{
        "provider": "google-vertex", "model": "veo-3.1-generate-preview", "provider_config": pc,
        "base_url": fake.base_url, "poll_interval": 0.005, "timeout": 10, **kw}), job,
        lambda: fake.create_count(), False)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    with FakeFal() as fal, FakeOpenAI(api_key=OPENAI_KEY) as openai, FakeGoogle(access_token=VERTEX_TOKEN) as google:
        yield {"fal": fal, "openai": openai, "vertex": google}


@pytest.fixture(params=["fal", "openai", "vertex"])
def backend(request, fakes) -> Backend:
    fake = fakes[request.param]
    fake.clear()
    return {"fal": _fal, "openai": _openai, "vertex": _vertex}[request.param](fake)


@pytest.fixture
def client(tmp_path) -> Iterator[Client]:
    with Client(journal="memory", spec_dirs=[unretired_specs(tmp_path / "unretired")]) as own:
        yield own


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _records(client: Client) -> list[Any]:
    return await client.runtime.journal.list(100)


def test_a_finished_job_is_journaled_completed_and_reported_queued_to_completed(backend, client):
    backend.fake.queue(backend.job(running=2))
    updates: list[Any] = []
    response = run(client.generate_video_async(backend.config(), VideoGenerationRequest(prompt="a cat"),
                                               updates.append))
    assert response.video and backend.creates() == 1
    records = run(_records(client))
    assert [(r.job_id, r.state) for r in records] == [(response.request_id, "completed")]  # no intent left behind
    statuses = [u.status for u in updates]
    assert statuses[0] == "queued" and statuses[-1] == "completed" and statuses.count("completed") == 1
    assert "processing" in statuses and updates[-1].result is not None


def test_past_the_deadline_the_job_times_out_and_is_cancelled_where_the_provider_can(backend, client):
    backend.fake.queue(backend.job(running=10_000))
    with pytest.raises(TimeoutError) as caught:
        # Room for the submit to be answered first, even by the first request of a fresh process
        # (which imports the SDK or connection layer and loads the CA bundle).
        run(client.generate_video_async(backend.config(timeout=2.0), VideoGenerationRequest(prompt="a cat")))
    assert caught.value.job_may_exist and caught.value.request_id
    (record,) = run(_records(client))
    assert record.job_id == caught.value.request_id
    # Cancelled at the provider when it has a cancel; otherwise left open for `resume`.
    assert record.state == ("cancelled" if backend.can_cancel else record.state)
    assert backend.can_cancel or record.state in ("queued", "processing")
    assert backend.creates() == 1


def _given_up(backend: Backend, client: Client) -> tuple[VideoGenerationConfig, str]:
    """A job the lifecycle gave up on and could not cancel: its first poll is refused (403, not
    retryable) and the remote cancel fails, so it stays open in the journal. (config, job id)."""
    backend.fake.queue(backend.job(running=2, poll_failures={1: Failure(status=403, json={"detail": "no"})},
                                   cancel_fails=True))
    config = backend.config()
    with pytest.raises(AuthenticationError) as caught:
        run(client.generate_video_async(config, VideoGenerationRequest(prompt="a cat")))
    return config, caught.value.request_id


def test_giving_up_on_polls_leaves_a_job_that_resume_finishes_without_submitting(backend, client):
    config, job_id = _given_up(backend, client)
    (record,) = run(_records(client))
    assert (record.job_id, record.state) == (job_id, "queued")
    response = run(client.resume_async(job_id, api_key=config.api_key, base_url=config.base_url,
                                       provider_config=config.provider_config))
    assert response.request_id == job_id and response.video
    assert backend.creates() == 1  # followed, never submitted again
    assert run(client.runtime.journal.get(job_id)).state == "completed"


def test_cancel_job_asks_the_provider_and_journals_what_it_said(backend, client):
    config, job_id = _given_up(backend, client)
    cancelled = False
    for _ in range(4):  # fal's scripted cancel failures are consumed one per attempt
        cancelled = run(client.cancel_job_async(job_id, api_key=config.api_key, base_url=config.base_url))
        if cancelled or not backend.can_cancel:
            break
    assert cancelled is backend.can_cancel
    state = run(client.runtime.journal.get(job_id)).state
    assert state == ("cancelled" if backend.can_cancel else "queued")


def test_a_failed_job_is_journaled_failed_with_the_provider_error(backend, client):
    failing = {
        "fal": lambda: FalJob(statuses=["IN_QUEUE", {"status": "COMPLETED", "error": "boom", "error_type": "x"}]),
        "openai": lambda: SoraJob.failed(message="boom"),
        "vertex": lambda: GoogleJob(statuses=["running", "done"], error={"code": 13, "message": "boom"}),
    }[backend.name]
    backend.fake.queue(failing())
    with pytest.raises(GenerationFailedError) as caught:
        run(client.generate_video_async(backend.config(), VideoGenerationRequest(prompt="a cat")))
    (record,) = run(_records(client))
    assert record.state == "failed" and "boom" in (record.error or {}).get("message", "")
    assert caught.value.job_may_exist


def test_a_caller_that_stops_mid_submit_still_gets_the_job_cancelled(fakes, client):
    # The submit's answer is slow; the caller gives up after the provider received it but before the
    # job id arrived. The lifecycle waits for the id, then cancels the job, so no paid job is orphaned.
    fal = fakes["fal"]
    fal.clear()
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 1000, delay=0.3))
    config = _fal(fal).config()

    async def scenario() -> None:
        task = asyncio.create_task(client.generate_video_async(config, VideoGenerationRequest(prompt="a cat")))
        while not fal.submits:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert len(fal.cancels) == 1
    (record,) = run(_records(client))
    assert record.state == "cancelled"
