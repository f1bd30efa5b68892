"""End to end through the public API against the loopback fake Fal server (real HTTP, real engine)."""

from __future__ import annotations

import asyncio
import json

import pytest

from conftest import API_KEY, image_config, video_config
from tarash_router import (
    AuthenticationError, ContentModerationError, GenerationFailedError, HTTPError, RateLimitError, TimeoutError,
    ValidationError, generate_image, generate_image_async, generate_video, generate_video_async,
)
from tarash_router.models import VideoGenerationRequest, VideoGenerationUpdate
from tarash_router.testing import Failure, FalJob

NASTY_PROMPT = 'She said "hi" \\ back\nline two\ttab 🐱🎹 {{ 7*7 }} {% raw %} \u00e9\u4e2d'


def test_sync_generation_reports_progress_and_result(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "COMPLETED"]))
    updates: list[VideoGenerationUpdate] = []
    response = generate_video(video_config(fal), VideoGenerationRequest(prompt="a cat", duration_seconds=8),
                              on_progress=updates.append)

    submit = fal.submits[0]
    assert response.request_id == submit.request_id
    assert response.video == f"https://v3.fal.media/files/fake/{submit.request_id}.mp4"
    assert response.content_type == "video/mp4"
    assert response.raw_response["video"]["url"] == response.video
    assert response.execution_metadata.total_attempts == 1
    assert response.execution_metadata.attempts[0].status == "success"
    statuses = [u.status for u in updates]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert "processing" in statuses
    queued_positions = [u.queue_position for u in updates if u.status == "queued"]
    assert all(isinstance(p, int) for p in queued_positions)
    assert queued_positions == sorted(queued_positions, reverse=True)
    assert updates[-1].result == response.model_copy(update={"execution_metadata": None})
    assert any(u.logs for u in updates if u.status == "processing")
    assert submit.headers["Authorization"] == f"Key {API_KEY}"
    assert submit.endpoint == "fal-ai/veo3/fast"


async def test_async_generation_with_async_callback(fal):
    seen: list[str] = []

    async def on_progress(update: VideoGenerationUpdate) -> None:
        await asyncio.sleep(0)
        seen.append(update.status)

    response = await generate_video_async(video_config(fal), VideoGenerationRequest(prompt="a dog"),
                                          on_progress=on_progress)
    assert response.video.endswith(".mp4")
    assert seen[0] == "queued" and seen[-1] == "completed"


def test_sync_api_awaits_async_callbacks(fal):
    seen: list[str] = []

    async def on_progress(update: VideoGenerationUpdate) -> None:
        seen.append(update.status)

    generate_video(video_config(fal), VideoGenerationRequest(prompt="x"), on_progress=on_progress)
    assert seen[-1] == "completed"


async def test_sync_api_inside_running_event_loop(fal):
    # A sync call from a coroutine (e.g. a notebook cell) must not fail with "loop already running".
    response = generate_video(video_config(fal), VideoGenerationRequest(prompt="inside a loop"))
    assert response.status == "completed"


def test_prompt_reaches_provider_byte_exact(fal):
    generate_video(video_config(fal), VideoGenerationRequest(prompt=NASTY_PROMPT))
    body = json.loads(fal.submits[0].body)
    assert body["prompt"] == NASTY_PROMPT
    assert body["prompt"].encode() == NASTY_PROMPT.encode()


def test_invalid_duration_rejected_before_any_request(fal):
    with pytest.raises(ValidationError) as info:
        generate_video(video_config(fal, model="fal-ai/veo3"), VideoGenerationRequest(prompt="x", duration_seconds=5))
    assert "4, 6, 8" in str(info.value)
    assert fal.requests == []
    assert info.value.execution_metadata.attempts[0].error_type == "ValidationError"


def test_image_role_the_model_does_not_use_is_an_error(fal):
    request = VideoGenerationRequest(prompt="x", image_list=[{"image": "https://x/cat.png", "type": "first_frame"}])
    with pytest.raises(ValidationError, match="no image input"):
        generate_video(video_config(fal, model="fal-ai/veo3"), request)
    assert fal.requests == []


@pytest.mark.usefixtures("polling")  # the faults are scripted on polls
def test_poll_connection_resets_are_retried_without_resubmitting(fal):
    fal.queue(FalJob(poll_failures={1: Failure.connection_reset(), 2: Failure.connection_reset()}))
    response = generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    assert response.video
    assert fal.submit_count() == 1
    assert fal.submit_attempts == 1


@pytest.mark.usefixtures("polling")  # the faults are scripted on polls
@pytest.mark.parametrize("failure", [Failure.server_error(502), Failure.html(503), Failure.malformed_json(202),
                                     Failure.rate_limited(0.01), Failure.truncated(202)])
def test_transient_poll_failures_are_survived(fal, failure):
    fal.queue(FalJob(poll_failures={1: failure}))
    assert generate_video(video_config(fal), VideoGenerationRequest(prompt="x")).video
    assert fal.submit_count() == 1


def test_submit_rate_limit_is_retried_because_no_job_was_created(fal):
    fal.queue(FalJob(submit_failures=[Failure.rate_limited(0.01)]))
    assert generate_video(video_config(fal), VideoGenerationRequest(prompt="x")).video
    assert fal.submit_attempts == 2
    assert fal.submit_count() == 1


def test_submit_rate_limit_exhausted_raises_rate_limit_error(fal):
    fal.queue(FalJob(submit_failures=[Failure.rate_limited(0.01)] * 5))
    with pytest.raises(RateLimitError) as info:
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    assert info.value.retry_after == pytest.approx(0.01)
    assert info.value.retryable and not info.value.job_may_exist
    assert fal.submit_count() == 0


def test_submit_500_is_not_resubmitted(fal):
    # The job may exist after a 500 at submit: sending it again could pay for two videos.
    fal.queue(FalJob(submit_failures=[Failure.server_error(500)]))
    with pytest.raises(HTTPError) as info:
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    assert info.value.status_code == 500 and info.value.job_may_exist
    assert fal.submit_attempts == 1


def test_moderation_at_result_is_content_moderation_error(fal):
    fal.queue(FalJob.moderated())
    with pytest.raises(ContentModerationError) as info:
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    assert not info.value.retryable
    assert info.value.raw_response["status_code"] == 422
    assert info.value.request_id == fal.submits[0].request_id


def test_completed_with_error_is_generation_failed(fal):
    fal.queue(FalJob.completed_with_error())
    with pytest.raises(GenerationFailedError, match="Runner disconnected"):
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    assert fal.submit_count() == 1


def test_deadline_cancels_the_remote_job(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))
    with pytest.raises(TimeoutError) as info:
        generate_video(video_config(fal, timeout=0.3, poll_interval=0.02), VideoGenerationRequest(prompt="x"))
    assert info.value.timeout_seconds == 0.3
    assert fal.cancels == [fal.submits[0].request_id]


@pytest.mark.usefixtures("polling")  # the faults are scripted on polls
def test_max_poll_attempts_stops_and_cancels(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))
    with pytest.raises(TimeoutError, match="3 polls"):
        generate_video(video_config(fal, max_poll_attempts=3), VideoGenerationRequest(prompt="x"))
    assert fal.status_polls(fal.submits[0].request_id) == 3
    assert fal.cancels == [fal.submits[0].request_id]


async def test_caller_cancellation_cancels_the_remote_job(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"]))
    task = asyncio.create_task(generate_video_async(video_config(fal), VideoGenerationRequest(prompt="x")))
    while not fal.submits:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fal.cancels == [fal.submits[0].request_id]


def test_wrong_key_is_authentication_error(fal_server):
    from tarash_router.testing import FakeFal

    with FakeFal(api_key="right") as strict:
        with pytest.raises(AuthenticationError) as info:
            generate_video(video_config(strict, api_key="wrong"), VideoGenerationRequest(prompt="x"))
    assert info.value.status_code == 401 and not info.value.retryable


def test_missing_key_fails_before_any_request(fal, monkeypatch):
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AuthenticationError, match="FAL_KEY"):
        generate_video(video_config(fal, api_key=None), VideoGenerationRequest(prompt="x"))
    assert fal.requests == []


def test_key_from_environment(fal, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "env-key-123")
    generate_video(video_config(fal, api_key=None), VideoGenerationRequest(prompt="x"))
    assert fal.submits[0].headers["Authorization"] == "Key env-key-123"


def test_bytes_image_becomes_data_uri(fal):
    request = VideoGenerationRequest(prompt="x", image_list=[
        {"image": {"content": b"\x89PNG", "content_type": "image/png"}, "type": "first_frame"}])
    generate_video(video_config(fal, model="fal-ai/veo3.1/fast/image-to-video"), request)
    assert json.loads(fal.submits[0].body)["image_url"] == "data:image/png;base64,iVBORw=="


def test_fallback_to_next_config_on_retryable_error(fal):
    fal.queue(FalJob.completed_with_error(), FalJob())
    config = video_config(fal, model="fal-ai/veo3", fallback_configs=[video_config(fal, model="fal-ai/veo3/fast")])
    response = generate_video(config, VideoGenerationRequest(prompt="x"))
    meta = response.execution_metadata
    assert meta.total_attempts == 2 and meta.successful_attempt == 2 and meta.fallback_triggered
    assert [a.status for a in meta.attempts] == ["failed", "success"]
    assert meta.attempts[0].error_type == "GenerationFailedError"
    assert [s.endpoint for s in fal.submits] == ["fal-ai/veo3", "fal-ai/veo3/fast"]


def test_non_retryable_error_stops_the_chain_and_keeps_metadata(fal):
    fal.queue(FalJob.moderated())
    config = video_config(fal, fallback_configs=[video_config(fal, model="fal-ai/veo3")])
    with pytest.raises(ContentModerationError) as info:
        generate_video(config, VideoGenerationRequest(prompt="x"))
    assert info.value.execution_metadata.total_attempts == 1
    assert fal.submit_count() == 1


def test_image_generation(fal):
    fal.queue(FalJob.images(2))
    response = generate_image(image_config(fal), __import__("tarash_router").ImageGenerationRequest(prompt="a", n=2))
    assert len(response.images) == 2 and all(u.startswith("https://") for u in response.images)
    assert response.content_type == "image/jpeg"
    assert json.loads(fal.submits[0].body)["num_images"] == 2


async def test_image_generation_async(fal):
    from tarash_router import ImageGenerationRequest

    fal.queue(FalJob.images(1))
    response = await generate_image_async(image_config(fal), ImageGenerationRequest(prompt="a"))
    assert len(response.images) == 1


def test_video_result_without_video_is_generation_failed(fal):
    fal.queue(FalJob(result={"images": []}))
    with pytest.raises(GenerationFailedError, match="no video"):
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))


async def test_two_hundred_concurrent_jobs_in_one_process(fal):
    config = video_config(fal, poll_interval=0.01)
    results = await asyncio.gather(*(
        generate_video_async(config, VideoGenerationRequest(prompt=f"job {i}")) for i in range(200)))
    assert len({r.request_id for r in results}) == 200
    assert fal.submit_count() == 200


@pytest.mark.usefixtures("polling")  # the faults are scripted on polls
def test_slow_poll_times_out_per_request_and_is_retried(fal, monkeypatch):
    from tarash_router.settings import get_settings

    monkeypatch.setenv("TARASH_REQUEST_TIMEOUT", "0.2")
    get_settings.cache_clear()
    try:
        fal.queue(FalJob(poll_failures={1: Failure.timeout(1.0)}))
        assert generate_video(video_config(fal), VideoGenerationRequest(prompt="x")).video
    finally:
        monkeypatch.delenv("TARASH_REQUEST_TIMEOUT")
        get_settings.cache_clear()
    assert fal.submit_count() == 1


def test_result_not_found_is_http_error_with_the_job_id(fal):
    fal.queue(FalJob(result_status=404, result_body={"detail": "Request not found"}))
    with pytest.raises(HTTPError) as info:
        generate_video(video_config(fal), VideoGenerationRequest(prompt="x"))
    assert info.value.status_code == 404 and info.value.request_id == fal.submits[0].request_id
    assert info.value.job_may_exist and fal.submit_count() == 1


def test_unknown_status_is_treated_as_processing(fal, caplog):
    fal.queue(FalJob(statuses=["IN_QUEUE", "WARMING_UP", "COMPLETED"]))
    assert generate_video(video_config(fal), VideoGenerationRequest(prompt="x")).video
    assert "unknown status 'WARMING_UP'" in caplog.text


def test_sync_call_from_a_sync_callback_fails_clearly_instead_of_deadlocking(fal):
    errors: list[BaseException] = []

    def on_progress(update: VideoGenerationUpdate) -> None:
        try:
            generate_video(video_config(fal), VideoGenerationRequest(prompt="nested"))
        except RuntimeError as exc:
            errors.append(exc)

    generate_video(video_config(fal), VideoGenerationRequest(prompt="outer"), on_progress=on_progress)
    assert errors and "would deadlock" in str(errors[0])


def test_large_bytes_go_to_fal_storage_and_are_sent_by_url(fal):
    big = bytes(range(256)) * 5000  # 1.28 MB: over the 1 MiB inline limit of the fal spec
    small = {"content": b"\x89PNG-small", "content_type": "image/png"}
    request = VideoGenerationRequest(prompt="x", image_list=[
        {"image": {"content": big, "content_type": "image/png"}, "type": "first_frame"},
        {"image": small, "type": "last_frame"}])
    config = video_config(fal, model="fal-ai/veo3.1/fast/first-last-frame-to-video",
                          provider_config={"storage_url": fal.base_url})
    generate_video(config, request)
    body = json.loads(fal.submits[0].body)
    assert body["first_frame_url"].startswith(f"{fal.base_url}/files/")
    assert body["last_frame_url"].startswith("data:image/png;base64,")  # small files stay inline
    (name, content_type, stored), = fal.uploads.values()
    assert stored == big and content_type == "image/png" and name.endswith(".png")
    initiate = next(r for r in fal.requests if r.path == "/storage/upload/initiate")
    put = next(r for r in fal.requests if r.method == "PUT" and r.path.startswith("/storage/put/"))
    assert initiate.query == {"storage_type": "fal-cdn-v3"} and initiate.headers["authorization"] == f"Key {API_KEY}"
    assert "authorization" not in put.headers  # the upload URL is pre-signed
    assert fal.submit_count() == 1


def test_upload_failure_is_an_error_before_any_job(fal):
    from tarash_router.testing import FakeFal

    with FakeFal(api_key="other") as storage:  # rejects our key at initiate
        request = VideoGenerationRequest(prompt="x", image_list=[
            {"image": {"content": b"0" * 2_000_000, "content_type": "image/png"}, "type": "first_frame"}])
        config = video_config(fal, model="fal-ai/veo3.1/fast/image-to-video",
                              provider_config={"storage_url": storage.base_url})
        with pytest.raises(AuthenticationError) as info:
            generate_video(config, request)
    assert not info.value.job_may_exist and fal.submit_attempts == 0


def test_dry_run_of_a_large_file_does_not_upload_or_inline_it(fal):
    from tarash_router import render_request

    request = VideoGenerationRequest(prompt="x", image_list=[
        {"image": {"content": b"0" * 2_000_000, "content_type": "image/png"}, "type": "first_frame"}])
    rendered = render_request(video_config(fal, model="fal-ai/veo3.1/fast/image-to-video"), request)
    assert rendered["json"]["image_url"] == "<2000000 bytes, uploaded to fal storage at send time>"
    assert fal.requests == []
