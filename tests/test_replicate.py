"""Replicate end to end: the YAML spec, the generic engine and the public API against the loopback
fake Replicate server (real HTTP), sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tarash_router import (
    AuthenticationError, ContentModerationError, GenerationFailedError, RateLimitError, TimeoutError,
    ValidationError, generate_image, generate_image_async, generate_video, generate_video_async, render_request,
)
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, ImageGenerationUpdate, VideoGenerationConfig,
    VideoGenerationRequest, VideoGenerationUpdate,
)
from tarash_router.testing._server import Failure
from tarash_router.testing.replicate import FakeReplicate, ReplicateJob, delivery_url, invalid_input, throttled

API_KEY = "r8_test_token_51c2"
VERSION = "daad218feb714b03e2a1ac445986aebb9d05243cd00da2af17be2e4049f48f69"
NASTY_PROMPT = 'She said "hi" \\ back\nline two\ttab 🐱🎹 {{ 7*7 }} {% raw %} \u00e9\u4e2d'
START = "https://example.com/start.png"


@pytest.fixture(scope="module")
def replicate_server() -> Iterator[FakeReplicate]:
    with FakeReplicate(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def fake(replicate_server: FakeReplicate) -> FakeReplicate:
    replicate_server.clear()
    return replicate_server


def video_config(fake: FakeReplicate, model: str = "google/veo-3.1", **overrides: object) -> VideoGenerationConfig:
    values: dict = {"provider": "replicate", "model": model, "api_key": API_KEY, "base_url": fake.base_url,
                    "poll_interval": 0.005, "timeout": 20}
    values.update(overrides)
    return VideoGenerationConfig(**values)


def image_config(fake: FakeReplicate, model: str = "black-forest-labs/flux-2-pro",
                 **overrides: object) -> ImageGenerationConfig:
    values: dict = {"provider": "replicate", "model": model, "api_key": API_KEY, "base_url": fake.base_url,
                    "poll_interval": 0.005, "timeout": 20}
    values.update(overrides)
    return ImageGenerationConfig(**values)


def kling_request(**kwargs: object) -> VideoGenerationRequest:
    return VideoGenerationRequest(prompt="a cat surfing", image_list=[{"image": START, "type": "first_frame"}],
                                  **kwargs)


# -- dry run ------------------------------------------------------------------------------------


def test_render_official_model():
    config = VideoGenerationConfig(provider="replicate", model="google/veo-3.1", api_key=API_KEY)
    rendered = render_request(config, VideoGenerationRequest(prompt="a drummer", duration_seconds=8, seed=1))
    assert rendered["method"] == "POST"
    assert rendered["url"] == "https://api.replicate.com/v1/models/google/veo-3.1/predictions"
    assert rendered["json"] == {"input": {"prompt": "a drummer", "duration": 8, "seed": 1}}
    assert rendered["headers"]["Authorization"] == "Bearer ***"
    assert API_KEY not in json.dumps(rendered)
    assert "Prefer" not in rendered["headers"] and "Cancel-After" not in rendered["headers"]


def test_render_pinned_version():
    config = VideoGenerationConfig(provider="replicate", model=f"kwaivgi/kling-v2.1:{VERSION}")
    rendered = render_request(config, kling_request(duration_seconds=5))
    assert rendered["url"] == "https://api.replicate.com/v1/predictions"
    assert rendered["json"] == {"input": {"prompt": "a cat surfing", "start_image": START, "duration": 5},
                                "version": VERSION}
    assert rendered["headers"]["Authorization"] == "Bearer ***"


def test_render_opt_in_headers():
    config = VideoGenerationConfig(provider="replicate", model="google/veo-3.1", api_key=API_KEY,
                                   provider_config={"prefer_wait": 10, "cancel_after": "5m"})
    headers = render_request(config, VideoGenerationRequest(prompt="x"))["headers"]
    assert headers["Prefer"] == "wait=10" and headers["Cancel-After"] == "5m"


def test_render_image_model_and_validation_before_any_request(fake):
    rendered = render_request(image_config(fake), ImageGenerationRequest(prompt="a lighthouse", size="1440x816"))
    assert rendered["url"] == f"{fake.base_url}/v1/models/black-forest-labs/flux-2-pro/predictions"
    assert rendered["json"]["input"] == {"prompt": "a lighthouse", "aspect_ratio": "custom", "width": 1440,
                                         "height": 816}
    with pytest.raises(ValidationError, match="allowed: 5, 10") as info:
        generate_video(video_config(fake, "kwaivgi/kling-v2.1"), kling_request(duration_seconds=8))
    assert (info.value.provider, info.value.model) == ("replicate", "kwaivgi/kling-v2.1")
    assert fake.requests == []


# -- video end to end ---------------------------------------------------------------------------


def test_sync_video_official_model_with_progress_and_logs(fake):
    fake.queue(ReplicateJob(statuses=["starting", "processing", "processing", "succeeded"]))
    updates: list[VideoGenerationUpdate] = []
    response = generate_video(video_config(fake), VideoGenerationRequest(prompt=NASTY_PROMPT, duration_seconds=8),
                              on_progress=updates.append)

    create = fake.creates[0]
    assert (create.kind, create.model) == ("model", "google/veo-3.1")
    assert create.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "prefer" not in create.headers
    assert json.loads(create.body) == {"input": {"prompt": NASTY_PROMPT, "duration": 8}}
    pid = create.prediction_id
    assert response.request_id == pid
    assert response.video == delivery_url(pid) and response.content_type == "video/mp4"
    assert (response.provider, response.model) == ("replicate", "google/veo-3.1")
    assert response.raw_response["status"] == "succeeded" and response.raw_response["id"] == pid

    statuses = [u.status for u in updates]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert statuses.count("processing") == 2
    assert updates[-1].result == response.model_copy(update={"execution_metadata": None})
    assert all(u.request_id == pid and u.provider == "replicate" for u in updates)
    # Replicate's logs are one growing string; the raw poll payload carries it unchanged.
    logs = [u.update["logs"] for u in updates if u.status == "processing"]
    assert logs[0].startswith("Using seed: 42") and logs[1].startswith(logs[0]) and "%|" in logs[1]
    assert fake.create_count() == 1 and fake.polls(pid) == 4


def test_sync_video_pinned_version(fake):
    fake.queue(ReplicateJob(statuses=["processing", "succeeded"]))
    response = generate_video(video_config(fake, f"kwaivgi/kling-v2.1:{VERSION}"),
                              kling_request(duration_seconds=10, resolution="1080p"))
    create = fake.creates[0]
    assert (create.kind, create.version) == ("version", VERSION)
    assert fake.requests[0].path == "/v1/predictions"
    assert json.loads(create.body) == {
        "input": {"prompt": "a cat surfing", "start_image": START, "duration": 10, "mode": "pro"},
        "version": VERSION}
    assert response.video == delivery_url(create.prediction_id)
    assert response.model == f"kwaivgi/kling-v2.1:{VERSION}"


@pytest.mark.parametrize(("output", "video", "content_type"), [
    ("https://replicate.delivery/x/a.mp4", "https://replicate.delivery/x/a.mp4", "video/mp4"),
    (["https://replicate.delivery/x/b.webm"], "https://replicate.delivery/x/b.webm", "video/webm"),
    ({"video": "https://replicate.delivery/x/c.mp4", "seed": 3}, "https://replicate.delivery/x/c.mp4", "video/mp4"),
])
async def test_async_video_output_shapes(fake, output, video, content_type):
    seen: list[str] = []

    async def on_progress(update: VideoGenerationUpdate) -> None:
        await asyncio.sleep(0)
        seen.append(update.status)

    fake.queue(ReplicateJob(output=output))
    response = await generate_video_async(video_config(fake, "minimax/hailuo-02"),
                                          VideoGenerationRequest(prompt="a wave", duration_seconds=6),
                                          on_progress=on_progress)
    assert (response.video, response.content_type) == (video, content_type)
    assert response.raw_response["output"] == output
    assert seen[0] == "queued" and seen[-1] == "completed" and "processing" in seen
    assert fake.create_count() == 1


def test_bytes_image_becomes_a_data_url(fake):
    request = VideoGenerationRequest(prompt="x", image_list=[
        {"image": {"content": b"\x89PNG", "content_type": "image/png"}, "type": "first_frame"}])
    generate_video(video_config(fake, "kwaivgi/kling-v2.1"), request)
    assert fake.creates[0].json["input"]["start_image"] == "data:image/png;base64,iVBORw=="


def test_key_from_environment(monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_from_env")
    with FakeReplicate(api_key="r8_from_env") as fake:
        generate_video(video_config(fake, api_key=None), VideoGenerationRequest(prompt="x"))
        assert fake.creates[0].headers["Authorization"] == "Bearer r8_from_env"


def test_missing_key_fails_before_any_request(fake, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    with pytest.raises(AuthenticationError, match="REPLICATE_API_TOKEN"):
        generate_video(video_config(fake, api_key=None), VideoGenerationRequest(prompt="x"))
    assert fake.requests == []


# -- image end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize(("output", "images", "content_type"), [
    ("https://replicate.delivery/x/o.webp", ["https://replicate.delivery/x/o.webp"], "image/webp"),
    (["https://replicate.delivery/x/0.png", "https://replicate.delivery/x/1.png"],
     ["https://replicate.delivery/x/0.png", "https://replicate.delivery/x/1.png"], "image/png"),
    ({"images": ["https://replicate.delivery/x/i.jpg"]}, ["https://replicate.delivery/x/i.jpg"], "image/jpeg"),
])
def test_sync_image_output_shapes(fake, output, images, content_type):
    fake.queue(ReplicateJob(output=output))
    updates: list[ImageGenerationUpdate] = []
    response = generate_image(image_config(fake, "stability-ai/sdxl"),
                              ImageGenerationRequest(prompt="a glass teapot", n=len(images)),
                              on_progress=updates.append)
    assert (response.images, response.content_type) == (images, content_type)
    assert response.request_id == fake.creates[0].prediction_id
    assert fake.creates[0].json == {"input": {"prompt": "a glass teapot", "num_outputs": len(images)}}
    assert next(u.status for u in updates) == "queued" and updates[-1].status == "completed"


async def test_async_image_with_reference_images(fake):
    fake.queue(ReplicateJob.images(1, ext="webp", as_list=False))
    request = ImageGenerationRequest(prompt="the cat wearing the hat", seed=4, image_list=[
        {"image": "https://example.com/cat.png", "type": "reference"},
        {"image": "https://example.com/hat.png", "type": "reference"}], extra_params={"output_format": "webp"})
    response = await generate_image_async(image_config(fake), request)
    create = fake.creates[0]
    assert create.model == "black-forest-labs/flux-2-pro"
    assert create.json["input"] == {"prompt": "the cat wearing the hat", "seed": 4, "output_format": "webp",
                                    "input_images": ["https://example.com/cat.png", "https://example.com/hat.png"]}
    assert response.images == [delivery_url(create.prediction_id, "out-0.webp")]
    assert response.content_type == "image/webp"


# -- failures -----------------------------------------------------------------------------------


def test_e005_is_content_moderation(fake):
    fake.queue(ReplicateJob.moderated())
    with pytest.raises(ContentModerationError) as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    exc = info.value
    assert "(E005)" in exc.message
    assert (exc.provider, exc.model, exc.request_id) == ("replicate", "google/veo-3.1", fake.creates[0].prediction_id)
    assert not exc.retryable and exc.raw_response["status"] == "failed"
    assert fake.create_count() == 1


async def test_e005_async_image(fake):
    fake.queue(ReplicateJob.moderated(statuses=["failed"]))
    with pytest.raises(ContentModerationError):
        await generate_image_async(image_config(fake), ImageGenerationRequest(prompt="x"))


def test_other_failure_is_generation_failed(fake):
    fake.queue(ReplicateJob.failed("Prediction failed: CUDA out of memory (E1001)"))
    with pytest.raises(GenerationFailedError, match="E1001") as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    assert info.value.retryable and info.value.request_id == fake.creates[0].prediction_id


@pytest.mark.parametrize("status", ["canceled", "aborted"])
def test_canceled_or_aborted_by_replicate_is_generation_failed(fake, status):
    fake.queue(ReplicateJob(statuses=["starting", status]))
    with pytest.raises(GenerationFailedError, match=status):
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))


def test_succeeded_without_output_is_generation_failed(fake):
    fake.queue(ReplicateJob(statuses=[{"status": "succeeded", "output": None}]))
    with pytest.raises(GenerationFailedError, match="no video"):
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))


def test_422_invalid_fields_is_validation_error(fake):
    fake.queue(ReplicateJob(submit_failures=[invalid_input(("input.duration", "duration must be one of 5, 10"))]))
    with pytest.raises(ValidationError, match="duration must be one of 5, 10") as info:
        generate_video(video_config(fake, "some-owner/some-model"), VideoGenerationRequest(prompt="x"))
    exc = info.value
    assert (exc.provider, exc.model) == ("replicate", "some-owner/some-model")
    assert exc.raw_response["status_code"] == 422
    assert exc.raw_response["body"]["invalid_fields"][0]["field"] == "input.duration"
    assert not exc.retryable
    assert fake.create_attempts == 1 and fake.create_count() == 0


def test_wrong_token_is_authentication_error(fake):
    with pytest.raises(AuthenticationError) as info:
        generate_video(video_config(fake, api_key="r8_wrong"), VideoGenerationRequest(prompt="x"))
    assert info.value.status_code == 401 and not info.value.retryable
    assert "valid authentication token" in info.value.message
    assert fake.create_count() == 0


def test_429_at_create_is_retried_then_accepted(fake):
    fake.queue(ReplicateJob(submit_failures=[throttled(0.01)]))
    response = generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    assert fake.create_attempts == 2
    assert fake.create_count() == 1 and response.request_id == fake.creates[0].prediction_id


def test_429_exhausted_is_rate_limit_error(fake):
    fake.queue(ReplicateJob(submit_failures=[throttled(0.01)] * 5))
    with pytest.raises(RateLimitError, match="Request was throttled") as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    assert info.value.retry_after == pytest.approx(0.01)
    assert info.value.retryable and not info.value.job_may_exist
    assert fake.create_count() == 0


def test_5xx_while_polling_is_survived_without_a_second_create(fake):
    fake.queue(ReplicateJob(statuses=["starting", "processing", "succeeded"],
                            poll_failures={1: Failure.server_error(502), 2: Failure.html(503),
                                           4: Failure.connection_reset()}))
    response = generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    pid = fake.creates[0].prediction_id
    assert response.request_id == pid
    assert fake.create_attempts == 1 and fake.create_count() == 1
    assert fake.polls(pid) == 6


def test_deadline_cancels_the_prediction(fake):
    fake.queue(ReplicateJob(statuses=["starting"]))
    with pytest.raises(TimeoutError) as info:
        generate_video(video_config(fake, timeout=0.3, poll_interval=0.02), VideoGenerationRequest(prompt="x"))
    pid = fake.creates[0].prediction_id
    assert info.value.timeout_seconds == 0.3 and info.value.request_id == pid
    assert fake.cancels == [pid]
    cancel = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/cancel")]
    assert [r.path for r in cancel] == [f"/v1/predictions/{pid}/cancel"]
    assert cancel[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert fake.jobs[pid].status == "canceled"


async def test_caller_cancellation_cancels_the_prediction(fake):
    fake.queue(ReplicateJob(statuses=["processing"]))
    task = asyncio.create_task(generate_video_async(video_config(fake), VideoGenerationRequest(prompt="x")))
    while not fake.creates:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.cancels == [fake.creates[0].prediction_id]


# -- Prefer: wait (opt-in) ----------------------------------------------------------------------


def test_prefer_wait_finished_at_create_skips_polling(fake):
    updates: list[VideoGenerationUpdate] = []
    response = generate_video(video_config(fake, provider_config={"prefer_wait": 5}),
                              VideoGenerationRequest(prompt="x"), on_progress=updates.append)
    create = fake.creates[0]
    assert create.headers["Prefer"] == "wait=5"
    assert [r.method for r in fake.requests] == ["POST"]  # no GET: the create returned the result
    assert response.video == delivery_url(create.prediction_id)
    assert updates[-1].status == "completed" and updates[-1].result is not None


async def test_prefer_wait_not_finished_in_time_falls_back_to_polling(fake):
    fake.queue(ReplicateJob(statuses=["starting", "processing", "processing", "succeeded"], wait_steps=2))
    response = await generate_video_async(video_config(fake, provider_config={"prefer_wait": 1}),
                                          VideoGenerationRequest(prompt="x"))
    pid = fake.creates[0].prediction_id
    assert response.request_id == pid and fake.polls(pid) == 2 and fake.create_count() == 1


def test_prefer_wait_failed_at_create_still_raises_moderation(fake):
    fake.queue(ReplicateJob.moderated())
    with pytest.raises(ContentModerationError):
        generate_video(video_config(fake, provider_config={"prefer_wait": 5}), VideoGenerationRequest(prompt="x"))
    assert fake.create_count() == 1


def test_large_input_is_uploaded_to_replicate_files(fake):
    big = b"\x89PNG" + bytes(300_000)  # over the 256 KB data-URL recommendation
    request = VideoGenerationRequest(prompt="x", image_list=[
        {"image": {"content": big, "content_type": "image/png"}, "type": "first_frame"},
        {"image": {"content": b"\x89PNG-last", "content_type": "image/png"}, "type": "last_frame"}])
    generate_video(video_config(fake), request)
    (_name, content_type, stored), = fake.files.values()
    assert stored == big and content_type == "image/png"
    sent = fake.creates[0].json["input"]
    assert sent["image"].startswith(f"{fake.base_url}/v1/files/")
    assert sent["last_frame"].startswith("data:image/png;base64,")
    upload = next(r for r in fake.requests if r.path == "/v1/files")
    assert upload.headers["authorization"] == f"Bearer {API_KEY}"
    assert fake.create_count() == 1
