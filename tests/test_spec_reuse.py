"""Spec reuse: `extends` (one level, same provider, resolved at load), abstract parents, named filters,
`spec show --resolved`, and the built-in Fal families written on them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tarash_router.cli import main
from tarash_router.engine.render import prepare_job
from tarash_router.errors import SpecError, ValidationError
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir
from tarash_router.specs.templates import compile_leaf

FAL = builtin_spec_dir() / "fal"

PARENT = """\
spec_version: 1
provider: fal
description: the parent
docs: https://fal.ai/models/acme/parent/api
notes: parent notes
models: [acme/parent]
modality: video
capabilities: [text_to_video, audio]
params:
  duration_seconds: {allowed: [4, 8]}
  aspect_ratio: {allowed: ["16:9", "9:16"]}
checks:
  - when: "{{ request.duration_seconds == 8 and request.aspect_ratio == '9:16' }}"
    error: "makes 8 s clips in 16:9 only"
body:
  prompt: "{{ request.prompt }}"
  duration: "{{ request.duration_seconds | suffix('s') }}"
  aspect_ratio: "{{ request.aspect_ratio }}"
extra_params: {allow: [cfg_scale]}
response:
  video: $.clip.url
examples:
  - request: {prompt: a, duration_seconds: 4}
    body: {prompt: a, duration: "4s"}
"""

CHILD = """\
spec_version: 1
provider: fal
extends: parent
models: [acme/child]
capabilities: [text_to_video]
params:
  aspect_ratio: null
  resolution: {allowed: ["720p"]}
body:
  duration: "{{ request.duration_seconds | string_or_none }}"
  aspect_ratio: null
  resolution: "{{ request.resolution }}"
checks: []
examples:
  - request: {prompt: a, duration_seconds: 8, resolution: "720p"}
    body: {prompt: a, duration: "8", resolution: "720p"}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def load(root: Path) -> SpecRegistry:
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    registry.load_paths([root])
    return registry


def load_error(root: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(root)
    return info.value


def family(registry: SpecRegistry, model: str):  # noqa: ANN201 - FamilySpec
    return registry.resolve("fal", model, "video")


def body(fam, **request) -> dict:  # noqa: ANN001 - FamilySpec
    config = VideoGenerationConfig(provider="fal", model=fam.models[0])
    return prepare_job(fam, config, VideoGenerationRequest(**request), dry_run=True).payload


# ------------------------------------------------------------------ merge semantics


def test_params_and_body_merge_key_by_key_and_the_child_wins(tmp_path):
    child = family(load(write(tmp_path, {"parent.yaml": PARENT, "child.yaml": CHILD})), "acme/child")
    assert set(child.params.fields) == {"duration_seconds", "resolution"}
    assert body(child, prompt="a", duration_seconds=8, resolution="720p") == {
        "prompt": "a", "duration": "8", "resolution": "720p"}


def test_a_null_in_the_child_removes_the_parents_key(tmp_path):
    child = family(load(write(tmp_path, {"parent.yaml": PARENT, "child.yaml": CHILD})), "acme/child")
    assert "aspect_ratio" not in child.file.params and "aspect_ratio" not in child.file.body
    with pytest.raises(ValidationError, match="cannot honour aspect_ratio"):  # no longer mapped
        body(child, prompt="a", aspect_ratio="9:16")


def test_other_keys_are_replaced_whole_or_inherited_whole(tmp_path):
    child = family(load(write(tmp_path, {"parent.yaml": PARENT, "child.yaml": CHILD})), "acme/child")
    assert child.file.capabilities == ["text_to_video"]  # replaced, not merged with [.., audio]
    assert child.file.checks == []  # replaced by the empty list
    assert child.modality == "video" and child.file.response.video == "$.clip.url"  # inherited
    assert child.file.extra_params.allow == ["cfg_scale"]  # inherited


def test_identity_and_examples_are_never_inherited(tmp_path):
    child = family(load(write(tmp_path, {"parent.yaml": PARENT, "child.yaml": CHILD})), "acme/child")
    assert child.name == "child" and child.models == ["acme/child"]
    assert (child.file.description, child.file.docs, child.file.notes) == (None, None, None)
    assert len(child.file.examples) == 1 and child.file.examples[0].body["duration"] == "8"


def test_the_parent_still_serves_its_own_models_unchanged(tmp_path):
    parent = family(load(write(tmp_path, {"parent.yaml": PARENT, "child.yaml": CHILD})), "acme/parent")
    assert body(parent, prompt="a", duration_seconds=4, aspect_ratio="16:9") == {
        "prompt": "a", "duration": "4s", "aspect_ratio": "16:9"}


def test_a_parent_is_found_by_its_family_key_too(tmp_path):
    named = PARENT.replace("description: the parent", "family: base-clip\ndescription: the parent")
    child = CHILD.replace("extends: parent", "extends: base-clip")
    fam = family(load(write(tmp_path, {"clip-parent.yaml": named, "child.yaml": child})), "acme/child")
    assert fam.file.extends == "base-clip"


def test_a_user_family_may_extend_a_builtin_one(tmp_path):
    text = """\
    spec_version: 1
    provider: fal
    extends: veo3.1
    models: [acme/veo-like]
    params:
      resolution: {allowed: ["720p"]}
    """
    fam = family(load(write(tmp_path, {"veo-like.yaml": text})), "acme/veo-like")
    assert fam.params.fields["resolution"].allowed == ["720p"]
    assert body(fam, prompt="p", duration_seconds=8) == {"prompt": "p", "duration": "8s"}


# ------------------------------------------------------------------ errors


def test_two_levels_of_extends_are_refused_at_the_childs_extends_line(tmp_path):
    grand = """\
    spec_version: 1
    provider: fal
    extends: child
    models: [acme/grand]
    """
    error = load_error(write(tmp_path, {"parent.yaml": PARENT, "child.yaml": CHILD, "grand.yaml": grand}))
    assert Path(error.file).name == "grand.yaml" and error.line == 3 and error.key == "extends"
    assert "one level deep" in error.message
    assert "expected a family without `extends`, found 'child' extending 'parent'" in error.message


def test_an_unknown_parent_names_the_known_families_and_the_closest(tmp_path):
    error = load_error(write(tmp_path, {"parent.yaml": PARENT, "child.yaml": CHILD.replace("extends: parent",
                                                                                          "extends: prent")}))
    assert Path(error.file).name == "child.yaml" and error.line == 3 and error.key == "extends"
    assert "unknown family 'prent'" in error.message and "did you mean 'parent'?" in error.message
    assert "veo3.1" in error.message  # the provider's families beside it are listed


def test_a_parent_of_another_provider_is_refused(tmp_path):
    acme = """\
    spec_version: 1
    provider: acme
    base_url: https://api.acme.test
    protocol:
      submit: {method: POST, url: "{{ base_url }}/v1/{{ model }}"}
    """
    foreign = PARENT.replace("provider: fal", "provider: acme")
    error = load_error(write(tmp_path, {"provider.yaml": acme, "parent.yaml": foreign, "child.yaml": CHILD}))
    assert Path(error.file).name == "child.yaml" and error.key == "extends"
    assert "belongs to provider 'acme'" in error.message and "its own provider ('fal')" in error.message


def test_a_provider_prefixed_parent_is_refused(tmp_path):
    error = load_error(write(tmp_path, {"child.yaml": CHILD.replace("extends: parent", "extends: replicate/flux")}))
    assert error.key == "extends" and "its own provider" in error.message and "replicate/flux" in error.message


def test_an_error_in_an_inherited_key_points_at_the_parent_file(tmp_path):
    broken = PARENT.replace("request.prompt", "request.promt")
    error = load_error(write(tmp_path, {"a-child.yaml": CHILD.replace("extends: parent", "extends: z-parent"),
                                        "z-parent.yaml": broken}))
    assert Path(error.file).name == "z-parent.yaml" and error.key == "body.prompt" and error.line == 16
    assert "inherited by" in error.message and "a-child.yaml" in error.message


def test_an_error_in_the_childs_own_key_points_at_the_child(tmp_path):
    broken = CHILD.replace('resolution: "{{ request.resolution }}"', 'resolution: "{{ request.resolutoin }}"')
    error = load_error(write(tmp_path, {"parent.yaml": PARENT, "child.yaml": broken}))
    assert Path(error.file).name == "child.yaml" and error.key == "body.resolution" and error.line == 12


# ------------------------------------------------------------------ abstract parents


ABSTRACT = """\
spec_version: 1
provider: fal
abstract: true
modality: video
params:
  duration_seconds: {allowed: [5, 10]}
body:
  prompt: "{{ request.prompt }}"
  duration: "{{ request.duration_seconds | string_or_none }}"
"""


def test_an_abstract_family_serves_no_model_and_its_children_inherit_it(tmp_path):
    child = "spec_version: 1\nprovider: fal\nextends: base\nmodels: [acme/concrete]\n"
    registry = load(write(tmp_path, {"base.yaml": ABSTRACT, "concrete.yaml": child}))
    assert all(f.name != "base" for f in registry.families("fal"))
    assert body(family(registry, "acme/concrete"), prompt="a", duration_seconds=5) == {"prompt": "a", "duration": "5"}


def test_an_abstract_family_with_models_is_refused(tmp_path):
    error = load_error(write(tmp_path, {"base.yaml": ABSTRACT + "models: [acme/x]\n"}))
    assert error.key == "models" and "abstract family serves no models" in error.message


def test_a_concrete_family_still_needs_models(tmp_path):
    error = load_error(write(tmp_path, {"base.yaml": ABSTRACT.replace("abstract: true\n", "")}))
    assert "missing required key 'models'" in error.message


# ------------------------------------------------------------------ named filters


@pytest.mark.parametrize(("size", "expected"), [
    ("1024x768", {"width": 1024, "height": 768}),
    ("512X512", {"width": 512, "height": 512}),
    ("square_hd", "square_hd"),  # a provider preset passes through
    (None, None),
])
def test_image_size_filter(size, expected):
    assert compile_leaf("{{ size | image_size }}").render({"size": size}) == expected


@pytest.mark.parametrize(("seconds", "fps", "expected"), [(5, 16, 81), (2, 24, 49), (None, 16, None), (0, 16, None)])
def test_frame_count_filter(seconds, fps, expected):
    assert compile_leaf("{{ s | frame_count(fps) }}").render({"s": seconds, "fps": fps}) == expected


def test_google_inline_and_reference_filters():
    uri = "data:image/png;base64,QUJD"
    assert compile_leaf("{{ x | inline_image }}").render({"x": uri}) == {"bytesBase64Encoded": "QUJD",
                                                                        "mimeType": "image/png"}
    assert compile_leaf("{{ x | inline_image }}").render({"x": "gs://b/cat.png"}) == "gs://b/cat.png"
    assert compile_leaf("{{ x | inline_data }}").render({"x": uri}) == {"inlineData": {"mime_type": "image/png",
                                                                                        "data": "QUJD"}}
    refs = compile_leaf("{{ (xs[:2] | as_references('ASSET', 'reference_type')) or none }}")
    assert refs.render({"xs": ["a", "b", "c"]}) == [{"image": "a", "reference_type": "ASSET"},
                                                    {"image": "b", "reference_type": "ASSET"}]
    assert refs.render({"xs": []}) is None


def test_flux_uses_the_image_size_filter_for_sizes_and_presets():
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    flux = registry.resolve("fal", "fal-ai/flux/dev", "image")
    assert "image_size" in flux.file.body["image_size"] and "split" not in flux.file.body["image_size"]


# ------------------------------------------------------------------ spec show --resolved


def test_spec_show_resolved_prints_the_effective_family(capsys):
    assert main(["spec", "show", "--resolved", "fal/veo3.1-lite"]) == 0
    out = capsys.readouterr().out
    assert "(extends veo3.1)" in out.splitlines()[0]
    assert "allowed: [720p, 1080p]" in out  # the child's own constraint
    assert "prompt: '{{ request.prompt }}'" in out  # inherited from veo3.1
    assert "extra_params: checked" in out  # the default, written out
    assert "examples:" not in out


def test_spec_show_resolved_takes_a_bare_family_name(capsys):
    assert main(["spec", "show", "veo3.1-lite", "--resolved"]) == 0
    assert "family: veo3.1-lite" in capsys.readouterr().out


def test_spec_show_resolved_unknown_family_suggests_the_closest(capsys):
    assert main(["spec", "show", "--resolved", "fal/veo3.1-lit"]) == 2
    assert "unknown family 'fal/veo3.1-lit'; did you mean 'fal/veo3.1-lite'" in capsys.readouterr().err


# ------------------------------------------------------------------ the built-in Fal families


def _fal_files() -> list[Path]:
    return sorted(p for p in FAL.glob("*.yaml") if p.name != "provider.yaml")


def test_most_builtin_fal_families_extend_a_parent():
    children = [p for p in _fal_files() if "\nextends: " in p.read_text()]
    assert len(children) >= 50


def test_no_builtin_file_writes_out_the_default_extra_params():
    assert [p.name for p in _fal_files() if "extra_params: merge" in p.read_text()] == []


def test_fal_notes_speak_of_the_provider_not_of_history():
    for path in [*_fal_files(), FAL / "provider.yaml"]:
        text = path.read_text().lower()
        assert "reference system" not in text and ".md " not in text and ".md)" not in text, path.name
