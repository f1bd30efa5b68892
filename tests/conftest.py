"""Shared fixtures: one loopback fake Fal server per session, reset for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The fakes serve media from loopback; the SSRF guard refuses that outside development. Tests of the
# guard itself turn this off again (tests/test_hardening_http.py).
os.environ["TARASH_ALLOW_PRIVATE_URLS"] = "1"

from tarash_router.models import ImageGenerationConfig, VideoGenerationConfig  # noqa: E402
from tarash_router.testing import FakeFal  # noqa: E402
from tarash_router.testing.replicate import FakeReplicate  # noqa: E402

API_KEY = "fal-test-key-3f9a"
REPLICATE_KEY = "r8_test_key_5c0e"


@pytest.fixture(scope="session")
def fal_server() -> Iterator[FakeFal]:
    with FakeFal() as server:
        yield server


@pytest.fixture
def fal(fal_server: FakeFal) -> FakeFal:
    fal_server.clear()
    return fal_server


@pytest.fixture(scope="module")
def replicate_server() -> Iterator[FakeReplicate]:
    """A fake Replicate that takes REPLICATE_KEY only (test_replicate.py keeps its own)."""
    with FakeReplicate(api_key=REPLICATE_KEY) as server:
        yield server


@pytest.fixture
def replicate(replicate_server: FakeReplicate) -> FakeReplicate:
    replicate_server.clear()
    return replicate_server


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


@pytest.fixture
def polling(setting):
    """Status streams off (TARASH_STATUS_STREAM=0), so jobs poll: for tests whose faults are scripted
    on polls (fal's jobs otherwise wait on its status stream; tests/test_status_stream.py tests that)."""
    setting("TARASH_STATUS_STREAM", "0")


# Providers retired Sora 2 (2026-09-24, on OpenAI and Azure), DALL-E 2 and 3 (2026-05-12; on Azure
# 2026-02-18), gpt-image-1 (2026-10-23), gpt-image-1-mini and 1.5 (2026-12-01), Runway's gen4_aleph
# (2026-07-30), Imagen (2026-08-17), the Gemini image previews and Gemini 2.5 Flash Image
# (2026-10-02) and Veo 2 and 3 on Vertex AI (2026-06-30), so their families now refuse calls. Their
# transports are still tested against the loopback fakes, through copies of those families without
# the shutdown date, loaded over the built-ins.
RETIRED_UNDER_TEST = ("openai/sora-2.yaml", "openai/sora-2-pro.yaml", "openai/dall-e-2.yaml",
                      "openai/dall-e-3.yaml", "openai/gpt-image-1.yaml", "openai/gpt-image.yaml",
                      "azure-openai/sora-2.yaml", "azure-openai/dall-e-3.yaml", "runway/gen4-aleph.yaml",
                      "google/imagen.yaml", "google/gemini-image.yaml", "google-vertex/imagen.yaml",
                      "google-vertex/veo-2.yaml", "google-vertex/veo-3.yaml")


def unretired_specs(root: Path) -> Path:
    """`root` holding copies of the retired families under test, without `shutdown`/`successor`."""
    from tarash_router.specs.registry import builtin_spec_dir

    root.mkdir(parents=True, exist_ok=True)
    for name in RETIRED_UNDER_TEST:
        text = (builtin_spec_dir() / name).read_text()
        kept = [line for line in text.splitlines() if not line.startswith(("shutdown:", "successor:"))]
        (root / name.replace("/", "-")).write_text("\n".join(kept) + "\n")
    return root


@pytest.fixture(scope="module")
def retired_still_served(tmp_path_factory) -> Iterator[None]:
    """For a test module: the process-wide registry serves the retired families under test again."""
    from tarash_router.specs.registry import get_registry, reset_registry

    get_registry().load_paths([unretired_specs(tmp_path_factory.mktemp("unretired"))])
    yield
    reset_registry()


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
