"""Issue 17: a typo never reaches a paid provider. Misspelt request fields, extra params and model ids
are refused (or warned about) with a "did you mean" before any HTTP; `validate` reports every finding
of a file in one run; and the small things a newcomer met. Through the public API, against the
loopback fake Fal server, which must receive nothing when a call is refused."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from pathlib import Path

import pytest

from conftest import video_config
from tarash_router import (
    Client, ConfigError, Router, ValidationError, generate_video, register_provider, render_request,
)
from tarash_router.api import unregister_provider
from tarash_router.cli import main
from tarash_router.models import (
    ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse,
)
from tarash_router.testing import Failure, FalJob
from tarash_router.validate import validate_paths

VEO = "fal-ai/veo3"
VEO_FAST = "fal-ai/veo3/fast"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------- 1. misspelt request fields


def test_a_misspelt_request_field_is_refused_when_the_request_is_built():
    with pytest.raises(ValidationError) as info:
        VideoGenerationRequest(prompt="a cat", durations=8)
    assert info.value.message.startswith("unknown field 'durations'; did you mean 'duration_seconds'?")
    assert "extra_params={'durations': ...}" in info.value.message  # how to send a raw field on purpose


@pytest.mark.parametrize(("typed", "meant"), [
    ("duration", "duration_seconds"), ("aspectRatio", "aspect_ratio"), ("negative_promt", "negative_prompt"),
    ("resolutions", "resolution"), ("seeds", "seed"), ("generate_audios", "generate_audio"),
])
def test_close_names_of_video_fields_are_refused_with_the_field_they_resemble(typed, meant):
    with pytest.raises(ValidationError, match=f"unknown field '{typed}'; did you mean '{meant}'\\?"):
        VideoGenerationRequest(prompt="a cat", **{typed: 1})


def test_close_names_of_image_fields_are_refused_too():
    with pytest.raises(ValidationError, match="unknown field 'qualty'; did you mean 'quality'\\?"):
        ImageGenerationRequest(prompt="a cat", qualty="high")


def test_a_request_read_from_json_is_checked_the_same_way():
    with pytest.raises(ValidationError, match="did you mean 'duration_seconds'"):
        VideoGenerationRequest.model_validate({"prompt": "a cat", "durations": 8})


@pytest.mark.parametrize("name", ["cfg_scale", "video_id", "speed", "last_image", "output_quality", "camera_fixed"])
def test_provider_fields_unlike_any_request_field_still_pass_as_keywords(name):
    assert VideoGenerationRequest(prompt="a cat", **{name: 1}).extra_params == {name: 1}


def test_explicit_extra_params_are_not_checked_against_request_fields():
    request = VideoGenerationRequest(prompt="a cat", extra_params={"durations": 8})
    assert request.extra_params == {"durations": 8}


def test_a_family_refuses_an_extra_param_one_keystroke_from_a_field_it_sends_before_any_http(fal):
    request = VideoGenerationRequest(prompt="a cat", extra_params={"negative_promt": "blur"})
    with pytest.raises(ValidationError) as info:
        generate_video(video_config(fal, VEO), request)
    assert info.value.message.startswith(
        "fal-ai/veo3 does not take extra_params key 'negative_promt'; did you mean 'negative_prompt'?")
    assert "extra_params: merge" in info.value.message  # the family-side escape hatch, named
    assert fal.requests == []


def test_an_extra_param_unlike_any_field_of_the_family_reaches_the_provider(fal):
    generate_video(video_config(fal, VEO), VideoGenerationRequest(prompt="a cat", extra_params={"cfg_scale": 0.5}))
    assert json.loads(fal.submits[0].body)["cfg_scale"] == 0.5


def test_an_allow_list_refusal_names_the_close_allowed_key(fal):
    request = VideoGenerationRequest(prompt="a cat", extra_params={"audio_ur": "https://example.com/a.mp3"})
    with pytest.raises(ValidationError, match="does not accept extra_params audio_ur; did you mean 'audio_url'\\?"):
        generate_video(video_config(fal, "fal-ai/wan/v2.7/text-to-video"), request)
    assert fal.requests == []


def test_extra_params_merge_in_a_family_passes_any_key(tmp_path):
    write(tmp_path / "loose.yaml", """\
        spec_version: 1
        provider: fal
        family: loose
        models: [fal-ai/loose-model]
        modality: video
        body: {prompt: "{{ request.prompt }}", negative_prompt: "{{ request.negative_prompt }}"}
        extra_params: merge
        """)
    with Client(spec_dirs=[tmp_path], journal="memory") as client:
        config = VideoGenerationConfig(provider="fal", model="fal-ai/loose-model")
        rendered = client.render_request(config, VideoGenerationRequest(prompt="x", extra_params={"negative_promt": 1}))
    assert rendered["json"] == {"prompt": "x", "negative_promt": 1}


# ---------------------------------------------------------------- 2. misspelt model ids


def test_a_model_id_one_keystroke_from_a_listed_one_is_refused_before_any_http(fal):
    with pytest.raises(ValidationError) as info:
        generate_video(video_config(fal, "fal-ai/veo3/fsat"), VideoGenerationRequest(prompt="a cat"))
    assert info.value.message.startswith("unknown model 'fal-ai/veo3/fsat'; did you mean 'fal-ai/veo3/fast'?")
    assert "allow_unknown_model: true" in info.value.message
    assert fal.requests == []


def test_a_dry_run_refuses_the_typo_too():
    with pytest.raises(ValidationError, match="did you mean 'fal-ai/veo3/fast'"):
        render_request(VideoGenerationConfig(provider="fal", model="fal-ai/veo3/fsat"),
                       VideoGenerationRequest(prompt="a cat"))


def test_allow_unknown_model_sends_the_id_with_a_logged_warning(fal, caplog):
    caplog.set_level(logging.WARNING, logger="tarash_router")
    config = video_config(fal, "fal-ai/veo3/fsat", allow_unknown_model=True)
    response = generate_video(config, VideoGenerationRequest(prompt="a cat"))
    assert [s.endpoint for s in fal.submits] == ["fal-ai/veo3/fsat"]
    warning = "no fal family lists 'fal-ai/veo3/fsat'; did you mean 'fal-ai/veo3/fast'"
    assert warning in caplog.text
    assert any(warning in w for w in response.execution_metadata.attempts[0].warnings)


def test_an_id_only_the_generic_family_serves_is_a_warning_with_the_closest_ids(fal, caplog):
    caplog.set_level(logging.WARNING, logger="tarash_router")
    response = generate_video(video_config(fal, "fal-ai/veo4/ultra"), VideoGenerationRequest(prompt="a cat"))
    assert [s.endpoint for s in fal.submits] == ["fal-ai/veo4/ultra"]  # maybe a new model: sent
    assert "no fal family lists 'fal-ai/veo4/ultra'; did you mean" in caplog.text
    assert "'fal-ai/veo3" in caplog.text
    assert "generic video family" in response.execution_metadata.attempts[0].warnings[0]


def test_a_version_bump_is_not_taken_for_a_typo():
    rendered = render_request(VideoGenerationConfig(provider="fal", model="fal-ai/veo4"),
                              VideoGenerationRequest(prompt="a cat"))
    assert rendered["url"].endswith("/fal-ai/veo4")
    assert rendered["warnings"][0].startswith("no fal family lists 'fal-ai/veo4'; did you mean")


def test_a_listed_id_has_no_warning():
    rendered = render_request(VideoGenerationConfig(provider="fal", model=VEO_FAST),
                              VideoGenerationRequest(prompt="a cat"))
    assert "warnings" not in rendered


def test_an_unknown_model_error_lists_the_closest_available_models():
    with pytest.raises(ValidationError) as info:
        render_request(VideoGenerationConfig(provider="runway", model="gen4_turb"), VideoGenerationRequest(prompt="x"))
    assert info.value.message == ("no video spec of provider 'runway' serves model 'gen4_turb'; closest available: "
                                  "gen4_turbo, gen3a_turbo, gen4_image_turbo")


def test_an_unknown_provider_suggests_the_close_one():
    with pytest.raises(ValidationError, match="unknown provider 'fla'; did you mean 'fal'\\?"):
        render_request(VideoGenerationConfig(provider="fla", model=VEO), VideoGenerationRequest(prompt="x"))


def test_a_route_skips_a_typoed_target_and_says_why(fal):
    config = video_config(fal, "fal-ai/veo3/fsat", fallback_configs=[video_config(fal, VEO_FAST)])
    response = generate_video(config, VideoGenerationRequest(prompt="a cat"))
    skipped, served = response.execution_metadata.attempts
    assert skipped.status == "skipped" and "did you mean 'fal-ai/veo3/fast'" in skipped.reason
    assert served.model == VEO_FAST and [s.endpoint for s in fal.submits] == [VEO_FAST]


ROUTE_UNLISTED = """\
    spec_version: 1
    routes:
      v:
        modality: video
        targets:
          - {provider: fal, model: fal-ai/veo4/ultra}
          - {provider: fal, model: fal-ai/veo3/fsat, allow_unknown_model: true}
          - {provider: fal, model: fal-ai/veo3/fast}
    """


def test_validate_warns_of_unlisted_ids_and_explain_shows_the_warning(tmp_path):
    path = write(tmp_path / "routes.yaml", ROUTE_UNLISTED)
    findings = validate_paths([path])
    assert [(f.severity, f.key) for f in findings] == [
        ("warning", "routes.v.targets[0].model"), ("warning", "routes.v.targets[1].model")]
    assert "no fal family lists 'fal-ai/veo4/ultra'; did you mean" in findings[0].message
    plan = Router.from_dir(path).explain("v", VideoGenerationRequest(prompt="a cat"), assume_keys=True)
    assert [bool(step.warnings) for step in plan.steps] == [True, True, False]
    assert "     warning: no fal family lists 'fal-ai/veo4/ultra'" in plan.render()


def test_a_typoed_model_id_in_a_routes_file_is_an_error(tmp_path):
    path = write(tmp_path / "routes.yaml", ROUTE_UNLISTED.replace(", allow_unknown_model: true", ""))
    findings = validate_paths([path])
    errors = [f for f in findings if f.severity == "error"]
    assert [(f.key, f.line) for f in errors] == [("routes.v.targets[1].model", 7)]
    assert errors[0].message.startswith("unknown model 'fal-ai/veo3/fsat'; did you mean 'fal-ai/veo3/fast'?")
    with pytest.raises(ConfigError, match="did you mean 'fal-ai/veo3/fast'"):
        Router.from_dir(path)


# ---------------------------------------------------------------- 3. every finding of a file, in one run


THREE_TYPOS = """\
    spec_version: 1
    routes:
      video-main:
        modality: video
        stratgy: fallback
        targets:
          - {provider: fal, modle: fal-ai/veo3/fast}
        retry: {attemps: 3}
    """


def test_a_routes_file_with_three_typos_yields_three_findings_in_one_run(tmp_path, capsys):
    path = write(tmp_path / "routes.yaml", THREE_TYPOS)
    findings = validate_paths([path])
    assert [(f.line, f.key) for f in findings] == [
        (5, "routes.video-main.stratgy"), (7, "routes.video-main.targets[0].modle"),
        (8, "routes.video-main.retry.attemps")]
    assert findings[0].message.startswith("unknown key 'stratgy'; did you mean 'strategy'?")
    assert main(["validate", "--format", "json", str(path)]) == 1
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_loading_the_file_raises_one_error_that_carries_the_others(tmp_path):
    path = write(tmp_path / "routes.yaml", THREE_TYPOS)
    with pytest.raises(ConfigError) as info:
        Router.from_dir(path)
    assert len(info.value.all) == 3
    assert len(str(info.value).splitlines()) == 3


def test_target_typos_of_every_kind_are_reported_together(tmp_path):
    path = write(tmp_path / "routes.yaml", """\
        spec_version: 1
        routes:
          v:
            modality: video
            targets:
              - {provider: fla, model: fal-ai/veo3}
              - {provider: fal, model: fal-ai/veo3/fsat}
              - {provider: fal, model: fal-ai/veo3, params: {durations: 8}}
        """)
    messages = [f.message for f in validate_paths([path])]
    assert len(messages) == 3
    assert messages[0].startswith("unknown provider 'fla'; did you mean 'fal'?")
    assert messages[1].startswith("unknown model 'fal-ai/veo3/fsat'; did you mean 'fal-ai/veo3/fast'?")
    assert messages[2].startswith("unknown request field 'durations' in params; did you mean 'duration_seconds'?")


def test_a_family_file_reports_every_schema_error_in_one_run(tmp_path):
    path = write(tmp_path / "mine.yaml", """\
        spec_version: 1
        provider: fal
        family: mine
        modalty: video
        models: [fal-ai/mine]
        extra_params: mrege
        body: {prompt: "{{ request.prompt }}"}
        """)
    findings = validate_paths([path])
    assert [(f.line, f.key) for f in findings] == [(4, "modalty"), (6, "extra_params")]
    assert findings[0].message.startswith("unknown key 'modalty'; did you mean 'modality'?")


# ---------------------------------------------------------------- 4. small things a newcomer met


class NamelessHandler:
    """A custom provider whose responses leave provider and model unset."""

    def generate_video(self, config, request, on_progress=None):
        return VideoGenerationResponse(request_id="r-1", video="https://cdn.example/v.mp4")

    async def generate_video_async(self, config, request, on_progress=None):
        return self.generate_video(config, request, on_progress)

    def generate_image(self, config, request, on_progress=None):
        raise NotImplementedError

    async def generate_image_async(self, config, request, on_progress=None):
        raise NotImplementedError


def test_a_custom_providers_response_names_its_provider_and_model():
    register_provider("my-provider", NamelessHandler())
    try:
        response = generate_video(VideoGenerationConfig(provider="my-provider", model="m-1"),
                                  VideoGenerationRequest(prompt="x"))
    finally:
        unregister_provider("my-provider")
    assert (response.provider, response.model) == ("my-provider", "m-1")


def test_loaded_specs_print_short():
    from tarash_router.specs.registry import builtin_spec_dir

    with Client(journal="memory") as client:
        families = client.load_specs(builtin_spec_dir() / "fal" / "veo3.yaml")
    assert repr(families) == "[<FamilySpec fal/veo3 video (2 model ids)>]"


def test_a_dry_run_names_the_request_fields_it_ignored():
    config = VideoGenerationConfig(provider="fal", model="fal-ai/minimax/hailuo-02/standard/image-to-video",
                                   adapt={"seed": "drop"})
    request = VideoGenerationRequest(prompt="x", seed=3, number_of_videos=2, image_list=[
        {"image": "https://example.com/a.png", "type": "first_frame"}])
    rendered = render_request(config, request)
    assert rendered["ignored_fields"] == {
        "number_of_videos": "the fal/minimax-hailuo-02-image-to-video family sends no such field",
        "seed": "dropped (adapt: drop)"}
    assert "seed" not in rendered["json"]


def test_a_dry_run_that_ignores_nothing_says_nothing():
    rendered = render_request(VideoGenerationConfig(provider="fal", model=VEO),
                              VideoGenerationRequest(prompt="x", duration_seconds=8))
    assert "ignored_fields" not in rendered


def test_a_fallback_is_a_progress_event(fal):
    fal.queue(FalJob(submit_failures=[Failure.server_error(503)] * 3))
    updates = []
    config = video_config(fal, VEO_FAST, fallback_configs=[video_config(fal, VEO)])
    response = generate_video(config, VideoGenerationRequest(prompt="x"), on_progress=updates.append)
    fallback = [u for u in updates if u.update.get("event") == "fallback"]
    assert len(fallback) == 1
    event = fallback[0]
    assert (event.status, event.provider, event.model) == ("queued", "fal", VEO)
    assert event.update["from"] == f"fal/{VEO_FAST}" and event.update["to"] == f"fal/{VEO}"
    assert event.update["reason"].startswith("HTTPError") and event.error
    assert updates.index(event) < len(updates) - 1 and response.model == VEO


def test_a_skip_to_the_next_target_is_a_progress_event_too(fal):
    updates = []
    kling = video_config(fal, "fal-ai/kling-video/v2.6/pro/text-to-video")
    config = video_config(fal, VEO_FAST, fallback_configs=[kling])
    asyncio.run(_generate(config, VideoGenerationRequest(prompt="x", duration_seconds=5), updates))  # an async callback
    event = next(u for u in updates if u.update.get("event") == "fallback")
    assert event.update["reason"].startswith(
        "skipped: unsupported: fal-ai/veo3/fast does not accept duration_seconds=5")
    assert event.error is None


async def _generate(config, request, updates):
    from tarash_router import generate_video_async

    async def on_progress(update):
        updates.append(update)

    return await generate_video_async(config, request, on_progress)


def test_explain_cli_shows_the_unlisted_model_warning(tmp_path, capsys):
    routes = write(tmp_path / "routes.yaml", ROUTE_UNLISTED)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"prompt": "a cat"}))
    assert main(["explain", "--route", "v", "--request", str(request), "--routes", str(routes), "--assume-keys"]) == 0
    assert "warning: no fal family lists 'fal-ai/veo4/ultra'" in capsys.readouterr().out


def test_the_render_cli_refuses_a_misspelt_field(tmp_path, capsys):
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"prompt": "a cat", "durations": 8}))
    assert main(["render", "--provider", "fal", "--model", VEO, "--request", str(request)]) == 1
    assert "unknown field 'durations'; did you mean 'duration_seconds'?" in capsys.readouterr().err




def test_a_model_listed_for_the_other_modality_is_refused_not_sent_to_the_generic_family(fal):
    with pytest.raises(ValidationError) as info:
        generate_video(video_config(fal, "fal-ai/flux/dev"), VideoGenerationRequest(prompt="a cat"))
    assert info.value.message.startswith(
        "'fal-ai/flux/dev' is listed as an image model (fal/flux), not as a video model")
    assert fal.requests == []


def test_an_unknown_route_name_suggests_the_close_one(tmp_path):
    path = write(tmp_path / "routes.yaml", ROUTE_UNLISTED.replace("  v:", "  video-default:"))
    with pytest.raises(ValidationError, match="unknown route 'video-defualt'; did you mean 'video-default'\\?"):
        Router.from_dir(path).get("video-defualt")


def test_a_family_that_lists_ids_and_is_also_generic_serves_its_own_ids_without_a_warning(tmp_path):
    write(tmp_path / "both.yaml", """\
        spec_version: 1
        provider: fal
        family: both
        models: [fal-ai/both-listed, "*"]
        modality: video
        body: {prompt: "{{ request.prompt }}"}
        """)
    request = VideoGenerationRequest(prompt="x")
    with Client(spec_dirs=[tmp_path], journal="memory") as client:
        listed = client.render_request(VideoGenerationConfig(provider="fal", model="fal-ai/both-listed"), request)
        other = client.render_request(VideoGenerationConfig(provider="fal", model="fal-ai/both-other"), request)
    assert "warnings" not in listed
    assert other["warnings"][0].startswith("no fal family lists 'fal-ai/both-other'")
