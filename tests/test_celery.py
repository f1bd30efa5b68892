"""The Celery integration: a real worker with a Redis broker runs jobs against the fake fal server under
an account cap; a redelivered submit pays once; a job over the cap retries its task instead of waiting."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, UTC
from pathlib import Path

import pytest

celery = pytest.importorskip("celery", reason="the Celery integration needs its extra: pip install "
                                              "'tarash-router[celery]' (the dev extra includes it)")
redis = pytest.importorskip("redis", reason="the Celery tests need the redis package (extra redis)")

from celery.exceptions import Retry  # noqa: E402

from conftest import API_KEY  # noqa: E402
from journal_helpers import free_port, redis_server  # noqa: E402
from tarash_router import AccountAtLimitError  # noqa: E402
from tarash_router.client import Client  # noqa: E402
from tarash_router.settings import TarashSettings  # noqa: E402
from tarash_router.testing import FalJob  # noqa: E402

TESTS = Path(__file__).resolve().parent
JOBS, CAP = 200, 20
# A job takes a few polls, so jobs overlap and the cap matters.
A_FEW_POLLS = FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def stores(redis_url: str, monkeypatch) -> Iterator[tuple[str, str]]:
    """(journal and limits URL, broker URL) on one Redis, emptied for each test."""
    monkeypatch.setenv("FAL_KEY", API_KEY)
    broker = redis_url.replace("/0", "/1")
    for url in (redis_url, broker):
        with redis.Redis.from_url(url) as connection:
            connection.flushdb()
    yield redis_url, broker


def _config(fal, **overrides: object) -> dict:
    return {"provider": "fal", "model": "fal-ai/veo3/fast", "base_url": fal.base_url, "poll_interval": 0.05,
            "timeout": 60, **overrides}


def _settings(url: str, cap: int) -> TarashSettings:
    return TarashSettings(journal=url, limits_store=url, limits=json.dumps({"fal": {"in_flight": cap}}),
                          at_limit="raise")


def _in_process_tasks(stores: tuple[str, str], cap: int):
    """The tasks on an app whose worker is this process (`task.apply`): checks they schedule go to the
    broker, where no worker takes them."""
    from celery_app import make_app

    url, broker = stores
    return make_app(broker, client_factory=lambda: Client(settings=_settings(url, cap)))[1]


def test_a_redelivered_submit_returns_the_first_job_and_pays_once(fal, stores):
    tasks = _in_process_tasks(stores, cap=CAP)
    first = tasks.submit.apply(args=[_config(fal), {"prompt": "a cat"}], task_id="task-1")
    again = tasks.submit.apply(args=[_config(fal), {"prompt": "a cat"}], task_id="task-1")  # acks_late redelivery
    assert (first.state, again.state) == ("SUCCESS", "SUCCESS") and first.result == again.result
    assert fal.submit_count() == 1
    other = tasks.submit.apply(args=[_config(fal), {"prompt": "a cat"}], task_id="task-2")  # another task: a new job
    assert other.result != first.result and fal.submit_count() == 2


def test_a_job_over_the_cap_retries_its_task_instead_of_waiting(fal, stores):
    tasks = _in_process_tasks(stores, cap=1)
    fal.queue(FalJob(statuses=["IN_QUEUE", "COMPLETED"]))
    holder = tasks.submit.apply(args=[_config(fal), {"prompt": "first"}], task_id="task-holds-the-slot")
    assert holder.state == "SUCCESS"
    second = [_config(fal), {"prompt": "second"}]
    started = time.monotonic()
    with pytest.raises(Retry) as retry:
        _as_a_worker_runs_it(tasks.submit, "task-over-the-cap", second)
    assert time.monotonic() - started < 1.0  # answered at once: no worker held while the slot is taken
    assert retry.value.when >= 0.25 / 2 and fal.submit_count() == 1
    [(again, args, kwargs)] = _queued(stores[1], "tarash.submit")  # the same task, back with a countdown
    assert (again["id"], again["retries"], args) == ("task-over-the-cap", 1, second) and again["eta"]
    assert kwargs["give_up_at"] > time.time()  # the time it may keep trying for travels with it
    with Client(settings=_settings(stores[0], 1)) as client:  # the first job finishes: its slot is free
        client.wait(holder.result, base_url=fal.base_url)
    assert _as_a_worker_runs_it(tasks.submit, "task-over-the-cap", second, retries=1) != holder.result
    assert fal.submit_count() == 2
    # a task that may not wait any longer fails, naming the limit, and still sends nothing
    with pytest.raises(AccountAtLimitError, match=r"at its limit \(1 in flight\)"):
        _as_a_worker_runs_it(tasks.submit, "task-late", [_config(fal), {"prompt": "third"}],
                             {"give_up_at": time.time()})
    assert fal.submit_count() == 2


def _as_a_worker_runs_it(task, task_id: str, args: list, kwargs: dict | None = None, retries: int = 0):
    """Run a task's body as a worker does (not eagerly: a retry goes back to the broker)."""
    kwargs = kwargs or {}
    task.push_request(id=task_id, args=args, kwargs=kwargs, retries=retries, called_directly=False)
    try:
        return task.run(*args, **kwargs)
    finally:
        task.pop_request()


def _queued(broker: str, task: str) -> list[tuple[dict, list, dict]]:
    """The messages of `task` waiting on the broker's default queue: (headers, args, kwargs) each."""
    with redis.Redis.from_url(broker) as connection:
        messages = [json.loads(raw) for raw in connection.lrange("celery", 0, -1)]
    found = []
    for message in messages:
        if message["headers"]["task"] == task:
            args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            found.append((message["headers"], args, kwargs))
    return found


def _seconds_until(eta: str) -> float:
    return (datetime.fromisoformat(eta) - datetime.now(UTC)).total_seconds()


def test_the_first_check_comes_one_poll_interval_after_the_submit(fal, stores):
    tasks = _in_process_tasks(stores, cap=CAP)
    job_id = _as_a_worker_runs_it(tasks.submit, "task-poll", [_config(fal, poll_interval=2), {"prompt": "a cat"}])
    [(check, args, kwargs)] = _queued(stores[1], "tarash.check")
    assert args == [job_id] and kwargs["every"] is None and kwargs["base_url"] == fal.base_url
    assert 1 < _seconds_until(check["eta"]) <= 2


def test_with_a_webhook_only_a_late_safety_check_is_scheduled(fal, stores):
    from celery_app import QUICK

    tasks = _in_process_tasks(stores, cap=CAP)
    hook = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: the delivery is lost, as it may be
    job_id = _as_a_worker_runs_it(tasks.submit, "task-hook", [_config(fal), {"prompt": "a cat"}],
                                  {"webhook_url": hook})
    assert fal.submits[0].webhook == hook
    [(check, args, kwargs)] = _queued(stores[1], "tarash.check")
    assert args == [job_id] and kwargs["every"] == QUICK.webhook_check_after
    assert QUICK.webhook_check_after - 1 < _seconds_until(check["eta"]) <= QUICK.webhook_check_after
    # the safety check finds the job the lost delivery never reported, and finishes it
    finished = tasks.check.apply(args=args, kwargs=kwargs).result
    assert finished["state"] == "completed" and finished["id"] == job_id


def test_a_config_with_an_api_key_is_refused_before_anything_is_sent(fal, stores):
    tasks = _in_process_tasks(stores, cap=CAP)
    refused = tasks.submit.apply(args=[_config(fal, api_key=API_KEY), {"prompt": "a cat"}])
    assert refused.state == "FAILURE" and "must not carry api_key" in str(refused.result)
    assert fal.submit_count() == 0


def test_check_looks_once_and_returns_the_finished_job(fal, stores):
    tasks = _in_process_tasks(stores, cap=CAP)
    fal.queue(FalJob(statuses=["IN_QUEUE", "COMPLETED"]))
    job_id = tasks.submit.apply(args=[_config(fal), {"prompt": "a cat"}]).result
    running = tasks.check.apply(args=[job_id], kwargs={"base_url": fal.base_url}).result
    assert running["state"] == "queued" and fal.status_polls(job_id) == 1
    finished = tasks.check.apply(args=[job_id], kwargs={"base_url": fal.base_url}).result
    assert finished["state"] == "completed" and finished["response"]["video"]
    assert tasks.check.apply(args=[job_id]).result["state"] == "completed"  # from the journal: no request
    assert fal.status_polls(job_id) == 2 and fal.submit_count() == 1


def test_importing_without_celery_names_the_extra():
    script = ("import sys; sys.modules['celery'] = None\n"
              "import tarash_router\n"
              "from tarash_router.errors import MissingExtraError\n"
              "try:\n"
              "    import tarash_router.integrations.celery\n"
              "except MissingExtraError as exc:\n"
              "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=TESTS.parent)
    assert done.returncode == 0, done.stderr
    assert "pip install 'tarash-router[celery]'" in done.stdout


# ------------------------------------------------------------------ a real worker


@pytest.fixture
def worker(stores, tmp_path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A `celery worker` process (threads pool) on the test broker, with the Redis journal and limits
    shared with this process and a cap of CAP jobs in flight for fal; killed at the end, even on failure.
    Yields the process and its log file."""
    url, broker = stores
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]),
           "TEST_CELERY_BROKER": broker, "TARASH_JOURNAL": url, "TARASH_LIMITS_STORE": url,
           "TARASH_LIMITS": json.dumps({"fal": {"in_flight": CAP}}), "FAL_KEY": API_KEY,
           "TARASH_ALLOW_PRIVATE_URLS": "1"}
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "threads",
                                 "--concurrency", "8", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                                 "--without-heartbeat", "--hostname", f"tarash-test-{os.getpid()}@%h"],
                                cwd=TESTS, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_a_worker_runs_200_jobs_with_at_most_20_in_flight_at_the_provider(fal, stores, worker):
    from celery_app import make_app

    url, broker = stores
    proc, log = worker
    fal.default_job = A_FEW_POLLS
    try:
        app, tasks = make_app(broker)
        done_key = "tests:done"
        record_done = app.tasks["tests.record_done"]
        for n in range(JOBS):
            tasks.submit.delay(_config(fal), {"prompt": f"cat {n}"}, on_done=record_done.s(done_key))
        with redis.Redis.from_url(broker) as connection:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and connection.llen(done_key) < JOBS:  # on_done ran for each
                assert proc.poll() is None, "the worker exited:\n" + _tail(log)
                time.sleep(0.25)
            finished = [entry.decode() for entry in connection.lrange(done_key, 0, -1)]
        with Client(journal=url) as journal_reader:
            completed = journal_reader.list_jobs(state="completed", limit=2 * JOBS)
        assert len(completed) == JOBS, f"{len(completed)} of {JOBS} completed; worker log:\n" + _tail(log)
    finally:
        fal.default_job = FalJob()
    assert fal.submit_count() == JOBS and fal.submit_attempts == JOBS
    assert fal.max_in_flight <= CAP, f"{fal.max_in_flight} jobs in flight at the provider"
    assert fal.max_in_flight >= CAP // 2  # the cap was reached for real: the jobs overlapped
    assert sorted(finished) == sorted(f"{job.id} completed" for job in completed)  # on_done, once per job


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def test_a_check_past_the_jobs_deadline_cancels_it(fal, stores):
    tasks = _in_process_tasks(stores, cap=CAP)
    fal.queue(FalJob(statuses=["IN_QUEUE"]))  # never finishes
    job_id = tasks.submit.apply(args=[_config(fal, timeout=0.5, poll_interval=5), {"prompt": "a cat"}]).result
    running = tasks.check.apply(args=[job_id], kwargs={"base_url": fal.base_url}).result
    assert running["state"] == "queued"
    scheduled = _queued(stores[1], "tarash.check")  # by the submit, then by the check
    assert len(scheduled) == 2 and all(_seconds_until(check["eta"]) <= 0.5 for check, _, _ in scheduled)
    time.sleep(0.6)  # the deadline passes: the next check stops the job at the provider
    stopped = tasks.check.apply(args=[job_id], kwargs={"base_url": fal.base_url}).result
    assert stopped["state"] == "cancelled" and fal.cancels == [job_id]


def test_a_failed_status_request_is_checked_again_with_backoff(fal, stores):
    from tarash_router.testing import Failure

    tasks = _in_process_tasks(stores, cap=CAP)
    fal.queue(FalJob(statuses=["COMPLETED"], poll_failures={1: Failure.server_error(503)}))
    job_id = tasks.submit.apply(args=[_config(fal), {"prompt": "a cat"}]).result
    assert tasks.check.apply(args=[job_id], kwargs={"base_url": fal.base_url}).result is None
    [(_, args, kwargs)] = [m for m in _queued(stores[1], "tarash.check") if m[2].get("errors")]
    assert (args, kwargs["errors"]) == ([job_id], 1)
    assert tasks.check.apply(args=args, kwargs=kwargs).result["state"] == "completed"


def test_a_worker_client_shares_its_journal_and_does_not_wait_at_caps(stores, monkeypatch):
    from tarash_router.errors import ConfigError
    from tarash_router.integrations.celery import worker_client

    monkeypatch.delenv("TARASH_JOURNAL", raising=False)
    with pytest.raises(ConfigError, match="journal every worker shares"):
        worker_client()
    monkeypatch.setenv("TARASH_JOURNAL", stores[0])
    monkeypatch.setenv("TARASH_AT_LIMIT", "wait")  # the worker's own choice wins: waiting would hold a worker
    with worker_client() as client:
        assert (client.settings.journal, client.settings.at_limit) == (stores[0], "raise")
