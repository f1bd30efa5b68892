"""A user's own transport (four async verbs) gets the lifecycle for free: polling, retries of failed
polls, the deadline, remote cancel, the journal, resume and progress."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tarash_router import HTTPError, TimeoutError, ValidationError
from tarash_router.api import register_transport
from tarash_router.client import Client
from tarash_router.engine.render import prepare_job
from tarash_router.engine.transport import Call, Status
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse

PROVIDER = """\
spec_version: 1
provider: inmem
base_url: https://inmem.test
auth: {header: Authorization, scheme: Bearer, env: INMEM_KEY}
handler: inmem
"""
FAMILY = """\
spec_version: 1
provider: inmem
models: [clip-1]
modality: video
params:
  duration_seconds: {allowed: [4, 8]}
body:
  prompt: "{{ request.prompt }}"
  seconds: "{{ request.duration_seconds }}"
examples:
  - request: {prompt: p, duration_seconds: 4}
    body: {prompt: p, seconds: 4}
"""


class InMemoryProvider:
    """A provider whose jobs finish after `polls` polls; every verb is one call, as over a wire."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submits = 0
        self.poll_errors: list[Exception] = []
        self.cancels: list[str] = []
        self.cancel_answer = True

    # -- the four verbs (plus prepare and render) --------------------------------------------------

    async def prepare(self, call: Call) -> None:
        if call.job_id is None:  # a new job: validate and render (ValidationError before any "HTTP")
            call.state = prepare_job(call.family, call.config, call.request)

    async def submit(self, call: Call) -> Status:
        self.submits += 1
        job_id = f"job-{self.submits}"
        self.jobs[job_id] = {"left": call.config.provider_config.get("polls", 2), "body": call.state.payload}
        return Status("queued", job_id=job_id, handle={"ticket": job_id}, data={"id": job_id})

    async def poll(self, call: Call) -> Status:
        if self.poll_errors:
            raise self.poll_errors.pop(0)
        job = self.jobs[call.handle["ticket"]]  # the journaled handle is all a poll needs
        job["left"] -= 1
        if job["left"] <= 0:
            return Status("completed", data={"id": call.job_id, "status": "done"})
        return Status("processing", percent=50, data={"id": call.job_id, "status": "running"})

    async def fetch(self, call: Call, status: Status) -> VideoGenerationResponse:
        return VideoGenerationResponse(request_id=call.job_id, video=f"https://inmem.test/{call.job_id}.mp4",
                                       raw_response=status.data, provider=call.provider, model=call.model)

    async def cancel(self, call: Call) -> bool:
        self.cancels.append(call.job_id)
        return self.cancel_answer

    def render(self, call: Call) -> dict[str, Any]:
        job = prepare_job(call.family, call.config, call.request, dry_run=True)
        return {"method": "POST", "url": f"{job.base_url}/jobs", "json": job.payload}


@pytest.fixture
def provider(tmp_path, monkeypatch) -> Iterator[tuple[Client, InMemoryProvider]]:
    monkeypatch.setenv("INMEM_KEY", "k")
    root = tmp_path / "inmem"
    root.mkdir()
    (root / "provider.yaml").write_text(textwrap.dedent(PROVIDER))
    (root / "clip.yaml").write_text(textwrap.dedent(FAMILY))
    fake = InMemoryProvider()
    register_transport("inmem", fake)  # before the specs that name it load
    with Client(spec_dirs=[tmp_path]) as client:
        yield client, fake


def config(**kw: Any) -> VideoGenerationConfig:
    return VideoGenerationConfig(provider="inmem", model="clip-1", poll_interval=0.001, **kw)


REQUEST = VideoGenerationRequest(prompt="a kite", duration_seconds=4)


def test_the_lifecycle_polls_journals_and_reports_progress(provider):
    client, fake = provider
    updates: list[Any] = []
    response = client.generate_video(config(provider_config={"polls": 3}), REQUEST, updates.append)
    assert response.video == "https://inmem.test/job-1.mp4" and fake.submits == 1
    assert fake.jobs["job-1"]["body"] == {"prompt": "a kite", "seconds": 4}
    assert [u.status for u in updates] == ["queued", "processing", "processing", "completed"]
    record = asyncio.run(client.runtime.journal.get("job-1"))
    assert record.state == "completed" and record.job == {"ticket": "job-1"}


def test_failed_polls_are_retried_within_the_budget(provider):
    client, fake = provider
    fake.poll_errors = [HTTPError("flaky", retryable=True), HTTPError("flaky again", retryable=True)]
    assert client.generate_video(config(), REQUEST).video and fake.submits == 1


def test_the_deadline_cancels_the_remote_job_and_journals_it(provider):
    client, fake = provider
    with pytest.raises(TimeoutError) as caught:
        client.generate_video(config(provider_config={"polls": 10**9}, timeout=0.2), REQUEST)
    assert caught.value.job_may_exist and fake.cancels == ["job-1"]
    assert asyncio.run(client.runtime.journal.get("job-1")).state == "cancelled"


def test_resume_finishes_a_job_given_up_on_without_submitting_again(provider):
    client, fake = provider
    fake.cancel_answer = False  # the provider would not stop it: the job stays open in the journal
    fake.poll_errors = [HTTPError("gone wrong", retryable=False, job_may_exist=True)]
    with pytest.raises(HTTPError):
        client.generate_video(config(), REQUEST)
    assert asyncio.run(client.runtime.journal.get("job-1")).state == "queued"
    assert client.resume("job-1", api_key="k").video == "https://inmem.test/job-1.mp4"
    assert fake.submits == 1


def test_a_request_the_family_refuses_never_reaches_the_transport(provider):
    client, fake = provider
    with pytest.raises(ValidationError, match="allowed: 4, 8"):
        client.generate_video(config(), VideoGenerationRequest(prompt="a kite", duration_seconds=5))
    assert fake.submits == 0
    assert client.render_request(config(), REQUEST)["json"] == {"prompt": "a kite", "seconds": 4}


class _Events:
    """A status stream as a plain async iterator (no `aclose`): `watch` may return any async iterator."""

    def __init__(self, statuses: list[Status]) -> None:
        self.statuses = statuses

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> Status:
        if not self.statuses:
            raise StopAsyncIteration
        return self.statuses.pop(0)


def test_a_status_stream_may_be_any_async_iterator(provider, monkeypatch):
    client, fake = provider
    completed = Status("completed", data={"id": "job-1", "status": "done"})
    monkeypatch.setattr(fake, "watch", lambda call: _Events([completed]), raising=False)
    assert client.generate_video(config(provider_config={"polls": 10**9}), REQUEST).video.endswith("job-1.mp4")
