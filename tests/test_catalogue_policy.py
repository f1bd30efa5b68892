"""What a model cannot do is refused before anything is sent: fields it cannot honour (unless the caller
accepts the loss with `adapt: drop`, recorded in the metadata), models its provider retired (naming
the successor; routes skip them, validate flags routes naming them), and ids only the generic family
serves (said in the metadata and by validate)."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from conftest import API_KEY, video_config
from tarash_router import ValidationError, generate_video, render_request
from tarash_router.models import VideoGenerationRequest
from tarash_router.routing import Router
from tarash_router.routing.cooldown import InMemoryCooldowns
from tarash_router.validate import validate_paths

# fal's Hailuo 02 image-to-video takes no seed.
HAILUO = "fal-ai/minimax/hailuo-02/standard/image-to-video"
SEEDED = VideoGenerationRequest(prompt="a cat", duration_seconds=6, seed=7, image_list=[
    {"image": "https://example.com/cat.png", "type": "first_frame"}])


def test_a_field_the_model_cannot_honour_is_refused_before_sending(fal):
    with pytest.raises(ValidationError, match="cannot honour seed") as caught:
        generate_video(video_config(fal, model=HAILUO), SEEDED)
    assert "adapt: {seed: drop}" in caught.value.message
    assert fal.submits == []


def test_adapt_drop_sends_without_the_field_and_records_the_loss(fal):
    config, request = video_config(fal, model=HAILUO, adapt={"seed": "drop"}), SEEDED
    response = generate_video(config, request)
    assert "seed" not in fal.submits[-1].json
    (attempt,) = response.execution_metadata.attempts
    assert attempt.dropped_fields == ["seed"]
    assert attempt.family == "fal/minimax-hailuo-02-image-to-video"
    assert render_request(config, request)["json"] == fal.submits[-1].json  # the dry run drops it too


def _retired_family(root: Path, shutdown: date, successor: str | None) -> Path:
    family = (root / "fal").joinpath("old-clip.yaml")
    family.parent.mkdir(parents=True, exist_ok=True)
    family.write_text(textwrap.dedent(f"""\
        spec_version: 1
        provider: fal
        models: [fal-ai/old-clip]
        modality: video
        shutdown: {shutdown.isoformat()}
        {f"successor: {successor}" if successor else ""}
        body:
          prompt: "{{{{ request.prompt }}}}"
        examples:
          - request: {{prompt: "a cat"}}
            body: {{prompt: "a cat"}}
    """))
    return root


def test_a_retired_model_is_refused_naming_its_successor(tmp_path, fal):
    from tarash_router.client import Client

    with Client(spec_dirs=[_retired_family(tmp_path, date(2026, 7, 30), "fal-ai/veo3/fast")]) as client:
        config = video_config(fal, model="fal-ai/old-clip")
        for call in (lambda: client.generate_video(config, VideoGenerationRequest(prompt="a cat")),
                     lambda: client.render_request(config, VideoGenerationRequest(prompt="a cat"))):
            with pytest.raises(ValidationError, match="retired by fal on 2026-07-30; use fal-ai/veo3/fast instead"):
                call()
    assert fal.submits == []


def test_a_model_retiring_later_is_still_served(tmp_path, fal):
    from tarash_router.client import Client

    with Client(spec_dirs=[_retired_family(tmp_path, date(2999, 1, 1), None)]) as client:
        assert client.generate_video(video_config(fal, model="fal-ai/old-clip"), VideoGenerationRequest(prompt="x"))


def test_a_child_of_a_retired_family_is_still_served(tmp_path, fal):
    from tarash_router.client import Client

    root = _retired_family(tmp_path, date(2026, 7, 30), "fal-ai/new-clip")
    (root / "fal" / "new-clip.yaml").write_text(textwrap.dedent("""\
        spec_version: 1
        provider: fal
        extends: old-clip
        models: [fal-ai/new-clip]
        examples:
          - request: {prompt: "a cat"}
            body: {prompt: "a cat"}
    """))
    with Client(spec_dirs=[root]) as client:
        assert client.generate_video(video_config(fal, model="fal-ai/new-clip"), VideoGenerationRequest(prompt="x"))
        with pytest.raises(ValidationError, match="retired by fal on 2026-07-30"):
            client.generate_video(video_config(fal, model="fal-ai/old-clip"), VideoGenerationRequest(prompt="x"))


def _routes(tmp_path: Path, fal, first: str) -> Path:
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""\
        spec_version: 1
        routes:
          main:
            modality: video
            targets:
              - {{provider: fal, model: {first}, base_url: "{fal.base_url}", poll_interval: 5ms,
                  api_key_env: TEST_FAL_KEY}}
              - {{provider: fal, model: fal-ai/veo3/fast, base_url: "{fal.base_url}", poll_interval: 5ms,
                  api_key_env: TEST_FAL_KEY}}
    """))
    return routes


def test_routes_skip_a_retired_target_and_validate_flags_it(tmp_path, fal, monkeypatch):
    from tarash_router.engine.runtime import Runtime
    from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir

    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    specs = _retired_family(tmp_path / "specs", date(2026, 7, 30), "fal-ai/veo3/fast")
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    registry.load_paths([specs])
    router = Router([_routes(tmp_path, fal, "fal-ai/old-clip")], runtime=Runtime(registry=registry),
                    cooldowns=InMemoryCooldowns())
    plan = router.explain("main", VideoGenerationRequest(prompt="a cat"))
    assert plan.steps[0].action == "skip" and "retired by fal on 2026-07-30" in plan.steps[0].reason
    findings = validate_paths([specs, tmp_path / "routes.yaml"])
    errors = [f for f in findings if f.severity == "error"]
    assert len(errors) == 1 and "retired by fal" in errors[0].message and errors[0].file.endswith("routes.yaml")
    assert errors[0].line == 6  # the line of the target naming the model


def test_an_id_only_the_generic_family_serves_is_said_in_metadata_and_validate(tmp_path, fal, monkeypatch):
    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    response = generate_video(video_config(fal, model="fal-ai/brand-new-video"), VideoGenerationRequest(prompt="x"))
    (attempt,) = response.execution_metadata.attempts
    assert attempt.family == "fal/generic-video" and "generic video family" in attempt.warnings[0]
    findings = validate_paths([_routes(tmp_path, fal, "fal-ai/brand-new-video")])
    warnings = [f for f in findings if f.severity == "warning" and "generic video family" in f.message]
    assert len(warnings) == 1 and "'fal-ai/brand-new-video'" in warnings[0].message
    # One keystroke from a listed id it is a typo, and an error (tests/test_typos.py has the rest).
    findings = validate_paths([_routes(tmp_path, fal, "fal-ai/veo3/fsat")])
    assert [f.severity for f in findings if "'fal-ai/veo3/fsat'" in f.message] == ["error"]


def test_validate_flags_route_params_the_target_model_cannot_honour(tmp_path, fal):
    routes = _routes(tmp_path, fal, HAILUO)
    text = routes.read_text().replace("poll_interval: 5ms,\n", "poll_interval: 5ms, params: {seed: 7},\n", 1)
    routes.write_text(text)
    errors = [f for f in validate_paths([routes]) if f.severity == "error"]
    assert len(errors) == 1 and "params set seed, which" in errors[0].message and "adapt: {seed: drop}" in errors[0].message
    routes.write_text(text.replace("params: {seed: 7},", "params: {seed: 7}, adapt: {seed: drop},"))
    assert [f for f in validate_paths([routes]) if f.severity == "error"] == []


def test_a_constraint_on_a_field_never_sent_does_not_hide_its_loss(tmp_path):
    from tarash_router.client import Client
    from tarash_router.models import VideoGenerationConfig

    family = tmp_path / "fal" / "clip.yaml"
    family.parent.mkdir(parents=True)
    family.write_text(textwrap.dedent("""\
        spec_version: 1
        provider: fal
        models: [fal-ai/pinned-clip]
        modality: video
        params:
          duration_seconds: {allowed: [6], message: "6 s clips only"}   # pinned: accepted, not sent
          negative_prompt: {pattern: ".{0,40}"}                          # a rule, but never sent
        body:
          prompt: "{{ request.prompt }}"
        examples:
          - request: {prompt: "a cat", duration_seconds: 6}
            body: {prompt: "a cat"}
    """))
    with Client(spec_dirs=[tmp_path]) as client:
        config = VideoGenerationConfig(provider="fal", model="fal-ai/pinned-clip")
        assert client.render_request(config, VideoGenerationRequest(prompt="a", duration_seconds=6))["json"] == {
            "prompt": "a"}
        with pytest.raises(ValidationError, match="cannot honour negative_prompt"):
            client.render_request(config, VideoGenerationRequest(prompt="a", negative_prompt="blur"))


def test_the_seed_docs_switch_providers_example_is_refused_with_its_successor():
    from tarash_router.models import VideoGenerationConfig

    config = VideoGenerationConfig(provider="runway", model="gen3a_turbo", api_key="key_test")
    request = VideoGenerationRequest(prompt="waves", image_list=[{"image": "https://example.com/b.png",
                                                                  "type": "first_frame"}])
    with pytest.raises(ValidationError, match="gen3a_turbo was retired by runway on 2026-06-10; use gen4_turbo"):
        generate_video(config, request)
    with pytest.raises(ValidationError, match="use gen4_turbo instead"):
        render_request(config, request)
