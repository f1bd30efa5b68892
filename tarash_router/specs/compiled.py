"""Runtime spec objects: every template and JSONPath of a file compiled once, at load."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ..errors import ERROR_CLASSES, TarashException
from ..models import ImageGenerationRequest, VideoGenerationRequest
from .jsonpaths import JsonPath
from .pricing import CompiledPricing
from .schema import (
    ErrorRule, FamilyFile, MediaSpec, ParamSpec, ProtocolSpec, ProviderFile, RequestSpec, ResponseSpec, RoleSpec,
)
from .templates import ValueTree, is_template
from .yaml_source import SourceDoc

REQUEST_FIELDS = {
    "video": frozenset(VideoGenerationRequest.model_fields),
    "image": frozenset(ImageGenerationRequest.model_fields),
}
HTTP_PHASES = frozenset({"submit", "poll", "result", "cancel", "upload"})
IMAGE_ROLES = ("reference", "first_frame", "last_frame", "asset", "style")

# Names each kind of template may read.
BODY_NAMES = ("request", "images", "video", "mask", "model", "extra", "provider_config")
SUBMIT_NAMES = ("base_url", "model", "request", "provider_config", "payload", "timeout")
JOB_NAMES = ("base_url", "model", "job", "provider_config")
UPLOAD_NAMES = ("base_url", "model", "provider_config", "file", "steps")


@dataclass
class CompiledRequest:
    """A request template: method, URL, headers, query and body, each a compiled value tree."""

    method: str
    url: ValueTree
    headers: ValueTree
    query: ValueTree
    body: ValueTree | None
    body_format: str
    auth: bool = True

    @classmethod
    def build(cls, spec: RequestSpec, default_body: Any = None) -> CompiledRequest:
        body = spec.body if spec.body is not None else default_body
        return cls(
            method=spec.method,
            url=ValueTree(spec.url, ("url",)),
            headers=ValueTree(spec.headers, ("headers",)),
            query=ValueTree(spec.query, ("query",)),
            body=ValueTree(body, ("body",)) if body is not None else None,
            body_format=spec.body_format,
            auth=spec.auth,
        )

    def trees(self) -> list[tuple[str, ValueTree]]:
        out = [("url", self.url), ("headers", self.headers), ("query", self.query)]
        if self.body is not None:
            out.append(("body", self.body))
        return out


@dataclass
class CompiledErrorRule:
    """An error rule with its JSONPaths compiled and its exception class resolved."""

    status: frozenset[int] | None
    phases: frozenset[str] | None
    body_contains: str | None
    json_path: JsonPath | None
    equals: Any
    contains: str | None
    regex: re.Pattern[str] | None
    error_class: type[TarashException]
    retryable: bool | None
    message: JsonPath | None
    message_text: str | None
    unless: JsonPath | None = None

    @classmethod
    def build(cls, rule: ErrorRule) -> CompiledErrorRule:
        return cls(
            status=frozenset(rule.status) if rule.status else None,
            phases=frozenset(rule.phase) if rule.phase else None,
            body_contains=rule.body_contains,
            json_path=JsonPath(rule.json_path) if rule.json_path else None,
            equals=rule.equals,
            contains=rule.contains,
            regex=re.compile(rule.matches) if rule.matches else None,
            error_class=ERROR_CLASSES[rule.raise_],
            retryable=rule.retryable,
            message=JsonPath(rule.message) if rule.message and rule.message.startswith("$") else None,
            message_text=rule.message if rule.message and not rule.message.startswith("$") else None,
            unless=JsonPath(rule.unless) if rule.unless else None,
        )

    def matches(self, phase: str, status: int | None, text: str, data: Any) -> bool:
        # A rule without `phase` covers HTTP error responses only; job/output rules are opt-in.
        if phase not in (self.phases if self.phases is not None else HTTP_PHASES):
            return False
        if self.status is not None and status not in self.status:
            return False
        if self.body_contains is not None and self.body_contains not in text:
            return False
        if self.unless is not None and any(v is not None for v in self.unless.all(data)):
            return False
        if self.json_path is not None:
            found = self.json_path.all(data)
            if self.equals is not None:
                return any(v == self.equals for v in found)
            if self.contains is not None:
                return any(isinstance(v, str) and self.contains in v for v in found)
            if self.regex is not None:
                return any(isinstance(v, str) and self.regex.search(v) for v in found)
            return any(v is not None for v in found)
        return True


RESPONSE_NAMES = ("result", "request", "model")


class ResponsePaths:
    """The compiled `response:` section: field name -> JSONPaths (or templates) tried in order.

    A template (e.g. building a data: URI from a base64 field) sees `result`, `request` and `model`.
    """

    def __init__(self, spec: ResponseSpec, base: ResponsePaths | None = None) -> None:
        self.paths: dict[str, list[JsonPath | ValueTree]] = dict(base.paths) if base else {}
        for name, value in spec.model_dump(exclude_none=True).items():
            exprs = [value] if isinstance(value, str) else value
            self.paths[name] = [self._compile(e, name, i) for i, e in enumerate(exprs)]

    @staticmethod
    def _compile(expression: str, name: str, index: int) -> JsonPath | ValueTree:
        if is_template(expression):
            tree = ValueTree(expression, (name,))
            tree.check_names(RESPONSE_NAMES)
            return tree
        return JsonPath(expression)

    def extract(self, data: Any, ctx: dict[str, Any] | None = None,
                only: Collection[str] | None = None) -> dict[str, Any]:
        """The fields found in `data` (just those named in `only`, when given)."""
        out: dict[str, Any] = {}
        for name in self.paths if only is None else only:
            paths = self.paths.get(name, ())
            for path in paths:
                if isinstance(path, ValueTree):
                    rendered = path.render({**(ctx or {}), "result": data})
                    values = rendered if isinstance(rendered, list) else [rendered]
                else:
                    values = path.all(data)
                if name == "images":
                    found = [v for v in values if v is not None]
                    if found:
                        out[name] = found
                        break
                else:
                    # A scalar field skips containers, so `[$.output[0], $.output]` serves both shapes.
                    value = _first_scalar(values)
                    if value is not None:
                        out[name] = value
                        break
        return out


def _first_scalar(values: list[Any]) -> Any:
    for value in values:
        if value is not None and not isinstance(value, (dict, list)):
            return value
    return None


@dataclass
class PollExtract:
    """What a poll response says: status (from the body or the HTTP code), progress, logs, errors."""

    status: list[JsonPath]
    status_codes: dict[int, str]
    paths: dict[str, JsonPath]  # queue_position, progress, logs, error, error_type
    progress_pattern: re.Pattern[str] | None = None
    progress_scale: float = 1.0
    delay_header: str | None = None
    delay_scale: float = 1.0

    def hinted_delay(self, headers: Any) -> float | None:
        """Seconds the provider asked us to wait before the next poll, if it said."""
        if not self.delay_header:
            return None
        value = headers.get(self.delay_header)
        if value is None:
            return None
        try:
            return float(value) * self.delay_scale
        except (TypeError, ValueError):
            return None

    def get(self, name: str, data: Any) -> Any:
        path = self.paths.get(name)
        return path.first(data) if path is not None else None

    def raw_status(self, http_status: int, data: Any) -> Any:
        if http_status in self.status_codes:
            return _CODE_STATUS
        return self.body_status(data)

    def body_status(self, data: Any) -> Any:
        """The status the body gives (the first `status` path that finds one), or None."""
        for path in self.status:
            value = path.first(data)
            if value is not None:
                return value
        return None

    def percent(self, data: Any) -> int | None:
        value = self.get("progress", data)
        if isinstance(value, str) and self.progress_pattern is not None:
            found = self.progress_pattern.findall(value)
            value = float(found[-1]) if found else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return max(0, min(100, round(value * self.progress_scale)))
        return None


_CODE_STATUS = object()  # marker: the status comes from `status_codes`


@dataclass
class StatusStream:
    """A compiled `protocol.stream`: the request, and how its events' logs add up (statuses, progress
    and errors are read with the poll's `PollExtract`)."""

    request: CompiledRequest
    incremental_logs: bool = False


@dataclass
class WebhookSecret:
    """A compiled `webhook.secret`: the URL template and where the answer keeps the secret."""

    url: ValueTree
    key: JsonPath


@dataclass
class ProviderSpec:
    """A loaded provider file."""

    name: str
    file: ProviderFile
    source: SourceDoc
    submit: CompiledRequest | None = None
    poll: CompiledRequest | None = None
    stream: StatusStream | None = None
    result: CompiledRequest | None = None
    cancel: CompiledRequest | None = None
    headers: ValueTree | None = None
    job_paths: dict[str, JsonPath] = field(default_factory=dict)
    poll_extract: PollExtract | None = None
    upload_steps: list[CompiledRequest] = field(default_factory=list)
    upload_url: ValueTree | None = None
    webhook_secret: WebhookSecret | None = None
    error_rules: list[CompiledErrorRule] = field(default_factory=list)
    response: ResponsePaths | None = None

    @property
    def protocol(self) -> ProtocolSpec | None:
        return self.file.protocol

    @property
    def default_base_url(self) -> str:
        """Where requests go when a config names no base URL: the first of the provider file's
        `base_url_env` variables that is set (the vendor SDK's own, e.g. OPENAI_BASE_URL), else its `base_url`."""
        for name in self.file.base_url_env:
            value = os.environ.get(name, "").strip()
            if value:
                return value.rstrip("/")
        return (self.file.base_url or "").rstrip("/")

    def __repr__(self) -> str:
        return f"<ProviderSpec {self.name} ({self.source.file})>"

    @functools.cached_property
    def secret_headers(self) -> frozenset[str]:
        names = {h.lower() for h in self.file.secret_headers}
        if self.file.auth is not None:
            names.add(self.file.auth.header.lower())
        return frozenset(names)


@dataclass
class Params:
    """Parsed `params:`: scalar constraints, image slots and whether a video input is taken."""

    fields: dict[str, ParamSpec]
    roles: dict[str, RoleSpec]
    video: str | None  # "required" | "optional" | None (not taken)
    extra: dict[str, ParamSpec] = field(default_factory=dict)  # constraints on extra_params values
    checks: list[tuple[ValueTree, str]] = field(default_factory=list)  # (when, error)

    def renders_list(self, slot: str) -> bool:
        role = self.roles[slot]
        return role.as_list if role.as_list is not None else role.max != 1


@dataclass
class FamilySpec:
    """A loaded family file, linked to its provider."""

    name: str
    file: FamilyFile
    source: SourceDoc
    provider: ProviderSpec
    params: Params
    body: ValueTree
    response: ResponsePaths
    submit: CompiledRequest | None
    poll: CompiledRequest | None
    result: CompiledRequest | None
    cancel: CompiledRequest | None
    poll_extract: PollExtract | None
    used_fields: frozenset[str]
    model_fields: dict[str, dict[str, ParamSpec]] = field(default_factory=dict)  # per-model overrides
    pricing: CompiledPricing | None = None  # what a job costs (specs/pricing.py), when the family says
    stream: StatusStream | None = None  # the status stream followed instead of polling, when declared

    def fields_for(self, model: str) -> dict[str, ParamSpec]:
        """The field constraints for `model`: the family's, with its model entry's overrides."""
        if not self.model_fields:
            return self.params.fields
        base = model.split(":", 1)[0]
        matches = [m for m in self.model_fields if base == m or base.startswith(m.rstrip("/") + "/")]
        if not matches:
            return self.params.fields
        return {**self.params.fields, **self.model_fields[max(matches, key=len)]}

    @property
    def media(self) -> MediaSpec:
        return self.file.media or self.provider.file.media

    @property
    def modality(self) -> str:
        assert self.file.modality is not None  # the loader refuses a family without one
        return self.file.modality

    @property
    def models(self) -> list[str]:
        return [m if isinstance(m, str) else m.id for m in self.file.models]

    @property
    def exact_models(self) -> frozenset[str]:
        return frozenset(m.id for m in self.file.models if not isinstance(m, str) and m.exact)

    @property
    def handler_name(self) -> str | None:
        """The Python handler serving this family (the family's, else the provider's), if any."""
        return self.file.handler or self.provider.file.handler

    @property
    def is_handler(self) -> bool:
        return self.handler_name is not None

    @property
    def handler_options(self) -> dict[str, Any]:
        """The handler's settings: the provider file's, then the family's on top."""
        return {**self.provider.file.handler_options, **self.file.handler_options}

    def describe(self) -> str:
        return f"{self.provider.name}/{self.name} ({self.source.file})"

    def __repr__(self) -> str:
        # The dataclass repr spells out every compiled template: ~20 KB a family at a REPL.
        return f"<FamilySpec {self.provider.name}/{self.name} {self.modality} ({len(self.models)} model ids)>"

    @property
    def extra_params_into(self) -> list[str]:
        """The body path extra params are merged into (`[]`: the top level)."""
        policy = self.file.extra_params
        into = None if isinstance(policy, str) else policy.into
        return into.split(".") if into else []

    @functools.cached_property
    def provider_fields(self) -> frozenset[str]:
        """The provider's field names this family knows: the body keys where extra params land, the
        keys `params.extra` constrains and those `extra_params.allow` lists."""
        node: Any = self.file.body
        for key in self.extra_params_into:
            node = node.get(key) if isinstance(node, dict) else None
        policy = self.file.extra_params
        allowed = [] if isinstance(policy, str) else policy.allow or []
        return frozenset([*(node if isinstance(node, dict) else {}), *self.params.extra, *allowed])
