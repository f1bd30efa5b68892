"""Engine features every protocol can use: sync (no-poll) APIs, multipart, response templates,
refusals inside a successful body, pinned model versions. Exercised with a small spec + loopback API."""

from __future__ import annotations

import json
import textwrap

import pytest
from aiohttp import web

from tarash_router import ContentModerationError, generate_image, render_request
from tarash_router.models import ImageGenerationConfig, ImageGenerationRequest
from tarash_router.specs.registry import get_registry
from tarash_router.testing._server import FakeServer, parse_multipart

PROVIDER = """\
spec_version: 1
provider: pixelworks
base_url: https://api.pixelworks.test
auth: {header: Authorization, scheme: Bearer, env: PIXELWORKS_KEY}
headers: {X-Api-Version: "2026-01-01"}
protocol:
  submit: {method: POST, url: "{{ base_url }}/v1/generate/{{ model.split(':')[0] }}", body_format: multipart,
           headers: {Accept: application/json}}
errors:
  - {phase: output, json_path: $.finish_reason, equals: CONTENT_FILTERED, raise: ContentModerationError}
  - {status: 403, body_contains: content_moderation, raise: ContentModerationError}
response:
  images: "{{ ['data:image/' ~ (request.extra_params.output_format or 'png') ~ ';base64,' ~ result.image] }}"
"""

FAMILY = """\
spec_version: 1
provider: pixelworks
models: [pixel-1]
modality: image
body:
  prompt: "{{ request.prompt }}"
  seed: "{{ request.seed }}"
  version: "{{ model.split(':')[1] if ':' in model }}"
examples:
  - request: {prompt: "a fox", seed: 7}
    body: {prompt: "a fox", seed: 7}
"""


class PixelWorks(FakeServer):
    def routes(self, app: web.Application) -> None:
        async def generate(request: web.Request) -> web.Response:
            record = self.recorded(request)
            form = parse_multipart(record.headers["content-type"], record.body)
            assert form is not None, "body is not multipart"
            if form["prompt"] == "forbidden":
                return web.json_response({"name": "content_moderation", "errors": ["flagged"]}, status=403)
            reason = "CONTENT_FILTERED" if form["prompt"] == "filtered" else "SUCCESS"
            return web.json_response({"image": "aGVsbG8=", "finish_reason": reason, "seed": int(form["seed"])})

        app.router.add_post("/v1/generate/{model}", generate)


@pytest.fixture(scope="module")
def pixelworks(tmp_path_factory):
    root = tmp_path_factory.mktemp("specs") / "pixelworks"
    root.mkdir()
    (root / "provider.yaml").write_text(textwrap.dedent(PROVIDER))
    (root / "pixel.yaml").write_text(textwrap.dedent(FAMILY))
    get_registry().load_paths([root])
    with PixelWorks() as server:
        yield server


def config(server, model="pixel-1"):
    return ImageGenerationConfig(provider="pixelworks", model=model, api_key="pk", base_url=server.base_url)


def test_dry_run_shows_multipart_fields_and_headers(pixelworks):
    rendered = render_request(config(pixelworks, "pixel-1:abc123"), ImageGenerationRequest(prompt="a fox", seed=3))
    assert rendered["url"] == f"{pixelworks.base_url}/v1/generate/pixel-1"
    assert rendered["form"] == {"prompt": "a fox", "seed": "3", "version": "abc123"}
    assert rendered["headers"]["X-Api-Version"] == "2026-01-01"
    assert rendered["headers"]["Authorization"] == "Bearer ***"


def test_synchronous_multipart_api_and_templated_response(pixelworks):
    response = generate_image(config(pixelworks), ImageGenerationRequest(prompt="a fox", seed=3, output_format="webp"))
    assert response.images == ["data:image/webp;base64,aGVsbG8="]
    assert response.raw_response["seed"] == 3
    recorded = pixelworks.requests[-1]
    assert recorded.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="prompt"' in recorded.body and b"a fox" in recorded.body


def test_refusal_inside_a_successful_body(pixelworks):
    with pytest.raises(ContentModerationError) as info:
        generate_image(config(pixelworks), ImageGenerationRequest(prompt="filtered", seed=1))
    assert info.value.raw_response["finish_reason"] == "CONTENT_FILTERED"
    assert info.value.provider == "pixelworks" and info.value.model == "pixel-1"


def test_moderation_status_rule(pixelworks):
    with pytest.raises(ContentModerationError, match="HTTP 403"):
        generate_image(config(pixelworks), ImageGenerationRequest(prompt="forbidden", seed=1))


def test_pinned_version_resolves_to_the_base_family(pixelworks):
    assert get_registry().resolve("pixelworks", "pixel-1:deadbeef", "image").models == ["pixel-1"]
    body = json.dumps(render_request(config(pixelworks, "pixel-1:deadbeef"), ImageGenerationRequest(prompt="x")))
    assert "deadbeef" in body
