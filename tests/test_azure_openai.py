"""Azure OpenAI end to end: Sora 2 on the v1 surface and deployment image endpoints, through the openai SDK,
against the loopback fake."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tarash_router import (
    AuthenticationError, ContentModerationError, ValidationError, generate_image, generate_image_async,
    generate_video, generate_video_async, render_request,
)
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
)
from tarash_router.testing._server import Failure
from tarash_router.testing.openai import FAKE_MP4, FakeAzureOpenAI, SoraJob

pytestmark = [pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
              pytest.mark.usefixtures("retired_still_served")]

API_KEY = "azure-test-key-0f3e"
DEPLOYMENTS = {"my-sora": "sora-2", "sora-2": "sora-2", "images-prod": "gpt-image-1", "gpt-image-1": "gpt-image-1",
               "dall-e-3": "dall-e-3"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAzureOpenAI]:
    with FakeAzureOpenAI(api_key=API_KEY, deployments=DEPLOYMENTS) as fake:
        yield fake


@pytest.fixture
def azure(server: FakeAzureOpenAI) -> FakeAzureOpenAI:
    server.clear()
    return server


def video_config(fake: FakeAzureOpenAI | None, model: str = "my-sora", **overrides: object) -> VideoGenerationConfig:
    values: dict = {"provider": "azure-openai", "model": model, "api_key": API_KEY, "poll_interval": 0.005,
                    "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(overrides)
    return VideoGenerationConfig(**values)


def image_config(fake: FakeAzureOpenAI | None, model: str = "images-prod", **overrides: object) -> ImageGenerationConfig:
    values: dict = {"provider": "azure-openai", "model": model, "api_key": API_KEY, "timeout": 10}
    if fake is not None:
        values["base_url"] = fake.base_url
    values.update(overrides)
    return ImageGenerationConfig(**values)


def test_video_on_the_v1_surface_with_api_key_and_deployment_as_model(azure):
    updates = []
    response = generate_video(video_config(azure), VideoGenerationRequest(
        prompt="a paper boat", duration_seconds=4, aspect_ratio="16:9"), on_progress=updates.append)
    created = azure.creates[0]
    assert created.kind == "multipart"
    assert created.fields == {"prompt": "a paper boat", "model": "my-sora", "seconds": "4", "size": "1280x720"}
    assert created.headers["api-key"] == API_KEY and "authorization" not in created.headers
    assert created.query == {"api-version": "preview"}
    paths = {(r.method, r.path) for r in azure.requests}
    assert paths == {("POST", "/openai/v1/videos"), ("GET", f"/openai/v1/videos/{created.video_id}"),
                     ("GET", f"/openai/v1/videos/{created.video_id}/content")}
    assert all(r.query.get("api-version") == "preview" and r.headers["api-key"] == API_KEY for r in azure.requests)
    assert response.video == {"content": FAKE_MP4, "content_type": "video/mp4"}
    assert response.provider == "azure-openai" and response.model == "my-sora"
    assert response.request_id == created.video_id and response.duration == 4.0
    assert [u.status for u in updates][-1] == "completed"
    assert [u.progress_percent for u in updates if u.status == "processing"] == [33, 67]


async def test_api_version_from_config_and_alias(azure):
    await generate_video_async(video_config(azure, provider="azure_openai", api_version="2025-05-01-preview"),
                               VideoGenerationRequest(prompt="x"))
    assert {r.query.get("api-version") for r in azure.requests} == {"2025-05-01-preview"}


def test_pasted_openai_v1_suffix_and_version_query_in_base_url(azure):
    generate_video(video_config(azure, base_url=f"{azure.base_url}/openai/v1?api-version=2025-06-01"),
                   VideoGenerationRequest(prompt="x", image_list=[{"image": "https://example.com/b.png",
                                                                    "type": "first_frame"}]))
    created = azure.creates[0]
    assert created.kind == "json" and created.query == {"api-version": "2025-06-01"}
    assert created.fields["input_reference"] == {"image_url": "https://example.com/b.png"}


def test_endpoint_from_the_environment(azure, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure.base_url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    response = generate_image(image_config(None, api_key=None), ImageGenerationRequest(prompt="x"))
    assert response.images[0].startswith("data:image/png;base64,")
    assert azure.image_calls[0].headers["api-key"] == API_KEY


def test_missing_endpoint_and_key_fail_before_sending(azure, monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with pytest.raises(ValidationError, match="AZURE_OPENAI_ENDPOINT") as info:
        generate_video(video_config(None), VideoGenerationRequest(prompt="x"))
    assert info.value.provider == "azure-openai" and info.value.model == "my-sora"
    with pytest.raises(AuthenticationError, match="AZURE_OPENAI_API_KEY"):
        generate_video(video_config(azure, api_key=None), VideoGenerationRequest(prompt="x"))
    assert azure.requests == []


def test_wrong_key_is_an_authentication_error(azure):
    with pytest.raises(AuthenticationError) as info:
        generate_video(video_config(azure, api_key="wrong-key"), VideoGenerationRequest(prompt="x"))
    assert info.value.status_code == 401 and "wrong-key" not in str(info.value)
    assert azure.create_count() == 0


def test_content_filter_at_create_and_in_the_job(azure):
    body = {"error": {"code": "content_policy_violation", "message": "The prompt was filtered.",
                      "innererror": {"code": "ResponsibleAIPolicyViolation",
                                     "content_filter_results": {"violence": {"filtered": True, "severity": "high"}}}}}
    azure.queue(SoraJob(create_failures=[Failure(status=400, json=body)]))
    with pytest.raises(ContentModerationError, match="filtered") as info:
        generate_video(video_config(azure), VideoGenerationRequest(prompt="x"))
    assert not info.value.job_may_exist and azure.create_count() == 0
    azure.clear()
    azure.queue(SoraJob.moderated())
    with pytest.raises(ContentModerationError) as info:
        generate_video(video_config(azure), VideoGenerationRequest(prompt="x"))
    assert info.value.request_id == azure.creates[0].video_id and info.value.provider == "azure-openai"


def test_unknown_deployment_is_a_validation_error(azure):
    with pytest.raises(ValidationError, match="deployment for this resource does not exist"):
        generate_video(video_config(azure, model="ghost"), VideoGenerationRequest(prompt="x"))


def test_images_on_the_deployment_endpoint(azure):
    response = generate_image(image_config(azure), ImageGenerationRequest(
        prompt="a red fox", size="1024x1536", quality="medium", extra_params={"output_format": "jpeg"}))
    call = azure.image_calls[0]
    assert call.deployment == "images-prod" and call.query == {"api-version": "2025-04-01-preview"}
    assert call.json == {"model": "images-prod", "prompt": "a red fox", "size": "1024x1536", "quality": "medium",
                         "output_format": "jpeg"}
    assert call.headers["api-key"] == API_KEY and "authorization" not in call.headers
    assert response.images[0].startswith("data:image/jpeg;base64,") and response.content_type == "image/jpeg"
    assert response.provider == "azure-openai"


async def test_dall_e_3_deployment_urls(azure):
    response = await generate_image_async(image_config(azure, "dall-e-3", api_version="2024-02-01"),
                                          ImageGenerationRequest(prompt="an owl", style="natural"))
    assert azure.image_calls[0].query == {"api-version": "2024-02-01"}
    assert response.images[0].startswith(f"{azure.base_url}/fake-images/")
    assert response.revised_prompt == "A detailed rendering of: an owl"


def test_custom_deployment_names_get_the_generic_families(azure):
    with pytest.raises(ValidationError, match="does not accept extra_params response_format"):
        generate_image(image_config(azure, "images-prod"), ImageGenerationRequest(
            prompt="x", extra_params={"response_format": "url"}))
    with pytest.raises(ValidationError, match="allowed: 720p"):
        generate_video(video_config(azure, "my-sora"), VideoGenerationRequest(prompt="x", resolution="1024p"))
    assert azure.requests == []


def test_render_masks_the_api_key_and_sends_nothing(azure):
    rendered = render_request(video_config(azure, api_key="azure-super-secret"),
                              VideoGenerationRequest(prompt="x", duration_seconds=8))
    assert rendered["url"] == f"{azure.base_url}/openai/v1/videos?api-version=preview"
    assert rendered["headers"]["api-key"] == "***" and "Authorization" not in rendered["headers"]
    assert rendered["form"] == {"prompt": "x", "model": "my-sora", "seconds": "8"}
    image = render_request(image_config(azure, api_key="azure-super-secret"), ImageGenerationRequest(prompt="x"))
    assert image["url"] == f"{azure.base_url}/openai/deployments/images-prod/images/generations?api-version=2025-04-01-preview"
    assert image["json"] == {"model": "images-prod", "prompt": "x"} and image["headers"]["api-key"] == "***"
    assert "azure-super-secret" not in json.dumps([rendered, image])
    assert azure.requests == []


def test_render_without_an_endpoint_shows_a_placeholder(monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    rendered = render_request(video_config(None), VideoGenerationRequest(prompt="x"))
    assert rendered["url"] == "https://your-resource.openai.azure.com/openai/v1/videos?api-version=preview"


def test_api_version_default_comes_from_the_spec(azure, tmp_path):
    from tarash_router.specs.registry import get_registry

    family = get_registry().resolve("azure-openai", "sora-2", "video")
    assert family.handler_options == {"api_version": "preview"}
    image_family = get_registry().resolve("azure-openai", "gpt-image-1", "image")
    assert image_family.handler_options == {"api_version": "2025-04-01-preview"}
