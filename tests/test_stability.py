"""Stability AI end to end through the public API against the loopback fake (real HTTP, real engine)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tarash_router import (
    AuthenticationError, ContentModerationError, HTTPError, ImageGenerationRequest, RateLimitError, ValidationError,
    generate_image, generate_image_async, render_request,
)
from tarash_router.models import ImageGenerationConfig
from tarash_router.testing._server import parse_multipart
from tarash_router.testing.stability import (
    IMAGE_BYTES, FakeStability, StabilityScript, rate_limited, stability_error,
)

API_KEY = "sk-stability-test-7c1e"
PNG_URI = "data:image/png;base64," + base64.b64encode(IMAGE_BYTES["png"]).decode()
NASTY_PROMPT = 'She said "hi" \\ back\nline two\ttab 🐱 {{ 7*7 }} {% raw %} \u00e9\u4e2d'


@pytest.fixture(scope="module")
def server() -> Iterator[FakeStability]:
    with FakeStability(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def stability(server: FakeStability) -> FakeStability:
    server.clear()
    return server


def config(fake: FakeStability | None, model: str = "stable-image-core", **overrides: object) -> ImageGenerationConfig:
    values: dict = {"provider": "stability", "model": model, "api_key": API_KEY, "poll_interval": 0.005,
                    "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(overrides)
    return ImageGenerationConfig(**values)


def sent_form(fake: FakeStability, index: int = 0) -> dict:
    generation = fake.generations[index]
    assert generation.headers["content-type"].startswith("multipart/form-data; boundary=")
    return generation.form


# -- dry run ------------------------------------------------------------------------------------


def test_render_is_a_multipart_form_with_json_accept_and_a_masked_key():
    rendered = render_request(
        config(None, "stable-image-ultra", api_key="sk-super-secret"),
        ImageGenerationRequest(prompt="a lighthouse", aspect_ratio="21:9", seed=42, style="cinematic",
                               negative_prompt="people", output_format="webp"))
    assert rendered["method"] == "POST"
    assert rendered["url"] == "https://api.stability.ai/v2beta/stable-image/generate/ultra"
    assert rendered["form"] == {"prompt": "a lighthouse", "negative_prompt": "people", "aspect_ratio": "21:9",
                                "seed": "42", "style_preset": "cinematic", "output_format": "webp"}
    assert "json" not in rendered and rendered["files"] == {}
    assert rendered["headers"]["Accept"] == "application/json"
    assert rendered["headers"]["Authorization"] == "Bearer ***"
    assert "sk-super-secret" not in json.dumps(rendered)


def test_render_sd3_sends_the_model_as_a_form_field(monkeypatch):
    monkeypatch.delenv("STABILITY_API_KEY", raising=False)
    rendered = render_request(config(None, "sd3.5-large-turbo", api_key=None), ImageGenerationRequest(prompt="koi"))
    assert rendered["url"] == "https://api.stability.ai/v2beta/stable-image/generate/sd3"
    assert rendered["form"] == {"prompt": "koi", "model": "sd3.5-large-turbo"}
    assert rendered["headers"]["Authorization"] == "Bearer ***"


# -- success, one per endpoint ------------------------------------------------------------------


@pytest.mark.parametrize(("model", "endpoint", "extra"), [
    ("stable-image-ultra", "ultra", {}),
    ("stable-image-core", "core", {}),
    ("sd3.5-large", "sd3", {"model": "sd3.5-large"}),
    ("sd3.5-medium", "sd3", {"model": "sd3.5-medium"}),
])
def test_each_endpoint_end_to_end(stability, model, endpoint, extra):
    response = generate_image(config(stability, model),
                              ImageGenerationRequest(prompt="a lighthouse", aspect_ratio="9:16", seed=5))
    assert response.images == [PNG_URI]
    assert response.content_type == "image/png"
    assert response.provider == "stability" and response.model == model
    assert response.raw_response == {"image": PNG_URI.split(",", 1)[1], "finish_reason": "SUCCESS", "seed": 5}
    assert response.request_id  # synthetic: the JSON answer carries no id
    assert stability.generation_count(endpoint) == 1 and stability.attempts == 1
    generation = stability.generations[0]
    assert generation.accept == "json"
    assert generation.headers["accept"] == "application/json"
    assert generation.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent_form(stability) == {"prompt": "a lighthouse", "aspect_ratio": "9:16", "seed": "5", **extra}


async def test_async_generation_with_output_format_and_style(stability):
    stability.queue(StabilityScript(seed=77))
    response = await generate_image_async(
        config(stability, "stable-image-core"),
        ImageGenerationRequest(prompt="a paper crane", style="origami", extra_params={"output_format": "jpeg"}))
    assert response.images == ["data:image/jpeg;base64," + base64.b64encode(IMAGE_BYTES["jpeg"]).decode()]
    assert response.content_type == "image/jpeg" and response.raw_response["seed"] == 77
    assert sent_form(stability) == {"prompt": "a paper crane", "style_preset": "origami", "output_format": "jpeg"}


def test_prompt_reaches_stability_byte_exact(stability):
    generate_image(config(stability), ImageGenerationRequest(prompt=NASTY_PROMPT))
    generation = stability.generations[0]
    assert generation.form["prompt"] == NASTY_PROMPT
    assert parse_multipart(generation.headers["content-type"], generation.body)["prompt"] == NASTY_PROMPT


def test_key_from_environment(stability, monkeypatch):
    monkeypatch.setenv("STABILITY_API_KEY", API_KEY)
    assert generate_image(config(stability, api_key=None), ImageGenerationRequest(prompt="x")).images == [PNG_URI]


def test_missing_key_fails_before_any_request(stability, monkeypatch):
    monkeypatch.delenv("STABILITY_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="STABILITY_API_KEY"):
        generate_image(config(stability, api_key=None), ImageGenerationRequest(prompt="x"))
    assert stability.requests == []


# -- moderation ---------------------------------------------------------------------------------


def test_content_filtered_finish_reason_is_content_moderation(stability):
    stability.queue(StabilityScript.content_filtered())
    with pytest.raises(ContentModerationError) as info:
        generate_image(config(stability, "stable-image-ultra"), ImageGenerationRequest(prompt="x"))
    exc = info.value
    assert exc.provider == "stability" and exc.model == "stable-image-ultra"
    assert exc.raw_response["finish_reason"] == "CONTENT_FILTERED" and "CONTENT_FILTERED" in exc.message
    assert not exc.retryable
    assert stability.attempts == 1


def test_403_content_moderation_is_content_moderation(stability):
    stability.queue(StabilityScript.flagged())
    with pytest.raises(ContentModerationError) as info:
        generate_image(config(stability, "sd3.5-large"), ImageGenerationRequest(prompt="x"))
    exc = info.value
    assert "HTTP 403" in exc.message and "content moderation" in exc.message
    assert exc.raw_response["body"]["name"] == "content_moderation"
    assert exc.provider == "stability" and exc.model == "sd3.5-large" and not exc.retryable
    assert stability.attempts == 1 and stability.generation_count() == 0


# -- validation ---------------------------------------------------------------------------------


def test_invalid_value_rejected_before_any_request(stability):
    with pytest.raises(ValidationError, match="allowed: 16:9, 1:1, 21:9, 2:3, 3:2, 4:5, 5:4, 9:16, 9:21"):
        generate_image(config(stability), ImageGenerationRequest(prompt="x", aspect_ratio="4:3"))
    assert stability.requests == []


def test_stability_extra_param_value_is_checked_before_sending(stability):
    before = len(stability.requests)
    with pytest.raises(ValidationError, match="output_format='webp'; allowed: png, jpeg"):
        generate_image(config(stability, "sd3.5-large"),
                       ImageGenerationRequest(prompt="x", extra_params={"output_format": "webp"}))
    assert len(stability.requests) == before


def test_stability_400_is_validation_error(stability):
    stability.queue(StabilityScript(failures=[stability_error(400, "invalid_prompt", "prompt: cannot be blank")]))
    with pytest.raises(ValidationError) as info:
        generate_image(config(stability, "sd3.5-large"), ImageGenerationRequest(prompt="x"))
    exc = info.value
    assert "HTTP 400" in exc.message and "prompt: cannot be blank" in exc.message
    assert exc.provider == "stability" and exc.model == "sd3.5-large"
    assert exc.raw_response["status_code"] == 400 and not exc.retryable


def test_stability_422_is_validation_error(stability):
    stability.queue(StabilityScript(failures=[stability_error(422, "invalid_language", "English is the only "
                                                                                        "supported language")]))
    with pytest.raises(ValidationError, match="English is the only supported language"):
        generate_image(config(stability), ImageGenerationRequest(prompt="un phare"))
    assert stability.attempts == 1


# -- failures at submit -------------------------------------------------------------------------


def test_rate_limit_is_retried_then_one_accepted_post(stability):
    stability.queue(StabilityScript(failures=[rate_limited(0.01)], seed=9))
    response = generate_image(config(stability), ImageGenerationRequest(prompt="x"))
    assert response.raw_response["seed"] == 9
    assert stability.attempts == 2 and stability.generation_count() == 1


def test_rate_limit_exhausted_raises_rate_limit_error(stability):
    stability.queue(StabilityScript(failures=[rate_limited(0.01)] * 5))
    with pytest.raises(RateLimitError) as info:
        generate_image(config(stability), ImageGenerationRequest(prompt="x"))
    assert info.value.retryable and not info.value.job_may_exist
    assert "rate limit" in info.value.message
    assert stability.generation_count() == 0


def test_500_at_submit_is_not_sent_again(stability):
    # A 500 may hide a generated (billed) image: the request is not repeated.
    stability.queue(StabilityScript(failures=[stability_error(500, "internal_error", "boom")]))
    with pytest.raises(HTTPError) as info:
        generate_image(config(stability), ImageGenerationRequest(prompt="x"))
    exc = info.value
    assert exc.status_code == 500 and exc.job_may_exist and "boom" in exc.message and exc.provider == "stability"
    assert stability.attempts == 1


def test_wrong_key_is_authentication_error(stability):
    with pytest.raises(AuthenticationError) as info:
        generate_image(config(stability, api_key="sk-wrong"), ImageGenerationRequest(prompt="x"))
    assert info.value.status_code == 401 and not info.value.retryable
    assert info.value.provider == "stability" and "sk-wrong" not in str(info.value.raw_response)
