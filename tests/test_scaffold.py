"""`tarash-router spec new`: family specs drafted from fal and Replicate OpenAPI schemas, offline.

Every draft must load with the real loader, pass `tarash-router validate` (examples included) and
render requests through `render_request` once loaded with `load_specs`.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import pytest
import yaml

from tarash_router import ValidationError, load_specs, render_request
from tarash_router.cli import main as cli_main
from tarash_router.engine.render import prepare_job
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
)
from tarash_router.tools.examples import run_examples
from tarash_router.specs.loader import load_family
from tarash_router.specs.registry import get_registry, reset_registry
from tarash_router.tools.scaffold import ScaffoldError, add_command, read_openapi, scaffold_file, scaffold_spec
from tarash_router.specs.yaml_source import parse_yaml
from tarash_router.validate import validate_paths

FIXTURES = Path(__file__).parent / "fixtures" / "scaffold"
KLING = ("fal", "fal-ai/kling-video/v2.1/standard/image-to-video", "fal-kling-image-to-video.json")
VEO = ("fal", "fal-ai/veo3.1/fast", "fal-veo-text-to-video.json")
FLUX = ("fal", "fal-ai/flux-lite/dev", "fal-flux-text-to-image.json")
HAILUO = ("replicate", "minimax/hailuo-02", "replicate-hailuo-version.json")
HAILUO_VERSION = "5aa835260ff7f40f4069c41185f72036accf99e29957bb4a3b3a911f3b6c1912"


def run_cli(*argv: str) -> int:
    """The command as `tarash-router` will run it: a parser with `add_command` on its subparsers."""
    parser = argparse.ArgumentParser(prog="tarash-router")
    add_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def load_text(text: str, provider: str):
    family = load_family(parse_yaml(text, "<draft>"), get_registry().providers[provider])
    return family


def body_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("body:")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    return lines[start + 1:end]


@pytest.fixture
def registry_reset():
    """Tests that call load_specs must not leave their drafts in the process-wide registry."""
    reset_registry()
    yield
    reset_registry()


# ---------------------------------------------------------------- every fixture


@pytest.mark.parametrize("case", [KLING, VEO, FLUX, HAILUO], ids=["kling", "veo", "flux", "replicate-hailuo"])
def test_each_fixture_scaffolds_to_a_valid_spec(case, tmp_path, capsys):
    provider, model, fixture = case
    out = tmp_path / "draft.yaml"
    assert run_cli("spec", "new", provider, model, "--openapi", str(FIXTURES / fixture), "--out", str(out)) == 0
    assert f"wrote {out}" in capsys.readouterr().err
    text = out.read_text()
    # It loads as-is and its examples hold (what `tarash-router validate` runs).
    family = load_text(text, provider)
    assert family.file.examples and run_examples(family) == []
    assert validate_paths([out]) == []
    assert cli_main(["validate", str(out)]) == 0
    # The suggested rejection, once uncommented, holds too.
    head, _marker, suggestion = text.partition("  # TODO: add an example of a request the model must reject")
    suggestion = suggestion.split("\n", 1)[1]
    uncommented = head + "\n".join(line.replace("  # ", "  ", 1) for line in suggestion.splitlines())
    family = load_text(uncommented, provider)
    assert family.file.examples[-1].raises == "ValidationError"
    assert run_examples(family) == []


def test_stdout_when_no_out(capsys):
    provider, model, fixture = KLING
    assert run_cli("spec", "new", provider, model, "--openapi", str(FIXTURES / fixture)) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Scaffolded by `tarash-router spec new fal fal-ai/kling-video/v2.1/standard/")
    assert printed == scaffold_file(provider, model, FIXTURES / fixture)


# ---------------------------------------------------------------- key lines per fixture


def test_kling_like_image_to_video():
    text = scaffold_file(*KLING[:2], FIXTURES / KLING[2])
    assert "models: [fal-ai/kling-video/v2.1/standard/image-to-video]" in text
    assert "modality: video  # from the output schema" in text
    assert "docs: https://fal.ai/models/fal-ai/kling-video/v2.1/standard/image-to-video/api" in text
    assert "capabilities: [image_to_video, first_last_frame]" in text
    assert "  duration_seconds: {allowed: [5, 10]}  # sent as duration" in text
    assert "    first_frame: {required: true, from: [first_frame, reference]}  # image_url" in text
    assert "    last_frame: optional  # tail_image_url" in text
    body = body_lines(text)
    assert '  prompt: "{{ request.prompt }}"' in body
    assert '  image_url: "{{ images.first_frame }}"  # image roles: first_frame, reference' in body
    assert '  duration: "{{ request.duration_seconds | string_or_none }}"  # "5" | "10", default "5"' in body
    assert '  negative_prompt: "{{ request.negative_prompt }}"  # default "blur, distort, and low quality"' in body
    assert '  tail_image_url: "{{ images.last_frame }}"  # image roles: last_frame' in body
    # cfg_scale has no unified field: not in the body, listed for a human with type, default, description.
    assert not any(line.startswith("  cfg_scale:") for line in body)
    assert ("  #   cfg_scale: number 0..1, default 0.5 - The CFG (Classifier Free Guidance) scale is a measure "
            "of how close you want the model to stick to your prompt.") in body
    assert "extra_params:" not in text  # merge is the default: not written out
    assert 'response:\n  video: "$.video.url"' in text
    data = yaml.safe_load(text)
    assert data["examples"][0]["body"] == {"prompt": "a red fox running through fresh snow",
                                           "image_url": "https://example.com/first_frame.png", "duration": "5"}
    assert data["examples"][1]["result"] == {"video": "https://example.com/output.mp4"}
    assert "  # - name: duration_seconds=6 is not offered" in text
    assert '  #   message_contains: "allowed: 5, 10"' in text


def test_veo_like_text_to_video_output_from_the_component():
    text = scaffold_file(*VEO[:2], FIXTURES / VEO[2])
    assert "models: [fal-ai/veo3.1/fast]" in text
    assert "capabilities: [text_to_video, audio]" in text
    assert '  aspect_ratio: {allowed: ["16:9", "9:16"]}' in text
    assert "  duration_seconds: {allowed: [4, 6, 8]}  # sent as duration" in text
    assert '  resolution: {allowed: ["720p", "1080p"]}' in text
    body = body_lines(text)
    assert '''  duration: "{{ request.duration_seconds | suffix('s') }}"  # "4s" | "6s" | "8s", default "8s"''' in body
    assert '  generate_audio: "{{ request.generate_audio }}"  # default true' in body
    assert '  enhance_prompt: "{{ request.enhance_prompt }}"  # default true' in body
    assert '  seed: "{{ request.seed }}"' in body
    assert any(line.startswith("  #   auto_fix: boolean, default true - Whether to automatically") for line in body)
    # No result GET in this document: the *Output component gives the response path.
    assert 'response:\n  video: "$.video.url"' in text
    # The built-in family that already serves this id is named.
    assert "# NOTE: fal-ai/veo3.1/fast is already served by fal/veo3.1 (" in text
    assert yaml.safe_load(text)["examples"][0]["body"] == {
        "prompt": "a red fox running through fresh snow", "aspect_ratio": "16:9", "duration": "4s",
        "resolution": "720p"}


def test_flux_like_text_to_image():
    text = scaffold_file(*FLUX[:2], FIXTURES / FLUX[2])
    assert "modality: image  # from the output schema (images: a list)" in text
    assert "capabilities: [text_to_image]" in text
    assert ("  size: {allowed: [square_hd, square, portrait_4_3, portrait_16_9, landscape_4_3, landscape_16_9]}"
            "  # sent as image_size") in text
    assert "  # TODO: image_size also takes an object ({width, height})" in text
    assert "  n: {min: 1, max: 4}  # sent as num_images" in text
    body = body_lines(text)
    assert '  image_size: "{{ request.size }}"  # default "landscape_4_3"' in body
    assert '  num_images: "{{ request.n }}"  # default 1' in body
    for name in ("num_inference_steps: integer 1..50, default 28", "guidance_scale: number 1..20, default 3.5",
                 "sync_mode: boolean, default false", "enable_safety_checker: boolean, default true",
                 'output_format: string "jpeg" | "png", default "jpeg"'):
        assert any(line.startswith(f"  #   {name}") for line in body), name
    assert 'response:\n  images: "$.images[*].url"' in text
    data = yaml.safe_load(text)
    assert data["examples"][1]["result"] == {"images": ["https://example.com/output.png"]}
    assert '  #   message_contains: "allowed: square_hd, square, portrait_4_3' in text


def test_replicate_version_with_a_uri_output():
    text = scaffold_file(*HAILUO[:2], FIXTURES / HAILUO[2])
    assert "provider: replicate" in text
    assert "models: [minimax/hailuo-02]" in text
    assert "docs: https://replicate.com/minimax/hailuo-02" in text
    # A bare URL output says nothing about the modality: the duration input does, and it says so.
    assert "modality: video  # guessed: the input has a duration/frames field (output: a URL string) - TODO" in text
    assert "capabilities: [text_to_video, image_to_video, first_last_frame]" in text
    assert "  duration_seconds: {allowed: [6, 10]}  # sent as duration" in text
    assert '  resolution: {allowed: ["512p", "768p", "1080p"]}' in text
    assert "    first_frame: {from: [first_frame, reference]}  # first_frame_image" in text
    body = body_lines(text)
    # Properties follow x-order; an integer enum is sent as is.
    assert body[:6] == [
        '  prompt: "{{ request.prompt }}"',
        '  prompt_optimizer: "{{ request.enhance_prompt }}"  # default true',
        '  duration: "{{ request.duration_seconds }}"  # 6 | 10, default 6',
        '  resolution: "{{ request.resolution }}"  # default "1080p"',
        '  first_frame_image: "{{ images.first_frame }}"  # image roles: first_frame, reference',
        '  last_frame_image: "{{ images.last_frame }}"  # image roles: last_frame',
    ]
    assert "  #   go_fast: boolean, default false - Go Fast" in body
    assert 'response:\n  video: "$.output"' in text
    data = yaml.safe_load(text)
    assert data["examples"][1]["response"] == {"status": "succeeded", "output": "https://example.com/output.mp4"}


def test_replicate_pinned_version_is_noted_and_resolves():
    text = scaffold_file("replicate", f"minimax/hailuo-02:{HAILUO_VERSION}", FIXTURES / HAILUO[2])
    assert "models: [minimax/hailuo-02]" in text
    assert f"# TODO: scaffolded from version {HAILUO_VERSION}; the family serves every version" in text
    other = "0" * 64
    text = scaffold_file("replicate", f"minimax/hailuo-02:{other}", FIXTURES / HAILUO[2])
    assert f"# TODO: the document is version {HAILUO_VERSION}, not {other}" in text


# ---------------------------------------------------------------- loaded and rendered


def test_a_written_draft_renders_requests_after_load_specs(tmp_path, registry_reset):
    provider, model, fixture = KLING
    out = tmp_path / "kling-v2.1.yaml"
    assert run_cli("spec", "new", provider, model, "--openapi", str(FIXTURES / fixture), "--out", str(out)) == 0
    load_specs(out)
    config = VideoGenerationConfig(provider="fal", model=model)
    request = VideoGenerationRequest(
        prompt="the kite rises", duration_seconds=10, negative_prompt="rain",
        image_list=[{"image": "https://example.com/a.png", "type": "reference"},
                    {"image": "https://example.com/b.png", "type": "last_frame"}],
        extra_params={"cfg_scale": 0.7})
    rendered = render_request(config, request)
    assert rendered["method"] == "POST"
    assert rendered["url"] == f"https://queue.fal.run/{model}"
    assert rendered["json"] == {"prompt": "the kite rises", "image_url": "https://example.com/a.png",
                                "duration": "10", "negative_prompt": "rain",
                                "tail_image_url": "https://example.com/b.png", "cfg_scale": 0.7}
    with pytest.raises(ValidationError, match="allowed: 5, 10"):
        render_request(config, request.model_copy(update={"duration_seconds": 6}))
    with pytest.raises(ValidationError, match="requires an image for 'first_frame'"):
        render_request(config, VideoGenerationRequest(prompt="x"))


def test_a_replicate_draft_renders_a_pinned_version(tmp_path, registry_reset):
    out = tmp_path / "hailuo.yaml"
    assert run_cli("spec", "new", *HAILUO[:2], "--openapi", str(FIXTURES / HAILUO[2]), "--out", str(out)) == 0
    load_specs(out)
    config = VideoGenerationConfig(provider="replicate", model=f"minimax/hailuo-02:{HAILUO_VERSION}")
    rendered = render_request(config, VideoGenerationRequest(
        prompt="a cat", duration_seconds=10, enhance_prompt=False,
        image_list=[{"image": "https://example.com/cat.png", "type": "first_frame"}]))
    assert rendered["url"] == "https://api.replicate.com/v1/predictions"
    assert rendered["json"] == {"version": HAILUO_VERSION, "input": {
        "prompt": "a cat", "prompt_optimizer": False, "duration": 10, "first_frame_image": "https://example.com/cat.png"}}


def test_a_flux_draft_renders_images(tmp_path, registry_reset):
    out = tmp_path / "flux-lite.yaml"
    out.write_text(scaffold_file(*FLUX[:2], FIXTURES / FLUX[2]))
    load_specs(out)
    config = ImageGenerationConfig(provider="fal", model="fal-ai/flux-lite/dev")
    rendered = render_request(config, ImageGenerationRequest(prompt="a fox", size="portrait_16_9", n=2, seed=3))
    assert rendered["json"] == {"prompt": "a fox", "image_size": "portrait_16_9", "num_images": 2, "seed": 3}
    with pytest.raises(ValidationError, match="maximum is 4"):
        render_request(config, ImageGenerationRequest(prompt="a fox", n=5))


# ---------------------------------------------------------------- more shapes (documents built here)


def fal_document(endpoint: str, inputs: dict, required: list[str], output: dict | None) -> dict:
    """A minimal fal queue document: POST body schema and result GET schema, both via components."""
    schemas = {
        "In": {"type": "object", "properties": inputs, "required": required},
        "File": {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]},
    }
    paths = {f"/{endpoint}": {"post": {"requestBody": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/In"}}}}}}}
    if output is not None:
        schemas["Out"] = {"type": "object", "properties": output}
        paths[f"/{endpoint}/requests/{{request_id}}"] = {"get": {"responses": {"200": {"content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Out"}}}}}}}
    return {"openapi": "3.0.4", "components": {"schemas": schemas}, "paths": paths}


VIDEO_OUT = {"video": {"$ref": "#/components/schemas/File"}}
IMAGES_OUT = {"images": {"type": "array", "items": {"$ref": "#/components/schemas/File"}}}


def test_reference_list_without_max_items_is_uncapped_with_a_todo():
    doc = fal_document("acme/refs/reference-to-video", {
        "prompt": {"type": "string"},
        "start_image_url": {"type": "string"},
        "reference_image_urls": {"type": "array", "items": {"type": "string"}},
    }, ["prompt", "reference_image_urls"], VIDEO_OUT)
    text = scaffold_spec("fal", "acme/refs/reference-to-video", doc)
    # The references take the reference role, so the start image takes first_frame only.
    assert "    first_frame: optional  # start_image_url" in text
    assert '  start_image_url: "{{ images.first_frame }}"  # image roles: first_frame' in text
    assert ("    # TODO: reference_image_urls is a list and the schema gives no maxItems: the slot takes any number "
            "(max: null); set the provider's real limit if it has one") in text
    assert "    reference: {required: true, max: null}  # reference_image_urls" in text
    assert '  reference_image_urls: "{{ images.reference }}"' in text
    assert "capabilities: [reference_to_video]" in text
    example = yaml.safe_load(text)["examples"][0]
    assert example["body"]["reference_image_urls"] == ["https://example.com/reference.png"]


def test_image_list_with_max_items_and_an_edit_endpoint():
    doc = fal_document("acme/pix/edit", {
        "prompt": {"type": "string"},
        "image_urls": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "mask_url": {"type": "string"},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 2},
    }, ["prompt", "image_urls"], IMAGES_OUT)
    text = scaffold_spec("fal", "acme/pix/edit", doc)
    assert "modality: image" in text
    assert "capabilities: [image_to_image]" in text
    assert "    reference: {required: true, max: 3}  # image_urls" in text
    assert '  mask_url: "{{ mask }}"  # request.mask_image' in text
    family = load_text(text, "fal")
    assert run_examples(family) == []


def test_a_mask_reaches_the_provider_after_load_specs(tmp_path, registry_reset):
    doc = fal_document("acme/pix/inpaint", {
        "prompt": {"type": "string"},
        "image_url": {"type": "string"},
        "mask_url": {"type": "string"},
    }, ["prompt", "image_url", "mask_url"], IMAGES_OUT)
    out = tmp_path / "inpaint.yaml"
    out.write_text(scaffold_spec("fal", "acme/pix/inpaint", doc))
    load_specs(out)
    rendered = render_request(ImageGenerationConfig(provider="fal", model="acme/pix/inpaint"), ImageGenerationRequest(
        prompt="fill", image_list=[{"image": "https://example.com/in.png", "type": "reference"}],
        mask_image="https://example.com/mask.png"))
    assert rendered["json"] == {"prompt": "fill", "image_url": "https://example.com/in.png",
                                "mask_url": "https://example.com/mask.png"}


def test_a_one_item_list_is_wrapped_in_a_list():
    doc = fal_document("acme/one/image-to-video", {
        "prompt": {"type": "string"},
        "image_urls": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
    }, ["image_urls"], VIDEO_OUT)
    text = scaffold_spec("fal", "acme/one/image-to-video", doc)
    assert "    reference: {required: true, list: true}  # image_urls" in text
    assert '  image_urls: "{{ images.reference }}"' in text
    assert yaml.safe_load(text)["examples"][0]["body"]["image_urls"] == ["https://example.com/reference.png"]


def test_video_input_and_required_unmapped_inputs_in_the_example():
    doc = fal_document("acme/vid/video-to-video", {
        "prompt": {"type": "string"},
        "video_url": {"type": "string"},
        "strength": {"type": "number", "minimum": 0, "maximum": 1},
        "style": {"type": "string", "enum": ["anime", "clay"]},
    }, ["prompt", "video_url", "strength", "style"], VIDEO_OUT)
    text = scaffold_spec("fal", "acme/vid/video-to-video", doc)
    assert "  video: required" in text
    assert '  video_url: "{{ video }}"  # request.video' in text
    assert "capabilities: [video_to_video]" in text
    assert "  #   strength: number 0..1, REQUIRED" in text
    # Required inputs nobody maps are checked as extra_params before anything is sent.
    assert "  extra:\n    strength: {required: true, min: 0, max: 1}\n    style: {required: true, allowed: [anime, clay]}" \
        in text
    family = load_text(text, "fal")
    with pytest.raises(ValidationError, match="requires extra_params.strength"):
        prepare_job(family, VideoGenerationConfig(provider="fal", model="acme/vid/video-to-video"),
                    VideoGenerationRequest(prompt="x", video="https://example.com/v.mp4"), dry_run=True)
    example = yaml.safe_load(text)["examples"][0]
    # Required inputs nobody maps are shown through extra_params, so the example body is complete.
    assert example["request"]["extra_params"] == {"strength": 0, "style": "anime"}
    assert example["body"] == {"prompt": "a red fox running through fresh snow",
                               "video_url": "https://example.com/input.mp4", "strength": 0, "style": "anime"}


def test_duration_values_that_are_not_seconds_are_reported():
    doc = fal_document("acme/dur/text-to-video", {
        "prompt": {"type": "string"},
        "duration": {"anyOf": [{"type": "string", "enum": ["5s", "10s", "auto"]}, {"type": "null"}]},
    }, ["prompt"], VIDEO_OUT)
    text = scaffold_spec("fal", "acme/dur/text-to-video", doc)
    assert "  duration_seconds: {allowed: [5, 10]}  # sent as duration" in text
    assert '''  # TODO: duration also takes "auto", which no duration_seconds maps to (send it through extra_params)''' \
        in text
    assert '''  duration: "{{ request.duration_seconds | suffix('s') }}"''' in text


def test_required_mapped_fields_are_required_params():
    doc = fal_document("acme/req/text-to-video", {
        "prompt": {"type": "string"},
        "aspect_ratio": {"type": "string"},
        "seed": {"type": "integer", "minimum": 0, "maximum": 100},
    }, ["prompt", "aspect_ratio", "seed"], VIDEO_OUT)
    text = scaffold_spec("fal", "acme/req/text-to-video", doc)
    assert "  aspect_ratio: {required: true}" in text
    assert "  seed: {min: 0, max: 100, required: true}" in text
    example = yaml.safe_load(text)["examples"][0]
    assert example["request"] == {"prompt": "a red fox running through fresh snow", "aspect_ratio": "16:9",
                                  "seed": 42}


def test_a_document_without_a_video_or_images_output_leaves_a_todo():
    doc = fal_document("acme/odd/text-to-video", {"prompt": {"type": "string"}}, ["prompt"],
                       {"result": {"type": "object"}})
    text = scaffold_spec("fal", "acme/odd/text-to-video", doc, modality="video")
    assert "# TODO: no video field recognised in the output schema (output properties result)" in text
    assert "\nresponse:" not in text
    assert run_examples(load_text(text, "fal")) == []


def test_modality_flag_over_a_contradicting_output():
    doc = fal_document("acme/x/gen", {"prompt": {"type": "string"}}, ["prompt"], IMAGES_OUT)
    text = scaffold_spec("fal", "acme/x/gen", doc, modality="video")
    assert "modality: video  # from --modality (TODO: the output schema looks like image" in text
    assert "# TODO: no video field recognised" in text


def replicate_document(inputs: dict, output: dict, required: list[str] = ("prompt",), extra: dict | None = None):
    schemas = {"Input": {"type": "object", "title": "Input", "properties": inputs, "required": list(required)},
               "Output": output, **(extra or {})}
    return {"openapi_schema": {"openapi": "3.0.2", "components": {"schemas": schemas}}}


def test_replicate_image_model_with_a_list_output():
    doc = replicate_document({
        "prompt": {"type": "string", "x-order": 0},
        "image": {"type": "string", "format": "uri", "x-order": 1},
        "aspect_ratio": {"allOf": [{"$ref": "#/components/schemas/aspect_ratio"}], "default": "1:1", "x-order": 2},
        "num_outputs": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1, "x-order": 3},
        "output_format": {"allOf": [{"$ref": "#/components/schemas/output_format"}], "default": "webp",
                          "x-order": 4},
        "prompt_strength": {"type": "number", "default": 0.8, "minimum": 0, "maximum": 1, "x-order": 5},
    }, {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"},
        extra={"aspect_ratio": {"type": "string", "enum": ["1:1", "16:9", "9:16"]},
               "output_format": {"type": "string", "enum": ["webp", "jpg", "png"]}})
    text = scaffold_spec("replicate", "acme/pixel-gen", doc)
    assert "modality: image  # guessed: the input has num_images/num_outputs/image_size; output_format offers " \
           "image formats (output: a list of URLs) - TODO: check" in text
    assert "capabilities: [text_to_image, image_to_image]" in text
    assert "  n: {min: 1, max: 4}  # sent as num_outputs" in text
    assert '  aspect_ratio: {allowed: ["1:1", "16:9", "9:16"]}' in text
    assert "    reference: optional  # image" in text
    assert 'response:\n  images: "$.output[*]"' in text
    data = yaml.safe_load(text)
    assert data["examples"][1]["result"] == {"images": ["https://example.com/output-0.png"]}


def test_replicate_video_list_output_reads_the_first_item():
    doc = replicate_document({"prompt": {"type": "string"}},
                             {"type": "array", "items": {"type": "string", "format": "uri"}})
    text = scaffold_spec("replicate", "acme/clip", doc, modality="video")
    assert 'response:\n  video: "$.output[0]"' in text
    assert "capabilities: [text_to_video]" in text


def test_a_bare_replicate_openapi_schema_and_a_model_object_work_too():
    inner = replicate_document({"prompt": {"type": "string"}, "duration": {"type": "integer"}},
                               {"type": "string", "format": "uri"})["openapi_schema"]
    bare = scaffold_spec("replicate", "acme/clip", inner)
    wrapped = scaffold_spec("replicate", "acme/clip", {"latest_version": {"id": "abc", "openapi_schema": inner}})
    assert bare == wrapped
    assert '  duration: "{{ request.duration_seconds }}"' in bare


def test_yaml_documents_are_read(tmp_path):
    path = tmp_path / "veo.yaml"
    path.write_text(yaml.safe_dump(json.loads((FIXTURES / VEO[2]).read_text()), sort_keys=False))
    from_yaml = scaffold_file(*VEO[:2], path)
    from_json = scaffold_file(*VEO[:2], FIXTURES / VEO[2])
    assert from_yaml.replace(str(path), "X") == from_json.replace(str(FIXTURES / VEO[2]), "X")


def test_a_mismatched_single_post_path_is_used_with_a_todo():
    doc = fal_document("fal-ai/other/text-to-video", {"prompt": {"type": "string"}}, ["prompt"], VIDEO_OUT)
    text = scaffold_spec("fal", "fal-ai/mine/text-to-video", doc)
    assert ("# TODO: the document's POST path is /fal-ai/other/text-to-video, not /fal-ai/mine/text-to-video: "
            "check it describes fal-ai/mine/text-to-video") in text
    assert "models: [fal-ai/mine/text-to-video]" in text


# ---------------------------------------------------------------- errors


def error_of(capsys, *argv: str) -> str:
    assert run_cli(*argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_unreadable_file(capsys, tmp_path):
    missing = tmp_path / "nope.json"
    err = error_of(capsys, "spec", "new", "fal", "fal-ai/veo3", "--openapi", str(missing))
    assert err.startswith(f"tarash-router: error: {missing}: cannot read the OpenAPI file")
    assert "No such file" in err


def test_invalid_json(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"openapi": "3.0.4",\n  "paths": {,}\n}')
    err = error_of(capsys, "spec", "new", "fal", "fal-ai/veo3", "--openapi", str(path))
    assert f"{path}:2:" in err and "invalid JSON" in err and "expected an OpenAPI document" in err


def test_invalid_yaml(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("openapi: 3.0.4\npaths:\n  /x: [unclosed\n")
    err = error_of(capsys, "spec", "new", "fal", "fal-ai/veo3", "--openapi", str(path))
    assert f"{path}:" in err and "invalid YAML" in err


def test_no_recognisable_input_schema(capsys, tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"openapi": "3.0.4", "paths": {}, "components": {"schemas": {}}}))
    err = error_of(capsys, "spec", "new", "fal", "fal-ai/veo3", "--openapi", str(path))
    assert f"{path}: no recognisable input schema for 'fal-ai/veo3'" in err
    assert "POST /fal-ai/veo3" in err
    err = error_of(capsys, "spec", "new", "replicate", "acme/clip", "--openapi", str(path))
    assert f"{path}: no recognisable input schema for 'acme/clip'" in err and "components.schemas.Input" in err
    path.write_text("[1, 2]")
    err = error_of(capsys, "spec", "new", "fal", "fal-ai/veo3", "--openapi", str(path))
    assert "expected an OpenAPI document (a JSON object), found array" in err


def test_several_post_operations_and_none_for_the_endpoint(capsys):
    doc = fal_document("fal-ai/a", {"prompt": {"type": "string"}}, [], VIDEO_OUT)
    doc["paths"]["/fal-ai/b"] = doc["paths"]["/fal-ai/a"]
    with pytest.raises(ScaffoldError, match=r"no POST /fal-ai/c operation for endpoint 'fal-ai/c'; "
                                            r"the document has POST /fal-ai/a, /fal-ai/b"):
        scaffold_spec("fal", "fal-ai/c", doc)


def test_unknown_provider(capsys):
    err = error_of(capsys, "spec", "new", "runway", "gen4_turbo", "--openapi", str(FIXTURES / KLING[2]))
    assert "unknown provider 'runway': `spec new` supports fal and replicate" in err
    with pytest.raises(ScaffoldError, match="unknown provider"):
        scaffold_spec("openai", "sora-2", {})


def test_bad_model_references(capsys):
    err = error_of(capsys, "spec", "new", "replicate", "just-a-name", "--openapi", str(FIXTURES / HAILUO[2]))
    assert "expected owner/name or owner/name:<version id>" in err
    err = error_of(capsys, "spec", "new", "fal", "veo3", "--openapi", str(FIXTURES / VEO[2]))
    assert "invalid fal endpoint id 'veo3'" in err


def test_an_unknowable_modality_asks_for_the_flag():
    doc = replicate_document({"prompt": {"type": "string"}}, {"type": "string", "format": "uri"})
    with pytest.raises(ScaffoldError, match="cannot tell whether 'acme/thing' makes video or images .* "
                                            "pass --modality video\\|image"):
        scaffold_spec("replicate", "acme/thing", doc)


def test_an_existing_out_file_is_kept_unless_forced(capsys, tmp_path):
    out = tmp_path / "draft.yaml"
    out.write_text("hand edited\n")
    args = ("spec", "new", *KLING[:2], "--openapi", str(FIXTURES / KLING[2]), "--out", str(out))
    assert "already exists (pass --force to overwrite it)" in error_of(capsys, *args)
    assert out.read_text() == "hand edited\n"
    assert run_cli(*args, "--force") == 0
    assert out.read_text().startswith("# Scaffolded by")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("spec", "new", "fal", "fal-ai/veo3")  # --openapi is required
    assert exc.value.code == 2
    assert "--openapi" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run_cli("spec", "new", "fal", "fal-ai/veo3", "--openapi", "x.json", "--modality", "audio")
    assert exc.value.code == 2


def test_help_says_the_schema_is_required_offline(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("spec", "new", "--help")
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "required: this command runs offline and never fetches it" in text
    assert "https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<endpoint id>" in text


def test_read_openapi_keeps_the_document():
    assert read_openapi(FIXTURES / KLING[2]) == json.loads((FIXTURES / KLING[2]).read_text())


def test_the_scaffold_does_not_touch_the_document():
    doc = json.loads((FIXTURES / FLUX[2]).read_text())
    before = copy.deepcopy(doc)
    scaffold_spec(*FLUX[:2], doc)
    assert doc == before
