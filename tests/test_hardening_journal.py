"""A journal outage never stops or hangs a generation; a crash during the submit leaves a trace and
nothing is paid twice. Real Redis and SQLite, the fake Fal server, the public API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import video_config
from journal_helpers import redis_server, stalled
from tarash_router import generate_video, generate_video_async
from tarash_router.cli import main
from tarash_router.errors import JobMayExistError, JournalUnavailableError
from tarash_router.journal import get_journal, open_journal, set_journal
from tarash_router.journal.idempotency import run_idempotent
from tarash_router.journal.records import Claim, JobRecord, fingerprint
from tarash_router.journal.tracker import JobTracker
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse
from tarash_router.routing.router import reset_router
from tarash_router.testing import Failure, FalJob


@pytest.fixture
def journal_timeout_1s(setting):
    setting("TARASH_JOURNAL_TIMEOUT", "1")


@pytest.fixture
def stalled_redis(journal_timeout_1s):
    """A Redis that accepts connections and never answers (SIGSTOP), set as the journal."""
    with redis_server() as url:
        set_journal(open_journal(url))
        try:
            with stalled(url):
                yield url
        finally:
            set_journal(None)


def test_a_stalled_redis_journal_never_costs_the_paid_job(fal, stalled_redis):
    started = time.monotonic()
    response = generate_video(video_config(fal, timeout=8), VideoGenerationRequest(prompt="a cat"))
    assert response.video and fal.submit_count() == 1 and fal.cancels == []
    assert time.monotonic() - started < 8  # a failed store is skipped, not waited on again and again


def test_an_idempotent_call_on_a_stalled_journal_fails_fast_and_sends_nothing(fal, stalled_redis):
    started = time.monotonic()
    with pytest.raises(JournalUnavailableError, match="nothing was sent"):
        generate_video(video_config(fal, timeout=8), VideoGenerationRequest(prompt="a cat", idempotency_key="k1"))
    assert time.monotonic() - started < 5
    assert fal.requests == []


@pytest.mark.parametrize("first_use", ["before the lock", "under the lock"])
def test_a_locked_sqlite_journal_never_blocks_the_event_loop(first_use, fal, tmp_path, journal_timeout_1s):
    path = tmp_path / "jobs.db"
    store = open_journal(f"sqlite:///{path}")
    if first_use == "before the lock":
        asyncio.run(store.list())  # the file exists, in WAL mode; else it is first opened under the lock
    set_journal(store)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the file

    async def scenario() -> float:
        worst = 0.0
        done = False

        async def ticker() -> None:
            nonlocal worst
            last = time.monotonic()
            while not done:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                worst = max(worst, now - last - 0.01)
                last = now

        tick = asyncio.create_task(ticker())
        try:
            response = await generate_video_async(video_config(fal), VideoGenerationRequest(prompt="a cat"))
        finally:
            done = True
            await tick
        assert response.video
        return worst

    try:
        worst_lag = asyncio.run(scenario())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        set_journal(None)
    assert worst_lag < 0.1, f"event loop stalled {worst_lag:.3f}s"
    assert fal.submit_count() == 1


CHILD = textwrap.dedent("""
    import sys
    from tarash_router import generate_video
    from tarash_router.journal import open_journal, set_journal
    from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
    base_url, journal, key = sys.argv[1:4]
    set_journal(open_journal(journal))
    config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3/fast", api_key="k", base_url=base_url,
                                   poll_interval=0.02, timeout=60)
    generate_video(config, VideoGenerationRequest(prompt="x", idempotency_key=key))
""")


def _crash_during_submit(fal, url: str, key: str) -> None:
    """A child process POSTs, the provider holds its answer, the child is killed meanwhile."""
    fal.queue(FalJob(submit_failures=[Failure(status=200, json={}, delay=30)]))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, fal.base_url, url, key],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not any(r.method == "POST" for r in fal.requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def redis_url():
    with redis_server() as url:
        yield url


@pytest.fixture
def short_lease(setting):
    setting("TARASH_IDEMPOTENCY_LEASE", "0.3")


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_crash_during_the_submit_is_never_resubmitted_blindly(backend, fal, tmp_path, short_lease, capsys,
                                                                request):
    url = f"sqlite:///{tmp_path}/jobs.db" if backend == "sqlite" else request.getfixturevalue("redis_url")
    _crash_during_submit(fal, url, "order-77")
    time.sleep(0.5)  # the dead owner's lease runs out
    set_journal(open_journal(url))
    try:
        with pytest.raises(JobMayExistError, match="jobs list --state submitting"):
            generate_video(video_config(fal), VideoGenerationRequest(prompt="x", idempotency_key="order-77"))
        # The next caller hears the same, immediately.
        with pytest.raises(JobMayExistError):
            generate_video(video_config(fal), VideoGenerationRequest(prompt="x", idempotency_key="order-77"))
    finally:
        set_journal(None)
    assert [r.method for r in fal.requests].count("POST") == 1
    assert main(["jobs", "list", "--state", "submitting", "--journal", url]) == 0
    listing = capsys.readouterr().out
    assert "submitting" in listing and "fal-ai/veo3/fast" in listing


def test_a_route_may_opt_in_to_resubmitting(fal, tmp_path, short_lease):
    import tarash_router

    url = f"sqlite:///{tmp_path}/jobs.db"
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""
        spec_version: 1
        routes:
          retry-blind:
            modality: video
            resubmit_if_unknown: true
            targets:
              - {{provider: fal, model: fal-ai/veo3/fast, base_url: "{fal.base_url}", poll_interval: 0.01}}
    """))
    tarash_router.load_routes(routes)
    os.environ["FAL_KEY"] = "k"
    try:
        set_journal(open_journal(url))
        # A call on this route died mid-submit (its claim says so, with no job id, long silent).
        request = VideoGenerationRequest(prompt="x", idempotency_key="order-78")
        claim = Claim(key="order-78", fingerprint=fingerprint("route:retry-blind", request), owner="dead",
                      state="submitting", heartbeat=time.time() - 60)
        asyncio.run(open_journal(url).claim(claim))
        response = tarash_router.generate_video("retry-blind",
                                                VideoGenerationRequest(prompt="x", idempotency_key="order-78"))
    finally:
        os.environ.pop("FAL_KEY", None)
        set_journal(None)
        reset_router()
    assert response.video and fal.submit_count() == 1


def test_a_refused_submit_leaves_no_intent_behind(fal, tmp_path):
    url = f"sqlite:///{tmp_path}/jobs.db"
    set_journal(open_journal(url))
    fal.queue(FalJob(submit_failures=[Failure(status=422, json={"detail": [{"msg": "bad", "type": "x"}]})]))
    try:
        with pytest.raises(Exception):  # noqa: B017 - the class is the provider's business here
            generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
        store = open_journal(url)
        assert asyncio.run(store.list(state="submitting")) == []
        response = generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
        assert asyncio.run(store.list(state="submitting")) == []
        assert asyncio.run(store.get(response.request_id)).state == "completed"
    finally:
        set_journal(None)


def _guarded_route(folder, fal, monkeypatch) -> None:
    """A routes file with one cooldown-guarded fal target, served by the fake."""
    monkeypatch.setenv("TEST_FAL_KEY", "k")
    (folder / "routes.yaml").write_text(textwrap.dedent(f"""
        spec_version: 1
        routes:
          guarded:
            modality: video
            cooldown: {{failures: 2, window: 60s, duration: 30s}}
            targets:
              - {{provider: fal, model: fal-ai/veo3/fast, base_url: "{fal.base_url}", api_key_env: TEST_FAL_KEY,
                 poll_interval: 5ms}}
    """))


def test_a_stalled_cooldown_store_never_stops_a_route(fal, stalled_redis, tmp_path, monkeypatch):
    from tarash_router.routing import Router, open_cooldowns

    _guarded_route(tmp_path, fal, monkeypatch)
    set_journal(None)  # only the breakers live on the stalled Redis here
    router = Router.from_dir(tmp_path, cooldowns=open_cooldowns(stalled_redis))
    started = time.monotonic()
    response = asyncio.run(router.run("guarded", VideoGenerationRequest(prompt="a cat"), None, "video"))
    assert response.video and fal.submit_count() == 1
    assert time.monotonic() - started < 5  # one bounded wait, then the store is skipped


# -- the pieces, on every store ----------------------------------------------------------------------

KEY = "order-90"
REQUEST = VideoGenerationRequest(prompt="x", idempotency_key=KEY)
TARGET = "fal/fal-ai/veo3/fast"
FP = fingerprint(TARGET, REQUEST)


@pytest.fixture(scope="module")
def shared_redis():
    with redis_server() as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "redis"])
def journal(request, tmp_path):
    if request.param == "memory":
        url = "memory"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/jobs.db"
    else:
        url = request.getfixturevalue("shared_redis")
        asyncio.run(_flush(url))
    store = open_journal(url)
    set_journal(store)
    yield store
    set_journal(None)


async def _flush(url: str) -> None:
    import redis.asyncio

    client = redis.asyncio.from_url(url)
    await client.flushdb()
    await client.aclose()


def _tracker(**overrides) -> JobTracker:
    values = {"provider": "fal", "model": "fal-ai/veo3/fast", "modality": "video", "base_url": "https://fal.test",
              "config": VideoGenerationConfig(provider="fal", model="fal-ai/veo3/fast", api_key="sk-secret"),
              "idempotency_key": KEY, "fingerprint": FP, "journal": get_journal()}
    values.update(overrides)
    return JobTracker(**values)


def _response(job_id: str = "job-1") -> VideoGenerationResponse:
    return VideoGenerationResponse(request_id=job_id, video="https://media.test/v.mp4")


async def _never(job_id: str) -> VideoGenerationResponse:
    raise AssertionError(f"nothing to resume, got {job_id}")


def test_list_filters_by_state_and_delete_forgets_a_job(journal):
    async def scenario():
        for job_id, state in [("a", "submitting"), ("b", "queued"), ("c", "submitting")]:
            await journal.put(JobRecord(job_id=job_id, provider="fal", model="m", modality="video", state=state))
        assert {r.job_id for r in await journal.list(state="submitting")} == {"a", "c"}
        await journal.delete("a")
        assert [r.job_id for r in await journal.list(state="submitting")] == ["c"]
        assert await journal.get("a") is None and len(await journal.list()) == 2
    asyncio.run(scenario())


def test_the_intent_is_journaled_before_the_submit_with_the_request_fingerprint(journal):
    async def scenario():
        tracker = _tracker()
        await tracker.submitting()
        return tracker.intent_id, await journal.list(state="submitting")

    intent_id, intents = asyncio.run(scenario())
    assert [r.job_id for r in intents] == [intent_id] and intent_id.startswith("submitting-")
    intent = intents[0]
    assert (intent.provider, intent.model, intent.modality, intent.base_url) == (
        "fal", "fal-ai/veo3/fast", "video", "https://fal.test")
    assert intent.fingerprint == FP and intent.idempotency_key == KEY
    assert "sk-secret" not in intent.model_dump_json()


def test_an_accepted_job_supersedes_its_intent(journal):
    async def scenario():
        tracker = _tracker()
        await tracker.submitting()
        await tracker.submitted("job-1", {"status_url": "https://fal.test/s"}, "queued")
        return await journal.list(state="submitting"), await journal.get("job-1")

    intents, job = asyncio.run(scenario())
    assert intents == [] and job.state == "queued" and job.fingerprint == FP


def test_a_submit_refused_before_any_job_could_exist_leaves_no_intent(journal):
    async def scenario():
        tracker = _tracker()
        await tracker.submitting()
        await tracker.submit_failed(job_may_exist=False, error={"type": "ValidationError", "message": "bad"})
        return await journal.list()

    assert asyncio.run(scenario()) == []


def test_a_submit_that_may_have_created_a_job_keeps_its_intent_with_the_error(journal):
    error = {"type": "HTTPError", "message": "connection reset after the request was sent"}

    async def scenario():
        tracker = _tracker()
        await tracker.submitting()
        await tracker.submit_failed(job_may_exist=True, error=error)
        return await journal.list(state="submitting")

    (intent,) = asyncio.run(scenario())
    assert intent.error == error


def test_the_held_claim_is_marked_submitting_then_carries_the_job_id(journal):
    seen = []

    async def run(claim):
        tracker = _tracker(claim=claim, journal=get_journal())
        await tracker.submitting()
        seen.append(await journal.get_claim(KEY))
        await tracker.submitted("job-1", {}, "queued")
        seen.append(await journal.get_claim(KEY))
        return _response("job-1")

    asyncio.run(run_idempotent(get_journal(), KEY, TARGET, REQUEST, "video", 10, run, _never))
    assert (seen[0].state, seen[0].job_id) == ("submitting", None)
    assert seen[1].job_id == "job-1"


async def _died_while_submitting(journal) -> None:
    """What a process killed during the POST leaves: a silent claim marked submitting, and its intent."""
    await journal.claim(Claim(key=KEY, fingerprint=FP, owner="dead", state="submitting",
                              heartbeat=time.time() - 600))
    await journal.put(JobRecord(job_id="submitting-0001", provider="fal", model="fal-ai/veo3/fast",
                                modality="video", state="submitting", fingerprint=FP, idempotency_key=KEY))


def test_taking_over_a_claim_left_submitting_raises_job_may_exist(journal):
    ran = []

    async def run(claim=None):
        ran.append(1)
        return _response()

    async def scenario():
        await _died_while_submitting(journal)
        await run_idempotent(get_journal(), KEY, TARGET, REQUEST, "video", 10, run, _never)

    with pytest.raises(JobMayExistError) as caught:
        asyncio.run(scenario())
    assert ran == []
    assert KEY in caught.value.message and "tarash-router jobs list --state submitting" in caught.value.message
    assert (caught.value.provider, caught.value.model) == ("fal", "fal-ai/veo3/fast")
    assert caught.value.job_may_exist


def test_a_caller_that_allows_resubmitting_runs_a_claim_left_submitting_again(journal):
    async def run(claim=None):
        return _response("job-2")

    async def scenario():
        await _died_while_submitting(journal)
        return await run_idempotent(get_journal(), KEY, TARGET, REQUEST, "video", 10, run, _never, allow_resubmit=True)

    assert asyncio.run(scenario()).request_id == "job-2"


# -- the pieces, on a journal that stops answering ---------------------------------------------------


def test_the_tracker_never_raises_on_a_stalled_journal_and_reports_its_wait(setting, shared_redis):
    from tarash_router.journal.redis_store import RedisJobStore

    setting("TARASH_JOURNAL_TIMEOUT", "0.3")
    store = RedisJobStore(shared_redis, socket_timeout=60)  # unbounded on its own: the tracker bounds it

    async def scenario() -> tuple[JobTracker, float]:
        tracker = _tracker(journal=store, idempotency_key=None)
        started = time.monotonic()
        with stalled(shared_redis):
            await tracker.submitting()
            await tracker.submitted("job-1", {}, "queued")
            await tracker.advance("completed")
        return tracker, time.monotonic() - started

    tracker, elapsed = asyncio.run(scenario())
    assert 0.3 <= tracker.waited <= elapsed < 5


def test_a_paid_success_stays_a_success_when_the_journal_stalls_mid_call(setting, shared_redis):
    setting("TARASH_JOURNAL_TIMEOUT", "0.3")
    asyncio.run(_flush(shared_redis))
    set_journal(open_journal(shared_redis))
    with contextlib.ExitStack() as outage:
        async def run(claim=None):
            outage.enter_context(stalled(shared_redis))  # until after the call has returned
            return _response("job-3")

        try:
            response = asyncio.run(run_idempotent(get_journal(), KEY, TARGET, REQUEST, "video", 10, run, _never))
        finally:
            set_journal(None)
    assert response.request_id == "job-3"


def test_the_heartbeat_keeps_beating_after_a_journal_failure(setting, shared_redis):
    from tarash_router.journal import BoundedJobStore, get_journal
    from tarash_router.journal.redis_store import RedisJobStore

    setting("TARASH_IDEMPOTENCY_LEASE", "0.6")  # a beat every 0.2 s
    asyncio.run(_flush(shared_redis))
    set_journal(BoundedJobStore(RedisJobStore(shared_redis, socket_timeout=0.2), 0.2, skip_after_failure=0.1))

    async def run(claim=None):
        with stalled(shared_redis):
            await asyncio.sleep(0.5)  # the beats meanwhile fail
        back = time.time()
        for _ in range(100):
            await asyncio.sleep(0.05)
            claim = await get_journal().get_claim(KEY)
            if claim.heartbeat > back:
                return _response("beating")
        return _response("silent")

    try:
        assert asyncio.run(run_idempotent(get_journal(), KEY, TARGET, REQUEST, "video", 30, run, _never)).request_id == "beating"
    finally:
        set_journal(None)


def test_a_custom_cooldown_store_that_never_answers_never_stops_a_route(fal, tmp_path, setting, monkeypatch):
    from tarash_router.routing import Router

    class Unanswering:
        """A shared breaker store whose backend has stopped answering."""

        async def check(self, key, policy, now=None):
            await asyncio.Event().wait()

        remaining = record_success = record_failure = check

    setting("TARASH_JOURNAL_TIMEOUT", "0.3")
    _guarded_route(tmp_path, fal, monkeypatch)
    router = Router.from_dir(tmp_path, cooldowns=Unanswering())
    started = time.monotonic()
    response = asyncio.run(router.run("guarded", VideoGenerationRequest(prompt="a cat"), None, "video"))
    assert response.video and fal.submit_count() == 1
    assert time.monotonic() - started < 5
