"""xAI end to end through the public API against the loopback fake (real HTTP, real engine)."""

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
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
    VideoGenerationUpdate,
)
from tarash_router.testing._server import Failure
from tarash_router.testing.xai import FakeXAI, XAIJob, rate_limited, xai_error

API_KEY = "xai-test-key-52b0"
NASTY_PROMPT = 'She said "hi" \\ back\nline two\ttab 🐱 {{ 7*7 }} {% raw %} \u00e9\u4e2d'


@pytest.fixture(scope="module")
def server() -> Iterator[FakeXAI]:
    with FakeXAI(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def xai(server: FakeXAI) -> FakeXAI:
    server.clear()
    return server


def video_config(fake: FakeXAI | None, **overrides: object) -> VideoGenerationConfig:
    values: dict = {"provider": "xai", "model": "grok-imagine-video", "api_key": API_KEY, "poll_interval": 0.005,
                    "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(overrides)
    return VideoGenerationConfig(**values)


def image_config(fake: FakeXAI | None, model: str = "grok-imagine-image", **overrides: object) -> ImageGenerationConfig:
    values: dict = {"provider": "xai", "model": model, "api_key": API_KEY, "poll_interval": 0.005, "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(overrides)
    return ImageGenerationConfig(**values)


# -- dry run ------------------------------------------------------------------------------------


def test_render_video_is_json_with_a_masked_key():
    rendered = render_request(
        video_config(None, api_key="xai-super-secret"),
        VideoGenerationRequest(prompt="a comet", duration_seconds=6, aspect_ratio="16:9", resolution="720p",
                               image_list=[{"image": "https://example.com/c.png", "type": "first_frame"}]))
    assert rendered["method"] == "POST"
    assert rendered["url"] == "https://api.x.ai/v1/videos/generations"
    assert rendered["json"] == {"model": "grok-imagine-video", "prompt": "a comet", "duration": 6,
                                "aspect_ratio": "16:9", "resolution": "720p",
                                "image": {"url": "https://example.com/c.png"}}
    assert rendered["headers"]["Authorization"] == "Bearer ***"
    assert "xai-super-secret" not in json.dumps(rendered)


def test_render_video_edit_and_image():
    edit = render_request(video_config(None), VideoGenerationRequest(prompt="night", video="https://x/a.mp4"))
    assert edit["url"] == "https://api.x.ai/v1/videos/edits"
    assert edit["json"] == {"model": "grok-imagine-video", "prompt": "night", "video": {"url": "https://x/a.mp4"}}
    image = render_request(image_config(None), ImageGenerationRequest(prompt="a fox", n=2, aspect_ratio="auto"))
    assert image["url"] == "https://api.x.ai/v1/images/generations"
    assert image["json"] == {"model": "grok-imagine-image", "prompt": "a fox", "n": 2, "aspect_ratio": "auto"}
    assert image["headers"]["Authorization"] == "Bearer ***"


# -- video --------------------------------------------------------------------------------------


def test_video_end_to_end_with_progress(xai):
    xai.queue(XAIJob(statuses=["pending", "pending", "pending", "done"]))
    updates: list[VideoGenerationUpdate] = []
    response = generate_video(video_config(xai),
                              VideoGenerationRequest(prompt=NASTY_PROMPT, duration_seconds=5, resolution="480p"),
                              on_progress=updates.append)
    submit = xai.submits[0]
    assert response.request_id == submit.request_id
    assert response.video == f"https://vidgen.x.ai/xai-vidgen-bucket/xai-video-{submit.request_id}.mp4"
    assert response.duration == 5 and response.provider == "xai"
    assert response.raw_response["status"] == "done"
    assert submit.endpoint == "videos/generations"
    assert submit.json == {"model": "grok-imagine-video", "prompt": NASTY_PROMPT, "duration": 5, "resolution": "480p"}
    assert submit.headers["authorization"] == f"Bearer {API_KEY}"
    assert submit.headers["content-type"] == "application/json"
    statuses = [u.status for u in updates]
    assert statuses[0] == "queued" and statuses[-1] == "completed" and "processing" in statuses
    percents = [u.progress_percent for u in updates if u.status == "processing"]
    assert percents == sorted(percents) and all(isinstance(p, int) for p in percents)
    assert xai.create_count() == 1 and xai.polls(submit.request_id) == 4


async def test_video_async_image_to_video_with_bytes(xai):
    request = VideoGenerationRequest(prompt="the comet breaks apart", image_list=[
        {"image": {"content": b"\x89PNG", "content_type": "image/png"}, "type": "first_frame"}])
    response = await generate_video_async(video_config(xai), request)
    assert response.video.endswith(".mp4")
    assert xai.submits[0].json["image"] == {"url": "data:image/png;base64,iVBORw=="}


def test_video_edit_goes_to_the_edits_endpoint(xai):
    response = generate_video(video_config(xai), VideoGenerationRequest(prompt="make it night",
                                                                        video="https://example.com/day.mp4"))
    assert response.video.endswith(".mp4")
    assert xai.submits[0].endpoint == "videos/edits"
    assert xai.submits[0].json["video"] == {"url": "https://example.com/day.mp4"}


def test_respect_moderation_false_is_content_moderation(xai):
    xai.queue(XAIJob.moderated())
    with pytest.raises(ContentModerationError) as info:
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x"))
    exc = info.value
    assert exc.request_id == xai.submits[0].request_id
    assert exc.provider == "xai" and exc.model == "grok-imagine-video" and not exc.retryable
    assert exc.raw_response["video"]["respect_moderation"] is False
    assert exc.message == "xAI withheld the video: video.respect_moderation is false"
    assert xai.create_count() == 1


def test_failed_job_flagged_by_moderation_is_content_moderation(xai):
    failed = {"status": "failed", "video": {"respect_moderation": False},
              "error": {"code": "content_moderation", "message": "The video was blocked by moderation."}}
    xai.queue(XAIJob(statuses=["pending", failed]))
    with pytest.raises(ContentModerationError, match="blocked by moderation") as info:
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x"))
    assert info.value.request_id == xai.submits[0].request_id and not info.value.retryable


def test_failed_job_is_generation_failed(xai):
    xai.queue(XAIJob.failed("GPU fell over"))
    with pytest.raises(GenerationFailedError, match="GPU fell over") as info:
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x"))
    assert info.value.request_id == xai.submits[0].request_id and info.value.raw_response["status"] == "failed"
    assert xai.create_count() == 1


def test_expired_job_is_generation_failed(xai):
    xai.queue(XAIJob.expired())
    with pytest.raises(GenerationFailedError, match="expired") as info:
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x"))
    assert info.value.request_id == xai.submits[0].request_id


def test_invalid_value_rejected_before_any_request(xai):
    with pytest.raises(ValidationError, match="maximum is 15"):
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x", duration_seconds=16))
    with pytest.raises(ValidationError, match="allowed: 480p, 720p"):
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x", resolution="1080p"))
    assert xai.requests == []


def test_xai_400_is_validation_error(xai):
    # An extra param overrides the mapped image with a shape xAI rejects.
    with pytest.raises(ValidationError) as info:
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x", extra_params={"image": "https://x/a.png"}))
    exc = info.value
    assert "HTTP 400" in exc.message and "image.url" in exc.message
    assert exc.provider == "xai" and exc.model == "grok-imagine-video" and not exc.retryable
    assert xai.create_count() == 0


def test_xai_422_is_validation_error(xai):
    xai.queue(XAIJob(submit_failures=[xai_error(422, "Failed to deserialize the JSON body: unknown variant")]))
    with pytest.raises(ValidationError, match="HTTP 422: Failed to deserialize"):
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x"))
    assert xai.submit_attempts == 1


def test_rate_limit_at_submit_is_retried_with_one_create(xai):
    xai.queue(XAIJob(submit_failures=[rate_limited(0.01)]))
    assert generate_video(video_config(xai), VideoGenerationRequest(prompt="x")).video
    assert xai.submit_attempts == 2 and xai.create_count() == 1


def test_rate_limit_exhausted_is_rate_limit_error(xai):
    xai.queue(XAIJob(submit_failures=[rate_limited(0.01)] * 5))
    with pytest.raises(RateLimitError) as info:
        generate_video(video_config(xai), VideoGenerationRequest(prompt="x"))
    assert info.value.retry_after == pytest.approx(0.01) and not info.value.job_may_exist
    assert xai.create_count() == 0


def test_server_errors_while_polling_are_survived_with_one_create(xai):
    xai.queue(XAIJob(statuses=["pending", "done"], poll_failures={
        1: xai_error(500, "internal"), 2: Failure.html(502), 3: xai_error(503, "unavailable"),
        4: Failure.connection_reset()}))
    response = generate_video(video_config(xai), VideoGenerationRequest(prompt="x"))
    assert response.video.endswith(".mp4")
    assert xai.create_count() == 1 and xai.submit_attempts == 1
    assert xai.polls(xai.submits[0].request_id) == 6


def test_empty_and_id_only_pending_bodies_are_survived(xai):
    # xAI may answer 202 with no body (counted as failed polls, retried) or with only the id.
    xai.queue(XAIJob(pending_body="empty"), XAIJob(pending_body="request_id"))
    assert generate_video(video_config(xai), VideoGenerationRequest(prompt="a")).video
    assert generate_video(video_config(xai), VideoGenerationRequest(prompt="b")).video
    assert xai.create_count() == 2


def test_deadline_raises_timeout_and_sends_no_cancel(xai):
    # No cancel endpoint is declared (none is documented): the job is left to xAI.
    xai.queue(XAIJob(statuses=["pending"]))
    with pytest.raises(TimeoutError) as info:
        generate_video(video_config(xai, timeout=0.3, poll_interval=0.02), VideoGenerationRequest(prompt="x"))
    request_id = xai.submits[0].request_id
    assert info.value.request_id == request_id and info.value.timeout_seconds == 0.3
    assert info.value.provider == "xai" and info.value.job_may_exist
    assert {(r.method, r.path) for r in xai.requests} == {("POST", "/v1/videos/generations"),
                                                         ("GET", f"/v1/videos/{request_id}")}
    assert xai.create_count() == 1


async def test_caller_cancellation_sends_no_cancel(xai):
    xai.queue(XAIJob(statuses=["pending"]))
    task = asyncio.create_task(generate_video_async(video_config(xai), VideoGenerationRequest(prompt="x")))
    while not xai.submits:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(r.method in ("POST", "GET") for r in xai.requests) and xai.create_count() == 1


def test_wrong_key_is_authentication_error(xai):
    with pytest.raises(AuthenticationError) as info:
        generate_video(video_config(xai, api_key="xai-wrong"), VideoGenerationRequest(prompt="x"))
    exc = info.value
    assert exc.status_code == 400 and "Incorrect API key" in exc.message and not exc.retryable
    assert xai.create_count() == 0


def test_missing_key_fails_before_any_request(xai, monkeypatch):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="XAI_API_KEY"):
        generate_video(video_config(xai, api_key=None), VideoGenerationRequest(prompt="x"))
    assert xai.requests == []


# -- images -------------------------------------------------------------------------------------


def test_images_end_to_end_as_urls(xai):
    response = generate_image(image_config(xai), ImageGenerationRequest(prompt="a fox", n=2, aspect_ratio="16:9",
                                                                        extra_params={"resolution": "2k"}))
    assert len(response.images) == 2 and all(u.startswith("https://imgen.x.ai/") for u in response.images)
    assert response.revised_prompt == "A detailed rendering of: a fox"
    assert response.content_type == "image/jpeg" and response.provider == "xai"
    assert xai.submits[0].json == {"model": "grok-imagine-image", "prompt": "a fox", "n": 2, "aspect_ratio": "16:9",
                                   "resolution": "2k"}
    assert xai.image_count() == 1 and xai.create_count() == 0


async def test_images_async_base64_become_data_uris(xai):
    response = await generate_image_async(
        image_config(xai, "grok-2-image"), ImageGenerationRequest(prompt="a robot", n=2,
                                                                  extra_params={"response_format": "b64_json"}))
    assert len(response.images) == 2
    assert all(i.startswith("data:image/jpeg;base64,/9j/") for i in response.images)
    assert xai.submits[0].json == {"model": "grok-2-image", "prompt": "a robot", "n": 2, "response_format": "b64_json"}


def test_image_400_is_validation_error(xai):
    with pytest.raises(ValidationError, match="HTTP 400: resolution must be 1k or 2k") as info:
        generate_image(image_config(xai), ImageGenerationRequest(prompt="x", extra_params={"resolution": "4k"}))
    assert info.value.provider == "xai" and info.value.model == "grok-imagine-image"


def test_image_rate_limit_is_retried_once(xai):
    xai.queue(XAIJob(submit_failures=[rate_limited(0.01)]))
    assert generate_image(image_config(xai), ImageGenerationRequest(prompt="x")).images
    assert xai.submit_attempts == 2 and xai.image_count() == 1


def test_image_moderation_flag_is_honoured(xai):
    xai.queue(XAIJob(images=[{"url": "https://imgen.x.ai/a.jpeg", "respect_moderation": False}]))
    with pytest.raises(ContentModerationError) as info:
        generate_image(image_config(xai), ImageGenerationRequest(prompt="x"))
    assert info.value.provider == "xai" and info.value.model == "grok-imagine-image"
