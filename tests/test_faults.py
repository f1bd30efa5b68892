"""Fault injection through the public API against the loopback fakes (real HTTP, real engine).

Every case runs `generate_video_async` in a fresh event loop (see `run_fresh` in tests/leaks.py) and
checks three things: the outcome (the exception class with provider/model/request_id, or success),
how many submits reached the fake (a paid job must never be sent twice when it may exist), and that
nothing is left behind: after `aclose_clients()` the loop holds no task but the current one, and
the process holds no client socket to the fake that it did not hold before the call (read from
/proc, so it sees real file descriptors, not the engine's bookkeeping).

Jobs poll here (status streams off): the faults are scripted on polls. The status stream's own
faults, with the same leak checks, are in tests/test_status_stream.py.

The first half drives the fake Fal queue API; the last section replays the key cases against the
fake Replicate predictions API to show the behaviour comes from the generic engine, not from
anything Fal-specific.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tarash_router
from conftest import REPLICATE_KEY, video_config
from leaks import CAN_SEE_SOCKETS, client_sockets, port_of, run_fresh
from tarash_router import (
    ContentModerationError, GenerationFailedError, HTTPConnectionError, HTTPError, RateLimitError, TimeoutError,
    VideoGenerationConfig, VideoGenerationRequest, generate_video_async,
)
from tarash_router.settings import get_settings
from tarash_router.testing._server import Failure
from tarash_router.testing.fal import FakeFal, FalJob
from tarash_router.testing.replicate import FakeReplicate, ReplicateJob, throttled

pytestmark = pytest.mark.usefixtures("polling")
MODEL = "fal-ai/veo3/fast"
REQUEST = VideoGenerationRequest(prompt="a lighthouse in a storm")
# Failures a retried poll sees; tiny Retry-After values keep the suite fast.
FAST_429 = 0.01


# -- calls ------------------------------------------------------------------------------------------


def generate(config: VideoGenerationConfig, port: int, request: VideoGenerationRequest = REQUEST) -> Any:
    """`generate_video_async` through `run_fresh`."""
    return run_fresh(lambda: generate_video_async(config, request), port)


def fal_call(fal: FakeFal, **overrides: Any) -> Any:
    return generate(video_config(fal, model=MODEL, **overrides), port_of(fal))


def assert_job_error(exc: BaseException, fal: FakeFal) -> None:
    """The error names the provider, the model and the job that was created."""
    assert isinstance(exc, tarash_router.TarashException)
    assert (exc.provider, exc.model) == ("fal", MODEL)
    assert exc.request_id == fal.submits[0].request_id
    assert exc.job_may_exist


def assert_submit_error(exc: BaseException) -> None:
    """An error raised before any job id was known."""
    assert isinstance(exc, tarash_router.TarashException)
    assert (exc.provider, exc.model) == ("fal", MODEL)
    assert exc.request_id is None


def cancel_requests(fal: FakeFal, request_id: str) -> int:
    return fal.jobs[request_id].cancel_attempts


@pytest.fixture
def request_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """A 0.2 s per-request timeout (TARASH_REQUEST_TIMEOUT), restored afterwards."""
    monkeypatch.setenv("TARASH_REQUEST_TIMEOUT", "0.2")
    get_settings.cache_clear()
    try:
        yield 0.2
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


# -- the checks check something -----------------------------------------------------------------------


@pytest.mark.skipif(not CAN_SEE_SOCKETS, reason="needs /proc to list this process's sockets")
def test_leak_detector_sees_a_pooled_connection_until_clients_are_closed(fal):
    port = port_of(fal)
    before = client_sockets(port)

    async def scenario() -> tuple[int, int]:
        await generate_video_async(video_config(fal, model=MODEL), REQUEST)
        held = len(client_sockets(port) - before)  # the keep-alive connection of the pool
        await tarash_router.aclose_clients()
        await asyncio.sleep(0)
        return held, len(client_sockets(port) - before)

    held, after_close = asyncio.run(scenario())
    assert held >= 1 and after_close == 0


def test_success_baseline(fal):
    response = fal_call(fal)
    assert response.request_id == fal.submits[0].request_id
    assert fal.submit_attempts == 1 and fal.submit_count() == 1
    assert fal.cancels == []


# -- 429 ------------------------------------------------------------------------------------------


def test_submit_429_with_retry_after_is_resubmitted_after_the_hint(fal):
    fal.queue(FalJob(submit_failures=[Failure.rate_limited(FAST_429)]))
    response = fal_call(fal)
    assert response.video
    assert fal.submit_attempts == 2 and fal.submit_count() == 1
    assert response.execution_metadata.total_attempts == 2
    assert [a.status for a in response.execution_metadata.attempts] == ["failed", "success"]


def test_submit_429_without_retry_after_backs_off_then_resubmits(fal):
    # Routing's default backoff starts at 1 s (+ up to 1 s of jitter) when the provider gives no hint.
    fal.queue(FalJob(submit_failures=[Failure.rate_limited(None)]))
    started = time.monotonic()
    response = fal_call(fal)
    assert response.video
    assert time.monotonic() - started >= 1.0
    assert fal.submit_attempts == 2 and fal.submit_count() == 1


def test_submit_429_exhausts_the_three_default_tries(fal):
    fal.queue(FalJob(submit_failures=[Failure.rate_limited(FAST_429)] * 5))
    with pytest.raises(RateLimitError) as info:
        fal_call(fal)
    assert_submit_error(info.value)
    assert info.value.status_code == 429 and info.value.retry_after == pytest.approx(FAST_429)
    assert not info.value.job_may_exist
    assert fal.submit_attempts == 3 and fal.submit_count() == 0
    assert info.value.execution_metadata.total_attempts == 3


@pytest.mark.parametrize("retry_after", [FAST_429, None], ids=["retry-after", "no-retry-after"])
def test_poll_429_is_survived_without_resubmitting(fal, retry_after):
    fal.queue(FalJob(poll_failures={1: Failure.rate_limited(retry_after), 2: Failure.rate_limited(retry_after)}))
    assert fal_call(fal).video
    assert fal.submit_attempts == 1 and fal.submit_count() == 1
    assert fal.status_polls(fal.submits[0].request_id) == 5  # 2 refused + queued, running, completed


def test_poll_429_beyond_max_poll_errors_gives_up_and_cancels(fal):
    limit = get_settings().max_poll_errors
    fal.queue(FalJob(statuses=["IN_QUEUE"],
                     poll_failures={i: Failure.rate_limited(FAST_429) for i in range(1, limit + 2)}))
    with pytest.raises(RateLimitError) as info:
        fal_call(fal)
    assert_job_error(info.value, fal)
    job_id = fal.submits[0].request_id
    assert fal.status_polls(job_id) == limit + 1
    assert fal.submit_attempts == 1 and fal.submit_count() == 1
    assert fal.cancels == [job_id]  # given up on: stopped so it is not billed on


# -- 5xx ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
def test_submit_5xx_that_may_hide_a_job_is_not_resubmitted(fal, status):
    fal.queue(FalJob(submit_failures=[Failure.server_error(status)]))
    with pytest.raises(HTTPError) as info:
        fal_call(fal)
    assert type(info.value) is HTTPError
    assert_submit_error(info.value)
    assert info.value.status_code == status and info.value.job_may_exist
    assert fal.submit_attempts == 1 and fal.submit_count() == 0


def test_submit_503_is_resubmitted_because_no_job_exists(fal):
    fal.queue(FalJob(submit_failures=[Failure.server_error(503)]))
    response = fal_call(fal)
    assert response.video
    assert fal.submit_attempts == 2 and fal.submit_count() == 1
    attempts = response.execution_metadata.attempts
    assert [a.error_type for a in attempts] == ["HTTPError", None]


def test_submit_503_honours_retry_after(fal):
    fal.queue(FalJob(submit_failures=[Failure(status=503, json={"detail": "Service Unavailable"},
                                              headers={"Retry-After": "0"})]))
    started = time.monotonic()
    assert fal_call(fal).video
    assert fal.submit_attempts == 2
    assert time.monotonic() - started < 0.8


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_poll_5xx_is_survived(fal, status):
    fal.queue(FalJob(poll_failures={1: Failure.server_error(status), 3: Failure.server_error(status)}))
    assert fal_call(fal).video
    assert fal.submit_attempts == 1 and fal.submit_count() == 1


def test_result_5xx_is_retried_as_a_get(fal):
    fal.queue(FalJob(result_failures=[Failure.server_error(502), Failure.html(503)]))
    assert fal_call(fal).video
    assert fal.jobs[fal.submits[0].request_id].result_attempts == 3
    assert fal.submit_attempts == 1


# -- broken connections ---------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port that was just bound and released: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_at_submit_is_retried_then_raised(fal):
    port = closed_port()
    config = video_config(fal, model=MODEL, base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(HTTPConnectionError) as info:
        generate(config, port)
    assert_submit_error(info.value)
    assert not info.value.job_may_exist and info.value.retryable
    attempts = info.value.execution_metadata.attempts
    assert [a.error_type for a in attempts] == ["HTTPConnectionError"] * 3
    assert fal.requests == []  # the config's base_url was used, not the fake's


def test_connection_reset_at_submit_is_not_resubmitted(fal):
    # The request was sent before the reset: the provider may have created the job.
    fal.queue(FalJob(submit_failures=[Failure.connection_reset()]))
    with pytest.raises(HTTPConnectionError) as info:
        fal_call(fal)
    assert_submit_error(info.value)
    assert info.value.job_may_exist
    assert fal.submit_attempts == 1


def test_connection_reset_mid_poll_is_survived(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"],
                     poll_failures={2: Failure.connection_reset(), 3: Failure.connection_reset()}))
    assert fal_call(fal).video
    assert fal.submit_attempts == 1 and fal.submit_count() == 1
    assert fal.status_polls(fal.submits[0].request_id) == 6


# -- slow responses -------------------------------------------------------------------------------


def test_poll_slower_than_request_timeout_is_survived(fal, request_timeout):
    fal.queue(FalJob(poll_failures={1: Failure.timeout(1.0)}))
    started = time.monotonic()
    assert fal_call(fal).video
    assert time.monotonic() - started < 1.0  # the slow poll was abandoned, not waited out
    assert fal.submit_attempts == 1 and fal.submit_count() == 1


def test_submit_slower_than_request_timeout_is_timeout_not_resubmitted(fal, request_timeout):
    fal.queue(FalJob(submit_failures=[Failure.timeout(1.0)]))
    with pytest.raises(TimeoutError) as info:
        fal_call(fal)
    assert_submit_error(info.value)
    assert info.value.job_may_exist  # the request was sent: a job may exist
    assert info.value.timeout_seconds == pytest.approx(request_timeout)
    assert fal.submit_attempts == 1


# -- unreadable bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(("failure", "error_class", "status"), [
    (Failure.malformed_json(200), HTTPError, 200),
    (Failure.truncated(200, json={"request_id": "x" * 64, "status": "IN_QUEUE"}), HTTPConnectionError, None),
    (Failure.html(502), HTTPError, 502),
], ids=["malformed-json", "truncated", "html-502"])
def test_unreadable_submit_response_is_not_resubmitted(fal, failure, error_class, status):
    fal.queue(FalJob(submit_failures=[failure]))
    with pytest.raises(error_class) as info:
        fal_call(fal)
    assert type(info.value) is error_class
    assert_submit_error(info.value)
    assert getattr(info.value, "status_code", None) == status
    assert fal.submit_attempts == 1


def test_html_error_page_message_is_readable(fal):
    fal.queue(FalJob(submit_failures=[Failure.html(502)]))
    with pytest.raises(HTTPError, match="502 Bad Gateway") as info:
        fal_call(fal)
    assert info.value.raw_response["status_code"] == 502


def test_2xx_submit_with_unreadable_body_says_the_job_may_exist(fal):
    fal.queue(FalJob(submit_failures=[Failure.malformed_json(200)]))
    with pytest.raises(HTTPError) as info:
        fal_call(fal)
    assert info.value.job_may_exist


@pytest.mark.parametrize("failure", [Failure.malformed_json(202), Failure.truncated(202), Failure.html(502)],
                         ids=["malformed-json", "truncated", "html-502"])
def test_unreadable_poll_response_is_survived(fal, failure):
    fal.queue(FalJob(poll_failures={1: failure, 2: failure}))
    assert fal_call(fal).video
    assert fal.submit_attempts == 1 and fal.submit_count() == 1


@pytest.mark.parametrize("failure", [Failure.malformed_json(200), Failure.truncated(200), Failure.html(502)],
                         ids=["malformed-json", "truncated", "html-502"])
def test_unreadable_result_response_is_retried(fal, failure):
    fal.queue(FalJob(result_failures=[failure]))
    assert fal_call(fal).video
    assert fal.jobs[fal.submits[0].request_id].result_attempts == 2
    assert fal.submit_attempts == 1


# -- statuses and failed jobs ---------------------------------------------------------------------


def test_unknown_status_is_processing_and_the_job_completes(fal, caplog):
    fal.queue(FalJob(statuses=["IN_QUEUE", "WARMING_UP", "WARMING_UP", "IN_PROGRESS", "COMPLETED"]))
    assert fal_call(fal).video
    assert "unknown status 'WARMING_UP'" in caplog.text
    assert fal.submit_attempts == 1 and fal.cancels == []


def test_completed_with_error_is_generation_failed(fal):
    fal.queue(FalJob.completed_with_error("Runner disconnected"))
    with pytest.raises(GenerationFailedError, match="Runner disconnected") as info:
        fal_call(fal)
    assert_job_error(info.value, fal)
    assert fal.submit_attempts == 1 and fal.submit_count() == 1
    assert fal.cancels == []  # the provider said it is finished


def test_moderation_at_submit_is_content_moderation_error(fal):
    detail = {"loc": ["body", "prompt"], "msg": "flagged by a content checker", "type": "content_policy_violation"}
    fal.queue(FalJob(submit_failures=[Failure(status=422, json={"detail": [detail]})]))
    with pytest.raises(ContentModerationError, match="flagged by a content checker") as info:
        fal_call(fal)
    assert_submit_error(info.value)
    assert not info.value.retryable and not info.value.job_may_exist
    assert fal.submit_attempts == 1 and fal.submit_count() == 0


def test_moderation_at_result_is_content_moderation_error(fal):
    fal.queue(FalJob.moderated())
    with pytest.raises(ContentModerationError) as info:
        fal_call(fal)
    assert_job_error(info.value, fal)
    assert not info.value.retryable
    assert fal.submit_attempts == 1 and fal.cancels == []


def test_result_404_is_http_error_with_the_job(fal):
    fal.queue(FalJob(result_status=404, result_body={"detail": "Request not found"}))
    with pytest.raises(HTTPError) as info:
        fal_call(fal)
    assert info.value.status_code == 404
    assert_job_error(info.value, fal)
    assert fal.submit_attempts == 1 and fal.jobs[fal.submits[0].request_id].result_attempts == 1


# -- limits ---------------------------------------------------------------------------------------


def test_deadline_raises_timeout_and_cancels_the_job(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))
    with pytest.raises(TimeoutError) as info:
        fal_call(fal, timeout=0.3)
    assert_job_error(info.value, fal)
    assert info.value.timeout_seconds == 0.3
    job_id = fal.submits[0].request_id
    assert fal.cancels == [job_id] and cancel_requests(fal, job_id) == 1
    assert fal.submit_attempts == 1


def test_max_poll_attempts_raises_timeout_and_cancels_the_job(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))
    with pytest.raises(TimeoutError, match="3 polls") as info:
        fal_call(fal, max_poll_attempts=3)
    assert_job_error(info.value, fal)
    job_id = fal.submits[0].request_id
    assert fal.status_polls(job_id) == 3
    assert fal.cancels == [job_id]
    assert fal.submit_attempts == 1


def test_max_poll_attempts_sends_one_cancel(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))
    with pytest.raises(TimeoutError):
        fal_call(fal, max_poll_attempts=3)
    assert cancel_requests(fal, fal.submits[0].request_id) == 1


# -- the same faults against the Replicate fake -------------------------------------------------------

REPLICATE_MODEL = "google/veo-3.1"


def replicate_call(fake: FakeReplicate, **overrides: Any) -> Any:
    values: dict[str, Any] = {"provider": "replicate", "model": REPLICATE_MODEL, "api_key": REPLICATE_KEY,
                              "base_url": fake.base_url, "poll_interval": 0.005, "timeout": 20}
    values.update(overrides)
    return generate(VideoGenerationConfig(**values), port_of(fake))


def test_replicate_create_429_with_retry_after_then_accepted(replicate):
    replicate.queue(ReplicateJob(submit_failures=[throttled(FAST_429)]))
    response = replicate_call(replicate)
    assert response.request_id == replicate.creates[0].prediction_id
    assert replicate.create_attempts == 2 and replicate.create_count() == 1


def test_replicate_e005_failure_is_content_moderation_error(replicate):
    replicate.queue(ReplicateJob.moderated())
    with pytest.raises(ContentModerationError, match="E005") as info:
        replicate_call(replicate)
    assert (info.value.provider, info.value.model) == ("replicate", REPLICATE_MODEL)
    assert info.value.request_id == replicate.creates[0].prediction_id
    assert replicate.create_attempts == 1 and replicate.cancels == []


def test_replicate_failed_prediction_is_generation_failed(replicate):
    replicate.queue(ReplicateJob.failed("CUDA out of memory (E1001)"))
    with pytest.raises(GenerationFailedError, match="E1001") as info:
        replicate_call(replicate)
    assert info.value.request_id == replicate.creates[0].prediction_id
    assert replicate.create_attempts == 1


def test_replicate_poll_faults_are_survived(replicate):
    # 5xx, an HTML proxy page, a reset and malformed JSON, each between successful polls.
    replicate.queue(ReplicateJob(
        statuses=["starting", "processing", "processing", "processing", "processing", "succeeded"],
        poll_failures={1: Failure.server_error(500), 3: Failure.server_error(503), 5: Failure.html(502),
                       7: Failure.connection_reset(), 9: Failure.malformed_json()}))
    assert replicate_call(replicate).video
    assert replicate.polls(replicate.creates[0].prediction_id) == 11
    assert replicate.create_attempts == 1 and replicate.create_count() == 1


def test_replicate_create_500_is_not_resubmitted(replicate):
    replicate.queue(ReplicateJob(submit_failures=[Failure.server_error(500)]))
    with pytest.raises(HTTPError) as info:
        replicate_call(replicate)
    assert info.value.status_code == 500 and info.value.job_may_exist
    assert replicate.create_attempts == 1


def test_replicate_deadline_sends_the_cancel_post(replicate):
    replicate.queue(ReplicateJob(statuses=["starting"]))
    with pytest.raises(TimeoutError) as info:
        replicate_call(replicate, timeout=0.3)
    prediction_id = replicate.creates[0].prediction_id
    assert info.value.request_id == prediction_id and info.value.job_may_exist
    assert replicate.cancels == [prediction_id]
    cancel_posts = [r for r in replicate.requests
                    if r.method == "POST" and r.path == f"/v1/predictions/{prediction_id}/cancel"]
    assert len(cancel_posts) == 1
    assert replicate.create_attempts == 1
