"""Public models: field names and defaults, extra-param capture, secrets kept out of reprs."""

from __future__ import annotations

import subprocess
import sys

import pydantic
import pytest

from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
)


def test_unknown_request_kwargs_go_to_extra_params_and_win():
    request = VideoGenerationRequest(prompt="x", auto_fix=True, extra_params={"auto_fix": False, "keep": 1})
    assert request.extra_params == {"auto_fix": True, "keep": 1}
    assert not hasattr(request, "auto_fix")
    image = ImageGenerationRequest(prompt="x", guidance_scale=3.5)
    assert image.extra_params == {"guidance_scale": 3.5}


def test_seed_defaults():
    video = VideoGenerationConfig(provider="fal", model="m")
    assert (video.timeout, video.max_poll_attempts, video.poll_interval) == (600, 120, 5)
    image = ImageGenerationConfig(provider="fal", model="m")
    assert (image.timeout, image.max_poll_attempts, image.poll_interval) == (120, 60, 2)
    request = VideoGenerationRequest(prompt="x")
    assert request.image_list == [] and request.number_of_videos == 1 and request.extra_params == {}


def test_fractional_timeouts_and_poll_intervals():
    config = VideoGenerationConfig(provider="fal", model="m", timeout=0.5, poll_interval=0.01)
    assert config.timeout == 0.5 and config.poll_interval == 0.01


def test_api_key_never_in_repr_or_str():
    config = VideoGenerationConfig(provider="fal", model="m", api_key="sk-very-secret",
                                   fallback_configs=[VideoGenerationConfig(provider="x", model="y", api_key="sk-2nd")])
    for text in (repr(config), str(config)):
        assert "sk-very-secret" not in text and "sk-2nd" not in text
    assert config.api_key == "sk-very-secret"


def test_configs_are_frozen():
    config = VideoGenerationConfig(provider="fal", model="m")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.model = "other"  # type: ignore[misc]


def test_models_module_is_self_contained():
    # No forward reference is left unresolved: the module builds with nothing else imported.
    code = ("from tarash_router.models import VideoGenerationConfig, MockConfig;"
            "VideoGenerationConfig(provider='p', model='m', mock=MockConfig(enabled=True));"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_execution_metadata_elapsed():
    from datetime import timedelta

    from tarash_router.models import AttemptMetadata, ExecutionMetadata

    attempt = AttemptMetadata(provider="p", model="m", attempt_number=1)
    attempt.ended_at = attempt.started_at + timedelta(seconds=2)
    meta = ExecutionMetadata(total_attempts=1, attempts=[attempt])
    assert attempt.elapsed_seconds == 2 and meta.total_elapsed_seconds == 2
    assert attempt.started_at.tzinfo is not None
