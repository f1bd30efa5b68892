"""Shared fixtures: one loopback fake Fal server per session, reset for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tarash_router.models import ImageGenerationConfig, VideoGenerationConfig
from tarash_router.testing import FakeFal

API_KEY = "fal-test-key-3f9a"


@pytest.fixture(scope="session")
def fal_server() -> Iterator[FakeFal]:
    with FakeFal() as server:
        yield server


@pytest.fixture
def fal(fal_server: FakeFal) -> FakeFal:
    fal_server.clear()
    return fal_server


def video_config(fal: FakeFal, model: str = "fal-ai/veo3/fast", **overrides: object) -> VideoGenerationConfig:
    values: dict = {"provider": "fal", "model": model, "api_key": API_KEY, "base_url": fal.base_url,
                    "poll_interval": 0.005, "timeout": 20}
    values.update(overrides)
    return VideoGenerationConfig(**values)


def image_config(fal: FakeFal, model: str = "fal-ai/flux/dev", **overrides: object) -> ImageGenerationConfig:
    values: dict = {"provider": "fal", "model": model, "api_key": API_KEY, "base_url": fal.base_url,
                    "poll_interval": 0.005, "timeout": 20}
    values.update(overrides)
    return ImageGenerationConfig(**values)
