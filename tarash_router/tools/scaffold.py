"""`tarash-router spec new`: draft a family spec from a provider's published OpenAPI schema, offline.

    tarash-router spec new fal fal-ai/kling-video/v2.1/standard/image-to-video --openapi kling.json
    tarash-router spec new replicate minimax/hailuo-02 --openapi version.json --out hailuo-02.yaml

The draft loads as-is (`tarash-router validate` accepts it, examples included): every input property
whose name has a known unified meaning is mapped (prompt, duration -> duration_seconds, num_images -> n,
image_url -> an image slot, ...), with `allowed`/`min`/`max`/`required` taken from the schema; every
other property is left out of the body (callers reach it through `extra_params`, which are merged)
and listed in a `# TODO:` block with its type, default and description, so a human decides the
mapping; one the provider requires is also checked under `params.extra`. Image inputs become slots
(start image -> first_frame fed by the first_frame/reference roles, end image -> last_frame, lists ->
reference with maxItems or no limit), video_url -> request.video, a mask -> request.mask_image. The example's expected body is not guessed: it is rendered through the loaded draft with the
real loader and engine, and the draft is checked with the same example runner `validate` uses.

Inputs (the command never fetches anything; `--openapi` is required):
- fal: the per-endpoint queue document (`https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<id>`).
  Input = the JSON request body schema of `POST /<endpoint id>`; output = the 200 schema of
  `GET .../requests/{request_id}`, else the one component named `<Something>Output`.
- replicate: a model version's `openapi_schema` (`GET /v1/models/<owner>/<name>/versions/<id>`), the
  version or model object holding it (`openapi_schema`, `latest_version.openapi_schema`), with the
  `Input` and `Output` schemas under `components.schemas`.

Public: `scaffold_spec` (document already parsed), `scaffold_file` (reads JSON or YAML), `read_openapi`,
`fal_schemas`, `replicate_schemas`, `ScaffoldError`, and `add_command` (the argparse wiring).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from ..engine.render import prepare_job
from ..errors import SpecError, TarashException
from ..models import ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest
from ..specs.compiled import REQUEST_FIELDS
from ..specs.loader import load_family
from ..specs.registry import WILDCARD, get_registry
from ..specs.yaml_source import parse_yaml
from .examples import example_model, run_examples

SUPPORTED_PROVIDERS = ("fal", "replicate")
EXIT_OK, EXIT_ERROR = 0, 1
EXAMPLE_PROMPT = "a red fox running through fresh snow"
# Values for a required request field that has no enum (the example must fill it in).
SAMPLE_VALUES: dict[str, Any] = {
    "negative_prompt": "blurry", "aspect_ratio": "16:9", "resolution": "720p", "size": "1024x1024", "seed": 42,
    "n": 1, "duration_seconds": 5, "generate_audio": True, "enhance_prompt": True,
}

# Provider input name -> unified request field (used only when the field exists for the modality).
FIELD_NAMES = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "seed": "seed",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "duration": "duration_seconds",
    "num_images": "n",
    "num_outputs": "n",
    "image_size": "size",
    "enhance_prompt": "enhance_prompt",
    "prompt_optimizer": "enhance_prompt",
    "enable_prompt_expansion": "enhance_prompt",
    "generate_audio": "generate_audio",
}
# The JSON types a unified field can carry.
FIELD_TYPES = {
    "prompt": {"string"}, "negative_prompt": {"string"}, "aspect_ratio": {"string"}, "resolution": {"string"},
    "size": {"string"}, "seed": {"integer", "number"}, "n": {"integer", "number"},
    "duration_seconds": {"integer", "number", "string"},
    "enhance_prompt": {"boolean"}, "generate_audio": {"boolean"},
}
_FIRST_IMAGE = {"image_url", "image", "input_image", "input_image_url", "init_image", "image_uri", "start_image_url",
                "start_image", "start_frame", "start_frame_url", "first_frame_url", "first_frame_image", "first_frame"}
_LAST_IMAGE = {"end_image_url", "tail_image_url", "last_frame_url", "end_image", "tail_image", "last_frame_image",
               "last_frame", "end_frame", "end_frame_url", "last_image"}
_REFERENCE_IMAGES = {"image_urls", "reference_image_urls", "reference_images", "input_images", "input_image_urls",
                     "reference_image_url", "reference_image", "images", "subject_reference_image_url"}
_STYLE_IMAGE = {"style_image_url", "style_image", "style_reference_url", "style_reference_image"}
_VIDEO_INPUT = {"video_url", "video", "input_video", "input_video_url", "video_uri"}


class ScaffoldError(Exception):
    """The schema cannot be scaffolded; the message names the file and what was expected."""


# ---------------------------------------------------------------- reading


def read_openapi(path: str | Path) -> Any:
    """Parse an OpenAPI document from a JSON or YAML file; ScaffoldError names the file (and line)."""

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScaffoldError(f"{path}: cannot read the OpenAPI file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScaffoldError(f"{path}: the OpenAPI file is not UTF-8 text") from None
    suffix = path.suffix.lower()
    as_json = suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip().startswith(("{", "[")))
    if as_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScaffoldError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg} "
                                "(expected an OpenAPI document)") from None
    try:
        return parse_yaml(text, str(path)).data
    except SpecError as exc:
        raise ScaffoldError(f"{exc.location}: invalid YAML: {exc.message.removeprefix('YAML syntax error: ')} "
                            "(expected an OpenAPI document)") from None


# ---------------------------------------------------------------- JSON Schema helpers


def _pointer(root: Any, ref: str) -> Any:
    node = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _deref(schema: Any, root: Any, seen: frozenset[str]) -> tuple[Any, frozenset[str]]:
    """Follow local `$ref`s; keys beside a `$ref` win over the target's."""
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        target = _pointer(root, ref) if ref.startswith("#/") and ref not in seen else None
        if not isinstance(target, dict):
            return siblings, seen
        schema, seen = {**target, **siblings}, seen | {ref}
    return schema, seen


def flatten(schema: Any, root: Any, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One schema with `$ref`s resolved, `allOf` merged and a nullable `anyOf`/`oneOf` collapsed.

    Alternatives left after dropping `null` stay in `variants` (e.g. fal's image_size: a preset
    enum or a {width, height} object). `nullable` says a null alternative was there.
    """
    schema, seen = _deref(schema, root, seen)
    if not isinstance(schema, dict):
        return {}
    out = {k: v for k, v in schema.items() if k not in ("allOf", "anyOf", "oneOf")}
    for part in schema.get("allOf") or []:
        for key, value in flatten(part, root, seen).items():
            out.setdefault(key, value)
    variants = [flatten(v, root, seen) for v in (schema.get("anyOf") or []) + (schema.get("oneOf") or [])]
    real = [v for v in variants if v.get("type") != "null" and v.get("enum") != [None]]
    if len(real) < len(variants):
        out["nullable"] = True
    if len(real) == 1:
        for key, value in real[0].items():
            out.setdefault(key, value)
    elif real:
        out["variants"] = real
    kind = out.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        if len(types) < len(kind):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else types
    if "items" in out:
        out["items"] = flatten(out["items"], root, seen)
    return out


def as_mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one: documents are read leniently."""
    return value if isinstance(value, dict) else {}


def json_types(flat: dict[str, Any]) -> set[str]:
    kind = flat.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return set(kind)
    if flat.get("variants"):
        return set().union(*(json_types(v) for v in flat["variants"]))
    values = [v for v in flat.get("enum") or [] if v is not None]
    if values:
        return {_type_of(v) for v in values}
    if "properties" in flat:
        return {"object"}
    return set()


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def enum_values(flat: dict[str, Any]) -> list[Any] | None:
    """The enum of a property, or of its scalar alternatives (the object alternative is not a value)."""
    if "enum" in flat:
        return [v for v in flat["enum"] if v is not None]
    if "const" in flat:
        return [flat["const"]]
    found: list[Any] = []
    for variant in flat.get("variants") or []:
        for value in enum_values(variant) or []:
            if value not in found:
                found.append(value)
    return found or None


def _bound(flat: dict[str, Any], which: str) -> float | None:
    """Inclusive minimum/maximum; an exclusive integer bound becomes the next integer."""
    inclusive = flat.get("minimum" if which == "min" else "maximum")
    exclusive = flat.get("exclusiveMinimum" if which == "min" else "exclusiveMaximum")
    if isinstance(inclusive, (int, float)) and not isinstance(inclusive, bool):
        if exclusive is True and json_types(flat) == {"integer"}:  # OpenAPI 3.0 boolean form
            return inclusive + (1 if which == "min" else -1)
        return None if exclusive is True else inclusive
    if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool) and json_types(flat) == {"integer"}:
        return exclusive + (1 if which == "min" else -1)
    return None


def _is_url_like(name: str, flat: dict[str, Any]) -> bool:
    if "string" not in json_types(flat):
        return False
    return flat.get("format") in ("uri", "url", "binary") or name.endswith(("_url", "_uri")) or name in (
        _FIRST_IMAGE | _LAST_IMAGE | _REFERENCE_IMAGES | _STYLE_IMAGE | _VIDEO_INPUT)


@dataclass
class Prop:
    """One input property of the provider, flattened."""

    name: str
    flat: dict[str, Any]
    required: bool

    @property
    def types(self) -> set[str]:
        return json_types(self.flat)

    @property
    def is_list(self) -> bool:
        return self.types == {"array"}

    @property
    def default(self) -> Any:
        return self.flat.get("default")

    @property
    def description(self) -> str:
        return str(self.flat.get("description") or self.flat.get("title") or "")


def properties(schema: dict[str, Any], root: Any) -> list[Prop]:
    """Input properties in the provider's display order (fal x-fal-order-properties, Replicate x-order)."""
    raw = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fal_order = [n for n in schema.get("x-fal-order-properties") or [] if n in raw]
    flats = {name: flatten(value, root) for name, value in raw.items()}

    def position(item: tuple[int, str]) -> tuple[float, float]:
        index, name = item
        x_order = flats[name].get("x-order")
        first = fal_order.index(name) if name in fal_order else (
            x_order if isinstance(x_order, (int, float)) else len(fal_order) + index)
        return (first, index)

    names = [name for _, name in sorted(enumerate(raw), key=position)]
    return [Prop(name, flats[name], name in required) for name in names]


# ---------------------------------------------------------------- locating the schemas


@dataclass
class Schemas:
    """What the scaffold is built from: the input object schema and (maybe) the output schema."""

    input: dict[str, Any]
    output: dict[str, Any] | None
    root: Any
    notes: list[str] = field(default_factory=list)  # TODO lines about the document itself


def _json_body_schema(operation: Any) -> Any:
    body = operation.get("requestBody") if isinstance(operation, dict) else None
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, dict):
        return None
    media = content.get("application/json") or next(
        (v for k, v in content.items() if isinstance(v, dict) and "json" in k), None)
    return media.get("schema") if isinstance(media, dict) else None


def _response_schema(operation: Any) -> Any:
    responses = operation.get("responses") if isinstance(operation, dict) else None
    if not isinstance(responses, dict):
        return None
    response = responses.get("200") or responses.get(200)
    content = response.get("content") if isinstance(response, dict) else None
    if not isinstance(content, dict):
        return None
    media = content.get("application/json") or next(iter(content.values()), None)
    return media.get("schema") if isinstance(media, dict) else None


def _components(document: dict[str, Any]) -> dict[str, Any]:
    schemas = (document.get("components") or {}).get("schemas") if isinstance(document.get("components"), dict) \
        else None
    return schemas if isinstance(schemas, dict) else {}


def fal_schemas(document: Any, endpoint_id: str, source: str = "<openapi>") -> Schemas:
    """The input and output schemas of one fal endpoint from its queue OpenAPI document."""
    if not isinstance(document, dict):
        raise ScaffoldError(f"{source}: expected an OpenAPI document (a JSON object), found {_type_of(document)}")
    paths = as_mapping(document.get("paths"))
    components = _components(document)
    notes: list[str] = []
    target = "/" + endpoint_id.strip("/")
    posts = {p: ops["post"] for p, ops in paths.items() if isinstance(ops, dict) and isinstance(ops.get("post"), dict)}
    input_schema: Any = None
    if target in posts:
        input_schema = _json_body_schema(posts[target])
    elif len(posts) == 1:
        (path, operation), = posts.items()
        input_schema = _json_body_schema(operation)
        notes.append(f"the document's POST path is {path}, not {target}: check it describes {endpoint_id}")
    elif posts:
        raise ScaffoldError(f"{source}: no POST {target} operation for endpoint {endpoint_id!r}; "
                            f"the document has POST {', '.join(sorted(posts))}")
    if input_schema is None:
        inputs = [n for n in components if n.endswith("Input")]
        if len(inputs) == 1:
            input_schema = {"$ref": f"#/components/schemas/{inputs[0]}"}
            notes.append(f"input taken from components.schemas.{inputs[0]} (no POST {target} request body)")
    flat_input = flatten(input_schema, document) if input_schema is not None else {}
    if not isinstance(flat_input.get("properties"), dict) or not flat_input["properties"]:
        raise ScaffoldError(
            f"{source}: no recognisable input schema for {endpoint_id!r}: expected a POST {target} operation "
            "whose application/json requestBody schema is an object with properties (resolved through "
            "components.schemas), or one components.schemas entry named *Input")
    output: Any = None
    results = [ops["get"] for p, ops in paths.items()
               if isinstance(ops, dict) and isinstance(ops.get("get"), dict) and p.endswith("/requests/{request_id}")]
    for operation in results:
        output = _response_schema(operation)
        if output is not None:
            break
    if output is None:
        outputs = [n for n in components if n.endswith("Output")]
        if len(outputs) > 1:  # prefer the one named like the input component
            stem = _input_component_stem(input_schema)
            outputs = [n for n in outputs if stem and n == f"{stem}Output"] or outputs[:0]
        if len(outputs) == 1:
            output = {"$ref": f"#/components/schemas/{outputs[0]}"}
    return Schemas(flat_input, flatten(output, document) if output is not None else None, document, notes)


def _input_component_stem(schema: Any) -> str | None:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if isinstance(ref, str) and ref.endswith("Input"):
        return ref.rsplit("/", 1)[-1][: -len("Input")]
    return None


def replicate_schemas(document: Any, model_ref: str, source: str = "<openapi>") -> Schemas:
    """`Input`/`Output` of a Replicate version's openapi_schema (or the version/model object holding it)."""
    if not isinstance(document, dict):
        raise ScaffoldError(f"{source}: expected a Replicate openapi_schema (a JSON object), found {_type_of(document)}")
    notes: list[str] = []
    candidates = [document, document.get("openapi_schema")]
    latest = document.get("latest_version")
    if isinstance(latest, dict):
        candidates.append(latest.get("openapi_schema"))
    schema_doc = next((c for c in candidates if isinstance(c, dict) and "Input" in _components(c)), None)
    if schema_doc is None:
        raise ScaffoldError(
            f"{source}: no recognisable input schema for {model_ref!r}: expected a Replicate openapi_schema "
            "with components.schemas.Input (the document itself, or the `openapi_schema` of a model version, "
            "or `latest_version.openapi_schema` of a model)")
    version = model_ref.partition(":")[2]
    holder = document if schema_doc is document.get("openapi_schema") else (
        latest if isinstance(latest, dict) and schema_doc is latest.get("openapi_schema") else None)
    if version and isinstance(holder, dict) and isinstance(holder.get("id"), str) and holder["id"] != version:
        notes.append(f"the document is version {holder['id']}, not {version}: check the schema matches")
    components = _components(schema_doc)
    flat_input = flatten(components["Input"], schema_doc)
    if not isinstance(flat_input.get("properties"), dict) or not flat_input["properties"]:
        raise ScaffoldError(f"{source}: components.schemas.Input of {model_ref!r} has no properties "
                            "(expected an object schema of the model's inputs)")
    output = components.get("Output")
    return Schemas(flat_input, flatten(output, schema_doc) if output is not None else None, schema_doc, notes)


# ---------------------------------------------------------------- the plan


@dataclass
class Slot:
    name: str
    prop: Prop
    kind: str  # first | last | reference | style
    sources: list[str]
    max: int | None = 1  # None: no limit
    as_list: bool = False  # a one-image slot the provider takes as a list
    todo: str | None = None

    @property
    def required(self) -> bool:
        return self.prop.required


@dataclass
class BodyEntry:
    key: str
    template: str
    comment: str | None = None
    todos: list[str] = field(default_factory=list)


@dataclass
class ParamEntry:
    field: str
    rule: dict[str, Any]
    comment: str | None = None
    todos: list[str] = dataclasses.field(default_factory=list)  # `field` in here is the attribute above


@dataclass
class Plan:
    provider: str
    model: str
    models: list[str]
    family: str
    docs: str
    source: str
    modality: str
    modality_reason: str
    capabilities: list[str]
    params: list[ParamEntry] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    video: str | None = None
    mask: str | None = None  # the input that takes request.mask_image
    extra: list[ParamEntry] = field(default_factory=list)  # constraints on required unmapped inputs
    body: list[BodyEntry] = field(default_factory=list)
    unmapped: list[tuple[Prop, str | None]] = field(default_factory=list)
    todos: list[str] = field(default_factory=list)
    response: dict[str, str] = field(default_factory=dict)
    response_todo: str | None = None
    sample_response: Any = None
    sample_result: dict[str, Any] | None = None
    example_request: dict[str, Any] = field(default_factory=dict)
    example_body: dict[str, Any] | None = None
    rejected: tuple[dict[str, Any], str, str] | None = None  # request, message fragment, why
    overrides: str | None = None


def _duration_mapping(prop: Prop) -> tuple[str, dict[str, Any], list[str]] | None:
    """Template, param rule and TODOs for a provider duration; None when it cannot be mapped."""
    values = enum_values(prop.flat)
    types = prop.types
    base = "{{ request.duration_seconds }}"
    if values is None:
        rule = {k: v for k, v in (("min", _bound(prop.flat, "min")), ("max", _bound(prop.flat, "max")))
                if v is not None}
        if types & {"integer", "number"}:
            return base, rule, []
        if "string" in types:
            return ("{{ request.duration_seconds | string_or_none }}", rule,
                    [f"{prop.name} is a string without an enum: check the unit it expects (e.g. '5' or '5s')"])
        return None
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return base, {"allowed": values}, []
    parsed: list[tuple[int, str]] = []
    other: list[Any] = []
    for value in values:
        match = re.fullmatch(r"(\d+)(s?)", value.strip()) if isinstance(value, str) else None
        if match:
            parsed.append((int(match.group(1)), match.group(2)))
        else:
            other.append(value)
    if not parsed:
        return None
    suffix = parsed[0][1]
    todos = []
    kept = [n for n, s in parsed if s == suffix]
    if len(kept) < len(parsed):
        todos.append(f"{prop.name} mixes unit styles ({_fmt_values(values)}); only the {suffix or 'bare'} ones "
                     "are allowed here")
    if other:
        todos.append(f"{prop.name} also takes {_fmt_values(other)}, which no duration_seconds maps to "
                     "(send it through extra_params)")
    template = "{{ request.duration_seconds | suffix('s') }}" if suffix else \
        "{{ request.duration_seconds | string_or_none }}"
    return template, {"allowed": sorted(set(kept))}, todos


def _image_kind(prop: Prop) -> str | None:
    name = prop.name
    url_like = _is_url_like(name, prop.flat) or (
        prop.is_list and _is_url_like(name.removesuffix("s"), prop.flat.get("items") or {}))
    if not url_like:
        return None
    if "mask" in name:
        return None if prop.is_list else "mask"
    if prop.is_list:
        return "reference" if ("image" in name or "frame" in name or name in _REFERENCE_IMAGES) else None
    if name in _VIDEO_INPUT or ("video" in name and "image" not in name):
        return "video"
    if name in _FIRST_IMAGE:
        return "first"
    if name in _LAST_IMAGE:
        return "last"
    if name in _REFERENCE_IMAGES:
        return "reference"
    if name in _STYLE_IMAGE:
        return "style"
    if "image" not in name and "frame" not in name:
        return None
    for words, kind in ((("end", "tail", "last"), "last"), (("style",), "style"), (("ref", "subject"), "reference"),
                        (("start", "first", "init", "input"), "first")):
        if any(w in name for w in words):
            return kind
    return "first"


def _example_value(prop: Prop) -> tuple[bool, Any]:
    """A plausible value for a required input nobody maps (first enum value, default, schema example)."""
    values = enum_values(prop.flat)
    if values:
        return True, values[0]
    if "default" in prop.flat:
        return True, prop.default
    examples = prop.flat.get("examples")
    if isinstance(examples, list) and examples:
        return True, examples[0]
    if "example" in prop.flat:
        return True, prop.flat["example"]
    types = prop.types
    if "string" in types:
        return True, f"https://example.com/{prop.name}.png" if _is_url_like(prop.name, prop.flat) else "example"
    low = _bound(prop.flat, "min")
    if "integer" in types:
        return True, int(low) if low is not None else 1
    if "number" in types:
        return True, low if low is not None else 1.0
    if "boolean" in types:
        return True, False
    return False, None


def _capabilities(model: str, modality: str, plan: Plan, mapped_fields: set[str]) -> list[str]:
    text = model.lower()
    caps: list[str] = []
    for src, dst in re.findall(r"([a-z]+)-to-([a-z]+)", text):
        caps.append(f"{src}_to_{dst}")
    if "first-last-frame" in text or "first_last_frame" in text:
        caps.append("first_last_frame")
    if "motion-control" in text:
        caps.append("motion_control")
    if "extend" in text and modality == "video":
        caps.append("video_extension")
    if re.search(r"(^|/)edit($|/)", text):
        caps.append("video_edit" if modality == "video" else "image_to_image")
    kinds = {s.kind: s for s in plan.slots}
    if not any(c.endswith(f"_to_{modality}") for c in caps):
        if modality == "video":
            first = kinds.get("first")
            if plan.video:
                caps.append("video_to_video")
            if first is None and "reference" not in kinds and not plan.video:
                caps.append("text_to_video")
            elif first is not None:
                if not first.required and not plan.video:
                    caps.append("text_to_video")
                caps.append("image_to_video")
            if "reference" in kinds:
                caps.append("reference_to_video")
        else:
            required = any(s.required for s in plan.slots)
            if not required:
                caps.append("text_to_image")
            if plan.slots:
                caps.append("image_to_image")
    if "last" in kinds and modality == "video":
        caps.append("first_last_frame")
    if "generate_audio" in mapped_fields:
        caps.append("audio")
    return list(dict.fromkeys(caps))


def _family_name(provider: str, model: str) -> str:
    base = model.split(":", 1)[0]
    if provider == "replicate":
        base = base.split("/", 1)[-1]
    elif base.startswith("fal-ai/"):
        base = base[len("fal-ai/"):]
    name = re.sub(r"[^a-z0-9_.-]+", "-", base.lower().replace("/", "-")).strip("-.")
    return name or "family"


def _check_model_ref(provider: str, model: str) -> None:
    if provider == "replicate":
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(:[0-9a-fA-F]{6,})?", model):
            raise ScaffoldError(f"invalid Replicate model {model!r}: expected owner/name or owner/name:<version id>")
    elif not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+", model):
        raise ScaffoldError(f"invalid fal endpoint id {model!r}: expected owner/app[/path], e.g. fal-ai/veo3")


def _output_plan(provider: str, output: dict[str, Any] | None, root: Any
                 ) -> tuple[str | None, dict[str, str], Any, str]:
    """(modality or None, response paths, a sample result, what the output is)."""
    if output is None:
        return None, {}, None, "no output schema"
    if provider == "replicate":
        types = json_types(output)
        if types == {"string"}:
            return None, {"_single": "$.output"}, "https://example.com/output", "a URL string"
        if types == {"array"}:
            return None, {"_list": "$.output"}, ["https://example.com/output"], "a list of URLs"
        props = as_mapping(output.get("properties"))
        for key in ("video", "images", "image"):
            if key in props:
                flat = flatten(props[key], root)
                modality = "video" if key == "video" else "image"
                if json_types(flat) == {"array"}:
                    return modality, {("images" if modality == "image" else "video"): f"$.output.{key}[*]"}, \
                        {key: ["https://example.com/output"]}, f"an object with {key}"
                return modality, {("images" if modality == "image" else "video"): f"$.output.{key}"}, \
                    {key: "https://example.com/output"}, f"an object with {key}"
        return None, {}, None, f"{'/'.join(sorted(types)) or 'an untyped'} output"
    props = as_mapping(output.get("properties"))
    for key, modality, field_name in (("video", "video", "video"), ("videos", "video", "video"),
                                      ("images", "image", "images"), ("image", "image", "images")):
        if key not in props:
            continue
        flat = flatten(props[key], root)
        types = json_types(flat)
        ext = "mp4" if modality == "video" else "png"
        if types == {"array"}:
            items = flat.get("items") or {}
            sample: list[dict[str, str]] | list[str]
            if "object" in json_types(items) or "url" in (items.get("properties") or {}):
                path = f"$.{key}[*].url" if field_name == "images" else f"$.{key}[0].url"
                sample = [{"url": f"https://example.com/output.{ext}"}]
            else:
                path = f"$.{key}[*]" if field_name == "images" else f"$.{key}[0]"
                sample = [f"https://example.com/output.{ext}"]
            return modality, {field_name: path}, {key: sample}, f"{key}: a list"
        if "string" in types and "object" not in types:
            return modality, {field_name: f"$.{key}"}, {key: f"https://example.com/output.{ext}"}, \
                f"{key}: a URL string"
        return modality, {field_name: f"$.{key}.url"}, {key: {"url": f"https://example.com/output.{ext}"}}, \
            f"{key}: a file object"
    if "video_url" in props:
        return "video", {"video": "$.video_url"}, {"video_url": "https://example.com/output.mp4"}, "video_url"
    return None, {}, None, f"output properties {', '.join(props) or '(none)'}"


def _modality_hints(model: str, props: list[Prop]) -> list[tuple[str, str]]:
    hints: list[tuple[str, str]] = []
    text = model.lower()
    named = re.search(r"to-(video|image)", text) or re.search(r"(video|image)", text)
    if named:
        hints.append((named.group(1), f"the model id says {named.group(0)}"))
    names = {p.name for p in props}
    if names & {"duration", "fps", "num_frames", "frames", "frame_rate"}:
        hints.append(("video", "the input has a duration/frames field"))
    if names & {"num_images", "num_outputs", "image_size"}:
        hints.append(("image", "the input has num_images/num_outputs/image_size"))
    fmt = next((p for p in props if p.name == "output_format"), None)
    if fmt and any(str(v).lower() in ("png", "jpg", "jpeg", "webp") for v in enum_values(fmt.flat) or []):
        hints.append(("image", "output_format offers image formats"))
    if fmt and any(str(v).lower() in ("mp4", "webm", "mov", "gif") for v in enum_values(fmt.flat) or []):
        hints.append(("video", "output_format offers video formats"))
    return hints


def build_plan(provider: str, model: str, schemas: Schemas, modality: str | None, source: str) -> Plan:
    """Decide every mapping (pure: no loading or rendering)."""

    props = properties(schemas.input, schemas.root)
    out_modality, response, sample, out_what = _output_plan(provider, schemas.output, schemas.root)
    if modality:
        reason = "from --modality"
        if out_modality and out_modality != modality:
            reason += f" (TODO: the output schema looks like {out_modality}: {out_what})"
    elif out_modality:
        modality, reason = out_modality, f"from the output schema ({out_what})"
    else:
        hints = _modality_hints(model, props)
        hinted = {k for k, _ in hints}
        if len(hinted) != 1:
            seen = "; ".join(f"{why} -> {k}" for k, why in hints) or "no hint in the model id or inputs"
            raise ScaffoldError(f"{source}: cannot tell whether {model!r} makes video or images ({out_what}; "
                                f"{seen}): pass --modality video|image")
        modality = hints[0][0]
        reason = f"guessed: {'; '.join(why for _, why in hints)} (output: {out_what}) - TODO: check"
    base = model.split(":", 1)[0]
    if provider == "fal":
        models, docs = [model], f"https://fal.ai/models/{model}/api"
    else:
        models, docs = [base], f"https://replicate.com/{base}"
    plan = Plan(provider=provider, model=model, models=models, family=_family_name(provider, model), docs=docs,
                source=source, modality=modality, modality_reason=reason, capabilities=[])
    plan.todos += schemas.notes
    if version := model.partition(":")[2]:
        plan.todos.append(f"scaffolded from version {version}; the family serves every version of {base} "
                          "(pinned ids resolve to it): check other versions share this input schema")

    # Final response paths for the modality (Replicate's bare string/list output).
    if "_single" in response:
        field_name = "video" if modality == "video" else "images"
        response = {field_name: "$.output"}
        sample = f"https://example.com/output.{'mp4' if modality == 'video' else 'png'}"
    elif "_list" in response:
        response = {"video": "$.output[0]"} if modality == "video" else {"images": "$.output[*]"}
        sample = [f"https://example.com/output-0.{'mp4' if modality == 'video' else 'png'}"]
    elif out_modality and out_modality != modality:
        response, sample = {}, None
    plan.response = response
    if response:
        plan.sample_response = ({"status": "succeeded", "output": sample} if provider == "replicate" else sample)
    else:
        plan.response_todo = (f"no {'video' if modality == 'video' else 'images'} field recognised in the output "
                              f"schema ({out_what}); set response.{'video' if modality == 'video' else 'images'} "
                              f"to its JSONPath (the {provider} provider defaults apply until then)")

    fields_available = REQUEST_FIELDS[modality]
    mapped_fields: set[str] = set()
    kinds: dict[str, Prop] = {}
    scalar: list[tuple[Prop, str]] = []
    for prop in props:
        kind = _image_kind(prop)
        if kind in ("first", "last", "reference", "style") and kind not in kinds:
            if kind == "last" and modality != "video":
                plan.unmapped.append((prop, "a last-frame image has no role in an image model"))
                continue
            kinds[kind] = prop
            continue
        if kind in ("first", "last", "reference", "style"):
            plan.unmapped.append((prop, f"another {kind} image ({kinds[kind].name}) already takes that role"))
            continue
        if kind == "video":
            if modality == "video" and plan.video is None:
                plan.video = "required" if prop.required else "optional"
                plan.body.append(BodyEntry(prop.name, "{{ video }}", "request.video"))
            else:
                plan.unmapped.append((prop, "a video input" + (" (already mapped)" if plan.video else "")))
            continue
        if kind == "mask":
            if modality == "image" and plan.mask is None:
                plan.mask = prop.name
                plan.body.append(BodyEntry(prop.name, "{{ mask }}", "request.mask_image"))
            else:
                plan.unmapped.append((prop, "a mask" + (" (already mapped)" if plan.mask else
                                                        ": video requests have no mask_image")))
            continue
        target = FIELD_NAMES.get(prop.name)
        if target is None:
            plan.unmapped.append((prop, None))
        elif target not in fields_available:
            plan.unmapped.append((prop, f"{modality} requests have no {target} field"))
        elif target in mapped_fields:
            plan.unmapped.append((prop, f"request.{target} is already mapped"))
        elif not (prop.types & FIELD_TYPES[target]) and prop.types:
            plan.unmapped.append((prop, f"its type ({_describe_type(prop)}) does not fit request.{target}"))
        else:
            mapped_fields.add(target)
            scalar.append((prop, target))

    # Image slots, with disjoint roles.
    for kind, prop in kinds.items():
        if kind == "first":
            if modality == "video":
                sources = ["first_frame"] if "reference" in kinds else ["first_frame", "reference"]
                slot = Slot("first_frame", prop, kind, sources)
            else:
                sources = ["asset"] if "reference" in kinds else ["reference"]
                slot = Slot("image" if "reference" in kinds else "reference", prop, kind, sources)
                if "reference" in kinds:
                    slot.todo = (f"{prop.name} takes the `asset` role because {kinds['reference'].name} "
                                 "takes the references: check which role callers will use")
        elif kind == "last":
            slot = Slot("last_frame", prop, kind, ["last_frame"])
        elif kind == "style":
            slot = Slot("style", prop, kind, ["style"])
        else:
            slot = Slot("reference", prop, kind, ["reference"])
        if prop.is_list:
            max_items = prop.flat.get("maxItems")
            if isinstance(max_items, int) and max_items >= 1:
                slot.max = max_items
                slot.as_list = max_items == 1
            else:
                slot.max = None
                slot.todo = (f"{prop.name} is a list and the schema gives no maxItems: the slot takes any number "
                             "(max: null); set the provider's real limit if it has one")
        plan.slots.append(slot)

    # Body in the provider's property order; params for the constraints.
    slots_by_prop = {s.prop.name: s for s in plan.slots}
    scalar_by_prop = {p.name: t for p, t in scalar}
    media_entries = {e.key: e for e in plan.body}  # video and mask inputs
    plan.body = []
    for prop in props:
        if prop.name in media_entries:
            plan.body.append(media_entries[prop.name])
        elif prop.name in slots_by_prop:
            slot = slots_by_prop[prop.name]
            roles = ", ".join(slot.sources)
            plan.body.append(BodyEntry(prop.name, f"{{{{ images.{slot.name} }}}}", f"image roles: {roles}"))
        elif prop.name in scalar_by_prop:
            _map_scalar(plan, prop, scalar_by_prop[prop.name])
    if "prompt" not in mapped_fields:
        plan.todos.append("the input has no prompt field: request.prompt is not sent")
    plan.capabilities = _capabilities(model, modality, plan, mapped_fields)
    _plan_example(plan)
    return plan


def _map_scalar(plan: Plan, prop: Prop, target: str) -> None:
    template = f"{{{{ request.{target} }}}}"
    rule: dict[str, Any] = {}
    todos: list[str] = []
    comment_bits: list[str] = []
    values = enum_values(prop.flat)
    if target == "duration_seconds":
        mapped = _duration_mapping(prop)
        if mapped is None:
            plan.unmapped.append((prop, f"its values ({_fmt_values(values or [])}) are not seconds"))
            return
        template, rule, todos = mapped
        if values:
            comment_bits.append(" | ".join(json.dumps(v) for v in values))
    elif target == "prompt":
        pass
    elif values is not None:
        # n and seed are integers in the request, whatever JSON type the provider declares.
        kinds = {"integer"} if target in ("n", "seed") else FIELD_TYPES[target]
        fitting = [v for v in values if _type_of(v) in kinds]
        if fitting:
            rule["allowed"] = fitting
        if len(fitting) < len(values):
            todos.append(f"{prop.name} also takes {_fmt_values([v for v in values if v not in fitting])}")
        if prop.flat.get("variants") and any("object" in json_types(v) for v in prop.flat["variants"]):
            todos.append(f"{prop.name} also takes an object ({_object_keys(prop)}); `allowed` limits request.{target} "
                         "to the presets. To accept custom sizes, drop `allowed` and convert 'WxH' in the template "
                         "(see provider_specs/fal/flux.yaml)")
    else:
        if prop.flat.get("variants") and target == "size":
            todos.append(f"{prop.name} takes {_describe_type(prop)}: check what a request.size string should become")
        for which in ("min", "max"):
            bound = _bound(prop.flat, which)
            if bound is not None and target in ("n", "seed"):
                rule[which] = bound
    if prop.required and target != "prompt":
        rule["required"] = True
    if "default" in prop.flat:
        comment_bits.append(f"default {_short_json(prop.default)}")
    if target == "prompt" and not prop.required:
        comment_bits.append("optional for the provider")
    if rule:
        plan.params.append(ParamEntry(target, rule, f"sent as {prop.name}" if prop.name != target else None, todos))
        todos = []
    plan.body.append(BodyEntry(prop.name, template, ", ".join(comment_bits) or None, todos))


def _extra_rule(prop: Prop) -> dict[str, Any]:
    """`params.extra` constraints for a required input that reaches the provider through extra_params."""
    rule: dict[str, Any] = {"required": True}
    values = enum_values(prop.flat)
    if values and all(isinstance(v, (str, int, float)) for v in values):
        rule["allowed"] = values
    elif prop.types & {"integer", "number"}:
        for which in ("min", "max"):
            bound = _bound(prop.flat, which)
            if bound is not None:
                rule[which] = bound
    return rule


def _plan_example(plan: Plan) -> None:
    """The example request (required inputs, first allowed values) and a value to reject."""
    request: dict[str, Any] = {"prompt": EXAMPLE_PROMPT}
    for entry in plan.params:
        rule = entry.rule
        if rule.get("allowed"):
            request[entry.field] = rule["allowed"][0]
        elif rule.get("required"):
            value = SAMPLE_VALUES[entry.field]
            if isinstance(value, int) and not isinstance(value, bool):
                low, high = rule.get("min"), rule.get("max")
                value = max(value, math.ceil(low)) if low is not None else value
                value = min(value, math.floor(high)) if high is not None else value
            request[entry.field] = value
    images = []
    for slot in plan.slots:
        if slot.required:
            role = slot.sources[0]
            images.append({"image": f"https://example.com/{slot.name}.png", "type": role})
    if images:
        request["image_list"] = images
    if plan.video == "required":
        request["video"] = "https://example.com/input.mp4"
    extra: dict[str, Any] = {}
    for prop, _ in plan.unmapped:
        if prop.required:
            ok, value = _example_value(prop)
            if ok:
                extra[prop.name] = value
                plan.extra.append(ParamEntry(prop.name, _extra_rule(prop)))
    if extra:
        request["extra_params"] = extra
    plan.example_request = request
    # A value the model must reject, suggested in a comment (checked when the draft is verified).
    ranked = sorted(plan.params, key=lambda e: (not e.rule.get("allowed"), e.field == "seed"))
    for entry in ranked:
        rule, name = entry.rule, entry.field
        if rule.get("allowed"):
            allowed = rule["allowed"]
            if all(isinstance(v, int) and not isinstance(v, bool) for v in allowed):
                # A gap between the offered values is the telling case (6 s where only 5 and 10 exist).
                bad: Any = next(v for v in range(min(allowed), max(allowed) + 2) if v not in allowed)
            else:
                bad = next((v for v in ("21:9", "3:2", "240p", "huge", "not-a-value") if v not in allowed), None)
                if bad is None or not all(isinstance(v, str) for v in allowed):
                    continue
            fragment = "allowed: " + ", ".join(str(v) for v in allowed)
        elif rule.get("max") is not None:
            bad = int(rule["max"]) + 1
            fragment = f"maximum is {rule['max']:g}"
        else:
            continue
        plan.rejected = ({**request, name: bad}, fragment, f"{name}={bad} is not offered")
        break


# ---------------------------------------------------------------- YAML text

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        text = repr(value)
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _RESERVED:
            return value
        return _quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(str(k))}: {_scalar(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def _quote(text: str) -> str:
    """A YAML double-quoted scalar; anything unprintable is escaped (YAML rejects it raw)."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _clean(text: str, limit: int = 110) -> str:
    """One comment-safe line: whitespace collapsed, unprintable characters dropped, long text cut."""
    text = "".join(c for c in " ".join(str(text).split()) if c.isprintable())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _short_json(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)
    return _clean(text, limit)


def _fmt_values(values: list[Any]) -> str:
    return ", ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in values)


def _object_keys(prop: Prop) -> str:
    for variant in prop.flat.get("variants") or []:
        keys = variant.get("properties")
        if isinstance(keys, dict) and keys:
            return "{" + ", ".join(keys) + "}"
    return "an object"


def _describe_type(prop: Prop) -> str:
    flat = prop.flat
    values = enum_values(flat)
    types = sorted(json_types(flat)) or ["any"]
    text = " | ".join(types)
    if prop.is_list:
        items = flat.get("items") or {}
        text = f"list of {' | '.join(sorted(json_types(items))) or 'any'}"
        if isinstance(flat.get("maxItems"), int):
            text += f" (max {flat['maxItems']})"
    if values:
        text += " " + " | ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in values[:8])
        if len(values) > 8:
            text += " | ..."
    low, high = _bound(flat, "min"), _bound(flat, "max")
    if low is not None or high is not None:
        text += f" {'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"
    return text


def render_yaml(plan: Plan) -> str:
    """The family file text for a plan."""
    out: list[str] = []
    add = out.append
    command = f"tarash-router spec new {plan.provider} {plan.model}"
    add(f"# Scaffolded by `{command}` from {plan.source}.")
    add("# Review every `TODO:` below (delete each once decided), then run `tarash-router validate <this file>`.")
    add(f"# It loads from any spec directory (TARASH_SPEC_DIRS, load_specs) or provider_specs/{plan.provider}/.")
    if plan.overrides:
        add(f"# NOTE: {plan.overrides}")
    for todo in plan.todos:
        add(f"# TODO: {_clean(todo, 300)}")
    add("spec_version: 1")
    add(f"provider: {plan.provider}")
    add(f"family: {_scalar(plan.family)}")
    add("# TODO: a one-line description of the family")
    add(f"description: {_scalar(f'{plan.model} on {plan.provider} (scaffolded from its OpenAPI schema)')}")
    add(f"docs: {plan.docs}")
    add("# TODO: say in notes what the provider accepts (with its documentation URL) where this mapping")
    add("# departs from the schema, and which inputs callers send through extra_params.")
    add("notes: >-")
    add(f"  Scaffolded by `tarash-router spec new` from {plan.provider}'s OpenAPI schema; not reviewed yet.")
    add(f"models: {_scalar(plan.models)}")
    add(f"modality: {plan.modality}  # {_clean(plan.modality_reason, 200)}")
    add("# TODO: check the capabilities (guessed from the model id and the inputs)")
    add(f"capabilities: {_scalar(plan.capabilities)}")
    if plan.params or plan.slots or plan.video or plan.extra:
        add("params:")
        for entry in plan.params:
            for todo in entry.todos:
                add(f"  # TODO: {_clean(todo, 300)}")
            comment = f"  # {entry.comment}" if entry.comment else ""
            add(f"  {entry.field}: {_scalar(entry.rule)}{comment}")
        if plan.slots:
            add("  images:")
            for slot in plan.slots:
                if slot.todo:
                    add(f"    # TODO: {_clean(slot.todo, 300)}")
                rule: dict[str, Any] = {}
                if slot.required:
                    rule["required"] = True
                if slot.max != 1:
                    rule["max"] = slot.max
                if slot.as_list:
                    rule["list"] = True
                if slot.sources != [slot.name]:
                    rule["from"] = slot.sources
                value = _scalar(rule) if rule else "optional"
                add(f"    {slot.name}: {value}  # {slot.prop.name}")
        if plan.video:
            add(f"  video: {plan.video}")
        if plan.extra:
            add(f"  # TODO: {plan.provider} requires these inputs and nothing maps them: callers must send them in")
            add("  # extra_params (checked here before anything is sent), or map them to request fields.")
            add("  extra:")
            for entry in plan.extra:
                add(f"    {_scalar(entry.field)}: {_scalar(entry.rule)}")
    add("body:" if plan.body else "body: {}")
    for body_entry in plan.body:
        for todo in body_entry.todos:
            add(f"  # TODO: {_clean(todo, 300)}")
        comment = f"  # {body_entry.comment}" if body_entry.comment else ""
        add(f"  {_scalar(body_entry.key)}: {_scalar(body_entry.template)}{comment}")
    if plan.unmapped:
        add(f"  # TODO: these {plan.provider} inputs are not mapped; they reach the provider only through")
        add("  # extra_params (merged into the body by default). Map one to a request field above, or leave")
        add("  # it to callers:")
        for prop, why in plan.unmapped:
            bits = [_describe_type(prop)]
            if prop.required:
                bits.append("REQUIRED")
            if "default" in prop.flat:
                bits.append(f"default {_short_json(prop.default)}")
            if why:
                bits.append(why)
            line = f"  #   {prop.name}: {', '.join(bits)}"
            if prop.description:
                line += f" - {_clean(prop.description, 140)}"
            add(line)
    if plan.response:
        add("response:")
        for name, path in plan.response.items():
            add(f"  {name}: {_scalar(path)}")
    else:
        add(f"# TODO: {_clean(plan.response_todo or '', 300)}")
    add("examples:")
    add("  - name: the required inputs and the first allowed values")
    out += _block("request", plan.example_request, 4)
    if plan.example_body is not None:
        out += _block("body", plan.example_body, 4)
    if plan.sample_result is not None:
        field_name = next(iter(plan.sample_result))
        what = "video is" if field_name == "video" else "images are"
        add(f"  - name: the result {what} read from {plan.response[field_name]}")
        out += _block("request", plan.example_request, 4)
        out += _block("response", plan.sample_response, 4)
        out += _block("result", plan.sample_result, 4)
    if plan.rejected is not None:
        request, fragment, why = plan.rejected
        add("  # TODO: add an example of a request the model must reject before anything is sent, e.g.")
        add(f"  # - name: {why}")
        out += ["  #   " + line[4:] for line in _block("request", request, 4)]
        add("  #   raises: ValidationError")
        add(f"  #   message_contains: {_scalar(fragment)}")
    else:
        add("  # TODO: add an example of a request the model must reject (a value it does not offer)")
    return "\n".join(out) + "\n"


def _block(key: str, value: Any, indent: int, depth: int = 0) -> list[str]:
    """`key: value` in block style for the first level (lists of mappings as `- {...}` items)."""
    pad = " " * indent
    if isinstance(value, dict) and value and depth == 0:
        lines = [f"{pad}{key}:"]
        for name, item in value.items():
            lines += _block(_scalar(str(name)), item, indent + 2, depth + 1)
        return lines
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [f"{pad}{key}:"] + [f"{pad}  - {_scalar(v)}" for v in value]
    return [f"{pad}{key}: {_scalar(value)}"]


# ---------------------------------------------------------------- building and checking


def _provider_spec(provider: str) -> Any:

    registry = get_registry()
    name = registry.provider_name(provider)
    if name not in registry.providers:
        raise ScaffoldError(f"provider {provider!r} is not loaded (its provider.yaml is missing)")
    return registry, registry.providers[name]


def _load(text: str, file: str, provider_spec: Any) -> Any:

    try:
        return load_family(parse_yaml(text, file), provider_spec)
    except SpecError as exc:  # a bug here, never the user's input: show where
        raise ScaffoldError(f"internal error: the scaffold does not load ({exc.location}: {exc.message})\n"
                            + text) from None


def _render_body(family: Any, request_data: dict[str, Any]) -> Any:


    video = family.modality == "video"
    config = (VideoGenerationConfig if video else ImageGenerationConfig)(
        provider=family.provider.name, model=example_model(family, family.file.examples[0]))
    try:
        request = (VideoGenerationRequest if video else ImageGenerationRequest).model_validate(request_data)
        return prepare_job(family, config, request, dry_run=True).payload
    except (TarashException, pydantic.ValidationError) as exc:
        return exc


def scaffold_spec(provider: str, model: str, document: Any, *, modality: str | None = None,
                  source: str = "<openapi>") -> str:
    """The family spec YAML for `model`, drafted from its OpenAPI `document`; loads and validates as-is."""
    if provider not in SUPPORTED_PROVIDERS:
        raise ScaffoldError(f"unknown provider {provider!r}: `spec new` supports {' and '.join(SUPPORTED_PROVIDERS)}")
    if modality not in (None, "video", "image"):
        raise ScaffoldError(f"unknown modality {modality!r}: expected video or image")
    _check_model_ref(provider, model)
    schemas = (fal_schemas if provider == "fal" else replicate_schemas)(document, model, source)
    plan = build_plan(provider, model, schemas, modality, source)
    registry, provider_spec = _provider_spec(provider)
    plan.overrides = _served_by(registry, provider, model, plan.modality)
    file = f"<spec new {provider} {model}>"

    # 1. Load the draft with its request only and render that request through the real engine.
    family = _load(render_yaml(plan), file, provider_spec)
    rendered = _render_body(family, plan.example_request)
    if isinstance(rendered, Exception):
        raise ScaffoldError(f"internal error: the scaffold's example does not render: {rendered}")
    plan.example_body = rendered
    if plan.sample_response is not None:
        field_name = next(iter(plan.response))
        extracted = family.response.extract(plan.sample_response, {"request": None, "model": model})
        if extracted.get(field_name) is not None:
            plan.sample_result = {field_name: extracted[field_name]}
    if plan.rejected is not None:
        outcome = _render_body(family, plan.rejected[0])
        if not (isinstance(outcome, Exception) and plan.rejected[1] in str(outcome)):
            plan.rejected = None
    # 2. The final text: must load and every example must hold (what `tarash-router validate` checks).
    text = render_yaml(plan)
    family = _load(text, file, provider_spec)

    failures = run_examples(family)
    if failures:
        raise ScaffoldError("internal error: the scaffold's examples fail: " + "; ".join(f.message for f in failures))
    return text


def _served_by(registry: Any, provider: str, model: str, modality: str) -> str | None:

    try:
        family = registry.resolve(provider, model, modality)
    except Exception:  # noqa: BLE001 - nothing serves it yet, the usual case
        return None
    if WILDCARD in family.models:
        return None
    return (f"{model} is already served by {family.describe()}; a file loaded from a spec directory overrides it")


def scaffold_file(provider: str, model: str, openapi: str | Path, *, modality: str | None = None) -> str:
    """`scaffold_spec` for an OpenAPI document in a JSON or YAML file."""
    if provider not in SUPPORTED_PROVIDERS:
        raise ScaffoldError(f"unknown provider {provider!r}: `spec new` supports {' and '.join(SUPPORTED_PROVIDERS)}")
    document = read_openapi(openapi)
    return scaffold_spec(provider, model, document, modality=modality, source=str(openapi))


# ---------------------------------------------------------------- command line

_EPILOG = """\
The command works offline: pass the schema with --openapi (JSON or YAML). Where to get it:
  fal        https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<endpoint id>
  replicate  GET https://api.replicate.com/v1/models/<owner>/<name>/versions/<version id>
             (the version object, or just its openapi_schema; a model object's latest_version works too)

The output loads as-is (`tarash-router validate` accepts it); inputs that need a human decision
are marked `# TODO:`. Unmapped inputs are listed, not sent: callers reach them through extra_params.
"""


def cmd_spec_new(args: argparse.Namespace) -> int:
    """Handler of `tarash-router spec new`: 0 written, 1 error (message on stderr)."""

    try:
        text = scaffold_file(args.provider, args.model, args.openapi, modality=args.modality)
    except ScaffoldError as exc:
        print(f"tarash-router: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except SpecError as exc:  # the built-in provider specs did not load
        print(f"{exc.location}: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    if not args.out:
        sys.stdout.write(text)
        return EXIT_OK
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"tarash-router: error: {out} already exists (pass --force to overwrite it)", file=sys.stderr)
        return EXIT_ERROR
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"tarash-router: error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    todos = sum("TODO:" in line for line in text.splitlines())
    print(f"wrote {out} ({todos} TODO(s) to review); then run: tarash-router validate {out}", file=sys.stderr)
    return EXIT_OK


def add_command(subparsers: Any) -> Any:
    """Register `spec new` on an argparse subparsers object (the `tarash-router` command's); returns
    the `spec` command's own subparsers, for its other subcommands."""
    spec = subparsers.add_parser("spec", help="work with spec files: `spec new` drafts a family from an OpenAPI schema",
                                 description="Work with spec files.")
    actions = spec.add_subparsers(dest="spec_command", required=True, metavar="{new,show,check}")
    new = actions.add_parser(
        "new", help="draft a family spec from a fal or Replicate OpenAPI schema (offline)",
        description="Draft a family spec YAML from a provider's OpenAPI schema.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    new.add_argument("provider", help="fal or replicate")
    new.add_argument("model", help="fal endpoint id (fal-ai/...) or Replicate owner/name[:version]")
    new.add_argument("--openapi", required=True, metavar="FILE",
                     help="the model's OpenAPI schema, JSON or YAML (required: this command runs offline and "
                          "never fetches it)")
    new.add_argument("--out", metavar="FILE", help="write the spec here instead of stdout")
    new.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    new.add_argument("--modality", choices=["video", "image"],
                     help="default: inferred from the output schema (and for a bare URL output, the model id/inputs)")
    new.set_defaults(func=cmd_spec_new)
    return actions


__all__ = ["scaffold_spec", "scaffold_file", "read_openapi", "fal_schemas", "replicate_schemas", "build_plan",
           "render_yaml", "flatten", "add_command", "cmd_spec_new", "ScaffoldError", "SUPPORTED_PROVIDERS"]
