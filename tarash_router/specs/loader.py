"""Turn YAML files into compiled `ProviderSpec`/`FamilySpec` objects, with errors at file:line."""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import pydantic
from pydantic_core import ErrorDetails

from ..errors import SpecError
from .compiled import (
    BODY_NAMES, IMAGE_ROLES, JOB_NAMES, REQUEST_FIELDS, SUBMIT_NAMES, UPLOAD_NAMES, CompiledErrorRule, CompiledRequest,
    FamilySpec, Params, PollExtract, ProviderSpec, ResponsePaths, StatusStream, WebhookSecret,
)
from .jsonpaths import JsonPath, JsonPathSyntaxError
from .pricing import PricingError, compile_pricing
from .schema import FamilyFile, ParamSpec, ProviderFile, RoleSpec
from .templates import LeafError, ValueTree
from .yaml_source import KeyPath, MergedDoc, SourceDoc, load_yaml_file

PROVIDER_FILE = "provider.yaml"
# Transports a spec may name (`handler:`): the built-in SDK ones, and any a user registers.
KNOWN_HANDLERS: set[str] = {"openai_videos", "openai_images", "azure_openai_videos", "azure_openai_images",
                            "google_vertex"}


def known_handlers() -> set[str]:
    """Handler names specs may use."""
    return KNOWN_HANDLERS


def validate_model(doc: SourceDoc, model: type[pydantic.BaseModel], path: tuple[Any, ...] = (),
                   cls: type[SpecError] = SpecError) -> Any:
    """Validate a document (or part of it) against a schema model. Every problem becomes a SpecError
    (or `cls`): the first raised, the others in its `more`, so one run reports them all."""
    data = doc.data
    for key in path:
        data = data[key]
    if not isinstance(data, dict):
        raise doc.error(f"expected a mapping, found {type(data).__name__}", path, cls)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise SpecError.of(schema_errors(doc, exc, model, path, cls)) from None


_TYPE_ERRORS = ("_type", "literal_error", "union_tag_invalid")  # "not this kind of value": a union tries several


def schema_errors(doc: SourceDoc, exc: pydantic.ValidationError, model: type, base: KeyPath = (),
                  cls: type[SpecError] = SpecError) -> list[SpecError]:
    """One SpecError per problem, at its key: the root cause first (a typo shows up twice, as an
    unknown key and a missing one: the unknown key is reported), the rest in file order."""
    found = [(_clean_loc(model, e["loc"]), e) for e in exc.errors()]
    typo_parents = {loc[:-1] for loc, e in found if e["type"] == "extra_forbidden"}
    kept: dict[KeyPath, ErrorDetails] = {}
    for loc, err in found:
        if err["type"] == "missing" and loc[:-1] in typo_parents:
            continue  # the key is there, misspelt: reported as the unknown key
        if err["type"].endswith(_TYPE_ERRORS) and any(
                other is not err and other_loc[:len(loc)] == loc and not other["type"].endswith(_TYPE_ERRORS)
                for other_loc, other in found):
            continue  # a union member the value was not meant for (a mapping is not a string)
        kept.setdefault(loc, err)
    errors = [_schema_error(doc, loc, err, model, base, cls) for loc, err in kept.items()]
    primary = next((i for i, err in enumerate(kept.values()) if err["type"] == "extra_forbidden"), 0)
    rest = errors[:primary] + errors[primary + 1:]
    return [errors[primary], *sorted(rest, key=lambda e: (e.line or 0, e.column or 0))]


def _schema_error(doc: SourceDoc, loc: KeyPath, err: ErrorDetails, model: type, base: KeyPath,
                  cls: type[SpecError]) -> SpecError:
    path = (*base, *loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent_fields = _fields_at(model, loc[:-1])
        key = loc[-1]
        hint = difflib.get_close_matches(str(key), parent_fields, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        message = f"unknown key {key!r}{suggestion} (expected one of: {', '.join(parent_fields)})"
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}"
    else:
        found = err.get("input")
        shown = repr(found) if not isinstance(found, (dict, list)) else type(found).__name__
        text = err["msg"].removeprefix("Value error, ")
        message = text if "found" in text else f"{text} (found {shown})"
    return doc.error(message, path, cls)


def _clean_loc(model: type, loc: KeyPath) -> KeyPath:
    """An error location as a key path: the tags pydantic adds for union members (`str`,
    `ModelEntry`, `literal[...]`, `function-after[...]`, `constrained-float`) dropped, aliases (`raise`, `from`) kept."""
    out: list[Any] = []
    node: Any = model
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith(("function-", "constrained-"))):
            continue
        members = _union_members(node)
        if members is not None and isinstance(part, str) and part in members:
            node = members[part]  # a tag: which member of the union the error is about
            continue
        out.append(_alias_back(part))
        node = _child(node, part)
    return tuple(out)


def _unwrap(node: Any) -> Any:
    """`Annotated[X, ...]` and `X | None` as X."""
    while True:
        origin = typing.get_origin(node)
        if origin is typing.Annotated:
            node = typing.get_args(node)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(node) if a is not type(None)]
            if len(members) != 1:
                return node
            node = members[0]
        else:
            return node


def _union_members(node: Any) -> dict[str, Any] | None:
    node = _unwrap(node)
    if typing.get_origin(node) not in (typing.Union, types.UnionType):
        return None
    return {getattr(arg, "__name__", str(arg)): arg for arg in typing.get_args(node)}


def _child(node: Any, part: Any) -> Any:
    """The annotation at `part` below `node` (None when unknown)."""
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, pydantic.BaseModel):
        info = node.model_fields.get(part) or next(
            (f for f in node.model_fields.values() if f.alias == part), None)
        return info.annotation if info else None
    origin, args = typing.get_origin(node), typing.get_args(node)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin is list and args:
        return args[0]
    return None


def _alias_back(part: Any) -> Any:
    return {"raise": "raise", "from": "from"}.get(part, part)


def _fields_at(model: type, loc: KeyPath) -> list[str]:
    """Names allowed at a location in the schema (for 'did you mean')."""
    current: Any = model
    skip_key = False
    for part in loc:
        if skip_key or isinstance(part, int) or current is None:
            skip_key = False
            continue
        info = getattr(current, "model_fields", {}).get(part) or next(
            (f for f in getattr(current, "model_fields", {}).values() if f.alias == part), None)
        current = _model_in(info.annotation) if info else None
        # dict[str, Model]: the next location part is a mapping key, not a field name.
        skip_key = info is not None and getattr(info.annotation, "__origin__", None) is dict
    if current is None or not hasattr(current, "model_fields"):
        return []
    return sorted(f.alias or n for n, f in current.model_fields.items())


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _compile_request(doc: SourceDoc, spec: Any, path: KeyPath, names: tuple[str, ...],
                     request_fields: frozenset[str] | None = None, default_body: Any = None) -> CompiledRequest:
    try:
        compiled = CompiledRequest.build(spec, default_body)
        rules = {"request": request_fields} if request_fields else None
        for _, tree in compiled.trees():
            tree.check_names(names, rules)
        return compiled
    except LeafError as exc:
        raise doc.error(str(exc.error), (*path, *exc.path)) from None


def _jsonpath(doc: SourceDoc, expression: str, path: KeyPath) -> JsonPath:
    try:
        return JsonPath(expression)
    except JsonPathSyntaxError as exc:
        raise doc.error(str(exc), path) from None


def _response_paths(doc: SourceDoc, spec: Any, base: ResponsePaths | None, path: KeyPath) -> ResponsePaths:
    for name, value in spec.model_dump(exclude_none=True).items():
        for index, expression in enumerate([value] if isinstance(value, str) else value):
            where = (*path, name) if isinstance(value, str) else (*path, name, index)
            try:
                ResponsePaths._compile(expression, name, index)
            except JsonPathSyntaxError as exc:
                raise doc.error(str(exc), where) from None
            except LeafError as exc:
                raise doc.error(str(exc.error), where) from None
    return ResponsePaths(spec, base)


def load_provider(doc: SourceDoc) -> ProviderSpec:
    """Validate and compile a provider file."""
    pfile = validate_model(doc, ProviderFile)
    spec = ProviderSpec(name=pfile.provider, file=pfile, source=doc)
    if pfile.protocol is None and pfile.handler is None:
        raise doc.error("a provider needs either `protocol` (HTTP) or `handler` (Python)", ("provider",))
    if pfile.handler is not None and pfile.handler not in known_handlers():
        known = ", ".join(sorted(KNOWN_HANDLERS)) or "none are available yet"
        raise doc.error(f"unknown handler {pfile.handler!r} (known: {known})", ("handler",))
    spec.headers = _compile_request_headers(doc, pfile.headers)
    proto = pfile.protocol
    if proto is not None:
        all_fields = REQUEST_FIELDS["video"] | REQUEST_FIELDS["image"]
        spec.submit = _compile_request(doc, proto.submit, ("protocol", "submit"), SUBMIT_NAMES, all_fields,
                                       default_body="{{ payload }}")
        if proto.poll:
            spec.poll = _compile_request(doc, proto.poll, ("protocol", "poll"), JOB_NAMES)
            spec.poll_extract = _poll_extract(doc, proto.poll, ("protocol", "poll"))
        if proto.stream:
            spec.stream = _status_stream(doc, proto.stream, spec.poll is not None)
        if proto.result:
            spec.result = _compile_request(doc, proto.result, ("protocol", "result"), JOB_NAMES)
        if proto.cancel:
            spec.cancel = _compile_request(doc, proto.cancel, ("protocol", "cancel"), JOB_NAMES)
        if proto.job:
            for key, expr in proto.job.model_dump(exclude_none=True).items():
                spec.job_paths[key] = _jsonpath(doc, expr, ("protocol", "job", key))
        elif proto.poll:
            raise doc.error("`protocol.poll` needs `protocol.job` to know the job id", ("protocol", "poll"))
    for index, rule in enumerate(pfile.errors):
        try:
            spec.error_rules.append(CompiledErrorRule.build(rule))
        except JsonPathSyntaxError as exc:
            raise doc.error(str(exc), ("errors", index)) from None
        except re.error as exc:
            raise doc.error(f"invalid regex in `matches`: {exc}", ("errors", index, "matches")) from None
    spec.response = _response_paths(doc, pfile.response, None, ("response",))
    if pfile.webhook is not None and pfile.webhook.secret is not None:
        spec.webhook_secret = _webhook_secret(doc, pfile.webhook)
    upload = pfile.media.upload
    if upload is not None:
        path = ("media", "upload")
        spec.upload_steps = [_compile_request(doc, step, (*path, "steps", i), UPLOAD_NAMES)
                             for i, step in enumerate(upload.steps)]
        try:
            spec.upload_url = ValueTree(upload.url, ("url",))
            spec.upload_url.check_names(UPLOAD_NAMES)
        except LeafError as exc:
            raise doc.error(str(exc.error), (*path, *exc.path)) from None
    return spec


def _webhook_secret(doc: SourceDoc, webhook: Any) -> WebhookSecret:
    path = ("webhook", "secret")
    if webhook.signature != "standard-webhooks":
        raise doc.error("only a standard-webhooks secret can be fetched (fal's keys come from its JWKS)",
                        path)
    try:
        url = ValueTree(webhook.secret.url, ("url",))
        url.check_names(("base_url",))
    except LeafError as exc:
        raise doc.error(str(exc.error), (*path, *exc.path)) from None
    return WebhookSecret(url, _jsonpath(doc, webhook.secret.key, (*path, "key")))


def _compile_request_headers(doc: SourceDoc, headers: dict[str, str]) -> ValueTree:
    try:
        tree = ValueTree(headers, ("headers",))
        tree.check_names(("base_url", "model", "provider_config"))
        return tree
    except LeafError as exc:
        raise doc.error(str(exc.error), exc.path) from None


def _status_stream(doc: SourceDoc, stream: Any, has_poll: bool) -> StatusStream:
    path = ("protocol", "stream")
    if not has_poll:  # its events are read with the poll's paths, and polling takes over when it breaks
        raise doc.error("a status stream needs `protocol.poll`: the poll's paths read its events and polling "
                        "takes over when it breaks", path)
    return StatusStream(_compile_request(doc, stream, path, JOB_NAMES), stream.incremental_logs)


def _poll_extract(doc: SourceDoc, poll: Any, path: KeyPath) -> PollExtract:
    if poll.status is None and not poll.status_codes:
        raise doc.error("a poll needs `status` (JSONPath) or `status_codes`", path)
    statuses = [poll.status] if isinstance(poll.status, str) else (poll.status or [])
    status = [_jsonpath(doc, expr, (*path, "status")) for expr in statuses]
    keys = ("queue_position", "progress", "logs", "error", "error_type")
    paths = {k: _jsonpath(doc, getattr(poll, k), (*path, k)) for k in keys if getattr(poll, k)}
    pattern = None
    if poll.progress_pattern:
        try:
            pattern = re.compile(poll.progress_pattern)
        except re.error as exc:
            raise doc.error(f"invalid progress_pattern: {exc}", (*path, "progress_pattern")) from None
    return PollExtract(status=status, status_codes=dict(poll.status_codes), paths=paths,
                       progress_pattern=pattern, progress_scale=poll.progress_scale,
                       delay_header=poll.delay_header, delay_scale=poll.delay_scale)


# `extends`: what a child never inherits, and the mappings merged key by key (the rest is replaced whole).
# A retirement (`deprecated`, `shutdown`, `successor`) is about the parent's own models, like `checked`.
NOT_INHERITED = frozenset({"family", "models", "examples", "description", "docs", "checked", "notes", "abstract",
                           "extends", "deprecated", "shutdown", "successor"})
MERGED_KEYS = ("params", "body")
_FAMILY_KEY = re.compile(r"^family:[ \t]*['\"]?([^'\"\s#]+)", re.MULTILINE)
_PROVIDER_KEY = re.compile(r"^provider:[ \t]*['\"]?([^'\"\s#]+)", re.MULTILINE)


def resolve_extends(doc: SourceDoc, provider: ProviderSpec) -> SourceDoc:
    """The family as written, or merged with the family it `extends` (resolved once, at load).

    The parent is a family of the same provider, found beside the child's file or in the provider's
    folder. It may not extend another family itself. The merged document places every key path in the
    file that wrote it, so errors point at the child or at the parent, whichever holds the value.
    """
    data = doc.data
    if not isinstance(data, dict) or "extends" not in data:
        return doc
    name = data["extends"]
    path = ("extends",)
    if not isinstance(name, str) or not name:
        raise doc.error(f"`extends` names a family of provider {provider.name!r}; found {name!r}", path)
    if "/" in name:
        raise doc.error(f"a family can extend only a family of its own provider: expected a family name of "
                        f"{provider.name!r} (no provider prefix), found {name!r}", path)
    parent_doc = _find_family(doc, provider, name)
    parent = parent_doc.data
    parent_provider = parent.get("provider")
    if parent_provider != provider.name and parent_provider not in provider.file.aliases:
        raise doc.error(f"family {name!r} ({parent_doc.file}) belongs to provider {parent_provider!r}; a family "
                        f"can extend only a family of its own provider ({provider.name!r})", path)
    if "extends" in parent:
        line, _ = parent_doc.position(("extends",))
        raise doc.error(f"`extends` is one level deep: expected a family without `extends`, found {name!r} "
                        f"extending {parent['extends']!r} ({parent_doc.file}:{line}); extend "
                        f"{parent['extends']!r} directly", path)
    merged = {key: value for key, value in parent.items() if key not in NOT_INHERITED}
    for key, value in data.items():
        if key in MERGED_KEYS and isinstance(value, dict):
            inherited = merged.get(key)
            if not isinstance(inherited, dict):
                inherited = {}
            combined = {**inherited, **value}
            merged[key] = {k: v for k, v in combined.items() if v is not None}  # null removes the parent's key
        else:
            merged[key] = value
    return MergedDoc(file=doc.file, data=merged, text=doc.text, child=doc, parent=parent_doc, merged=MERGED_KEYS)


def _find_family(doc: SourceDoc, provider: ProviderSpec, name: str) -> SourceDoc:
    """The family file named `name`: `<name>.yaml` or a file saying `family: <name>`, beside the child
    or in the provider's folder; an unknown name lists the known ones."""
    own = os.path.abspath(doc.file)
    folders = []
    for file in (doc.file, provider.source.file):
        folder = Path(os.path.abspath(file)).parent
        if folder not in folders and os.path.isfile(file):
            folders.append(folder)
    for folder in folders:
        for candidate in (folder / f"{name}.yaml", folder / f"{name}.yml"):
            if str(candidate) != own and candidate.is_file():
                parent = _read_family(candidate)
                if isinstance(parent.data, dict) and parent.data.get("family", name) == name:
                    return parent
    known: dict[str, Path] = {}
    for folder in folders:
        for found in sorted(folder.glob("*.y*ml")):
            if found.name == PROVIDER_FILE or found.suffix not in (".yaml", ".yml") or str(found) == own:
                continue
            text = found.read_text(encoding="utf-8", errors="replace")
            owner = _PROVIDER_KEY.search(text)
            if owner is None or owner.group(1) not in (provider.name, *provider.file.aliases):
                continue
            named = _FAMILY_KEY.search(text)
            known.setdefault(named.group(1) if named else found.stem, found)
    if name in known:
        return _read_family(known[name])
    hint = difflib.get_close_matches(name, list(known), n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    listed = ", ".join(sorted(known)) or "none found"
    raise doc.error(f"`extends` names an unknown family {name!r} of provider {provider.name!r}{suggestion} "
                    f"(known: {listed})", ("extends",))


def _read_family(path: Path) -> SourceDoc:
    """A parent file (parsed once however many children extend it: see `load_yaml_file`)."""
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise doc.error("expected a mapping at the top of the file")
    return doc


def _check_shape(doc: SourceDoc, ffile: FamilyFile) -> None:
    """What the schema cannot say alone: modality and models are required, except for an abstract family."""
    if ffile.modality is None:
        raise doc.error("missing required key 'modality'")
    if ffile.abstract:
        for key in ("models", "examples"):
            if key in doc.data:
                raise doc.error(f"an abstract family serves no models, so it takes no `{key}`: expected no "
                                f"`{key}` (or `abstract: false`), found {key}", (key,))
    elif not ffile.models:
        raise doc.error("missing required key 'models'" if "models" not in doc.data
                        else "`models` lists at least one model id (or say `abstract: true`)", ("models",))


def load_family(doc: SourceDoc, provider: ProviderSpec) -> FamilySpec:
    """Validate and compile a family file against its (already loaded) provider."""
    doc = resolve_extends(doc, provider)
    ffile = validate_model(doc, FamilyFile)
    if ffile.provider != provider.name and ffile.provider not in provider.file.aliases:
        raise doc.error(f"family says provider {ffile.provider!r} but sits beside {provider.name!r}", ("provider",))
    _check_shape(doc, ffile)
    assert ffile.modality is not None
    request_fields = REQUEST_FIELDS[ffile.modality]
    params = _parse_params(doc, ffile.params, request_fields)
    params.checks = _compile_checks(doc, ffile, request_fields)
    model_fields = {}
    for index, entry in enumerate(ffile.models):
        if isinstance(entry, str) or not entry.params:
            continue
        overrides = _parse_params(doc, entry.params, request_fields, base=("models", index, "params"))
        if overrides.roles or overrides.video or overrides.extra:
            raise doc.error("a model entry's params may only constrain request fields (images, video and "
                            "extra belong to the family)", ("models", index, "params"))
        model_fields[entry.id] = overrides.fields
    try:
        body = ValueTree(ffile.body, ("body",))
        body.check_names(BODY_NAMES, {"request": request_fields, "images": _slot_names(params)})
    except LeafError as exc:
        raise doc.error(str(exc.error), exc.path) from None
    used_slots = body.attributes_of("images")
    for slot in params.roles:
        if slot not in used_slots:
            raise doc.error(f"image slot {slot!r} is declared but the body never uses images.{slot}; "
                            "an image sent for it would be silently dropped", ("params", "images", slot))
    if params.video is None and "video" in body.names():
        params.video = "optional"
    override = ffile.protocol
    submit, poll, result, cancel = provider.submit, provider.poll, provider.result, provider.cancel
    poll_extract, stream = provider.poll_extract, provider.stream
    if override:
        removed = {name for name in override.model_fields_set if getattr(override, name) is None}
        if override.poll or "poll" in removed:  # the provider's stream speaks for the provider's poll only
            stream = None
        if override.stream:
            polls = (poll is not None or override.poll is not None) and "poll" not in removed
            stream = _status_stream(doc, override.stream, polls)
        if override.submit:
            submit = _compile_request(doc, override.submit, ("protocol", "submit"), SUBMIT_NAMES, request_fields,
                                      default_body="{{ payload }}")
        if override.poll:
            poll = _compile_request(doc, override.poll, ("protocol", "poll"), JOB_NAMES)
            poll_extract = _poll_extract(doc, override.poll, ("protocol", "poll"))
        if override.result:
            result = _compile_request(doc, override.result, ("protocol", "result"), JOB_NAMES)
        if override.cancel:
            cancel = _compile_request(doc, override.cancel, ("protocol", "cancel"), JOB_NAMES)
        if "submit" in removed:
            raise doc.error("a family cannot remove the submit request", ("protocol", "submit"))
        poll, poll_extract = (None, None) if "poll" in removed else (poll, poll_extract)
        result = None if "result" in removed else result
        cancel = None if "cancel" in removed else cancel
        stream = None if "stream" in removed else stream
    handler = ffile.handler or provider.file.handler
    if handler is not None and handler not in known_handlers():
        where = ("handler",) if ffile.handler else ("provider",)
        known = ", ".join(sorted(KNOWN_HANDLERS)) or "none are available yet"
        raise doc.error(f"unknown handler {handler!r} (known: {known})", where)
    if submit is None and not (ffile.handler or provider.file.handler):
        raise doc.error("no submit request: the provider has no protocol and the family no handler", ("models",))
    response = _response_paths(doc, ffile.response, provider.response, ("response",))
    pricing = None
    if ffile.pricing is not None:
        try:
            pricing = compile_pricing(ffile.pricing, request_fields)
        except PricingError as exc:
            raise doc.error(str(exc), ("pricing", *exc.path)) from None
    return FamilySpec(
        name=ffile.family or Path(doc.file).stem,
        file=ffile, source=doc, provider=provider, params=params, body=body, response=response,
        submit=submit, poll=poll, result=result, cancel=cancel, poll_extract=poll_extract,
        used_fields=frozenset(body.attributes_of("request")), model_fields=model_fields, pricing=pricing,
        stream=stream,
    )


def _slot_names(params: Params) -> list[str]:
    return list(params.roles)


def _parse_params(doc: SourceDoc, raw: dict[str, Any], request_fields: frozenset[str],
                  base: tuple[Any, ...] = ("params",)) -> Params:
    fields: dict[str, ParamSpec] = {}
    roles: dict[str, RoleSpec] = {}
    extra: dict[str, ParamSpec] = {}
    video: str | None = None
    for key, value in raw.items():
        path = (*base, key)
        if key == "images":
            if not isinstance(value, dict):
                raise doc.error("`images` maps image slots to required|optional or {required, max, from}", path)
            for slot, slot_value in value.items():
                roles[slot] = _parse_role(doc, slot, slot_value, (*path, slot))
        elif key == "extra":
            if not isinstance(value, dict):
                raise doc.error("`extra` maps extra_params keys to constraints like {required: true}", path)
            extra = {name: validate_model(doc, ParamSpec, (*path, name)) for name in value}
        elif key == "video":
            if value not in ("required", "optional"):
                raise doc.error(f"`video` must be required or optional, found {value!r}", path)
            video = value
        elif key in request_fields:
            if not isinstance(value, dict):
                raise doc.error(f"expected a mapping like {{allowed: [...]}}, found {value!r}", path)
            fields[key] = validate_model(doc, ParamSpec, path)
        else:
            known = sorted(request_fields - {"image_list", "extra_params"} | {"images", "video", "extra"})
            hint = difflib.get_close_matches(str(key), known, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise doc.error(f"unknown request field {key!r}{suggestion} (known: {', '.join(known)})", path)
    _check_roles_disjoint(doc, roles)
    for name, spec in [*fields.items(), *extra.items()]:
        if spec.pattern is not None:
            try:
                re.compile(spec.pattern)
            except re.error as exc:
                raise doc.error(f"invalid pattern: {exc}", (*base, name, "pattern")) from None
    return Params(fields=fields, roles=roles, video=video, extra=extra)


CHECK_NAMES = ("request", "model", "extra", "images", "image_roles")


def _compile_checks(doc: SourceDoc, family: FamilyFile, request_fields: frozenset[str]) -> list[tuple[ValueTree, str]]:
    checks = []
    for index, check in enumerate(family.checks):
        try:
            tree = ValueTree(check.when, ("checks", index, "when"))
            tree.check_names(CHECK_NAMES, {"request": request_fields})
        except LeafError as exc:
            raise doc.error(str(exc.error), exc.path) from None
        checks.append((tree, check.error))
    return checks


def _parse_role(doc: SourceDoc, slot: str, value: Any, path: KeyPath) -> RoleSpec:
    if value in ("required", "optional"):
        role = RoleSpec(required=value == "required")
    elif isinstance(value, dict):
        role = validate_model(doc, RoleSpec, path)
    else:
        raise doc.error(f"image slot must be required, optional or a mapping, found {value!r}", path)
    sources = role.from_ or [slot]
    for src in sources:
        if src not in IMAGE_ROLES:
            raise doc.error(f"unknown image role {src!r} (roles: {', '.join(IMAGE_ROLES)})", path)
    role.from_ = sources
    return role


def _check_roles_disjoint(doc: SourceDoc, roles: dict[str, RoleSpec]) -> None:
    seen: dict[str, str] = {}
    for slot, role in roles.items():
        for src in role.from_ or [slot]:
            if src in seen:
                raise doc.error(f"image role {src!r} feeds both {seen[src]!r} and {slot!r}", ("params", "images", slot))
            seen[src] = slot


def discover(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """All provider files and family files under the given files or directories, in a stable order.

    A family file may sit in a folder without a provider file: it links to the provider it names,
    which lets users add a model to a built-in provider by dropping one file into their folder.
    """
    providers: list[Path] = []
    families: list[Path] = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise SpecError("spec path does not exist", file=str(root))
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        for path in files:
            (providers if path.name == PROVIDER_FILE else families).append(path)
    return providers, families


__all__ = ["load_provider", "load_family", "discover", "validate_model", "load_yaml_file"]
