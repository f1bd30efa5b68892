"""Jobs that do not block: submit returns at once, and the job is looked up, waited on or cancelled
later, from this process or another one sharing the journal."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import API_KEY, image_config, video_config
from tarash_router import ValidationError
from tarash_router.client import Client
from tarash_router.models import ImageGenerationRequest, VideoGenerationRequest
from tarash_router.testing import FalJob

REQUEST = VideoGenerationRequest(prompt="a cat", duration_seconds=8)


@pytest.fixture(autouse=True)
def fal_key(monkeypatch):
    """Later calls (get_job, wait) find the key where a deployment keeps it, not in the first config."""
    monkeypatch.setenv("FAL_KEY", API_KEY)


@pytest.fixture
def client(tmp_path):
    with Client(journal=f"sqlite:///{tmp_path / 'jobs.db'}") as own:
        yield own


def test_submit_returns_at_once_and_wait_collects_the_video(client, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 3 + ["IN_PROGRESS", "COMPLETED"]))
    started = time.process_time()
    job = client.submit_video(video_config(fal), REQUEST)
    assert time.process_time() - started < 1.0  # one submit, no polling (timing is measured in benchmarks)
    assert (job.state, job.provider, job.model, job.done) == ("queued", "fal", "fal-ai/veo3/fast", False)
    assert fal.submit_count() == 1
    assert client.get_job(job.id, base_url=fal.base_url).state in ("queued", "processing")
    response = client.wait(job.id, base_url=fal.base_url)
    assert response.request_id == job.id and response.video
    finished = client.get_job(job.id)
    assert finished.state == "completed" and finished.response.video == response.video and finished.progress == 100
    assert fal.submit_count() == 1


def test_a_job_submitted_here_is_waited_on_from_another_process(client, fal, tmp_path):
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 5 + ["COMPLETED"]))
    job = client.submit_video(video_config(fal, poll_interval=0.01), REQUEST)
    script = textwrap.dedent(f"""
        import json, os
        os.environ["FAL_KEY"] = {API_KEY!r}
        from tarash_router import Client
        with Client(journal="sqlite:///{tmp_path / 'jobs.db'}") as client:
            response = client.wait({job.id!r}, base_url={fal.base_url!r})
            print(json.dumps({{"id": response.request_id, "video": response.video}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1], env={"TARASH_ALLOW_PRIVATE_URLS": "1",
                                                                        "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == job.id
    assert client.get_job(job.id).state == "completed" and fal.submit_count() == 1


def test_a_job_waited_on_by_another_client_carries_the_estimate_made_at_submit(client, fal, tmp_path):
    # The other client never saw the request: the estimate travels in the journal record.
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]))
    job = client.submit_video(video_config(fal, model="fal-ai/veo3"), REQUEST)
    with Client(journal=f"sqlite:///{tmp_path / 'jobs.db'}") as other:
        response = other.wait(job.id, base_url=fal.base_url)
        journaled = other.get_job(job.id).response
    assert response.cost is not None and response.cost.estimated
    assert (response.cost.currency, response.cost.amount) == ("USD", 3.20)  # 8 s at fal's $0.40/s with audio
    assert journaled is not None and journaled.cost == response.cost


def test_get_job_reports_a_failed_job_and_journals_it(client, fal):
    fal.queue(FalJob(statuses=[{"status": "COMPLETED", "error": "boom", "error_type": "x"}]))
    job = client.submit_video(video_config(fal), REQUEST)
    failed = client.get_job(job.id, base_url=fal.base_url)
    assert failed.state == "failed" and "boom" in failed.error["message"]
    assert client.get_job(job.id).state == "failed"  # from the journal now


def test_cancel_and_list_jobs(client, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 1000))
    job = client.submit_video(video_config(fal), REQUEST)
    assert [j.id for j in client.list_jobs(state="queued")] == [job.id]
    assert client.cancel_job(job.id, base_url=fal.base_url) is True
    assert client.get_job(job.id).state == "cancelled" and fal.cancels
    assert client.list_jobs(state="queued") == [] and client.list_jobs(older_than=3600) == []


def test_a_synchronous_provider_is_journaled_completed_at_submit(client, fal):
    fal.queue(FalJob.images(2, submit_status="COMPLETED", statuses=["COMPLETED"]))
    job = client.submit_image(image_config(fal), ImageGenerationRequest(prompt="a fox"))
    response = client.wait(job.id, base_url=fal.base_url)
    assert len(response.images) == 2 and client.get_job(job.id).state == "completed"


def test_submit_through_a_route_falls_back_at_submit_time(tmp_path, fal, monkeypatch):
    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""\
        spec_version: 1
        routes:
          main:
            modality: video
            retry: {{attempts: 1}}
            targets:
              - {{provider: fal, model: fal-ai/veo3, base_url: "{fal.base_url}", api_key_env: TEST_FAL_KEY}}
              - {{provider: fal, model: fal-ai/veo3/fast, base_url: "{fal.base_url}", api_key_env: TEST_FAL_KEY}}
    """))
    from tarash_router.testing._server import Failure

    fal.queue(FalJob(submit_failures=[Failure(status=503)]), FalJob())
    with Client(routes=[routes], journal="memory") as client:
        job = client.submit_video("main", REQUEST)
        assert job.model == "fal-ai/veo3/fast" and [a.status for a in job.execution_metadata.attempts] == [
            "failed", "success"]
        keyed = REQUEST.model_copy(update={"idempotency_key": "k1"})
        assert client.submit_video("main", keyed).id == client.submit_video("main", keyed).id
    assert fal.submit_count() == 2


def test_a_keyed_submit_is_sent_once_even_from_another_client(client, fal, tmp_path):
    """A task queue may deliver a submit twice: the key makes the second delivery return the first job."""
    fal.queue(FalJob(statuses=["IN_QUEUE", "COMPLETED"]))
    keyed = REQUEST.model_copy(update={"idempotency_key": "task-7"})
    first = client.submit_video(video_config(fal), keyed)
    with Client(journal=f"sqlite:///{tmp_path / 'jobs.db'}") as other:  # another worker on the same journal
        again = other.submit_video(video_config(fal), keyed)
        assert (again.id, again.state) == (first.id, "queued")
        other.wait(first.id, base_url=fal.base_url)
        assert other.submit_video(video_config(fal), keyed).state == "completed"  # as the journal has it now
        with pytest.raises(ValidationError, match="already used for a different request"):
            other.submit_video(video_config(fal), keyed.model_copy(update={"prompt": "a dog"}))
    assert fal.submit_count() == 1


def test_a_keyed_submit_whose_holder_died_while_submitting_is_not_sent_again(client, fal):
    import asyncio as aio

    from tarash_router.errors import JobMayExistError
    from tarash_router.journal import Claim, fingerprint

    keyed = REQUEST.model_copy(update={"idempotency_key": "task-8"})
    stale = Claim(key="submit:task-8", fingerprint=fingerprint("fal/fal-ai/veo3/fast", keyed), owner="dead-worker",
                  state="submitting", heartbeat=0.0)
    aio.run(client.journal.claim(stale))
    with pytest.raises(JobMayExistError, match="stopped while submitting"):
        client.submit_video(video_config(fal), keyed)
    assert fal.submit_count() == 0


def test_module_functions_use_the_default_client(fal, tmp_path):
    from tarash_router import get_job, list_jobs, submit_video
    from tarash_router.journal import open_journal, set_journal

    set_journal(open_journal(f"sqlite:///{tmp_path / 'default.db'}"))
    try:
        fal.queue(FalJob())
        job = submit_video(video_config(fal), REQUEST)
        assert get_job(job.id, base_url=fal.base_url).id == job.id and job.id in [j.id for j in list_jobs()]
        assert asyncio.run(_wait(job.id, fal.base_url)).request_id == job.id
    finally:
        set_journal(None)


async def _wait(job_id: str, base_url: str):
    from tarash_router import wait_async

    return await wait_async(job_id, base_url=base_url)


def test_jobs_reap_finishes_or_cancels_jobs_nobody_follows(fal, tmp_path, capsys):
    from tarash_router.cli import main
    from tarash_router.journal.records import JobRecord

    journal_url = f"sqlite:///{tmp_path / 'reap.db'}"
    fal.queue(FalJob(statuses=["COMPLETED"]), FalJob(statuses=["IN_PROGRESS"] * 1000))
    with Client(journal=journal_url) as client:
        done = client.submit_video(video_config(fal), REQUEST)
        running = client.submit_video(video_config(fal), REQUEST)
        asyncio.run(client.runtime.journal.put(JobRecord(job_id="submitting-x", provider="fal", model="fal-ai/veo3",
                                                         modality="video", state="submitting")))
    time.sleep(0.05)
    from tarash_router.journal import set_journal

    try:
        assert main(["jobs", "reap", "--journal", journal_url, "--older-than", "10ms", "--cancel",
                     "--base-url", fal.base_url]) == 1  # the intent needs a human
    finally:
        set_journal(None)
    lines = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert lines == {done.id: "completed", running.id: "cancelled", "submitting-x": "unknown"}
    with Client(journal=journal_url) as client:
        assert client.get_job(done.id).state == "completed" and client.get_job(running.id).state == "cancelled"
