"""`tarash-router spec check --openapi DIR`: provider schemas compared with the families serving them.

The fixtures in tests/fixtures/openapi/ are provider schemas (their sources are in the README
there); `drifted/` holds one deliberately changed copy so that every kind of finding is exercised.
A refreshed fixture that changes a finding fails `test_ci_run_over_the_fixtures`: that is the drift
alarm, and the expected set below is updated together with the family that fixes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tarash_router.cli import main as cli_main
from tarash_router.specs.registry import reset_registry
from tarash_router.tools.drift import KINDS

FIXTURES = Path(__file__).parent / "fixtures" / "openapi"
DRIFTED = "drifted/minimax-image-01.json"

# (fixture file, kind, provider field): what the check reports over tests/fixtures/openapi/ today.
# A family change that maps or declares one of these inputs removes its line here; print the current
# set with `tarash-router spec check --openapi tests/fixtures/openapi --format json`.
EXPECTED = {
    # the deliberately drifted copy of fal-ai/minimax/image-01: one finding of each kind
    (DRIFTED, "enum", "aspect_ratio"),
    (DRIFTED, "range", "num_images"),
    (DRIFTED, "unmapped", "style"),
    (DRIFTED, "required", "style"),
    (DRIFTED, "unmapped", "watermark"),
    # real schemas: inputs the built-in families leave to extra_params without declaring them
    (DRIFTED, "unmapped", "prompt_optimizer"),
    ("fal/flux-dev.json", "unmapped", "num_inference_steps"),
    ("fal/flux-dev.json", "unmapped", "guidance_scale"),
    ("fal/flux-dev.json", "unmapped", "sync_mode"),
    ("fal/flux-dev.json", "unmapped", "enable_safety_checker"),
    ("fal/flux-dev.json", "unmapped", "output_format"),
    ("fal/flux-dev.json", "unmapped", "acceleration"),
    ("fal/kling-video-v2.6-pro-image-to-video.json", "unmapped", "voice_ids"),
    ("fal/veo3.1.json", "unmapped", "auto_fix"),
    ("fal/veo3.1.json", "unmapped", "safety_tolerance"),
    # a real endpoint no family lists
    ("fal/kling-video-v1.6-standard-image-to-video.json", "unclaimed", None),
}


@pytest.fixture(autouse=True)
def fresh_registry():
    """`--spec-dir` loads into the process-wide registry: start and leave it as built."""
    reset_registry()
    yield
    reset_registry()


def check(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main(["spec", "check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def findings(capsys, directory: Path, *argv: str) -> tuple[int, list[dict]]:
    code, out, _ = check(capsys, "--openapi", str(directory), "--format", "json", *argv)
    return code, json.loads(out) if out.strip() else []


def keyed(items: list[dict], root: Path = FIXTURES) -> set[tuple[str, str, str | None]]:
    return {(Path(f["file"]).relative_to(root).as_posix(), f["kind"], f["field"]) for f in items}


def test_ci_run_over_the_fixtures_reports_exactly_the_expected_findings(capsys):
    code, items = findings(capsys, FIXTURES)
    assert code == 1
    assert keyed(items) == EXPECTED


def test_the_drifted_fixture_and_the_unclaimed_id_cover_every_kind_of_finding(capsys):
    _, items = findings(capsys, FIXTURES)
    assert {f["kind"] for f in items} == set(KINDS)


def test_enum_finding_names_the_values_on_each_side(capsys):
    _, items = findings(capsys, FIXTURES)
    (enum,) = [f for f in items if f["kind"] == "enum"]
    assert enum["model"] == "fal-ai/minimax/image-01" and enum["family"] == "fal/minimax-image-01"
    assert 'request.aspect_ratio="21:9", which fal does not offer' in enum["message"]
    assert 'fal offers "5:4", which the family refuses' in enum["message"]


def test_range_finding_names_the_values_the_family_refuses(capsys):
    _, items = findings(capsys, FIXTURES)
    (found,) = [f for f in items if f["kind"] == "range"]
    assert "fal takes 1..12; the family refuses 10, 11, 12" in found["message"]


def test_required_finding_shows_a_request_the_family_accepts_without_the_field(capsys):
    _, items = findings(capsys, FIXTURES)
    (found,) = [f for f in items if f["kind"] == "required"]
    assert found["field"] == "style" and "sends no style" in found["message"]


def test_unclaimed_id_names_the_generic_family_and_the_scaffold_command(capsys):
    _, items = findings(capsys, FIXTURES)
    (found,) = [f for f in items if f["kind"] == "unclaimed"]
    assert found["family"] == "fal/generic-video"
    assert "tarash-router spec new fal fal-ai/kling-video/v1.6/standard/image-to-video" in found["message"]


def test_values_are_compared_as_sent_so_a_unit_suffix_is_not_drift(capsys, tmp_path):
    # veo3.1 allows 4, 6, 8 and sends "4s", "6s", "8s": exactly fal's enum.
    shutil.copy(FIXTURES / "fal" / "veo3.1.json", tmp_path / "veo3.1.json")
    _, items = findings(capsys, tmp_path)
    assert not [f for f in items if f["field"] == "duration"]


def test_a_template_that_sends_the_wrong_form_is_reported_with_what_it_sends(capsys, tmp_path):
    shutil.copy(FIXTURES / "fal" / "veo3.1.json", tmp_path / "veo3.1.json")
    family = (Path(__file__).parents[1] / "provider_specs" / "fal" / "veo3.1.yaml").read_text()
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "veo3.1.yaml").write_text(family.replace("request.duration_seconds | suffix('s')",
                                                      "request.duration_seconds | string"))
    _, items = findings(capsys, _only(tmp_path, "veo3.1.json"), "--spec-dir", str(specs))
    (found,) = [f for f in items if f["field"] == "duration"]
    assert found["kind"] == "enum"
    assert 'request.duration_seconds=4 (sent as "4")' in found["message"]


def _only(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / "schemas"
    directory.mkdir(exist_ok=True)
    shutil.move(str(tmp_path / name), directory / name)
    return directory


def test_replicate_version_schema_is_named_by_its_place_and_clean(capsys, tmp_path):
    target = tmp_path / "minimax" / "hailuo-02.json"
    target.parent.mkdir()
    shutil.copy(FIXTURES / "replicate" / "minimax" / "hailuo-02.json", target)
    code, out, err = check(capsys, "--openapi", str(tmp_path))
    assert (code, out) == (0, "")
    assert "0 finding(s) in 1 schema(s)" in err


def test_text_format_is_one_line_per_finding(capsys):
    code, out, _ = check(capsys, "--openapi", str(FIXTURES))
    assert code == 1
    assert len(out.strip().splitlines()) == len(EXPECTED)
    assert any(line.endswith("unclaimed: no family lists fal-ai/kling-video/v1.6/standard/image-to-video; "
                             "only the generic family serves it, which checks nothing (write one: "
                             "tarash-router spec new fal fal-ai/kling-video/v1.6/standard/image-to-video "
                             f"--openapi {FIXTURES}/fal/kling-video-v1.6-standard-image-to-video.json)")
               for line in out.splitlines())


def test_a_missing_directory_is_a_usage_error(capsys, tmp_path):
    code, _, err = check(capsys, "--openapi", str(tmp_path / "nope"))
    assert code == 2 and "not a directory" in err


def test_a_file_that_is_no_provider_schema_is_a_usage_error_naming_it(capsys, tmp_path):
    (tmp_path / "notes.json").write_text('{"hello": "world"}')
    code, _, err = check(capsys, "--openapi", str(tmp_path))
    assert code == 2 and "notes.json" in err


def test_a_replicate_version_schema_without_a_model_name_is_a_usage_error(capsys, tmp_path):
    shutil.copy(FIXTURES / "replicate" / "minimax" / "hailuo-02.json", tmp_path / "hailuo-02.json")
    code, _, err = check(capsys, "--openapi", str(tmp_path))
    assert code == 2 and "<owner>/<name>.json" in err


KLING_V16 = """\
spec_version: 1
provider: fal
family: kling-v1.6-test
docs: https://fal.ai/models/fal-ai/kling-video/v1.6/standard/image-to-video/api
models: [fal-ai/kling-video/v1.6/standard/image-to-video]
modality: video
params:
  duration_seconds: {allowed: [5, 10]}
  extra:
    cfg_scale: {min: 0, max: %s}
  images:
    start: {required: true, from: [first_frame]}
body:
  prompt: "{{ request.prompt }}"
  image_url: "{{ images.start }}"
  duration: "{{ request.duration_seconds | string_or_none }}"
  negative_prompt: "{{ request.negative_prompt }}"
examples:
  - request: {prompt: "a kite", image_list: [{image: "https://example.com/a.png", type: first_frame}]}
    body: {prompt: "a kite", image_url: "https://example.com/a.png"}
"""


def kling_v16(tmp_path: Path, cfg_max: str) -> tuple[Path, Path]:
    schemas, specs = tmp_path / "schemas", tmp_path / "specs"
    schemas.mkdir()
    specs.mkdir()
    name = "kling-video-v1.6-standard-image-to-video.json"
    shutil.copy(FIXTURES / "fal" / name, schemas / name)
    (specs / "kling.yaml").write_text(KLING_V16 % cfg_max)
    return schemas, specs


def test_a_family_written_for_the_unclaimed_id_is_clean(capsys, tmp_path):
    # string durations "5"/"10", a required start image, and cfg_scale 0..1 through params.extra
    schemas, specs = kling_v16(tmp_path, "1")
    assert findings(capsys, schemas, "--spec-dir", str(specs)) == (0, [])


def test_float_bounds_are_compared_as_bounds(capsys, tmp_path):
    schemas, specs = kling_v16(tmp_path, "2")
    code, items = findings(capsys, schemas, "--spec-dir", str(specs))
    assert code == 1
    (found,) = items
    assert (found["kind"], found["field"]) == ("range", "cfg_scale")
    assert "fal takes 0..1; the family checks extra_params.cfg_scale with maximum 2 (theirs: 1)" in found["message"]


def test_a_replicate_model_object_names_its_model(capsys, tmp_path):
    version = json.loads((FIXTURES / "replicate" / "minimax" / "hailuo-02.json").read_text())
    model = {"owner": "minimax", "name": "hailuo-02", "latest_version": version}
    (tmp_path / "anything.json").write_text(json.dumps(model))
    assert findings(capsys, tmp_path) == (0, [])


def test_a_bare_cog_openapi_schema_is_read_as_replicate(capsys, tmp_path):
    schema = json.loads((FIXTURES / "replicate" / "minimax" / "hailuo-02.json").read_text())["openapi_schema"]
    schema["paths"] = {"/predictions": {"post": {"summary": "Predict"}}}
    (tmp_path / "minimax").mkdir()
    (tmp_path / "minimax" / "hailuo-02.json").write_text(json.dumps(schema))
    assert findings(capsys, tmp_path) == (0, [])
