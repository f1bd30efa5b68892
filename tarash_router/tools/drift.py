"""`tarash-router spec check --openapi DIR`: compare provider schemas with the families serving them, offline.

DIR holds the schemas as the providers publish them (see docs/validate.md for where to download
them): fal's per-endpoint queue OpenAPI documents and Replicate model version schemas. For each
schema the check finds the family that serves its id, exactly as a call would (the registry), and
reports what differs:

- `unmapped`: an input the provider takes that the family neither sends (a top-level body key) nor
  declares for `extra_params` (`extra_params.allow`, `params.extra`);
- `enum`: the values the family lets through for a field, as sent, differ from the schema's enum;
- `range`: the family's bounds (or allowed numbers) differ from the schema's minimum/maximum;
- `required`: an input the provider requires that the family can leave out of a request it accepts;
- `unclaimed`: no family lists the id, so only the provider's generic family (`models: ["*"]`) serves it.

Values are compared as the family sends them: each allowed value is rendered through the family's
body with the real engine (a duration of 5 becomes "5s" where the template adds the unit), so a
mapping that transforms values is checked by what reaches the provider. A body key built from
several request fields (fal's image_size from size or aspect_ratio) is not compared value by value.

The schema readers are the scaffolder's (`read_openapi`, `fal_schemas`, `replicate_schemas`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pydantic

from ..engine.render import prepare_job
from ..errors import SpecError, TarashException
from ..models import ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest
from ..specs.compiled import FamilySpec
from ..specs.registry import WILDCARD, SpecRegistry, get_registry
from .scaffold import (Prop, ScaffoldError, _bound, as_mapping, enum_values, fal_schemas, json_types, properties,
                       read_openapi, replicate_schemas)

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
KINDS = ("unclaimed", "unmapped", "required", "enum", "range")
SCHEMA_SUFFIXES = (".json", ".yaml", ".yml")
# Integer ranges up to this many values are compared value by value (a duration of 3..15 s).
_ENUMERABLE = 200
_REQUEST_FIELD = re.compile(r"\brequest\.([A-Za-z_][A-Za-z0-9_]*)")
# Request fields that carry media or structure rather than a scalar value to compare.
_STRUCTURAL = frozenset({"prompt", "image_list", "extra_params", "video", "mask_image", "idempotency_key"})


@dataclass(frozen=True)
class Finding:
    """One difference between a provider schema and the family serving its id."""

    file: str
    provider: str
    model: str
    family: str | None  # provider/family, or None when nothing serves the id
    kind: str  # one of KINDS
    field: str | None  # the provider's input name
    message: str

    def text(self) -> str:
        where = f"{self.provider} {self.model}" + (f" ({self.family})" if self.family else "")
        what = f"{self.kind} {self.field}" if self.field else self.kind
        return f"{self.file}: {where}: {what}: {self.message}"


@dataclass
class Schema:
    """A provider schema file: whose it is and its input properties."""

    file: str
    provider: str
    model: str
    props: list[Prop]


# ---------------------------------------------------------------- reading the directory


def schema_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in SCHEMA_SUFFIXES)


def read_schema(path: Path, directory: Path) -> Schema:
    """Recognise a fal queue document or a Replicate model/version schema; ScaffoldError if neither."""
    document = read_openapi(path)
    shown = str(path)
    if not isinstance(document, dict):
        raise ScaffoldError(f"{shown}: expected a fal OpenAPI document or a Replicate schema (a JSON object)")
    if _is_replicate(document):
        model = _replicate_model(document, path, directory)
        schemas = replicate_schemas(document, model, shown)
        return Schema(shown, "replicate", model, properties(schemas.input, schemas.root))
    info = as_mapping(document.get("info"))
    meta = as_mapping(info.get("x-fal-metadata"))
    endpoint = meta.get("endpointId")
    if not isinstance(endpoint, str):
        posts = _post_paths(document)
        if len(posts) != 1:
            raise ScaffoldError(
                f"{shown}: not a provider schema: expected fal's per-endpoint queue document (info.x-fal-metadata."
                "endpointId, or one POST path) or a Replicate model, version or openapi_schema "
                "(components.schemas.Input)")
        endpoint = posts[0].strip("/")
    schemas = fal_schemas(document, endpoint, shown)
    return Schema(shown, "fal", endpoint, properties(schemas.input, schemas.root))


def _post_paths(document: dict[str, Any]) -> list[str]:
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return []
    return [p for p, ops in paths.items() if isinstance(ops, dict) and isinstance(ops.get("post"), dict)]


def _is_replicate(document: dict[str, Any]) -> bool:
    """A model object (latest_version), a version object (openapi_schema) or a bare Cog openapi_schema."""
    if isinstance(document.get("openapi_schema"), dict) or isinstance(document.get("latest_version"), dict):
        return True
    components = as_mapping(document.get("components"))
    schemas = as_mapping(components.get("schemas"))
    return "Input" in schemas and ("/predictions" in _post_paths(document) or not _post_paths(document))


def _replicate_model(document: dict[str, Any], path: Path, directory: Path) -> str:
    """owner/name from a model object, else from the file's place: <owner>/<name>.json."""
    owner, name = document.get("owner"), document.get("name")
    if isinstance(owner, str) and isinstance(name, str):
        return f"{owner}/{name}"
    relative = path.relative_to(directory).with_suffix("")
    if len(relative.parts) < 2:
        raise ScaffoldError(f"{path}: a Replicate version schema does not name its model: keep it as "
                            "<owner>/<name>.json (e.g. replicate/minimax/hailuo-02.json), or save the model "
                            "object (GET /v1/models/<owner>/<name>), which names it")
    return "/".join(relative.parts[-2:])


# ---------------------------------------------------------------- rendering through the family


class _Renderer:
    """Render requests through one family for one model id (dry run: validation included)."""

    def __init__(self, family: FamilySpec, model: str) -> None:
        self.family, self.model = family, model
        video = family.modality == "video"
        self.request_cls = VideoGenerationRequest if video else ImageGenerationRequest
        self.config = (VideoGenerationConfig if video else ImageGenerationConfig)(
            provider=family.provider.name, model=model)
        self.bases = self._bases()

    def render(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The body, or None when the family refuses the request."""
        try:
            payload = prepare_job(self.family, self.config, self.request_cls.model_validate(data),
                                  dry_run=True).payload
        except (TarashException, pydantic.ValidationError):
            return None
        return payload if isinstance(payload, dict) else None

    def _bases(self) -> list[dict[str, Any]]:
        """Requests the family accepts: its successful examples for this id (media and extras only
        first, then as written), and a bare prompt."""
        bases: list[dict[str, Any]] = []
        for example in self.family.file.examples:
            if example.body is None or example.raises:
                continue
            if example.model is not None and example.model.split(":", 1)[0] != self.model.split(":", 1)[0]:
                continue  # an example of another model of the family
            request = dict(example.request)
            bases.append({k: v for k, v in request.items() if k in _STRUCTURAL})
            bases.append(request)
        bases.append({"prompt": "a red fox in the snow"})
        accepted = []
        for base in bases:
            if base not in accepted and self.render(base) is not None:
                accepted.append(base)
        return accepted

    def sent_as(self, field: str, value: Any, key: str) -> tuple[bool, Any]:
        """(True, the body value at `key`) for a request with field=value, or (False, None) if refused."""
        for base in self.bases:
            body = self.render({**base, field: value})
            if body is not None:
                return True, body.get(key)
        return False, None


# ---------------------------------------------------------------- comparing


def _fmt(values: list[Any]) -> str:
    return ", ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in values)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*s?\s*", value)
        return float(match.group(1)) if match else None
    return None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _feeding_fields(template: Any) -> set[str]:
    """The request fields a body value's template reads."""
    text = json.dumps(template) if not isinstance(template, str) else template
    return set(_REQUEST_FIELD.findall(text))


def _family_values(rule: Any, integers: bool) -> list[Any] | None:
    """The values a rule lets through, when it names them: `allowed`, or a short range of integers."""
    if rule is None:
        return None
    if rule.allowed is not None:
        return list(rule.allowed)
    if integers and rule.min is not None and rule.max is not None and float(rule.min).is_integer() \
            and float(rule.max).is_integer() and rule.max - rule.min < _ENUMERABLE:
        return list(range(int(rule.min), int(rule.max) + 1))
    return None


class _FamilyCheck:
    """The comparison of one schema with one family."""

    def __init__(self, schema: Schema, family: FamilySpec) -> None:
        self.schema, self.family = schema, family
        self.findings: list[Finding] = []
        self.body = family.file.body if isinstance(family.file.body, dict) else {}
        policy = family.file.extra_params
        self.declared_extra = set(getattr(policy, "allow", None) or []) | set(family.params.extra)
        self.fields = family.fields_for(schema.model)
        self.renderer = _Renderer(family, schema.model)

    def add(self, kind: str, field: str | None, message: str) -> None:
        self.findings.append(Finding(self.schema.file, self.schema.provider, self.schema.model,
                                     f"{self.family.provider.name}/{self.family.name}", kind, field, message))

    def run(self) -> list[Finding]:
        for prop in self.schema.props:
            if prop.name in self.body:
                self.check_mapped(prop)
            elif prop.name in self.family.params.extra:
                self.check_rule(prop, self.family.params.extra[prop.name], f"extra_params.{prop.name}", None)
            elif prop.name not in self.declared_extra:
                self.add("unmapped", prop.name,
                         f"{self.schema.provider} takes {prop.name} ({_describe(prop)}); the family neither sends "
                         "it nor declares it for extra_params")
            if prop.required:
                self.check_required(prop)
        return self.findings

    def check_mapped(self, prop: Prop) -> None:
        fields = sorted(f for f in _feeding_fields(self.body[prop.name]) if f not in _STRUCTURAL)
        if len(fields) == 1:
            self.check_rule(prop, self.fields.get(fields[0]), f"request.{fields[0]}", fields[0])

    def check_rule(self, prop: Prop, rule: Any, label: str, field: str | None) -> None:
        """Compare what the family lets through for `label` with the schema's enum or bounds."""
        offered = enum_values(prop.flat)
        low, high = _bound(prop.flat, "min"), _bound(prop.flat, "max")
        if offered is None and low is None and high is None:
            return
        # A range is enumerated when its values are integers: a request field such as duration_seconds
        # or n (checked against an enum or an integer schema), never a float such as cfg_scale.
        integers = offered is not None or json_types(prop.flat) == {"integer"}
        values = _family_values(rule, integers)
        if values is None:
            self._unlisted(prop, rule, label, offered, low, high)
            return
        sent = []
        for value in values:
            ok, body_value = self.renderer.sent_as(field, value, prop.name) if field else (True, value)
            # A value no accepted request can carry (a cross-field check) is compared as it is.
            sent.append((value, body_value if ok else value))
        if offered is not None:
            self._compare_enum(prop, label, offered, sent)
        else:
            self._compare_range(prop, label, low, high, sent)

    def _unlisted(self, prop: Prop, rule: Any, label: str, offered: list[Any] | None,
                  low: float | None, high: float | None) -> None:
        """The family names no values: check its bounds, or say that it checks nothing."""
        family_low = rule.min if rule is not None else None
        family_high = rule.max if rule is not None else None
        if offered is not None:
            if family_low is None and family_high is None:
                self.add("enum", prop.name, f"{self.schema.provider} takes only {_fmt(offered)}; the family lets "
                                            f"any {label} through")
            return
        self._compare_bounds(prop, label, low, high, family_low, family_high)

    def _compare_enum(self, prop: Prop, label: str, offered: list[Any], sent: list[tuple[Any, Any]]) -> None:
        refused = [(value, body_value) for value, body_value in sent if body_value not in offered]
        reachable = {json.dumps(body_value) for _, body_value in sent}
        missing = [v for v in offered if json.dumps(v) not in reachable]
        parts = []
        if refused:
            parts.append("the family lets through " + ", ".join(
                f"{label}={_fmt([v])}" + (f" (sent as {_fmt([b])})" if b != v else "") for v, b in refused)
                + f", which {self.schema.provider} does not offer")
        if missing:
            parts.append(f"{self.schema.provider} offers {_fmt(missing)}, which the family refuses")
        if parts:
            self.add("enum", prop.name, "; ".join(parts) + f" ({self.schema.provider}: {_fmt(offered)})")

    def _compare_range(self, prop: Prop, label: str, low: float | None, high: float | None,
                       sent: list[tuple[Any, Any]]) -> None:
        numbers = [(v, _number(b)) for v, b in sent]
        outside = [v for v, n in numbers if n is not None and ((low is not None and n < low)
                                                             or (high is not None and n > high))]
        span = f"{'' if low is None else _num(low)}..{'' if high is None else _num(high)}"
        if outside:
            self.add("range", prop.name, f"the family lets through {label}={_fmt(outside)}, outside "
                                         f"{self.schema.provider}'s {span}")
            return
        kept = [n for _, n in numbers if n is not None]
        if kept and low is not None and high is not None and high - low < _ENUMERABLE \
                and float(low).is_integer() and float(high).is_integer():
            missing = [n for n in range(int(low), int(high) + 1) if n not in kept]
            if missing:
                self.add("range", prop.name, f"{self.schema.provider} takes {span}; the family refuses "
                                             f"{_fmt(missing)}")

    def _compare_bounds(self, prop: Prop, label: str, low: float | None, high: float | None,
                        family_low: float | None, family_high: float | None) -> None:
        span = f"{'' if low is None else _num(low)}..{'' if high is None else _num(high)}"
        problems = []
        for name, theirs, ours in (("minimum", low, family_low), ("maximum", high, family_high)):
            if theirs is None:
                continue
            if ours is None:
                problems.append(f"no {name} (theirs: {_num(theirs)})")
            elif float(ours) != float(theirs):
                problems.append(f"{name} {_num(ours)} (theirs: {_num(theirs)})")
        if problems:
            self.add("range", prop.name, f"{self.schema.provider} takes {span}; the family checks {label} with "
                                         + ", ".join(problems))

    def check_required(self, prop: Prop) -> None:
        if prop.name in self.family.params.extra and self.family.params.extra[prop.name].required:
            return
        for base in self.renderer.bases:
            body = self.renderer.render(base)
            if body is not None and body.get(prop.name) is None:
                shown = json.dumps(base, ensure_ascii=False)
                shown = shown if len(shown) <= 120 else shown[:117] + "..."
                self.add("required", prop.name, f"{self.schema.provider} requires {prop.name}; the family accepts "
                                                f"{shown} and sends no {prop.name}")
                return


def _describe(prop: Prop) -> str:
    bits = ["required" if prop.required else "optional"]
    values = enum_values(prop.flat)
    if values:
        bits.append(_fmt(values[:8]) + (", ..." if len(values) > 8 else ""))
    return ", ".join(bits)


def check_schema(schema: Schema, registry: SpecRegistry) -> list[Finding]:
    """The findings for one provider schema."""
    try:
        modality = registry.modality_of(schema.provider, schema.model)
        family = registry.resolve(schema.provider, schema.model, modality)
    except TarashException:
        return [Finding(schema.file, schema.provider, schema.model, None, "unclaimed", None,
                        f"no family of provider {schema.provider!r} serves {schema.model}")]
    if WILDCARD in family.models:
        return [Finding(schema.file, schema.provider, schema.model, f"{family.provider.name}/{family.name}",
                        "unclaimed", None,
                        f"no family lists {schema.model}; only the generic family serves it, which checks nothing "
                        f"(write one: tarash-router spec new {schema.provider} {schema.model} --openapi "
                        f"{schema.file})")]
    return _FamilyCheck(schema, family).run()


def check_directory(directory: Path, registry: SpecRegistry | None = None) -> list[Finding]:
    """Every finding for the schema files under `directory`; ScaffoldError for a file that is not one."""
    registry = registry or get_registry()
    findings: list[Finding] = []
    for path in schema_files(directory):
        findings += check_schema(read_schema(path, directory), registry)
    return findings


def format_findings(findings: list[Finding], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(f) for f in findings], indent=2, ensure_ascii=False)
    return "\n".join(f.text() for f in findings)


# ---------------------------------------------------------------- command line


def cmd_spec_check(args: argparse.Namespace) -> int:
    """Handler of `tarash-router spec check`: 0 clean, 1 findings, 2 usage error."""
    directory = Path(args.openapi)
    if not directory.is_dir():
        print(f"tarash-router: error: --openapi {directory}: not a directory of schema files", file=sys.stderr)
        return EXIT_USAGE
    registry = get_registry()
    try:
        if args.spec_dir:
            registry.load_paths(args.spec_dir)
        if not schema_files(directory):
            print(f"tarash-router: error: --openapi {directory}: no .json, .yaml or .yml schema files",
                  file=sys.stderr)
            return EXIT_USAGE
        findings = check_directory(directory, registry)
    except ScaffoldError as exc:
        print(f"tarash-router: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as exc:
        print(f"{exc.location}: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    if findings:
        print(format_findings(findings, args.format))
    schemas = len(schema_files(directory))
    print(f"{len(findings)} finding(s) in {schemas} schema(s)", file=sys.stderr)
    return EXIT_FINDINGS if findings else EXIT_OK


def add_check_command(actions: Any) -> None:
    """`spec check --openapi DIR`, beside `spec new` and `spec show`."""
    check = actions.add_parser(
        "check", help="compare provider schemas (fal OpenAPI, Replicate versions) with the families serving them",
        description="Report, for every schema file in DIR, what the family serving its id does not match: "
                    "unmapped inputs, enum values, ranges, required inputs, and ids no family claims. "
                    "Offline. Exit 0 clean, 1 findings, 2 usage error.")
    check.add_argument("--openapi", required=True, metavar="DIR",
                       help="directory of schema files (JSON or YAML, searched recursively)")
    check.add_argument("--format", choices=["text", "json"], default="text")
    check.add_argument("--spec-dir", action="append", default=[], help="extra spec directory (repeatable)")
    check.set_defaults(func=cmd_spec_check)
