"""OpenAI (Sora 2 videos, Images API) end to end: public API -> spec -> handler -> openai SDK -> real HTTP
to the loopback fake."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tarash_router import (
    AuthenticationError, ContentModerationError, GenerationFailedError, HTTPError, TimeoutError, ValidationError,
    generate_image, generate_image_async, generate_video, generate_video_async, render_request,
)
from tarash_router.cli import main as cli_main
from tarash_router.engine.transports import openai_common
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, ImageGenerationUpdate, VideoGenerationConfig,
    VideoGenerationRequest, VideoGenerationUpdate,
)
from tarash_router.testing.openai import (
    FAKE_MP4, FakeOpenAI, SoraJob, moderation_blocked, openai_error, rate_limited, server_error,
)
import itertools

pytestmark = [pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
              pytest.mark.usefixtures("retired_still_served")]

API_KEY = "sk-test-openai-7c1d"
NASTY_PROMPT = 'She said "hi" \\ back\nline two\ttab 🐱 {{ 7*7 }} {% raw %} \u00e9\u4e2d'
PNG = {"content": b"\x89PNG\r\n\x1a\nfake", "content_type": "image/png"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    server.clear()
    return server


def video_config(fake: FakeOpenAI | None, model: str = "sora-2", **overrides: object) -> VideoGenerationConfig:
    values: dict = {"provider": "openai", "model": model, "api_key": API_KEY, "poll_interval": 0.005, "timeout": 10}
    if fake is not None:
        values["base_url"] = f"{fake.base_url}/v1"
    values.update(overrides)
    return VideoGenerationConfig(**values)


def image_config(fake: FakeOpenAI | None, model: str = "gpt-image-1.5", **overrides: object) -> ImageGenerationConfig:
    values: dict = {"provider": "openai", "model": model, "api_key": API_KEY, "timeout": 10}
    if fake is not None:
        values["base_url"] = f"{fake.base_url}/v1"
    values.update(overrides)
    return ImageGenerationConfig(**values)


# -- dry runs -------------------------------------------------------------------------------------


def test_render_is_the_sdk_multipart_create_with_a_masked_key(fake):
    rendered = render_request(video_config(fake, api_key="sk-super-secret"),
                              VideoGenerationRequest(prompt=NASTY_PROMPT, duration_seconds=8, aspect_ratio="16:9"))
    assert rendered["method"] == "POST" and rendered["url"] == f"{fake.base_url}/v1/videos"
    assert rendered["headers"]["Authorization"] == "Bearer ***"
    assert rendered["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert rendered["form"] == {"prompt": NASTY_PROMPT, "model": "sora-2", "seconds": "8", "size": "1280x720"}
    assert rendered["files"] == {}
    assert "sk-super-secret" not in json.dumps(rendered)
    assert fake.requests == []  # no network


def test_render_shows_each_create_form_and_images(fake):
    url_ref = render_request(video_config(None), VideoGenerationRequest(
        prompt="x", image_list=[{"image": "https://example.com/a.png", "type": "first_frame"}]))
    assert url_ref["url"] == "https://api.openai.com/v1/videos"
    assert url_ref["headers"]["Content-Type"] == "application/json"
    assert url_ref["json"] == {"model": "sora-2", "prompt": "x", "input_reference": {"image_url": "https://example.com/a.png"}}
    file_ref = render_request(video_config(None), VideoGenerationRequest(
        prompt="x", image_list=[{"image": PNG, "type": "reference"}]))
    assert file_ref["files"] == {"input_reference": f"<{len(PNG['content'])} bytes, image/png>"}
    remix = render_request(video_config(None), VideoGenerationRequest(prompt="night", extra_params={"video_id": "video_9"}))
    assert remix["url"] == "https://api.openai.com/v1/videos/video_9/remix" and remix["json"] == {"prompt": "night"}
    image = render_request(image_config(None, "dall-e-3"), ImageGenerationRequest(prompt="owl", style="natural"))
    assert image["url"] == "https://api.openai.com/v1/images/generations"
    assert image["json"] == {"model": "dall-e-3", "prompt": "owl", "style": "natural"}
    assert image["headers"]["Authorization"] == "Bearer ***"


def test_cli_render_prints_the_sdk_request_without_network(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-never-printed")
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"prompt": "a cat", "duration_seconds": 4, "aspect_ratio": "9:16"}))
    code = cli_main(["render", "--provider", "openai", "--model", "sora-2", "--request", str(request),
                     "--base-url", f"{fake.base_url}/v1"])
    out = capsys.readouterr().out
    assert code == 0
    printed = json.loads(out)
    assert printed["headers"]["Authorization"] == "Bearer ***"
    assert printed["form"] == {"prompt": "a cat", "model": "sora-2", "seconds": "4", "size": "720x1280"}
    assert "sk-from-env" not in out
    assert fake.requests == []


def test_validation_happens_before_any_request(fake):
    with pytest.raises(ValidationError, match="allowed: 4, 8, 12") as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x", duration_seconds=10))
    assert info.value.provider == "openai" and info.value.model == "sora-2"
    with pytest.raises(ValidationError, match="remixes extra_params.video_id from a prompt alone"):
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x", duration_seconds=8,
                                                                  extra_params={"video_id": "video_1"}))
    with pytest.raises(ValidationError, match="at most 1000 characters"):
        generate_image(image_config(fake, "dall-e-2"), ImageGenerationRequest(prompt="x" * 1001))
    with pytest.raises(ValidationError, match="takes no mask image"):
        generate_image(image_config(fake), ImageGenerationRequest(prompt="x", mask_image="https://x/m.png"))
    assert fake.requests == []


# -- videos ---------------------------------------------------------------------------------------


def test_video_end_to_end_sync_with_progress(fake):
    updates: list[VideoGenerationUpdate] = []
    response = generate_video(video_config(fake), VideoGenerationRequest(
        prompt=NASTY_PROMPT, duration_seconds=8, aspect_ratio="16:9"), on_progress=updates.append)
    created = fake.creates[0]
    assert created.kind == "multipart"
    assert created.headers["content-type"].startswith("multipart/form-data")
    assert created.headers["authorization"] == f"Bearer {API_KEY}"
    assert created.fields == {"prompt": NASTY_PROMPT, "model": "sora-2", "seconds": "8", "size": "1280x720"}
    assert response.request_id == created.video_id
    assert response.video == {"content": FAKE_MP4, "content_type": "video/mp4"}
    assert response.content_type == "video/mp4" and response.duration == 8.0 and response.resolution == "1280x720"
    assert response.provider == "openai" and response.model == "sora-2"
    assert response.raw_response["status"] == "completed" and response.raw_response["id"] == created.video_id
    statuses = [u.status for u in updates]
    assert statuses[0] == "queued" and statuses[-1] == "completed" and "processing" in statuses
    percents = [u.progress_percent for u in updates if u.status == "processing"]
    assert percents == [33, 67]
    assert updates[-1].result.video == response.video and updates[-1].progress_percent == 100
    assert all(u.request_id == created.video_id and u.provider == "openai" for u in updates)
    assert fake.create_count() == 1 and fake.polls(created.video_id) == 4 and fake.downloads(created.video_id) == 1


async def test_video_async_bytes_reference_is_a_file_part(fake):
    updates = []

    async def on_progress(update: VideoGenerationUpdate) -> None:
        updates.append(update.status)

    response = await generate_video_async(video_config(fake, "sora-2-pro"), VideoGenerationRequest(
        prompt="waves", aspect_ratio="9:16", resolution="1024p", image_list=[{"image": PNG, "type": "first_frame"}]),
        on_progress=on_progress)
    created = fake.creates[0]
    assert created.kind == "multipart" and created.fields["size"] == "1024x1792"
    assert created.files["input_reference"] == ("input_reference.png", PNG["content"], "image/png")
    assert response.video["content"] == FAKE_MP4 and updates[-1] == "completed"


async def test_video_async_url_reference_is_the_image_url_object(fake):
    await generate_video_async(video_config(fake), VideoGenerationRequest(
        prompt="she turns", image_list=[{"image": "https://example.com/girl.png", "type": "reference"}]))
    created = fake.creates[0]
    assert created.kind == "json"
    assert created.headers["content-type"] == "application/json"
    assert created.fields == {"model": "sora-2", "prompt": "she turns",
                              "input_reference": {"image_url": "https://example.com/girl.png"}}


def test_remix_via_extra_params(fake):
    fake.queue(SoraJob(statuses=["completed"]), SoraJob(statuses=["in_progress", "completed"]))
    first = generate_video(video_config(fake), VideoGenerationRequest(prompt="day"))
    remixed = generate_video(video_config(fake), VideoGenerationRequest(
        prompt="night", extra_params={"video_id": first.request_id}))
    last = fake.creates[-1]
    assert last.kind == "remix" and last.source_video_id == first.request_id and last.fields == {"prompt": "night"}
    assert remixed.raw_response["remixed_from_video_id"] == first.request_id


def test_download_streams_to_the_named_file(fake, tmp_path):
    content = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 800  # > one chunk
    fake.queue(SoraJob(content=content))
    target = tmp_path / "out" / "video.mp4"
    response = generate_video(video_config(fake, provider_config={"download_path": str(target)}),
                              VideoGenerationRequest(prompt="x"))
    assert response.video == target.resolve().as_uri() and response.content_type == "video/mp4"
    assert target.read_bytes() == content
    assert [p.name for p in target.parent.iterdir()] == ["video.mp4"]  # no temp file left


def test_moderation_at_create(fake):
    fake.queue(SoraJob.blocked())
    with pytest.raises(ContentModerationError, match="blocked by our moderation system") as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    err = info.value
    assert err.provider == "openai" and err.model == "sora-2" and err.request_id.startswith("req_")
    assert not err.job_may_exist and err.raw_response["status_code"] == 400
    assert fake.create_count() == 0 and fake.create_attempts == 1  # moderation is not retried


def test_moderation_in_the_job(fake):
    fake.queue(SoraJob.moderated())
    updates: list[VideoGenerationUpdate] = []
    with pytest.raises(ContentModerationError, match="generated video was blocked") as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"), on_progress=updates.append)
    err = info.value
    assert err.request_id == fake.creates[0].video_id and err.job_may_exist
    assert err.raw_response["error"]["code"] == "moderation_blocked"
    assert updates[-1].status == "failed" and "blocked" in updates[-1].error
    assert fake.create_count() == 1


def test_failed_job_is_generation_failed_and_not_resubmitted(fake):
    fake.queue(SoraJob.failed("internal_error", "the renderer crashed"))
    with pytest.raises(GenerationFailedError, match="the renderer crashed") as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    assert info.value.request_id == fake.creates[0].video_id and info.value.provider == "openai"
    assert fake.create_count() == 1 and fake.create_attempts == 1


def test_rate_limited_create_is_retried_by_routing_then_accepted(fake):
    fake.queue(SoraJob(create_failures=[rate_limited(retry_after=0)]))
    response = generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    assert fake.create_attempts == 2 and fake.create_count() == 1
    attempts = response.execution_metadata.attempts
    assert [a.status for a in attempts] == ["failed", "success"] and attempts[0].error_type == "RateLimitError"


def test_server_error_at_create_is_not_resent(fake):
    fake.queue(SoraJob(create_failures=[server_error(500)]))
    with pytest.raises(HTTPError) as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    assert info.value.status_code == 500 and info.value.job_may_exist  # a 500 may hide a created job
    assert fake.create_attempts == 1


def test_poll_errors_are_retried_as_polls(fake):
    from tarash_router.testing._server import Failure

    fake.queue(SoraJob(poll_failures={1: server_error(502), 2: rate_limited(retry_after=0),
                                      3: Failure.malformed_json(), 4: Failure.html(503)}))
    response = generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    assert response.video["content"] == FAKE_MP4
    assert fake.create_count() == 1 and fake.polls(response.request_id) == 8


def test_content_download_errors_are_retried_and_a_missing_video_is_not(fake):
    fake.queue(SoraJob(content_failures=[server_error(502)]),
               SoraJob(content_failures=[openai_error(404, "Video not found.", code="video_not_found")]))
    response = generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    assert response.video["content"] == FAKE_MP4 and fake.downloads(response.request_id) == 2
    with pytest.raises(ValidationError, match="Video not found") as info:
        generate_video(video_config(fake), VideoGenerationRequest(prompt="y"))
    assert info.value.job_may_exist and info.value.request_id == fake.creates[1].video_id
    assert fake.create_count() == 2


def test_poll_after_hint_is_honoured(fake):
    fake.queue(SoraJob(poll_after_ms=60))
    response = generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    times = fake.poll_times[response.request_id]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3 and min(gaps) >= 0.05  # asked for 60 ms; poll_interval is 5 ms


def test_deadline_is_a_timeout_error_and_the_job_is_not_resubmitted(fake):
    fake.queue(SoraJob(statuses=["queued", "in_progress"]))
    with pytest.raises(TimeoutError) as info:
        generate_video(video_config(fake, timeout=0.3), VideoGenerationRequest(prompt="x"))
    err = info.value
    assert err.request_id == fake.creates[0].video_id and err.job_may_exist and err.provider == "openai"
    assert fake.create_count() == 1 and fake.create_attempts == 1


def test_max_poll_attempts(fake):
    fake.queue(SoraJob(statuses=["in_progress"]))
    with pytest.raises(TimeoutError, match="max_poll_attempts"):
        generate_video(video_config(fake, max_poll_attempts=3), VideoGenerationRequest(prompt="x"))
    assert fake.polls(fake.creates[0].video_id) == 3


def test_auth_errors(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        generate_video(video_config(fake, api_key=None), VideoGenerationRequest(prompt="x"))
    assert fake.requests == []
    with pytest.raises(AuthenticationError) as info:
        generate_image(image_config(fake, api_key="sk-wrong-key"), ImageGenerationRequest(prompt="x"))
    assert info.value.status_code == 401 and "sk-wrong-key" not in str(info.value)


def test_deprecation_is_logged_once_per_process(fake, caplog):
    openai_common._WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="tarash_router.transports.openai"):
        for _ in range(2):
            generate_video(video_config(fake), VideoGenerationRequest(prompt="x"))
    notes = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(notes) == 1 and "2026-09-24" in notes[0]
    assert API_KEY not in caplog.text


# -- images ---------------------------------------------------------------------------------------


def test_gpt_image_base64_becomes_data_uris(fake):
    updates: list[ImageGenerationUpdate] = []
    response = generate_image(image_config(fake), ImageGenerationRequest(
        prompt="a lighthouse", n=2, size="auto", quality="high", extra_params={"output_format": "webp"}),
        on_progress=updates.append)
    call = fake.image_calls[0]
    assert call.json == {"model": "gpt-image-1.5", "prompt": "a lighthouse", "n": 2, "size": "auto", "quality": "high",
                         "output_format": "webp"}
    assert len(response.images) == 2 and all(i.startswith("data:image/webp;base64,UklGR") for i in response.images)
    assert response.content_type == "image/webp" and response.request_id.startswith("req_")
    assert updates[-1].status == "completed" and updates[-1].result.images == response.images


@pytest.mark.parametrize("model", ["gpt-image-1-mini", "gpt-image-1"])
async def test_gpt_image_async_png_default(fake, model):
    response = await generate_image_async(image_config(fake, model),
                                          ImageGenerationRequest(prompt="x", aspect_ratio="2:3"))
    assert fake.image_calls[0].json["model"] == model
    assert fake.image_calls[0].json["size"] == "1024x1536"
    assert response.images[0].startswith("data:image/png;base64,iVBOR") and response.content_type == "image/png"


def test_dall_e_3_url_and_revised_prompt(fake):
    response = generate_image(image_config(fake, "dall-e-3"), ImageGenerationRequest(
        prompt="an owl", aspect_ratio="16:9", quality="hd", style="vivid"))
    assert fake.image_calls[0].json == {"model": "dall-e-3", "prompt": "an owl", "size": "1792x1024", "quality": "hd",
                                        "style": "vivid"}
    assert response.images[0].startswith(f"{fake.base_url}/fake-images/")
    assert response.revised_prompt == "A detailed rendering of: an owl"


def test_dall_e_2_base64_on_request(fake):
    response = generate_image(image_config(fake, "dall-e-2"), ImageGenerationRequest(
        prompt="a kite", n=3, size="256x256", extra_params={"response_format": "b64_json"}))
    assert len(response.images) == 3 and response.images[0].startswith("data:image/png;base64,")
    assert fake.image_calls[0].json["response_format"] == "b64_json"


def test_image_moderation_and_rate_limit(fake):
    fake.queue_image_failures(
        moderation_blocked(),
        openai_error(400, "Your request was rejected as a result of our safety system.", code="content_policy_violation"),
        rate_limited(retry_after=0), rate_limited(retry_after=0), rate_limited(retry_after=0))
    with pytest.raises(ContentModerationError, match="moderation system") as info:
        generate_image(image_config(fake), ImageGenerationRequest(prompt="x"))
    assert info.value.provider == "openai" and info.value.model == "gpt-image-1.5" and info.value.request_id
    with pytest.raises(ContentModerationError, match="safety system"):
        generate_image(image_config(fake, "dall-e-3"), ImageGenerationRequest(prompt="x"))
    from tarash_router import RateLimitError

    with pytest.raises(RateLimitError):  # three tries (the default retry policy), all throttled
        generate_image(image_config(fake), ImageGenerationRequest(prompt="x"))
    assert fake.image_attempts == 5 and fake.image_calls == []


# -- the SDK is optional --------------------------------------------------------------------------

NO_SDK = textwrap.dedent("""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("openai", "httpx2"):
                raise ImportError(f"blocked {name}")
            return None

    sys.meta_path.insert(0, Block())

    import tarash_router
    from tarash_router.errors import MissingExtraError
    from tarash_router.models import ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest

    for call in (
        lambda: tarash_router.generate_image(ImageGenerationConfig(provider="openai", model="gpt-image-2", api_key="k"),
                                             ImageGenerationRequest(prompt="x")),
        lambda: tarash_router.generate_image(ImageGenerationConfig(provider="azure-openai", model="gpt-image-1",
                                             api_key="k", base_url="https://r.openai.azure.com"),
                                             ImageGenerationRequest(prompt="x")),
        lambda: tarash_router.render_request(ImageGenerationConfig(provider="openai", model="gpt-image-2"),
                                             ImageGenerationRequest(prompt="x")),
    ):
        try:
            call()
        except MissingExtraError as exc:
            print(exc)
        else:
            raise SystemExit("no MissingExtraError")
    assert "openai" not in sys.modules
""")


def test_missing_sdk_names_the_extra():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", NO_SDK], capture_output=True, text=True, timeout=60, cwd=root)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and all("pip install 'tarash-router[openai]'" in line for line in lines)


def test_sora_job_is_journaled_and_resumable_without_a_second_create(fake, tmp_path):
    """A crash after create: resume(job_id) polls and downloads the same video; nothing is created twice."""
    import asyncio as _asyncio

    from tarash_router import resume
    from tarash_router.journal import open_journal, set_journal

    set_journal(open_journal(f"sqlite:///{tmp_path}/jobs.db"))
    try:
        fake.queue(SoraJob(statuses=["queued"] * 40 + ["completed"]))

        async def start_then_drop():
            task = _asyncio.create_task(generate_video_async(video_config(fake), VideoGenerationRequest(
                prompt="a cat", duration_seconds=4)))
            while not fake.creates:
                await _asyncio.sleep(0.005)
            await _asyncio.sleep(0.02)
            return task

        _asyncio.new_event_loop().run_until_complete(start_then_drop())  # the "process" stops here
        video_id = fake.creates[0].video_id
        response = resume(video_id, api_key=API_KEY, base_url=f"{fake.base_url}/v1")
        assert response.request_id == video_id and response.video["content"] == FAKE_MP4
        assert fake.create_count() == 1
    finally:
        set_journal(None)
