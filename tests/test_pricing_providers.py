"""Prices of the built-in OpenAI and xAI families, through the real loader and the shipped specs:
each priced family's estimate for a concrete request, the models and sizes it leaves unpriced, and
the child family that must not inherit its parent's price."""

from __future__ import annotations

import pytest

from tarash_router.engine.cost import estimate, estimate_or_reason
from tarash_router.models import ImageGenerationRequest, VideoGenerationRequest
from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir


@pytest.fixture(scope="module")
def registry() -> SpecRegistry:
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    return registry


def video(**fields: object) -> VideoGenerationRequest:
    return VideoGenerationRequest(prompt="a cat", **fields)


def image(**fields: object) -> ImageGenerationRequest:
    return ImageGenerationRequest(prompt="a cat", **fields)


@pytest.mark.parametrize(("provider", "model", "request_fields", "amount", "basis"), [
    ("openai", "sora-2", {"duration_seconds": 8}, 0.8, "8 s × $0.10/s = $0.80"),
    ("openai", "sora-2-2025-12-08", {"duration_seconds": 12, "aspect_ratio": "16:9"}, 1.2,
     "12 s × $0.10/s = $1.20"),
    ("openai", "sora-2-pro", {"duration_seconds": 8, "resolution": "720p"}, 2.4,
     "8 s × $0.30/s (720x1280 or 1280x720) = $2.40"),
    ("openai", "sora-2-pro-2025-10-06", {"duration_seconds": 4}, 1.2,
     "4 s × $0.30/s (720x1280 or 1280x720) = $1.20"),
    ("xai", "grok-imagine-video", {"duration_seconds": 10, "resolution": "480p"}, 0.5, "10 s × $0.05/s = $0.50"),
    ("xai", "grok-imagine-video", {"duration_seconds": 15, "resolution": "720p"}, 0.75, "15 s × $0.05/s = $0.75"),
])
def test_video_families_price_seconds_at_the_providers_rate(registry, provider, model, request_fields, amount,
                                                            basis):
    family = registry.resolve(provider, model, "video")
    cost = estimate(family, model, video(**request_fields))
    assert cost is not None, family.describe()
    assert (cost.currency, cost.amount, cost.basis, cost.estimated) == ("USD", amount, basis, True)
    assert family.file.pricing.source.startswith("https://")


@pytest.mark.parametrize(("n", "amount", "basis"), [
    (None, 0.02, "1 image × $0.02/image (grok-imagine-image) = $0.02"),
    (4, 0.08, "4 images × $0.02/image (grok-imagine-image) = $0.08"),
])
def test_grok_imagine_image_is_priced_per_image(registry, n, amount, basis):
    family = registry.resolve("xai", "grok-imagine-image", "image")
    cost = estimate(family, "grok-imagine-image", image(n=n))
    assert (cost.amount, cost.basis) == (amount, basis)


@pytest.mark.parametrize(("provider", "model", "modality", "asked", "reason"), [
    ("openai", "sora-2", "video", video(), "no duration"),
    ("openai", "sora-2-pro", "video", video(duration_seconds=8, resolution="1024p"), "no listed price matches"),
    ("xai", "grok-imagine-video", "video", video(), "no duration"),
    ("xai", "grok-imagine-image-quality", "image", image(), "no listed price matches"),
    ("xai", "grok-imagine-image-pro", "image", image(), "no listed price matches"),
    ("xai", "grok-imagine-video-1.5", "video", video(duration_seconds=6), "declares no prices"),
])
def test_what_the_pages_do_not_price_has_no_estimate(registry, provider, model, modality, asked, reason):
    family = registry.resolve(provider, model, modality)
    found, why = estimate_or_reason(family, model, asked)
    assert found is None and reason in why, why


def test_only_families_with_a_read_source_are_priced(registry):
    priced = {(f.provider.name, f.name) for f in registry.families(None) if f.pricing is not None}
    assert {("openai", "sora-2"), ("openai", "sora-2-pro"), ("xai", "grok-imagine-video"),
            ("xai", "grok-imagine-image")} <= priced
    for provider in ("azure-openai", "google", "google-vertex", "stability", "replicate"):
        assert not {name for owner, name in priced if owner == provider}, provider
