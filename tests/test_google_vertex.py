"""Vertex AI (provider `google-vertex`, handler google_vertex on google-genai) against the loopback fake."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tarash_router import (
    AuthenticationError, ContentModerationError, GenerationFailedError, RateLimitError, TimeoutError,
    ValidationError, generate_image, generate_image_async, generate_video, generate_video_async, render_request,
)
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
)
from tarash_router.testing._server import Failure
from tarash_router.testing.google import FAKE_MP4, FAKE_PNG, FakeGoogle, GoogleJob, google_error, rate_limited

pytestmark = [pytest.mark.filterwarnings("ignore:The generate_images method is deprecated"),
              pytest.mark.usefixtures("retired_still_served")]  # Imagen, Veo 2 and 3: retired in 2026

TOKEN = "ya29.vertex-test-token"
PC = {"project": "proj-7", "location": "us-central1", "access_token": TOKEN}
PREFIX = "/v1beta1/projects/proj-7/locations/us-central1/publishers/google/models"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGoogle]:
    with FakeGoogle(access_token=TOKEN) as fake:
        yield fake


@pytest.fixture
def google(server: FakeGoogle) -> FakeGoogle:
    server.clear()
    return server


def video_config(fake: FakeGoogle | None, model: str = "veo-3.1-generate-preview", **kw: object) -> VideoGenerationConfig:
    values: dict = {"provider": "google-vertex", "model": model, "provider_config": PC, "poll_interval": 0.005,
                    "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(kw)
    return VideoGenerationConfig(**values)


def image_config(fake: FakeGoogle | None, model: str = "imagen-4.0-generate-001", **kw: object) -> ImageGenerationConfig:
    values: dict = {"provider": "google-vertex", "model": model, "provider_config": PC, "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(kw)
    return ImageGenerationConfig(**values)


# -- dry run ------------------------------------------------------------------------------------


def test_render_is_the_sdk_request_without_network():
    rendered = render_request(video_config(None), VideoGenerationRequest(
        prompt="a fox", duration_seconds=8, seed=9, generate_audio=True,
        image_list=[{"image": "https://example.com/fox.png", "type": "first_frame"},
                    {"image": "gs://bucket/end.jpg", "type": "last_frame"}]))
    assert rendered["method"] == "POST"
    assert rendered["url"] == ("https://us-central1-aiplatform.googleapis.com/v1beta1/projects/proj-7/locations/"
                               "us-central1/publishers/google/models/veo-3.1-generate-preview:predictLongRunning")
    assert rendered["headers"]["authorization"] == "Bearer ***" and TOKEN not in json.dumps(rendered)
    assert rendered["json"] == {
        "instances": [{"prompt": "a fox",
                       "image": {"bytesBase64Encoded": "<bytes of https://example.com/fox.png, fetched at send time>",
                                 "mimeType": "image/png"},
                       "lastFrame": {"gcsUri": "gs://bucket/end.jpg", "mimeType": "image/jpeg"}}],
        "parameters": {"durationSeconds": 8, "generateAudio": True, "seed": 9}}


def test_render_images_and_express_mode():
    rendered = render_request(image_config(None, provider_config={}, api_key="AQ.secret"),
                              ImageGenerationRequest(prompt="a teapot", n=2))
    assert rendered["url"] == ("https://aiplatform.googleapis.com/v1beta1/publishers/google/models/"
                               "imagen-4.0-generate-001:predict")
    assert rendered["headers"]["x-goog-api-key"] == "***" and "AQ.secret" not in json.dumps(rendered)
    assert rendered["json"] == {"instances": [{"prompt": "a teapot"}],
                                "parameters": {"sampleCount": 2, "includeRaiReason": True}}


# -- video --------------------------------------------------------------------------------------


def test_video_bytes_end_to_end_with_progress(google):
    updates: list = []
    response = generate_video(video_config(google), VideoGenerationRequest(
        prompt="the door opens", duration_seconds=8, resolution="1080p", seed=42, generate_audio=False,
        image_list=[{"image": {"content": b"\x89PNG", "content_type": "image/png"}, "type": "first_frame"},
                    {"image": "gs://bucket/last.png", "type": "last_frame"}],
        extra_params={"person_generation": "allow_adult"}), on_progress=updates.append)
    submit = google.submits[0]
    assert submit.api == "vertex" and submit.path == f"{PREFIX}/veo-3.1-generate-preview:predictLongRunning"
    assert submit.headers["authorization"] == f"Bearer {TOKEN}"
    assert submit.json == {
        "instances": [{"prompt": "the door opens",
                       "image": {"bytesBase64Encoded": base64.b64encode(b"\x89PNG").decode(), "mimeType": "image/png"},
                       "lastFrame": {"gcsUri": "gs://bucket/last.png", "mimeType": "image/png"}}],
        "parameters": {"durationSeconds": 8, "seed": 42, "resolution": "1080p", "personGeneration": "allow_adult",
                       "generateAudio": False}}
    assert response.video == {"content": FAKE_MP4, "content_type": "video/mp4"}
    assert response.request_id == submit.operation and response.provider == "google-vertex"
    assert response.raw_response["done"] is True and response.raw_response["response"]["videos"][0]["mimeType"]
    polls = [r for r in google.requests if r.path.endswith(":fetchPredictOperation")]
    assert {r.json["operationName"] for r in polls} == {submit.operation} and len(polls) == 3
    assert [u.status for u in updates] == ["queued", "processing", "processing", "completed"]
    assert updates[-1].result.video == response.video and updates[-1].request_id == submit.operation
    assert google.create_count() == 1


async def test_video_async_gcs_uri_and_downloaded_https_image(google):
    url = google.add_asset("beach.jpg", b"\xff\xd8beach", "image/jpeg")
    updates: list = []
    response = await generate_video_async(video_config(google, model="veo-3.0-fast-generate-001"),
                                          VideoGenerationRequest(prompt="waves", image_list=[
                                              {"image": url, "type": "reference"}],
                                              extra_params={"output_gcs_uri": "gs://out/run1"}),
                                          on_progress=updates.append)
    assert isinstance(response.video, str) and response.video.startswith("gs://out/run1/")
    assert response.video.endswith("/sample_0.mp4") and response.content_type == "video/mp4"
    instance = google.submits[0].json["instances"][0]
    # The https URL went inline as bytes, not as a gcsUri (Vertex reads only gs:// URIs there:
    # https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation).
    assert instance["image"] == {"bytesBase64Encoded": base64.b64encode(b"\xff\xd8beach").decode(),
                                 "mimeType": "image/jpeg"}
    assert google.submits[0].json["parameters"]["storageUri"] == "gs://out/run1"
    assert updates[-1].status == "completed"


def test_rai_filtered_video_is_content_moderation(google):
    google.queue(GoogleJob.moderated(["Video filtered: sensitive content."]))
    with pytest.raises(ContentModerationError, match="sensitive content") as info:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    exc = info.value
    assert exc.request_id == google.submits[0].operation and exc.provider == "google-vertex"
    assert exc.model == "veo-3.1-generate-preview" and exc.job_may_exist and not exc.retryable
    assert exc.raw_response["response"]["raiMediaFilteredCount"] == 1


def test_failed_operation_is_generation_failed(google):
    google.queue(GoogleJob.failed("Internal error while generating the video."))
    with pytest.raises(GenerationFailedError, match="Internal error") as info:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert info.value.request_id == google.submits[0].operation and info.value.raw_response["error"]["code"] == 13


def test_rate_limit_at_submit_is_retried_with_one_operation(google):
    google.queue(GoogleJob(submit_failures=[rate_limited(0.01)]))
    response = generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert response.video and google.submit_attempts == 2 and google.create_count() == 1


def test_rate_limit_exhausted_is_rate_limit_error(google):
    google.queue(GoogleJob(submit_failures=[rate_limited(0.01)] * 5))
    with pytest.raises(RateLimitError) as info:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert info.value.retry_after == pytest.approx(0.01) and not info.value.job_may_exist
    assert google.create_count() == 0


def test_server_errors_while_polling_are_survived(google):
    google.queue(GoogleJob(statuses=["running", "done"], poll_failures={
        1: google_error(500, "internal"), 2: Failure.html(502), 3: google_error(503, "unavailable"),
        4: Failure.connection_reset()}))
    response = generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert response.video and google.create_count() == 1 and google.polls(google.submits[0].operation) == 6


def test_client_errors_are_mapped(google):
    # One script answers the three submits in turn (none of them is retried: none can be).
    google.queue(GoogleJob(submit_failures=[
        google_error(400, "Unsupported resolution for this model."),
        google_error(403, "Permission denied on resource project proj-7."),
        google_error(403, "The prompt contains words that violate the usage guidelines (safety).")]))
    with pytest.raises(ValidationError, match="HTTP 400: Unsupported resolution") as info:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert info.value.provider == "google-vertex" and info.value.raw_response["status_code"] == 400
    with pytest.raises(AuthenticationError, match="Permission denied") as auth:
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert auth.value.status_code == 403
    with pytest.raises(ContentModerationError, match="usage guidelines"):
        generate_video(video_config(google), VideoGenerationRequest(prompt="x"))
    assert google.create_count() == 0


def test_wrong_token_is_authentication_error(google):
    config = video_config(google, provider_config={**PC, "access_token": "expired"})
    with pytest.raises(AuthenticationError) as info:
        generate_video(config, VideoGenerationRequest(prompt="x"))
    assert info.value.status_code == 401 and TOKEN not in str(info.value)


def test_validation_before_any_request(google):
    with pytest.raises(ValidationError, match="only together with a first_frame"):
        generate_video(video_config(google), VideoGenerationRequest(
            prompt="x", image_list=[{"image": "gs://b/a.png", "type": "last_frame"}]))
    with pytest.raises(ValidationError, match="does not take fps_typo"):
        generate_video(video_config(google), VideoGenerationRequest(prompt="x", extra_params={"fps_typo": 24}))
    with pytest.raises(ValidationError, match="unknown provider_config keys"):
        generate_video(video_config(google, provider_config={**PC, "projcet": "x"}),
                       VideoGenerationRequest(prompt="x"))
    assert google.requests == []


def test_deadline_is_a_timeout_error(google):
    google.queue(GoogleJob(statuses=["running"]))
    with pytest.raises(TimeoutError) as info:
        generate_video(video_config(google, timeout=0.3, poll_interval=0.02), VideoGenerationRequest(prompt="x"))
    assert info.value.request_id == google.submits[0].operation and info.value.job_may_exist
    assert google.create_count() == 1


# -- images -------------------------------------------------------------------------------------


def test_images_return_data_uris(google):
    response = generate_image(image_config(google, model="imagen-3.0-generate-002"), ImageGenerationRequest(
        prompt="a teapot", n=2, aspect_ratio="1:1", negative_prompt="text", seed=7,
        extra_params={"add_watermark": False, "safety_filter_level": "block_only_high"}))
    png = "data:image/png;base64," + base64.b64encode(FAKE_PNG).decode()
    assert response.images == [png, png] and response.content_type == "image/png"
    submit = google.submits[0]
    assert submit.path == f"{PREFIX}/imagen-3.0-generate-002:predict"
    assert submit.json == {"instances": [{"prompt": "a teapot"}], "parameters": {
        "negativePrompt": "text", "sampleCount": 2, "aspectRatio": "1:1", "seed": 7,
        "safetySetting": "BLOCK_ONLY_HIGH", "includeRaiReason": True, "addWatermark": False}}  # the SDK upper-cases enums


async def test_images_async_with_progress_and_gcs_output(google):
    updates: list = []
    response = await generate_image_async(image_config(google), ImageGenerationRequest(
        prompt="x", extra_params={"output_gcs_uri": "gs://out/img"}), on_progress=updates.append)
    assert response.images[0].startswith("gs://out/img/") and [u.status for u in updates] == ["completed"]


def test_all_images_filtered_is_content_moderation(google):
    google.queue(GoogleJob(filtered=1))
    with pytest.raises(ContentModerationError, match="usage guidelines") as info:
        generate_image(image_config(google), ImageGenerationRequest(prompt="x"))
    assert info.value.raw_response["predictions"][0]["raiFilteredReason"]


# -- optional SDK -------------------------------------------------------------------------------


def test_missing_google_genai_names_the_extra(tmp_path: Path):
    script = textwrap.dedent("""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "google.genai" or name.startswith("google.genai."):
                    raise ImportError("blocked for the test")
                return None

        sys.meta_path.insert(0, Block())
        import tarash_router
        from tarash_router import generate_video
        from tarash_router.errors import MissingExtraError
        from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest

        config = VideoGenerationConfig(provider="google-vertex", model="veo-3.1-generate-preview",
                                       provider_config={"project": "p", "access_token": "t"},
                                       base_url="http://127.0.0.1:9")
        try:
            generate_video(config, VideoGenerationRequest(prompt="x"))
        except MissingExtraError as exc:
            print("MISSING:", exc.message)
        """)
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "MISSING:" in result.stdout and "tarash-router[google]" in result.stdout


def test_vertex_operation_is_journaled_and_resumable_without_a_second_submit(google, tmp_path):
    import asyncio as _asyncio

    from tarash_router import generate_video_async, resume
    from tarash_router.journal import open_journal, set_journal

    set_journal(open_journal(f"sqlite:///{tmp_path}/jobs.db"))
    try:
        google.queue(GoogleJob(statuses=["running"] * 30 + ["done"]))

        async def start_then_drop():
            task = _asyncio.create_task(generate_video_async(video_config(google), VideoGenerationRequest(prompt="x")))
            while not google.submits:
                await _asyncio.sleep(0.005)
            await _asyncio.sleep(0.05)
            return task

        _asyncio.new_event_loop().run_until_complete(start_then_drop())  # the "process" stops polling here
        name = next(iter(google.operations))
        # Credentials are never journaled: the access token is given again on resume.
        response = resume(name, provider_config={"access_token": TOKEN}, base_url=google.base_url)
        assert response.request_id == name and response.video
        assert sum(1 for s in google.submits if s.method == "predictLongRunning") == 1
    finally:
        set_journal(None)
