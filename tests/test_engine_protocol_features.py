"""Protocol features for providers that need them: status from HTTP codes, status fallbacks, progress
from log text, removing an inherited phase, downloading URL media, regex error rules, filters."""

from __future__ import annotations

import textwrap

import pytest
from aiohttp import web

from tarash_router import ContentModerationError, generate_video, render_request
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest, VideoGenerationUpdate
from tarash_router.specs.registry import get_registry
from tarash_router.specs.templates import compile_leaf
from tarash_router.testing._server import FakeServer

PROVIDER = """\
spec_version: 1
provider: slowpoke
base_url: https://api.slowpoke.test
auth: {header: Authorization, scheme: Bearer, env: SLOWPOKE_KEY}
protocol:
  submit: {method: POST, url: "{{ base_url }}/jobs", headers: {X-Deadline: "{{ timeout }}"}}
  job: {id: $.id}
  poll:
    url: "{{ base_url }}/jobs/{{ job.id }}"
    status: [$.state, $.result.state]
    status_codes: {202: processing}
    progress: $.logs
    progress_pattern: '(\\d+)%'
    logs: $.logs
  status_map: {done: completed, failed: failed}
media: {accepts: [data_uri], download: true}
errors:
  - {phase: job, json_path: $.reason, matches: '^SAFETY\\.', raise: ContentModerationError, message: "refused by the safety system"}
response:
  video: [$.video, $.result.video]
"""
FAMILY = """\
spec_version: 1
provider: slowpoke
models: [slow-1]
modality: video
params:
  images: {first_frame: optional}
body:
  prompt: "{{ request.prompt }}"
  image: "{{ (images.first_frame | data_uri_parts).data if images.first_frame }}"
  image_type: "{{ (images.first_frame | data_uri_parts).mime_type if images.first_frame }}"
examples:
  - request: {prompt: p, image_list: [{image: "data:image/png;base64,QUJD", type: first_frame}]}
    body: {prompt: p, image: QUJD, image_type: image/png}
"""
SYNC_FAMILY = """\
spec_version: 1
provider: slowpoke
models: [instant-1]
modality: video
protocol: {poll: null}
body: {prompt: "{{ request.prompt }}"}
response: {video: $.result.video}
examples:
  - request: {prompt: p}
    body: {prompt: p}
"""


class Slowpoke(FakeServer):
    """202 with an empty body while busy, progress only in log text, status sometimes nested."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0

    def routes(self, app: web.Application) -> None:
        async def asset(request: web.Request) -> web.Response:
            return web.Response(body=b"PNGDATA", content_type="image/png")

        async def submit(request: web.Request) -> web.Response:
            body = await request.json()
            if body["prompt"] == "instant":
                return web.json_response({"id": "j0", "result": {"state": "done", "video": "https://v/instant.mp4"}})
            self.polls = 0
            return web.json_response({"id": "j1"})

        async def poll(request: web.Request) -> web.Response:
            self.polls += 1
            if self.polls == 1:
                return web.Response(status=202)
            if self.polls == 2:
                return web.json_response({"state": "running", "logs": "step 1\n 40%|####\n 80%|########"})
            if self.submitted_prompt() == "unsafe":
                return web.json_response({"state": "failed", "reason": "SAFETY.INPUT.TEXT"})
            return web.json_response({"result": {"state": "done", "video": "https://v/out.mp4"}})

        app.router.add_get("/asset.png", asset)
        app.router.add_post("/jobs", submit)
        app.router.add_get("/jobs/{id}", poll)

    def submitted_prompt(self) -> str:
        submits = [r for r in self.requests if r.method == "POST"]
        return submits[-1].json["prompt"]


@pytest.fixture(scope="module")
def slowpoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("slowpoke") / "slowpoke"
    root.mkdir()
    (root / "provider.yaml").write_text(textwrap.dedent(PROVIDER))
    (root / "slow.yaml").write_text(textwrap.dedent(FAMILY))
    (root / "instant.yaml").write_text(textwrap.dedent(SYNC_FAMILY))
    get_registry().load_paths([root])
    with Slowpoke() as server:
        yield server


def config(server, model="slow-1"):
    return VideoGenerationConfig(provider="slowpoke", model=model, api_key="k", base_url=server.base_url,
                                 poll_interval=0.005, timeout=10)


def test_status_codes_progress_pattern_status_fallback_and_download(slowpoke):
    updates: list[VideoGenerationUpdate] = []
    request = VideoGenerationRequest(prompt="go", image_list=[
        {"image": f"{slowpoke.base_url}/asset.png", "type": "first_frame"}])
    response = generate_video(config(slowpoke), request, on_progress=updates.append)
    assert response.video == "https://v/out.mp4"
    assert [(u.status, u.progress_percent) for u in updates] == [
        ("queued", None), ("processing", None), ("processing", 80), ("completed", 100)]
    assert updates[2].logs == ["step 1", " 40%|####", " 80%|########"]
    submit = next(r for r in slowpoke.requests if r.method == "POST")
    assert submit.json["image"] == "UE5HREFUQQ==" and submit.json["image_type"] == "image/png"
    assert submit.headers["x-deadline"] == "10.0"


def test_regex_rule_with_fixed_message(slowpoke):
    with pytest.raises(ContentModerationError, match="refused by the safety system"):
        generate_video(config(slowpoke), VideoGenerationRequest(prompt="unsafe"))


def test_family_removes_the_inherited_poll(slowpoke):
    before = len(slowpoke.requests)
    response = generate_video(config(slowpoke, "instant-1"), VideoGenerationRequest(prompt="instant"))
    assert response.video == "https://v/instant.mp4" and len(slowpoke.requests) == before + 1


def test_dry_run_does_not_download(slowpoke):
    before = len(slowpoke.requests)
    rendered = render_request(config(slowpoke), VideoGenerationRequest(prompt="go", image_list=[
        {"image": "https://example.invalid/cat.png", "type": "first_frame"}]))
    assert len(slowpoke.requests) == before
    assert rendered["json"]["prompt"] == "go"


@pytest.mark.parametrize(("source", "context", "expected"), [
    ("{{ b | data_uri('image/jpeg') }}", {"b": "QUJD"}, "data:image/jpeg;base64,QUJD"),
    ("{{ b | data_uri }}", {}, None),
    ("{{ s | dims }}", {"s": "1024x768"}, {"width": 1024, "height": 768}),
    ("{{ s | dims }}", {"s": "square_hd"}, None),
    ("{{ u | data_uri_parts }}", {"u": "data:image/webp;base64,AAA"}, {"mime_type": "image/webp", "data": "AAA"}),
])
def test_filters(source, context, expected):
    assert compile_leaf(source).render(context) == expected


@pytest.mark.parametrize("source", [
    "{{ request.duration_seconds | suffix('s') }}", "{{ request.duration_seconds|suffix(\"s\") }}",
    "{{ request.unset | suffix('s') }}", "{{ request.missing | suffix('s') }}",
    "{{ request.duration_seconds | string_or_none }}", "{{ request.prompt | wrap('text') }}",
    "{{ request.image | data_uri('image/jpeg') }}", "{{ request.image | data_uri }}",
    "{{ options.size | suffix('px') }}",
])
def test_a_filtered_path_renders_as_jinja_renders_it(source):
    # `{{ path | filter('literal') }}` skips Jinja; what it gives must be what Jinja gives.
    from types import SimpleNamespace

    from tarash_router.specs.templates import ENV

    context = {"request": SimpleNamespace(duration_seconds=8, prompt="a cat", unset=None, image="QUJD"),
               "options": {"size": 512}}
    jinja = ENV.compile_expression(source.strip()[2:-2], undefined_to_none=True)(**context)
    assert compile_leaf(source).render(context) == (None if jinja is None else jinja)


@pytest.mark.parametrize("source", [
    "{{ base_url }}/{{ model }}", "{{base_url}}/v1/{{ job.id }}/status", "x {{ request.duration_seconds }}s\n",
    "{{ job.missing }}/x", "{{ request.unset }}-{{ model }}", "{{ request.flag }}|{{ request.ratio }}",
    "items: {{ request.items }}", "a } b { c {{ model }}",
])
def test_a_text_of_paths_renders_as_jinja_renders_it(source):
    from types import SimpleNamespace

    from tarash_router.specs.templates import _text_renderer  # the Jinja path

    context = {"base_url": "https://queue.fal.run", "model": "fal-ai/veo3", "job": {"id": "req-1"},
               "request": SimpleNamespace(duration_seconds=8, unset=None, flag=True, ratio=1.5, items=[1, "a"])}
    assert compile_leaf(source).render(context) == _text_renderer(source)(context)


def test_a_filtered_path_is_held_to_the_render_budget():
    from tarash_router.specs.templates import MAX_BUILT, TemplateLimitError

    with pytest.raises(TemplateLimitError, match="suffix"):
        compile_leaf("{{ v | suffix('x') }}").render({"v": "a" * (MAX_BUILT + 1)})


def test_extra_params_into_a_nested_key_and_list_filters():
    import textwrap as tw

    from tarash_router.engine.render import prepare_job
    from tarash_router.specs.loader import load_family
    from tarash_router.specs.yaml_source import parse_yaml

    family = load_family(parse_yaml(tw.dedent("""\
        spec_version: 1
        provider: fal
        models: [fal-ai/nested-extras]
        modality: video
        params:
          images: {refs: {from: [reference], max: 3}}
        extra_params: {allow: [personGeneration], into: parameters}
        body:
          instances: ["{{ dict(prompt=request.prompt) }}"]
          parameters: {sampleCount: 1}
          refs: "{{ images.refs | map('data_uri_parts') | map('rename', {'data': 'bytes'}) | list if images.refs }}"
        """), "<nested>"), get_registry().providers["fal"])
    request = VideoGenerationRequest(prompt="p", personGeneration="allow_adult", image_list=[
        {"image": "data:image/png;base64,QQ==", "type": "reference"}])
    job = prepare_job(family, VideoGenerationConfig(provider="fal", model="fal-ai/nested-extras"), request,
                      dry_run=True)
    assert job.payload == {"instances": [{"prompt": "p"}],
                           "parameters": {"sampleCount": 1, "personGeneration": "allow_adult"},
                           "refs": [{"mime_type": "image/png", "bytes": "QQ=="}]}


def test_poll_delay_backs_off_with_age_and_honours_hints(slowpoke):
    from tarash_router.engine.client import POOL
    from tarash_router.engine.lifecycle import Lifecycle
    from tarash_router.engine.transport import Call
    from tarash_router.engine.transports import SpecTransport
    from tarash_router.settings import get_settings

    async def delays():
        family = get_registry().resolve("slowpoke", "slow-1", "video")
        call = Call(family, config(slowpoke).model_copy(update={"poll_interval": 2.0}),
                    VideoGenerationRequest(prompt="p"), "video", get_settings(), POOL)
        generation = Lifecycle(SpecTransport(), call)
        now = generation.loop.time()
        generation.submitted_at = now - 5
        young = generation.next_poll_delay(None)
        generation.submitted_at = now - 200
        old = generation.next_poll_delay(None)
        generation.submitted_at = now - 10_000
        ancient = generation.next_poll_delay(None)
        hinted = generation.next_poll_delay(25.0)
        return young, old, ancient, hinted

    import asyncio as aio

    young, old, ancient, hinted = aio.run(delays())
    assert young == 2.0                      # the configured interval while the job is young
    assert old == pytest.approx(20.0, rel=0.01)   # 10% of 200 s
    assert ancient == 30.0                   # capped by poll_interval_max
    assert hinted >= 25.0                    # never sooner than the provider asked


def test_mapping_keys_win_over_dict_methods_in_templates():
    steps = {"steps": [{"urls": {"get": "https://x/file", "items": [1]}}]}
    assert compile_leaf("{{ steps[0].urls.get }}").render(steps) == "https://x/file"
    assert compile_leaf("{{ steps[0].urls.items }}").render(steps) == [1]
