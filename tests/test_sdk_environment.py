"""The vendor SDKs' own environment variables are honoured where users already set them:
OPENAI_BASE_URL, REPLICATE_BASE_URL (the replicate client's), OPENAI_API_VERSION (Azure); a config's
own base_url or api_version still wins."""

import pytest

from tarash_router import generate_image_async, generate_video_async
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
)
from tarash_router.testing.openai import FakeAzureOpenAI, FakeOpenAI
from tarash_router.testing.replicate import FakeReplicate, ReplicateJob

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
KEY = "sdk-env-test-key-1234"


async def test_openai_base_url_from_the_sdk_variable(setting, retired_still_served):
    with FakeOpenAI(api_key=KEY) as fake:
        setting("OPENAI_BASE_URL", f"{fake.base_url}/v1")
        config = ImageGenerationConfig(provider="openai", model="gpt-image-1.5", api_key=KEY, timeout=10)
        response = await generate_image_async(config, ImageGenerationRequest(prompt="a lighthouse"))
        assert response.images and len(fake.requests) >= 1


async def test_replicate_base_url_from_the_client_variable_and_config_wins(setting):
    with FakeReplicate(api_key=KEY) as env_target, FakeReplicate(api_key=KEY) as configured:
        setting("REPLICATE_BASE_URL", env_target.base_url)
        common = {"provider": "replicate", "model": "google/veo-3.1", "api_key": KEY, "poll_interval": 0.005,
                  "timeout": 20}
        for server in (env_target, configured):
            server.queue(ReplicateJob(statuses=["succeeded"]))
        await generate_video_async(VideoGenerationConfig(**common), VideoGenerationRequest(prompt="a fox"))
        await generate_video_async(VideoGenerationConfig(**common, base_url=configured.base_url),
                                   VideoGenerationRequest(prompt="a fox"))
        assert env_target.create_count() == 1 and configured.create_count() == 1


async def test_azure_api_version_from_the_sdk_variable(setting):
    with FakeAzureOpenAI(api_key=KEY, deployments={"images-prod": "gpt-image-1"}) as azure:
        setting("OPENAI_API_VERSION", "2025-03-01-preview")
        config = ImageGenerationConfig(provider="azure-openai", model="images-prod", api_key=KEY,
                                       base_url=azure.base_url, timeout=10)
        await generate_image_async(config, ImageGenerationRequest(prompt="a lighthouse"))
        await generate_image_async(config.model_copy(update={"api_version": "2024-02-01"}),
                                   ImageGenerationRequest(prompt="a lighthouse"))
        assert [call.query["api-version"] for call in azure.image_calls] == ["2025-03-01-preview", "2024-02-01"]
