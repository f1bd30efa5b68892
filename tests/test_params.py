"""Request checks a family declares, enforced before anything is sent."""

from __future__ import annotations

import textwrap

import pytest

from tarash_router import ValidationError
from tarash_router.engine.render import prepare_job
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
from tarash_router.specs.loader import load_family
from tarash_router.specs.registry import get_registry
from tarash_router.specs.yaml_source import parse_yaml

FAMILY = """\
spec_version: 1
provider: fal
models: [fal-ai/params-test]
modality: video
params:
  seed: {forbidden: true, message: "the Gemini API has no seed"}
  resolution: {pattern: '\\d+p'}
  duration_seconds: {min: 1, max: 4294967294}
  extra:
    character_orientation: {required: true, allowed: [image, video]}
  images:
    first_frame: optional
    last_frame: optional
    refs: {from: [reference], max: null}
checks:
  - when: "{{ images.last_frame and not images.first_frame }}"
    error: "a last frame needs a first frame"
body:
  prompt: "{{ request.prompt }}"
  resolution: "{{ request.resolution }}"
  duration: "{{ request.duration_seconds }}"
  start: "{{ images.first_frame }}"
  end: "{{ images.last_frame }}"
  refs: "{{ images.refs }}"
"""


@pytest.fixture(scope="module")
def family():
    doc = parse_yaml(textwrap.dedent(FAMILY), "<params-test>")
    return load_family(doc, get_registry().providers["fal"])


def prepare(family, **request):
    request.setdefault("extra_params", {"character_orientation": "image"})
    return prepare_job(family, VideoGenerationConfig(provider="fal", model="fal-ai/params-test"),
                       VideoGenerationRequest(prompt="p", **request), dry_run=True)


def test_forbidden_field_with_explanation(family):
    with pytest.raises(ValidationError, match=r"does not support seed \(the Gemini API has no seed\)"):
        prepare(family, seed=3)


def test_pattern(family):
    assert prepare(family, resolution="720p").payload["resolution"] == "720p"
    with pytest.raises(ValidationError, match=r"resolution='HD'; expected a value matching \\d\+p"):
        prepare(family, resolution="HD")


def test_big_limits_print_as_integers(family):
    with pytest.raises(ValidationError, match="maximum is 4294967294$"):
        prepare(family, duration_seconds=4294967295)


def test_extra_params_constraints(family):
    with pytest.raises(ValidationError, match="requires extra_params.character_orientation"):
        prepare(family, extra_params={})
    with pytest.raises(ValidationError, match="allowed: image, video"):
        prepare(family, extra_params={"character_orientation": "side"})
    assert prepare(family).payload["character_orientation"] == "image"


def test_cross_field_check(family):
    last = {"image": "https://x/last.png", "type": "last_frame"}
    with pytest.raises(ValidationError, match="a last frame needs a first frame"):
        prepare(family, image_list=[last])
    job = prepare(family, image_list=[{"image": "https://x/first.png", "type": "first_frame"}, last])
    assert (job.payload["start"], job.payload["end"]) == ("https://x/first.png", "https://x/last.png")


def test_unlimited_list_slot(family):
    refs = [{"image": f"https://x/{i}.png", "type": "reference"} for i in range(12)]
    assert len(prepare(family, image_list=refs).payload["refs"]) == 12


def test_per_model_param_overrides():
    text = textwrap.dedent("""\
        spec_version: 1
        provider: fal
        models:
          - fal-ai/seedance-like/pro
          - {id: fal-ai/seedance-like/lite, params: {aspect_ratio: {allowed: ["16:9", "9:21"]}}}
        modality: video
        params:
          aspect_ratio: {allowed: ["16:9"]}
        body:
          prompt: "{{ request.prompt }}"
          aspect_ratio: "{{ request.aspect_ratio }}"
        """)
    family = load_family(parse_yaml(text, "<per-model>"), get_registry().providers["fal"])

    def check(model: str, ratio: str) -> None:
        prepare_job(family, VideoGenerationConfig(provider="fal", model=model),
                    VideoGenerationRequest(prompt="p", aspect_ratio=ratio), dry_run=True)

    check("fal-ai/seedance-like/lite", "9:21")
    check("fal-ai/seedance-like/lite/fast", "9:21")  # sub-paths of the entry too
    with pytest.raises(ValidationError, match=r"allowed: 16:9$"):
        check("fal-ai/seedance-like/pro", "9:21")


def test_model_entry_params_cannot_declare_images():
    from tarash_router.errors import SpecError

    text = textwrap.dedent("""\
        spec_version: 1
        provider: fal
        models: [{id: fal-ai/x, params: {images: {first_frame: optional}}}]
        modality: video
        body: {prompt: "{{ request.prompt }}"}
        """)
    with pytest.raises(SpecError, match="only constrain request fields") as info:
        load_family(parse_yaml(text, "<bad>"), get_registry().providers["fal"])
    assert info.value.line == 3
