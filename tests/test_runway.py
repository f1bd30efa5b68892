"""Runway end to end through the public API against the loopback fake (real HTTP, real engine)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tarash_router import (
    AuthenticationError, ContentModerationError, GenerationFailedError, HTTPError, RateLimitError, TimeoutError,
    ValidationError, generate_image, generate_image_async, generate_video, generate_video_async, render_request,
)
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, ImageGenerationUpdate, VideoGenerationConfig,
    VideoGenerationRequest, VideoGenerationUpdate,
)
from tarash_router.testing.runway import (
    RUNWAY_VERSION, FakeRunway, RunwayJob, insufficient_credits, overloaded, rate_limited,
)

pytestmark = pytest.mark.usefixtures("retired_still_served")  # gen4_aleph, retired 2026-07-30

KEY = "key_" + "5e" * 64
CAT = "https://example.com/cat.jpg"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def runway(server: FakeRunway) -> FakeRunway:
    server.clear()
    return server


def video_config(runway: FakeRunway, model: str = "gen4_turbo", **overrides: object) -> VideoGenerationConfig:
    values: dict = {"provider": "runway", "model": model, "api_key": KEY, "base_url": runway.base_url,
                    "poll_interval": 0.005, "timeout": 20}
    return VideoGenerationConfig(**(values | overrides))


def image_config(runway: FakeRunway, model: str = "gen4_image", **overrides: object) -> ImageGenerationConfig:
    values: dict = {"provider": "runway", "model": model, "api_key": KEY, "base_url": runway.base_url,
                    "poll_interval": 0.005, "timeout": 20}
    return ImageGenerationConfig(**(values | overrides))


def i2v(prompt: str = "the cat jumps", **fields: object) -> VideoGenerationRequest:
    return VideoGenerationRequest(prompt=prompt, image_list=[{"image": CAT, "type": "first_frame"}], **fields)


# -- dry run ----------------------------------------------------------------------------------------


def test_render_shows_endpoint_version_header_camel_case_body_and_masked_key(runway):
    moderation = {"contentModeration": {"publicFigureThreshold": "low"}}
    request = i2v(aspect_ratio="21:9", duration_seconds=10, seed=42, extra_params=moderation)
    rendered = render_request(video_config(runway), request)
    assert rendered["method"] == "POST"
    assert rendered["url"] == f"{runway.base_url}/v1/image_to_video"
    assert rendered["headers"]["X-Runway-Version"] == "2024-11-06"
    assert rendered["headers"]["Authorization"] == "Bearer ***"
    assert KEY not in json.dumps(rendered)
    assert rendered["json"] == {"model": "gen4_turbo", "promptImage": CAT, "promptText": "the cat jumps",
                                "ratio": "1584:672", "duration": 10, "seed": 42,
                                "contentModeration": {"publicFigureThreshold": "low"}}
    assert runway.requests == []


@pytest.mark.parametrize(("model", "request_", "endpoint"), [
    ("gen4.5", VideoGenerationRequest(prompt="rain"), "text_to_video"),
    ("gen4.5", i2v(), "image_to_video"),
    ("veo3", VideoGenerationRequest(prompt="rain"), "text_to_video"),
    ("veo3.1_fast", i2v(), "image_to_video"),
    ("gen4_aleph", VideoGenerationRequest(prompt="snow", video="https://example.com/in.mp4"), "video_to_video"),
    ("gen4_image", ImageGenerationRequest(prompt="a hat"), "text_to_image"),
])
def test_render_picks_the_endpoint_from_model_and_request(runway, model, request_, endpoint):
    config = (image_config if isinstance(request_, ImageGenerationRequest) else video_config)(runway, model)
    rendered = render_request(config, request_)
    assert rendered["url"] == f"{runway.base_url}/v1/{endpoint}"
    assert rendered["json"]["model"] == model


def test_provider_config_pins_another_api_version(runway):
    config = video_config(runway, provider_config={"runway_version": "2025-09-01"})
    assert render_request(config, i2v())["headers"]["X-Runway-Version"] == "2025-09-01"


def test_unsupported_ratio_is_rejected_before_any_request(runway):
    with pytest.raises(ValidationError) as info:
        generate_video(video_config(runway, "veo3.1"), VideoGenerationRequest(prompt="x", aspect_ratio="1:1"))
    assert "allowed: 16:9, 9:16" in str(info.value)
    assert info.value.provider == "runway" and info.value.model == "veo3.1"
    assert runway.requests == []


# -- end to end -------------------------------------------------------------------------------------


def test_image_to_video_with_progress_percent_and_throttled_as_queued(runway):
    runway.queue(RunwayJob(statuses=["PENDING", "THROTTLED", {"status": "RUNNING", "progress": 0.25},
                                     {"status": "RUNNING", "progress": 0.753}, "SUCCEEDED"]))
    updates: list[VideoGenerationUpdate] = []
    image = {"content": b"\x89PNG fake", "content_type": "image/png"}
    request = VideoGenerationRequest(prompt='say "hi"\n🐱', aspect_ratio="9:16", duration_seconds=5,
                                     image_list=[{"image": image, "type": "first_frame"}])
    response = generate_video(video_config(runway), request, on_progress=updates.append)

    (created,) = runway.creates
    assert created.endpoint == "image_to_video"
    assert created.headers["Authorization"] == f"Bearer {KEY}"
    assert created.headers["X-Runway-Version"] == RUNWAY_VERSION
    assert json.loads(created.body) == {"model": "gen4_turbo", "promptImage": "data:image/png;base64,iVBORyBmYWtl",
                                        "promptText": 'say "hi"\n🐱', "ratio": "720:1280", "duration": 5}
    task = runway.tasks[created.task_id]
    assert response.request_id == created.task_id
    assert response.video == task.output[0]
    assert response.content_type == "video/mp4"
    assert response.provider == "runway" and response.model == "gen4_turbo"
    assert response.raw_response["status"] == "SUCCEEDED"

    by_raw = [(u.update.get("status"), u.status, u.progress_percent) for u in updates]
    assert by_raw == [(None, "queued", None), ("PENDING", "queued", None), ("THROTTLED", "queued", None),
                      ("RUNNING", "processing", 25), ("RUNNING", "processing", 75), ("SUCCEEDED", "completed", 100)]
    assert all(u.request_id == created.task_id for u in updates)
    # Every poll carried the auth and version headers too.
    polls = [r for r in runway.requests if r.method == "GET"]
    assert len(polls) == 5
    assert all(r.headers["X-Runway-Version"] == RUNWAY_VERSION and r.path == f"/v1/tasks/{created.task_id}"
               for r in polls)


async def test_text_to_video_async(runway):
    runway.queue(RunwayJob(statuses=["THROTTLED", "RUNNING", "SUCCEEDED"]))
    seen: list[tuple[str, int | None]] = []

    async def on_progress(update: VideoGenerationUpdate) -> None:
        seen.append((update.status, update.progress_percent))

    request = VideoGenerationRequest(prompt="a lighthouse", aspect_ratio="9:16", duration_seconds=4, seed=7)
    response = await generate_video_async(video_config(runway, "gen4.5"), request, on_progress=on_progress)
    (created,) = runway.creates
    assert created.endpoint == "text_to_video"
    assert created.json == {"model": "gen4.5", "promptText": "a lighthouse", "ratio": "720:1280", "duration": 4,
                            "seed": 7}
    assert response.video.endswith(".mp4?_jwt=fake")
    assert seen == [("queued", None), ("queued", None), ("processing", 0), ("completed", 100)]


def test_veo31_first_and_last_frame(runway):
    request = VideoGenerationRequest(prompt="surf", resolution="1080p", generate_audio=True, image_list=[
        {"image": CAT, "type": "first_frame"}, {"image": "https://example.com/end.jpg", "type": "last_frame"}])
    generate_video(video_config(runway, "veo3.1"), request)
    assert runway.creates[0].json["promptImage"] == [{"uri": CAT, "position": "first"},
                                                     {"uri": "https://example.com/end.jpg", "position": "last"}]
    assert runway.creates[0].json["ratio"] == "1920:1080"


def test_video_to_video(runway):
    request = VideoGenerationRequest(prompt="snow", video="https://example.com/in.mp4",
                                     image_list=[{"image": CAT, "type": "reference"}])
    response = generate_video(video_config(runway, "gen4_aleph"), request)
    assert runway.creates[0].endpoint == "video_to_video"
    assert runway.creates[0].json["references"] == [{"type": "image", "uri": CAT}]
    assert response.video


def test_text_to_image_sync(runway):
    runway.queue(RunwayJob(statuses=["PENDING", "RUNNING", "SUCCEEDED"],
                           output=["https://cdn.runway.test/a.png", "https://cdn.runway.test/b.png"]))
    updates: list[ImageGenerationUpdate] = []
    request = ImageGenerationRequest(prompt="@ref1 in a hat", size="720x960", seed=3,
                                     image_list=[{"image": CAT, "type": "reference"}])
    response = generate_image(image_config(runway), request, on_progress=updates.append)
    (created,) = runway.creates
    assert created.endpoint == "text_to_image"
    assert created.json == {"model": "gen4_image", "promptText": "@ref1 in a hat", "ratio": "720:960",
                            "referenceImages": [{"uri": CAT, "tag": "ref1"}], "seed": 3}
    assert response.images == ["https://cdn.runway.test/a.png", "https://cdn.runway.test/b.png"]
    assert response.request_id == created.task_id
    assert [u.status for u in updates] == ["queued", "queued", "processing", "completed"]


async def test_text_to_image_async(runway):
    request = ImageGenerationRequest(prompt="a hat", aspect_ratio="1:1")
    response = await generate_image_async(image_config(runway), request)
    assert runway.creates[0].json["ratio"] == "1080:1080"
    assert response.images[0].endswith(".png?_jwt=fake")


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["SAFETY.INPUT.TEXT", "SAFETY.OUTPUT.VIDEO", "INPUT_PREPROCESSING.SAFETY.TEXT"])
def test_safety_failure_is_content_moderation(runway, code):
    runway.queue(RunwayJob.moderated(code))
    with pytest.raises(ContentModerationError) as info:
        generate_video(video_config(runway), i2v())
    exc = info.value
    task_id = runway.creates[0].task_id
    assert (exc.provider, exc.model, exc.request_id) == ("runway", "gen4_turbo", task_id)
    assert "content moderation" in exc.message
    assert exc.raw_response["failureCode"] == code
    assert exc.retryable is False
    assert runway.create_count() == 1


async def test_other_failure_is_generation_failed(runway):
    runway.queue(RunwayJob.failed("An unexpected error occurred.", "INTERNAL.BAD_OUTPUT.CODE01"))
    with pytest.raises(GenerationFailedError) as info:
        await generate_video_async(video_config(runway, "gen4.5"), VideoGenerationRequest(prompt="x"))
    exc = info.value
    assert (exc.provider, exc.model, exc.request_id) == ("runway", "gen4.5", runway.creates[0].task_id)
    assert exc.message == "An unexpected error occurred."
    assert exc.raw_response["failureCode"] == "INTERNAL.BAD_OUTPUT.CODE01"
    assert runway.create_count() == 1


def test_cancelled_task_is_generation_failed(runway):
    runway.queue(RunwayJob(statuses=["PENDING", "CANCELLED"]))
    with pytest.raises(GenerationFailedError) as info:
        generate_image(image_config(runway), ImageGenerationRequest(prompt="x"))
    assert info.value.raw_response["status"] == "CANCELLED" and info.value.message == "CANCELLED"
    assert info.value.retryable is False


def test_rate_limited_create_is_retried_and_creates_one_task(runway):
    runway.queue(RunwayJob(create_failures=[rate_limited(0)]))
    response = generate_video(video_config(runway), i2v())
    assert runway.create_attempts == 2
    assert runway.create_count() == 1
    assert response.request_id == runway.creates[0].task_id


def test_rate_limit_that_never_clears_raises_rate_limit_error(runway):
    runway.queue(RunwayJob(create_failures=[rate_limited(0)] * 5))
    with pytest.raises(RateLimitError) as info:
        generate_video(video_config(runway), i2v())
    assert info.value.retry_after == 0
    assert info.value.provider == "runway"
    assert runway.create_count() == 0


def test_server_errors_while_polling_are_survived(runway):
    runway.queue(RunwayJob(statuses=["RUNNING", "SUCCEEDED"],
                           poll_failures={1: overloaded(502), 2: overloaded(503), 3: overloaded(500)}))
    response = generate_video(video_config(runway), i2v())
    assert response.video
    assert runway.create_count() == 1 and runway.create_attempts == 1
    assert runway.poll_count(response.request_id) == 5


def test_deadline_cancels_the_task_with_delete(runway):
    runway.queue(RunwayJob.never_finishing())
    with pytest.raises(TimeoutError) as info:
        generate_video(video_config(runway, timeout=0.3), i2v())
    task_id = runway.creates[0].task_id
    assert info.value.request_id == task_id
    assert runway.deletes == [task_id]
    (delete,) = [r for r in runway.requests if r.method == "DELETE"]
    assert delete.path == f"/v1/tasks/{task_id}"
    assert delete.headers["X-Runway-Version"] == RUNWAY_VERSION
    assert delete.headers["Authorization"] == f"Bearer {KEY}"
    assert runway.tasks[task_id].cancelled


def test_runway_validation_400_is_validation_error(runway):
    # contentModeration passes through extra_params unchecked, so Runway's own 400 reports a value it
    # does not take (no task is created).
    with pytest.raises(ValidationError) as info:
        generate_video(video_config(runway, "gen4.5"), VideoGenerationRequest(
            prompt="x", extra_params={"contentModeration": {"publicFigureThreshold": "high"}}))
    assert "publicFigureThreshold" in info.value.message and "HTTP 400" in info.value.message
    assert info.value.raw_response["body"]["error"] == "Validation of body failed"
    assert runway.create_count() == 0 and runway.create_attempts == 1


def test_out_of_credits_is_not_retried_but_lets_routing_fall_back(runway):
    runway.queue(RunwayJob(create_failures=[insufficient_credits()]))
    with pytest.raises(HTTPError) as info:
        generate_video(video_config(runway), i2v())
    assert "enough credits" in info.value.message
    assert info.value.retryable is True and info.value.status_code == 400
    assert runway.create_attempts == 1


def test_wrong_key_is_authentication_error(runway):
    with pytest.raises(AuthenticationError):
        generate_video(video_config(runway, api_key="key_wrong"), i2v())
    assert runway.create_count() == 0


def test_fake_requires_the_version_header_the_spec_sends():
    # A fake that wants another dated version rejects our default, which proves the header is sent
    # and checked; pinning that version through provider_config is then accepted.
    with FakeRunway(api_key=KEY, version="2099-01-01") as fake:
        with pytest.raises(ValidationError, match="X-Runway-Version"):
            generate_video(video_config(fake), i2v())
        assert fake.create_count() == 0 and fake.create_attempts == 1
        response = generate_video(video_config(fake, provider_config={"runway_version": "2099-01-01"}), i2v())
        assert response.video and fake.create_count() == 1


def test_key_comes_from_runwayml_api_secret(runway, monkeypatch):
    monkeypatch.setenv("RUNWAYML_API_SECRET", KEY)
    response = generate_video(video_config(runway, api_key=None), i2v())
    assert response.video
    assert runway.creates[0].headers["Authorization"] == f"Bearer {KEY}"
    monkeypatch.delenv("RUNWAYML_API_SECRET")
    with pytest.raises(AuthenticationError, match="RUNWAYML_API_SECRET"):
        generate_video(video_config(runway, api_key=None), i2v())
