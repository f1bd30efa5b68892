"""Shared fixtures: one loopback fake Fal server per session, reset for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The fakes serve media from loopback; the SSRF guard refuses that outside development. Tests of the
# guard itself turn this off again (tests/test_hardening_http.py).
os.environ["TARASH_ALLOW_PRIVATE_URLS"] = "1"

from tarash_router.models import ImageGenerationConfig, VideoGenerationConfig  # noqa: E402
from tarash_router.testing import FakeFal  # noqa: E402

API_KEY = "fal-test-key-3f9a"


@pytest.fixture(scope="session")
def fal_server() -> Iterator[FakeFal]:
    with FakeFal() as server:
        yield server


@pytest.fixture
def fal(fal_server: FakeFal) -> FakeFal:
    fal_server.clear()
    return fal_server


@pytest.fixture(scope="session")
def other_fal_server() -> Iterator[FakeFal]:
    """A second fake on its own port: "another host" (another origin) for credential tests."""
    with FakeFal() as server:
        yield server


@pytest.fixture
def elsewhere(other_fal_server: FakeFal) -> FakeFal:
    other_fal_server.clear()
    return other_fal_server


@pytest.fixture
def setting(monkeypatch):
    """`setting("TARASH_X", "1")`: set a TARASH_* variable for this test, settings re-read."""
    from tarash_router.settings import get_settings

    def set_env(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


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
