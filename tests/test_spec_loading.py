"""Loading specs: errors name file, line and key; matching is segment-aware; user dirs extend built-ins."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tarash_router.errors import SpecError, ValidationError
from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir, model_matches

PROVIDER = """\
spec_version: 1
provider: acme
base_url: https://api.acme.test
auth: {header: Authorization, scheme: Bearer, env: ACME_KEY}
protocol:
  submit: {method: POST, url: "{{ base_url }}/v1/{{ model }}"}
  job: {id: $.id}
  poll: {url: "{{ base_url }}/v1/jobs/{{ job.id }}", status: $.state}
  status_map: {waiting: queued, running: processing, done: completed, error: failed}
"""

FAMILY = """\
spec_version: 1
provider: acme
models: [acme/video-1]
modality: video
params:
  duration_seconds: {allowed: [5, 10]}
body:
  prompt: "{{ request.prompt }}"
  seconds: "{{ request.duration_seconds }}"
response:
  video: $.output.url
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def load_error(tmp_path: Path, family_text: str, provider_text: str = PROVIDER) -> SpecError:
    write(tmp_path, {"acme/provider.yaml": provider_text, "acme/family.yaml": family_text})
    with pytest.raises(SpecError) as info:
        SpecRegistry().load_paths([tmp_path])
    return info.value


def test_valid_spec_loads_and_renders(tmp_path):
    write(tmp_path, {"acme/provider.yaml": PROVIDER, "acme/video.yaml": FAMILY})
    registry = SpecRegistry()
    registry.load_paths([tmp_path])
    family = registry.resolve("acme", "acme/video-1", "video")
    assert family.name == "video"
    assert family.body.render({"request": {"prompt": "p", "duration_seconds": 5}}) == {"prompt": "p", "seconds": 5}


def test_unknown_key_names_line_and_suggests(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("modality: video", "modality: video\nmodel: typo"))
    assert err.file.endswith("family.yaml") and err.line == 5
    assert "unknown key 'model'" in err.message and "did you mean 'models'" in err.message
    assert str(err).startswith(f"{err.file}:5:1: ")


def test_wrong_type_shows_expected_and_found(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("modality: video", "modality: audio"))
    assert err.line == 4 and err.key == "modality"
    assert "'video' or 'image'" in err.message and "'audio'" in err.message


def test_yaml_syntax_error_has_position(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("body:\n", "body:\n\t"))
    assert err.line is not None and "YAML syntax error" in err.message


def test_tab_indentation_is_named(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("  prompt:", "\tprompt:"))
    assert "tab" in err.message and err.line == 8


def test_duplicate_key_is_an_error(tmp_path):
    err = load_error(tmp_path, FAMILY + "modality: image\n")
    assert "duplicate key 'modality'" in err.message and err.line == 12


def test_undefined_template_variable_lists_available_names(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("{{ request.prompt }}", "{{ reqest.prompt }}"))
    assert err.line == 8 and err.key == "body.prompt"
    assert "undefined template variable 'reqest'" in err.message and "request" in err.message


def test_unknown_request_field_in_template(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("request.duration_seconds", "request.durationseconds"))
    assert err.key == "body.seconds" and "durationseconds" in err.message and "duration_seconds" in err.message


def test_template_cannot_reach_python_internals(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("{{ request.prompt }}", "{{ request.__class__ }}"))
    assert "private or internal" in err.message


def test_sandbox_blocks_internals_at_render_time():
    from tarash_router.specs.templates import compile_leaf

    from jinja2.exceptions import SecurityError

    leaf = compile_leaf("{{ ''.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        leaf.render({})


def test_unclosed_template_tag(tmp_path):
    err = load_error(tmp_path, FAMILY.replace('"{{ request.prompt }}"', '"{{ request.prompt "'))
    assert err.line == 8 and "template syntax error" in err.message


def test_bad_jsonpath(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("$.output.url", "$.output[?"))
    assert err.key == "response.video" and "invalid JSONPath" in err.message


def test_unknown_param_field(tmp_path):
    err = load_error(tmp_path, FAMILY.replace("duration_seconds: {allowed", "duration_secs: {allowed"))
    assert err.line == 6 and "did you mean 'duration_seconds'" in err.message


def test_family_without_provider(tmp_path):
    write(tmp_path, {"lonely/family.yaml": FAMILY.replace("provider: acme", "provider: nobody")})
    with pytest.raises(SpecError) as info:
        SpecRegistry().load_paths([tmp_path])
    assert info.value.line == 2 and "unknown provider 'nobody'" in info.value.message


def test_duplicate_model_prefix_in_one_layer(tmp_path):
    write(tmp_path, {"acme/provider.yaml": PROVIDER, "acme/a.yaml": FAMILY, "acme/b.yaml": FAMILY})
    with pytest.raises(SpecError) as info:
        SpecRegistry().load_paths([tmp_path])
    assert "already claimed" in info.value.message and info.value.file.endswith("b.yaml")


def test_error_rule_with_unknown_exception_class(tmp_path):
    provider = PROVIDER + "errors:\n  - {status: 418, raise: TeapotError}\n"
    err = load_error(tmp_path, FAMILY, provider)
    assert err.file.endswith("provider.yaml") and err.line == 11 and "TeapotError" in err.message


def test_segment_aware_matching():
    assert model_matches("fal-ai/veo3/fast", "fal-ai/veo3")
    assert model_matches("fal-ai/veo3", "fal-ai/veo3")
    assert not model_matches("fal-ai/veo3.1", "fal-ai/veo3")
    assert not model_matches("fal-ai/minimax-video", "fal-ai/minimax")


def test_the_most_specific_pattern_wins_and_modality_is_checked(tmp_path):
    base = FAMILY.replace("acme/video-1]", 'acme/video-1, "acme/video-1/**"]')
    longer = FAMILY.replace("acme/video-1]", '"acme/video-1/pro/*"]').replace("  seconds:", "  secs:")
    write(tmp_path, {"acme/provider.yaml": PROVIDER, "acme/base.yaml": base, "acme/pro.yaml": longer})
    registry = SpecRegistry()
    registry.load_paths([tmp_path])
    assert registry.resolve("acme", "acme/video-1/pro/v2", "video").name == "pro"
    assert registry.resolve("acme", "acme/video-1/pro/v2/hd", "video").name == "base"  # `*` stays in its segment
    assert registry.resolve("acme", "acme/video-1/lite", "video").name == "base"
    with pytest.raises(ValidationError, match="video model"):
        registry.resolve("acme", "acme/video-1", "image")
    with pytest.raises(ValidationError, match="no video spec"):
        registry.resolve("acme", "acme/other", "video")


def test_user_family_file_extends_builtin_provider(tmp_path):
    family = FAMILY.replace("provider: acme", "provider: fal").replace("acme/video-1", "fal-ai/brand-new-model")
    write(tmp_path, {"my-model.yaml": family})
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    registry.load_paths([tmp_path])
    assert registry.resolve("fal", "fal-ai/brand-new-model", "video").source.file.endswith("my-model.yaml")


def test_user_layer_overrides_builtin_prefix(tmp_path):
    family = FAMILY.replace("provider: acme", "provider: fal").replace("acme/video-1", "fal-ai/veo3")
    write(tmp_path, {"veo3-override.yaml": family})
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    registry.load_paths([tmp_path])
    assert registry.resolve("fal", "fal-ai/veo3", "video").source.file.endswith("veo3-override.yaml")


def test_spec_dirs_from_environment(tmp_path, monkeypatch):
    import tarash_router
    from tarash_router.settings import get_settings
    from tarash_router.specs import registry as registry_module

    write(tmp_path, {"acme/provider.yaml": PROVIDER, "acme/video.yaml": FAMILY})
    monkeypatch.setenv("TARASH_SPEC_DIRS", str(tmp_path))
    get_settings.cache_clear()
    registry_module.reset_registry()
    try:
        assert tarash_router.get_registry().resolve("acme", "acme/video-1", "video").name == "video"
    finally:
        monkeypatch.delenv("TARASH_SPEC_DIRS")
        get_settings.cache_clear()
        registry_module.reset_registry()


def test_templates_render_native_values_and_drop_none():
    from tarash_router.specs.templates import ValueTree

    tree = ValueTree({"n": "{{ x }}", "s": "v{{ x }}", "gone": "{{ missing }}", "lit": 3,
                      "nested": {"list": ["{{ x }}", "{{ missing }}"]}})
    assert tree.render({"x": 5}) == {"n": 5, "s": "v5", "lit": 3, "nested": {"list": [5]}}


def test_declared_image_slot_the_body_never_uses(tmp_path):
    family = FAMILY.replace("  duration_seconds: {allowed: [5, 10]}",
                            "  duration_seconds: {allowed: [5, 10]}\n  images: {first_frame: optional}")
    err = load_error(tmp_path, family)
    assert err.key == "params.images.first_frame" and "silently dropped" in err.message


def test_unknown_handler_name(tmp_path):
    err = load_error(tmp_path, FAMILY + "handler: magic_sdk\n")
    assert err.key == "handler" and "unknown handler 'magic_sdk'" in err.message


def test_text_template_with_a_missing_value_drops_the_key():
    from tarash_router.specs.templates import ValueTree

    tree = ValueTree({"duration": "{{ d }}s", "label": "v{{ n }}"})
    assert tree.render({"n": 2}) == {"label": "v2"}
    assert tree.render({"d": 5, "n": 0}) == {"duration": "5s", "label": "v0"}


def test_runtime_mapping_is_not_displaced_by_a_later_file_layer(tmp_path):
    from tarash_router import register_provider_field_mapping
    from tarash_router.specs.registry import get_registry, reset_registry

    register_provider_field_mapping("fal", {"fal-ai/pinned-by-code": {"prompt": "{{ request.prompt }}"}})
    family = FAMILY.replace("provider: acme", "provider: fal").replace("acme/video-1", "fal-ai/pinned-by-code")
    write(tmp_path, {"late.yaml": family})
    try:
        get_registry().load_paths([tmp_path])
        assert get_registry().resolve("fal", "fal-ai/pinned-by-code", "video").source.file.startswith("<register")
    finally:
        reset_registry()  # the mapping and the file layer would otherwise reach every later test


def test_model_ids_are_served_exactly_not_as_prefixes(tmp_path):
    exact = FAMILY.replace("models: [acme/video-1]", "models: [acme/video-1/pro]").replace("  seconds:", "  secs:")
    write(tmp_path, {"acme/provider.yaml": PROVIDER, "acme/base.yaml": FAMILY, "acme/exact.yaml": exact})
    registry = SpecRegistry()
    registry.load_paths([tmp_path])
    assert registry.resolve("acme", "acme/video-1/pro", "video").name == "exact"
    assert registry.resolve("acme", "acme/video-1", "video").name == "base"
    pattern = FAMILY.replace("acme/video-1]", '"acme/**"]').replace("  seconds:", "  s:")
    write(tmp_path, {"acme/wide.yaml": pattern})
    registry = SpecRegistry()
    registry.load_paths([tmp_path])
    assert registry.resolve("acme", "acme/video-1", "video").name == "base"  # an exact id beats a pattern
    assert registry.resolve("acme", "acme/video-1/hd", "video").name == "wide"
    registry = SpecRegistry()
    (tmp_path / "acme" / "wide.yaml").unlink()
    registry.load_paths([tmp_path])
    for unknown in ("acme/video-1/pro/turbo", "acme/video-1/hd"):  # ids no family was written for
        with pytest.raises(ValidationError, match="no video spec"):
            registry.resolve("acme", unknown, "video")
