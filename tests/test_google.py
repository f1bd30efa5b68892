"""Gemini Developer API (provider `google`) end to end against the loopback fake: real HTTP, generic engine."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from tarash_router import (
    AuthenticationError, ContentModerationError, GenerationFailedError, ValidationError, generate_image,
    generate_image_async, generate_video, generate_video_async, render_request,
)
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
)
from tarash_router.testing._server import Failure
from tarash_router.testing.google import FAKE_MP4, FAKE_PNG, FakeGoogle, GoogleJob, google_error, rate_limited

pytestmark = pytest.mark.usefixtures("retired_still_served")  # Imagen and the Gemini image models: retired

API_KEY = "gemini-test-key-91c2"
NASTY_PROMPT = 'She said "hi" \\ back\nline two\ttab 🐱 {{ 7*7 }} \u00e9\u4e2d'
PNG_B64 = base64.b64encode(b"\x89PNG").decode()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGoogle]:
    with FakeGoogle(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def google(server: FakeGoogle) -> FakeGoogle:
    server.clear()
    return server


def video_config(fake: FakeGoogle | None, model: str = "veo-3.1-generate-preview", **kw: object) -> VideoGenerationConfig:
    values: dict = {"provider": "google", "model": model, "api_key": API_KEY, "poll_interval": 0.005, "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(kw)
    return VideoGenerationConfig(**values)


def image_config(fake: FakeGoogle | None, model: str = "imagen-4.0-generate-001", **kw: object) -> ImageGenerationConfig:
    values: dict = {"provider": "google", "model": model, "api_key": API_KEY, "poll_interval": 0.005, "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(kw)
    return ImageGenerationConfig(**values)


# -- dry run ------------------------------------------------------------------------------------


def test_render_video_masks_the_key_and_shows_the_envelope():
    rendered = render_request(video_config(None, api_key="AIza-secret"), VideoGenerationRequest(
        prompt="a cat", duration_seconds=6, aspect_ratio="9:16",
        image_list=[{"image": "https://example.com/cat.png", "type": "first_frame"}],
        extra_params={"personGeneration": "allow_adult"}))
    assert rendered["method"] == "POST"
    assert rendered["url"] == ("https://generativelanguage.googleapis.com/v1beta/models/"
                               "veo-3.1-generate-preview:predictLongRunning")
    assert rendered["headers"]["x-goog-api-key"] == "***" and "AIza-secret" not in json.dumps(rendered)
    assert rendered["json"] == {
        "instances": [{"prompt": "a cat", "image": "<bytes of https://example.com/cat.png, fetched at send time>"}],
        "parameters": {"aspectRatio": "9:16", "durationSeconds": 6, "personGeneration": "allow_adult"}}


def test_render_imagen_and_gemini_image():
    imagen = render_request(image_config(None), ImageGenerationRequest(prompt="a robin", n=2))
    assert imagen["url"].endswith("/v1beta/models/imagen-4.0-generate-001:predict")
    assert imagen["json"] == {"instances": [{"prompt": "a robin"}],
                              "parameters": {"sampleCount": 2, "includeRaiReason": True}}
    gemini = render_request(image_config(None, model="gemini-2.5-flash-image"),
                            ImageGenerationRequest(prompt="a robin", aspect_ratio="16:9"))
    assert gemini["url"].endswith("/v1beta/models/gemini-2.5-flash-image:generateContent")
    assert gemini["json"]["generationConfig"] == {"responseModalities": ["IMAGE"],
                                                  "imageConfig": {"aspectRatio": "16:9"}}


# -- video --------------------------------------------------------------------------------------


def test_video_end_to_end_with_progress(google):
    updates: list = []
    response = generate_video(video_config(google), VideoGenerationRequest(
        prompt=NASTY_PROMPT, duration_seconds=8, resolution="1080p", negative_prompt="blur",
        image_list=[{"image": {"content": b"\x89PNG", "content_type": "image/png"}, "type": "first_frame"}]),
        on_progress=updates.append)
    submit = google.submits[0]
    name = submit.operation
    assert name.startswith("models/veo-3.1-generate-preview/operations/")
    assert response.request_id == name and response.provider == "google"
    assert response.video.startswith(f"{google.base_url}/v1beta/files/") and response.content_type == "video/mp4"
    assert response.raw_response["done"] is True
    assert submit.headers["x-goog-api-key"] == API_KEY and "authorization" not in submit.headers
    assert submit.json == {
        "instances": [{"prompt": NASTY_PROMPT, "image": {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}}],
        "parameters": {"durationSeconds": 8, "resolution": "1080p", "negativePrompt": "blur"}}
    # The operation name is pasted into the path with its slashes unescaped.
    polls = [r for r in google.requests if r.method == "GET"]
    assert polls and {r.path for r in polls} == {f"/v1beta/{name}"}
    assert all(r.headers["x-goog-api-key"] == API_KEY for r in polls)
    assert [u.status for u in updates] == ["queued", "processing", "processing", "completed"]
    assert updates[-1].result.video == response.video and updates[-1].progress_percent == 100
    # The URI downloads with the same key.
    downloaded = httpx.get(response.video, headers={"x-goog-api-key": API_KEY}, follow_redirects=True)
    assert downloaded.content == FAKE_MP4
    assert google.create_count() == 1 and google.polls(name) == 3


async def test_video_async_downloads_https_images_and_sends_asset_references(google):
    first = google.add_asset("dress.png", b"\x89PNGdress", "image/png")
    second = google.add_asset("beach.jpg", b"\xff\xd8beach", "image/jpeg")
    updates: list = []
    response = await generate_video_async(video_config(google, model="veo-3.1-fast-generate-preview"),
                                          VideoGenerationRequest(prompt="a woman in this dress on this beach",
                                                                 image_list=[{"image": first, "type": "asset"},
                                                                             {"image": second, "type": "asset"}]),
                                          on_progress=updates.append)
    assert response.video.endswith(":download?alt=media")
    instance = google.submits[0].json["instances"][0]
    assert instance["referenceImages"] == [
        {"image": {"bytesBase64Encoded": base64.b64encode(b"\x89PNGdress").decode(), "mimeType": "image/png"},
         "referenceType": "ASSET"},
        {"image": {"bytesBase64Encoded": base64.b64encode(b"\xff\xd8beach").decode(), "mimeType": "image/jpeg"},
         "referenceType": "ASSET"}]
    assert updates[0].status == "queued" and updates[-1].status == "completed"


def test_encoded_sample_is_a_data_uri(google):
    google.queue(GoogleJob(statuses=["done"], video={"encodedVideo": "AAAAGGZ0eXA=", "encoding": "video/mp4"}))
    response = generate_video(video_config(google, model="veo-3.0-generate-001"), VideoGenerationRequest(prompt="x"))
    assert response.video == "data:video/mp4;base64,AAAAGGZ0eXA="


def test_rai_filtered_video_is_content_moderation(google):
    google.queue(GoogleJob.moderated(["The prompt could not be submitted: it violates the usage guidelines."]))
    with pytest.raises(ContentModerationError, match="usage guidelines") as info:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    exc = info.value
    assert exc.request_id == google.submits[0].operation and exc.provider == "google"
    assert exc.model == "veo-3.1-generate-preview" and not exc.retryable
    assert exc.raw_response["response"]["generateVideoResponse"]["raiMediaFilteredCount"] == 1
    assert google.create_count() == 1


def test_failed_operation_is_generation_failed(google):
    google.queue(GoogleJob.failed("Video generation failed due to an internal error."))
    with pytest.raises(GenerationFailedError, match="internal error") as info:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert info.value.request_id == google.submits[0].operation and info.value.raw_response["done"] is True
    assert google.create_count() == 1


def test_rate_limit_at_submit_is_retried_with_one_operation(google):
    google.queue(GoogleJob(submit_failures=[rate_limited(0.01)]))
    response = generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert response.video
    assert google.submit_attempts == 2 and google.create_count() == 1


def test_server_errors_while_polling_are_survived(google):
    google.queue(GoogleJob(statuses=["running", "done"], poll_failures={
        1: google_error(500, "internal"), 2: Failure.html(502), 3: google_error(503, "unavailable")}))
    response = generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert response.video
    assert google.create_count() == 1 and google.polls(google.submits[0].operation) == 5


def test_seed_is_rejected_before_any_request(google):
    with pytest.raises(ValidationError, match="does not support seed") as info:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x", seed=42))
    assert info.value.provider == "google" and info.value.model == "veo-3.1-generate-preview"
    with pytest.raises(ValidationError, match="allowed: 4, 6, 8"):
        generate_video(video_config(google), VideoGenerationRequest(prompt="x", duration_seconds=5))
    assert google.requests == []


def test_invalid_key_is_authentication_error(google):
    with pytest.raises(AuthenticationError, match="API key not valid") as info:
        generate_video(video_config(google, api_key="wrong"), VideoGenerationRequest(prompt="x"))
    assert info.value.status_code == 400 and not info.value.retryable and google.create_count() == 0


def test_google_400_is_validation_error(google):
    # An aspect ratio the spec allows for Veo but the fake refuses stands in for a model-specific 400.
    google.queue(GoogleJob(submit_failures=[google_error(400, "Request contains an invalid argument.")]))
    with pytest.raises(ValidationError, match="HTTP 400: Request contains an invalid argument") as info:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert not info.value.job_may_exist and google.create_count() == 0


# -- images -------------------------------------------------------------------------------------


def test_imagen_returns_n_data_uris(google):
    response = generate_image(image_config(google), ImageGenerationRequest(
        prompt="a robin", n=3, aspect_ratio="4:3", extra_params={"safetySetting": "block_only_high"}))
    png = "data:image/png;base64," + base64.b64encode(FAKE_PNG).decode()
    assert response.images == [png] * 3 and response.content_type == "image/png"
    submit = google.submits[0]
    assert submit.method == "predict" and submit.headers["x-goog-api-key"] == API_KEY
    assert submit.json == {"instances": [{"prompt": "a robin"}], "parameters": {
        "sampleCount": 3, "aspectRatio": "4:3", "includeRaiReason": True, "safetySetting": "block_only_high"}}


async def test_imagen_async_with_progress_and_partial_filtering(google):
    google.queue(GoogleJob(filtered=1))
    updates: list = []
    response = await generate_image_async(image_config(google), ImageGenerationRequest(prompt="x", n=2),
                                          on_progress=updates.append)
    assert len(response.images) == 1 and response.raw_response["predictions"][1]["raiFilteredReason"]
    assert [u.status for u in updates] == ["completed"] and updates[0].result.images == response.images


def test_imagen_all_filtered_is_content_moderation(google):
    google.queue(GoogleJob(filtered=1))
    with pytest.raises(ContentModerationError, match="usage guidelines"):
        generate_image(image_config(google), ImageGenerationRequest(prompt="x"))


def test_gemini_image_model(google):
    reference = google.add_asset("hat.png", b"\x89PNGhat")
    response = generate_image(image_config(google, model="gemini-2.5-flash-image"), ImageGenerationRequest(
        prompt="put this hat on a cat", aspect_ratio="1:1",
        image_list=[{"image": reference, "type": "reference"}]))
    assert response.images == ["data:image/png;base64," + base64.b64encode(FAKE_PNG).decode()]
    submit = google.submits[0]
    assert submit.method == "generateContent"
    assert submit.json["contents"][0]["parts"] == [
        {"text": "put this hat on a cat"},
        {"inlineData": {"mime_type": "image/png", "data": base64.b64encode(b"\x89PNGhat").decode()}}]
    google.queue(GoogleJob(prompt_feedback={"blockReason": "PROHIBITED_CONTENT"}))
    with pytest.raises(ContentModerationError, match="PROHIBITED_CONTENT"):
        generate_image(image_config(google, model="gemini-2.5-flash-image"), ImageGenerationRequest(prompt="x"))
