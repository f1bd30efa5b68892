"""Custom providers: a handler written like MyProviderHandler in docs/custom-providers.md, field mappings, the mock."""

from __future__ import annotations

import json

import httpx
import pytest
from aiohttp import web

from conftest import video_config
from tarash_router import (
    TarashException, generate_image, generate_video, generate_video_async, get_provider_field_mapping,
    register_provider, register_provider_field_mapping,
)
from tarash_router.api import unregister_provider
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, MockConfig, MockPollingConfig, MockResponse,
    VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse,
)
from tarash_router.testing._server import FakeServer
from tarash_router.utils import generate_unique_id


class MyProvider(FakeServer):
    """A private generation API on loopback standing in for my-provider.example.com."""

    def routes(self, app: web.Application) -> None:
        async def generate(request: web.Request) -> web.Response:
            body = await request.json()
            if request.headers.get("Authorization") != "Bearer my-key":
                return web.json_response({"error": "unauthorized"}, status=401)
            return web.json_response({"video_url": f"https://cdn.example/{body['prompt']}.mp4"})

        app.router.add_post("/v1/generate", generate)


ENDPOINT = {"url": ""}


class MyProviderHandler:
    """The example handler of docs/custom-providers.md; only the URL points at the loopback server."""

    def generate_video(self, config, request, on_progress=None):
        response = httpx.post(ENDPOINT["url"], json={"prompt": request.prompt},
                              headers={"Authorization": f"Bearer {config.api_key}"}, timeout=config.timeout)
        response.raise_for_status()
        data = response.json()
        return VideoGenerationResponse(request_id=generate_unique_id(), video=data["video_url"],
                                       status="completed", raw_response=data)

    async def generate_video_async(self, config, request, on_progress=None):
        async with httpx.AsyncClient() as client:
            response = await client.post(ENDPOINT["url"], json={"prompt": request.prompt},
                                         headers={"Authorization": f"Bearer {config.api_key}"},
                                         timeout=config.timeout)
            response.raise_for_status()
            data = response.json()
        return VideoGenerationResponse(request_id=generate_unique_id(), video=data["video_url"],
                                       status="completed", raw_response=data)

    def generate_image(self, config, request, on_progress=None):
        raise NotImplementedError("my-provider does not support image generation")

    async def generate_image_async(self, config, request, on_progress=None):
        raise NotImplementedError("my-provider does not support image generation")


@pytest.fixture
def my_provider():
    with MyProvider() as server:
        ENDPOINT["url"] = f"{server.base_url}/v1/generate"
        register_provider("my-provider", MyProviderHandler())
        yield server
        unregister_provider("my-provider")


def test_registered_handler_serves_sync_and_async(my_provider):
    config = VideoGenerationConfig(provider="my-provider", model="my-model-v1", api_key="my-key")
    response = generate_video(config, VideoGenerationRequest(prompt="cat"))
    assert response.video == "https://cdn.example/cat.mp4"
    assert response.execution_metadata.attempts[0].provider == "my-provider"
    import asyncio

    response = asyncio.run(generate_video_async(config, VideoGenerationRequest(prompt="dog")))
    assert response.video == "https://cdn.example/dog.mp4"
    assert len(my_provider.requests) == 2


def test_handler_errors_are_wrapped_and_unsupported_modality_is_clear(my_provider):
    config = VideoGenerationConfig(provider="my-provider", model="m", api_key="wrong")
    with pytest.raises(TarashException, match="HTTPStatusError") as info:
        generate_video(config, VideoGenerationRequest(prompt="cat"))
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)
    with pytest.raises(TarashException, match="does not support image"):
        generate_image(ImageGenerationConfig(provider="my-provider", model="m"), ImageGenerationRequest(prompt="x"))


def test_registering_a_builtin_name_overrides_it(my_provider, fal):
    register_provider("fal", MyProviderHandler())
    try:
        response = generate_video(video_config(fal, api_key="my-key"), VideoGenerationRequest(prompt="over"))
    finally:
        unregister_provider("fal")
    assert response.video == "https://cdn.example/over.mp4"
    assert fal.requests == []


def test_register_rejects_objects_without_the_protocol():
    with pytest.raises(TypeError, match="generate_video_async"):
        register_provider("broken", object())  # type: ignore[arg-type]


def test_field_mapping_really_changes_the_body(fal):
    register_provider_field_mapping("fal", {"fal-ai/custom-model": {
        "text": "{{ request.prompt }}", "length": "{{ request.duration_seconds }}", "image": "{{ images.reference }}"}})
    request = VideoGenerationRequest(prompt="hi", duration_seconds=7,
                                     image_list=[{"image": "https://x/a.png", "type": "reference"}])
    generate_video(video_config(fal, model="fal-ai/custom-model"), request)
    assert json.loads(fal.submits[0].body) == {"text": "hi", "length": 7, "image": "https://x/a.png"}
    mapping = get_provider_field_mapping("fal")
    assert mapping["fal-ai/custom-model"]["text"] == "{{ request.prompt }}"
    assert "fal-ai/veo3" in mapping
    assert get_provider_field_mapping("nope") is None


def test_mock_provider_reports_progress_without_network():
    updates = []
    config = VideoGenerationConfig(provider="anything", model="m", mock=MockConfig(
        enabled=True, polling=MockPollingConfig(delay_between_updates=0, progress_percentages=[5, 50, 100])))
    response = generate_video(config, VideoGenerationRequest(prompt="x", duration_seconds=4), updates.append)
    assert response.is_mock and response.duration == 4
    assert [(u.status, u.progress_percent) for u in updates] == [("queued", 5), ("processing", 50), ("completed", 100)]
    assert updates[-1].result.video == response.video


def test_mock_error_falls_back_to_next_config():
    from tarash_router import GenerationFailedError

    failing = MockConfig(enabled=True, responses=[MockResponse(error=GenerationFailedError("boom"))])
    config = VideoGenerationConfig(provider="a", model="m", mock=failing, fallback_configs=[
        VideoGenerationConfig(provider="b", model="m", mock=MockConfig(enabled=True))])
    response = generate_video(config, VideoGenerationRequest(prompt="x"))
    assert response.execution_metadata.successful_attempt == 2


def test_mock_images():
    config = ImageGenerationConfig(provider="x", model="m", mock=MockConfig(enabled=True))
    assert len(generate_image(config, ImageGenerationRequest(prompt="x", n=3)).images) == 3


def test_mock_of_a_real_model_validates_like_it():
    from tarash_router import ValidationError

    config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", mock=MockConfig(enabled=True))
    with pytest.raises(ValidationError, match="4, 6, 8"):
        generate_video(config, VideoGenerationRequest(prompt="x", duration_seconds=5))
    assert generate_video(config, VideoGenerationRequest(prompt="x", duration_seconds=8)).is_mock
