"""Routes files: named routes (modality, targets, strategy, retry/fallback/cooldown policy), strictly loaded.

```yaml
spec_version: 1
routes:
  video-default:
    modality: video
    strategy: fallback            # fallback | weighted
    targets:
      - {provider: fal, model: fal-ai/veo3/fast, timeout: 10m}
      - {provider: fal, model: fal-ai/kling-video/v2.6/pro/text-to-video, params: {negative_prompt: blur}}
    retry: {attempts: 3, on: [rate_limit, server_error], backoff: {initial: 1s, max: 30s, jitter: true}}
    fallback_on: [rate_limit, server_error, connection, timeout, generation_failed]
    skip_unsupported: true
    cooldown: {failures: 3, window: 60s, duration: 30s}
    deadline: 15m
    max_attempts: 6
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..errors import ConfigError, SpecError, ValidationError
from ..models import (
    GenerationConfig, GenerationRequest, ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig,
    VideoGenerationRequest,
)
from ..spelling import did_you_mean, near_misses
from ..specs.loader import validate_model
from ..specs.model_ids import check_listed
from ..specs.registry import SpecRegistry
from ..specs.yaml_source import SourceDoc, load_yaml_file
from .budget import Budget, SpendLimit
from .policy import (
    DEFAULT_FALLBACK_ON, DEFAULT_RETRY_ON, Backoff, CooldownPolicy, ErrorKind, RetryPolicy, RoutePolicy,
    parse_duration,
)

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema({"anyOf": [
    {"type": "number", "minimum": 0},
    {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$", "examples": ["500ms", "30s", "15m", "1h"]},
]})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetFile(_Strict):
    max_per_request: float = Field(gt=0, description="The most one request may cost, estimated before it is sent")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    unpriced: Literal["refuse", "allow"] = Field("refuse", description="A target with no estimate")


class SpendLimitFile(_Strict):
    amount: float = Field(gt=0, description="The most the route may spend in one period, shared by every process "
                                            "on TARASH_LIMITS_STORE")
    per: Literal["hour", "day", "week", "month"] = Field("day", description="UTC periods")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    unpriced: Literal["refuse", "allow"] = Field("refuse", description="A target with no estimate")


class TargetFile(_Strict):
    provider: str
    model: str
    weight: float = Field(default=1.0, gt=0)
    timeout: Duration | None = None
    poll_interval: Duration | None = None
    max_poll_attempts: int | None = Field(default=None, ge=1)
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, description="Environment variable holding this target's key")
    provider_config: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict, description="Default request fields for this target")
    adapt: dict[str, Literal["drop"]] = Field(
        default_factory=dict, description="Request fields this model may not honour that the call may go without "
                                          "(drop; recorded in the attempt's metadata) instead of being refused")
    allow_unknown_model: bool = Field(
        False, description="Send a model id no family lists even when it is one keystroke from one that is "
                           "(a new model, not a typo); otherwise such an id is refused as a typo")
    budget: BudgetFile | None = Field(default=None, description="This target's budget per request (replaces the route's)")


class BackoffFile(_Strict):
    initial: Duration = 1.0
    max: Duration = 30.0
    jitter: bool = True


class RetryFile(_Strict):
    attempts: int = Field(default=3, ge=1, description="Tries per target, the first included")
    on: list[ErrorKind] = Field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    backoff: BackoffFile = Field(default_factory=BackoffFile)


class CooldownFile(_Strict):
    failures: int = Field(default=3, ge=1)
    window: Duration = 60.0
    duration: Duration = 30.0


class RouteFile(_Strict):
    description: str | None = None
    modality: Literal["video", "image"]
    strategy: Literal["fallback", "weighted"] = "fallback"
    targets: list[TargetFile] = Field(min_length=1)
    retry: RetryFile = Field(default_factory=RetryFile)
    fallback_on: list[ErrorKind] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_ON))
    skip_unsupported: bool = True
    cooldown: CooldownFile | None = None
    deadline: Duration | None = None
    max_attempts: int | None = Field(default=None, ge=1)
    # An idempotency key whose previous holder died mid-submit may hide a paid job: by default the
    # call is refused (JobMayExistError); true sends the request again and accepts the risk.
    resubmit_if_unknown: bool = False
    budget: BudgetFile | None = Field(default=None, description="The most one request may cost (docs/cost.md)")
    spend_limit: SpendLimitFile | None = Field(default=None, description="The most the route may spend per period")


class RoutesFile(_Strict):
    spec_version: Literal[1]
    routes: dict[str, RouteFile]


@dataclass(frozen=True)
class Target:
    """One provider/model a call may go to, with its per-target overrides."""

    provider: str
    model: str
    weight: float = 1.0
    timeout: float | None = None
    poll_interval: float | None = None
    max_poll_attempts: int | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    provider_config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    adapt: dict[str, str] = field(default_factory=dict)
    allow_unknown_model: bool = False
    budget: Budget | None = None  # replaces the route's budget for this target
    config: GenerationConfig | None = field(default=None, repr=False)  # set when built from a seed config

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"

    @classmethod
    def from_config(cls, config: GenerationConfig) -> Target:
        return cls(provider=config.provider, model=config.model, config=config)

    def build_config(self, modality: str, time_left: float | None) -> GenerationConfig:
        """The config for one attempt; the route's remaining time caps the target's timeout."""
        if self.config is not None:  # configs are frozen: one without fallbacks is used as it is
            base = self.config if not self.config.fallback_configs else self.config.model_copy(
                update={"fallback_configs": None})
        else:
            import os

            cls_ = VideoGenerationConfig if modality == "video" else ImageGenerationConfig
            values: dict[str, Any] = {"provider": self.provider, "model": self.model, "adapt": dict(self.adapt),
                                      "provider_config": dict(self.provider_config), "base_url": self.base_url,
                                      "allow_unknown_model": self.allow_unknown_model}
            if self.api_key_env:
                values["api_key"] = os.environ.get(self.api_key_env)
            for name in ("timeout", "poll_interval", "max_poll_attempts"):
                if getattr(self, name) is not None:
                    values[name] = getattr(self, name)
            base = cls_(**values)
        if time_left is not None and time_left < base.timeout:
            base = base.model_copy(update={"timeout": max(time_left, 0.001)})
        return base

    def apply_params(self, request: GenerationRequest) -> GenerationRequest:
        """Fill request fields the caller left unset from the target's default params."""
        if not self.params:
            return request
        known = type(request).model_fields
        update = {k: v for k, v in self.params.items() if k in known and getattr(request, k) in (None, [], {})}
        extra = {k: v for k, v in self.params.items() if k not in known}
        if extra:
            update["extra_params"] = {**extra, **request.extra_params}
        return request.model_copy(update=update) if update else request


@dataclass
class Route:
    """A named route: targets in order plus the policy that governs calls through it."""

    name: str
    modality: str
    targets: list[Target]
    policy: RoutePolicy
    source: SourceDoc | None = None
    description: str | None = None


def route_from_file(name: str, spec: RouteFile, doc: SourceDoc | None) -> Route:
    retry = RetryPolicy(attempts=spec.retry.attempts, on=frozenset(spec.retry.on),
                        backoff=Backoff(spec.retry.backoff.initial, spec.retry.backoff.max, spec.retry.backoff.jitter))
    cooldown = (CooldownPolicy(spec.cooldown.failures, spec.cooldown.window, spec.cooldown.duration)
                if spec.cooldown else None)
    policy = RoutePolicy(retry=retry, fallback_on=frozenset(spec.fallback_on), skip_unsupported=spec.skip_unsupported,
                         cooldown=cooldown, deadline=spec.deadline, max_attempts=spec.max_attempts,
                         strategy=spec.strategy, resubmit_if_unknown=spec.resubmit_if_unknown,
                         budget=Budget(**spec.budget.model_dump()) if spec.budget else None,
                         spend_limit=SpendLimit(**spec.spend_limit.model_dump()) if spec.spend_limit else None)
    targets = [Target(**{**t.model_dump(exclude={"budget"}), "budget": Budget(**t.budget.model_dump())
                         if t.budget else None}) for t in spec.targets]
    return Route(name=name, modality=spec.modality, targets=targets, policy=policy, source=doc,
                 description=spec.description)


def read_routes_file(path: Path, registry: SpecRegistry, handled: Callable[[str], bool] = lambda provider: False,
                     ) -> tuple[dict[str, Route], list[SpecError]]:
    """Every route of one file that loads, and every problem found in the file, not just the first:
    schema errors of all keys (each route checked alone, so one broken route hides no other), then
    each target's provider, model id and params, against the specs of `registry` (a provider
    `handled` by a registered Python handler serves any model name)."""
    doc = load_yaml_file(path, ConfigError)  # a syntax error stops here: nothing else can be read
    if not isinstance(doc.data, dict):
        raise doc.error(f"expected a mapping, found {type(doc.data).__name__}", (), ConfigError)
    problems: list[SpecError] = []
    try:
        parsed: dict[str, RouteFile] = validate_model(doc, RoutesFile, cls=ConfigError).routes
    except ConfigError as exc:
        problems += exc.all
        parsed = _routes_that_parse(doc.data.get("routes"))
    raw_routes = doc.data.get("routes")
    routes: dict[str, Route] = {}
    for name, raw in (raw_routes.items() if isinstance(raw_routes, dict) else ()):
        problems += _target_problems(doc, registry, str(name), raw, handled)
        if name in parsed:
            routes[name] = route_from_file(name, parsed[name], doc)
    return routes, problems


def load_routes_file(path: Path, registry: SpecRegistry,
                     handled: Callable[[str], bool] = lambda provider: False) -> dict[str, Route]:
    """Load and check one routes file (see `read_routes_file`); the first problem is raised, carrying
    the others in its `more`."""
    routes, problems = read_routes_file(path, registry, handled)
    if problems:
        raise SpecError.of(problems)
    return routes


def _routes_that_parse(raw_routes: Any) -> dict[str, RouteFile]:
    parsed = {}
    for name, raw in (raw_routes.items() if isinstance(raw_routes, dict) else ()):
        try:
            parsed[name] = RouteFile.model_validate(raw)
        except pydantic.ValidationError:
            continue  # its problems are among the file's schema errors
    return parsed


_REQUEST_FIELDS = {"video": frozenset(VideoGenerationRequest.model_fields),
                   "image": frozenset(ImageGenerationRequest.model_fields)}


def _target_problems(doc: SourceDoc, registry: SpecRegistry, route: str, raw: Any,
                     handled: Callable[[str], bool]) -> list[SpecError]:
    """What is wrong with each target of one route, read from the file as written (so a route with a
    schema error still has its targets checked)."""
    if not isinstance(raw, dict) or raw.get("modality") not in _REQUEST_FIELDS \
            or not isinstance(raw.get("targets"), list):
        return []  # the schema errors say what is missing
    modality = raw["modality"]
    problems = []
    for index, target in enumerate(raw["targets"]):
        if not isinstance(target, dict):
            continue
        path = ("routes", route, "targets", index)
        params = target.get("params")
        for key in (params if isinstance(params, dict) else ()):
            meant = near_misses(str(key), _REQUEST_FIELDS[modality], leading_words=True)
            if key not in _REQUEST_FIELDS[modality] and meant:
                problems.append(doc.error(
                    f"unknown request field {key!r} in params{did_you_mean(meant)} (a provider's own field of that "
                    "name goes under params: {extra_params: {...}})", (*path, "params", key), ConfigError))
        provider, model = target.get("provider"), target.get("model")
        if not isinstance(provider, str) or not isinstance(model, str) or handled(provider):
            continue  # a registered Python handler serves any model name it likes
        if not registry.has_provider(provider):
            problems.append(doc.error(registry.unknown_provider(provider), (*path, "provider"), ConfigError))
            continue
        try:
            family = registry.resolve(provider, model, modality)
            check_listed(registry, family, model, target.get("allow_unknown_model") is True)
        except ValidationError as exc:
            problems.append(doc.error(exc.message, (*path, "model"), ConfigError))
    return problems


def discover_routes(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise ConfigError("routes path does not exist", file=str(root))
        files += [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return files


def load_routes_paths(paths: list[Path], registry: SpecRegistry,
                      handled: Callable[[str], bool] = lambda provider: False) -> dict[str, Route]:
    """Every route under `paths`; a name defined twice is an error naming both places."""
    routes: dict[str, Route] = {}
    for path in discover_routes(paths):
        for name, route in load_routes_file(path, registry, handled).items():
            if name in routes:
                first = routes[name].source
                where = f"{first.file}:{first.position(('routes', name))[0]}" if first else "elsewhere"
                assert route.source is not None
                raise route.source.error(f"duplicate route name {name!r} (first defined at {where})",
                                         ("routes", name), ConfigError)
            routes[name] = route
    return routes


__all__ = ["Target", "Route", "RoutesFile", "RouteFile", "TargetFile", "load_routes_paths", "load_routes_file",
           "read_routes_file", "route_from_file"]
