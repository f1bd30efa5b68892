"""Specs that name a Python handler: validated, routed and rendered like any spec."""

from __future__ import annotations

import textwrap

import pytest

from tarash_router import ValidationError, generate_video, render_request
from tarash_router.engine.render import prepare_job
from tarash_router.api import register_transport as register_spec_handler
from tarash_router.errors import MissingExtraError
from tarash_router.extras import require_sdk
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse
from tarash_router.specs.registry import SpecRegistry, get_registry


class EchoHandler:
    """Returns the payload the family's body mapping rendered, as an SDK handler would send it."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def run(self, family, config, request, on_progress, modality):
        job = prepare_job(family, config, request)
        self.calls.append(job.payload)
        return VideoGenerationResponse(request_id="echo-1", video="https://echo/video.mp4", raw_response=job.payload)

    def render(self, family, config, request):
        job = prepare_job(family, config, request, dry_run=True)
        return {"method": "POST", "url": f"{job.base_url}/echo", "headers": {"Authorization": "Bearer ***"},
                "json": job.payload}


PROVIDER = """\
spec_version: 1
provider: echo-sdk
base_url: https://echo.test
auth: {header: Authorization, scheme: Bearer, env: ECHO_KEY}
handler: echo
"""
FAMILY = """\
spec_version: 1
provider: echo-sdk
models: [echo-1]
modality: video
params:
  duration_seconds: {allowed: [4, 8]}
body:
  prompt: "{{ request.prompt }}"
  seconds: "{{ request.duration_seconds | string_or_none }}"
examples:
  - request: {prompt: p, duration_seconds: 4}
    body: {prompt: p, seconds: "4"}
"""


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    handler = EchoHandler()
    register_spec_handler("echo", handler)
    root = tmp_path_factory.mktemp("echo") / "echo-sdk"
    root.mkdir()
    (root / "provider.yaml").write_text(textwrap.dedent(PROVIDER))
    (root / "echo.yaml").write_text(textwrap.dedent(FAMILY))
    get_registry().load_paths([root])
    return handler


def config(**kw):
    return VideoGenerationConfig(provider="echo-sdk", model="echo-1", api_key="k", **kw)


def test_handler_family_is_validated_then_run(echo):
    response = generate_video(config(), VideoGenerationRequest(prompt="hi", duration_seconds=8))
    assert response.video == "https://echo/video.mp4" and echo.calls[-1] == {"prompt": "hi", "seconds": "8"}
    with pytest.raises(ValidationError, match="allowed: 4, 8"):
        generate_video(config(), VideoGenerationRequest(prompt="hi", duration_seconds=5))


def test_handler_family_renders_through_its_handler(echo):
    rendered = render_request(config(), VideoGenerationRequest(prompt="hi"))
    assert rendered == {"method": "POST", "url": "https://echo.test/echo",
                        "headers": {"Authorization": "Bearer ***"}, "json": {"prompt": "hi"},
                        "cost": None}  # the family declares no prices


def test_unknown_handler_name_is_a_load_error(tmp_path):
    from tarash_router.errors import SpecError

    (tmp_path / "provider.yaml").write_text(PROVIDER.replace("handler: echo", "handler: nothing-here"))
    with pytest.raises(SpecError, match="unknown handler 'nothing-here'"):
        SpecRegistry().load_paths([tmp_path])


def test_missing_sdk_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'tarash-router\[magic\]'"):
        require_sdk("surely_not_installed_sdk", "magic", "magic-provider")
