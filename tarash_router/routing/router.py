"""`Router`: routes loaded from files, run by name, explained offline, reloaded safely."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.cost import estimate_or_reason
from ..engine.runtime import Runtime
from ..engine.sync import run_sync
from ..errors import ConfigError, SpecError, ValidationError
from ..journal.idempotency import HeldClaim
from ..lazy import Lazy
from ..models import Cost, GenerationRequest
from ..settings import get_settings
from ..specs.pricing import format_money
from ..specs.registry import SpecRegistry
from ..spelling import closest, did_you_mean, near_misses
from .budget import budget_refusal
from .chain import execute_targets
from .cooldown import CooldownStore, default_cooldowns, fail_open
from .routes import Route, load_routes_paths

if TYPE_CHECKING:
    from ..engine.webhooks import ProviderWebhookUrl

logger = logging.getLogger("tarash_router.routing")


@dataclass
class PlanStep:
    """One target of an explained route: whether it would be tried, and why not."""

    provider: str
    model: str
    action: str  # "try" | "skip"
    reason: str | None = None
    weight: float | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. a model id no family lists
    cost: Cost | None = None  # the estimate for this request on this target
    unpriced: str | None = None  # why there is none


@dataclass
class Plan:
    """What a call through a route would do, computed offline."""

    route: str
    modality: str
    strategy: str
    steps: list[PlanStep] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    missing_keys: list[str] = field(default_factory=list)  # keys assumed present (explain --assume-keys)

    def render(self) -> str:
        lines = [f"route {self.route} ({self.modality}, strategy {self.strategy})"]
        for number, step in enumerate(self.steps, start=1):
            weight = f" weight {step.weight:g}" if step.weight is not None else ""
            reason = f": {step.reason}" if step.reason else ""
            lines.append(f"  {number}. {step.action:<4} {step.provider}/{step.model}{weight}{reason}")
            lines += [f"     warning: {warning}" for warning in step.warnings]
            if step.cost is not None:
                lines.append(f"       cost: ~{format_money(step.cost.amount, step.cost.currency)} ({step.cost.basis})")
            elif step.unpriced is not None:
                lines.append(f"       cost: no estimate ({step.unpriced})")
        for key, value in self.policy.items():
            lines.append(f"  {key}: {value}")
        if self.missing_keys:
            lines.append(f"  keys assumed, not set here: {'; '.join(self.missing_keys)}")
        return "\n".join(lines)


class Router:
    """Named routes from one or more directories or files."""

    def __init__(self, paths: list[Path | str] | None = None, *, registry: SpecRegistry | None = None,
                 cooldowns: CooldownStore | None = None, runtime: Runtime | None = None) -> None:
        self.paths = [Path(p) for p in paths or []]
        # Targets run in `runtime` (its registry, journal, transports); given a registry alone, a
        # runtime over it with the process-wide rest.
        self.runtime = runtime if runtime is not None else Runtime(registry=registry)
        self.cooldowns = cooldowns if cooldowns is not None else default_cooldowns()
        self.routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        if self.paths:
            self.routes = load_routes_paths(self.paths, self.registry, self._handled)

    @classmethod
    def from_dir(cls, *paths: Path | str, **kwargs: Any) -> Router:
        return cls(list(paths), **kwargs)

    @property
    def registry(self) -> SpecRegistry:
        return self.runtime.registry

    def _handled(self, provider: str) -> bool:
        return self.runtime.transports.for_provider(provider) is not None

    def load(self, *paths: Path | str) -> list[str]:
        """Add routes from more paths; a name already loaded is an error. Returns the new names."""
        new = load_routes_paths([Path(p) for p in paths], self.registry, self._handled)
        clash = sorted(set(new) & set(self.routes))
        if clash:
            route = new[clash[0]]
            raise route.source.error(f"route {clash[0]!r} is already loaded", ("routes", clash[0]), ConfigError) \
                if route.source else ConfigError(f"route {clash[0]!r} is already loaded")
        with self._lock:
            self.paths += [Path(p) for p in paths]
            self.routes.update(new)
        return sorted(new)

    def reload(self) -> list[SpecError]:
        """Re-read every path. On an error the routes in force stay as they were; the errors are returned."""
        try:
            fresh = load_routes_paths(self.paths, self.registry, self._handled)
        except SpecError as exc:
            logger.error("routes reload failed, keeping the previous routes: %s", exc)
            return [exc]
        with self._lock:
            self.routes = fresh
        return []

    def get(self, name: str, modality: str | None = None) -> Route:
        route = self.routes.get(name)
        if route is None:
            known = ", ".join(sorted(self.routes)) or "none loaded"
            hint = did_you_mean(near_misses(name, self.routes) or closest(name, self.routes, n=1))
            raise ValidationError(f"unknown route {name!r}{hint} (known: {known})")
        if modality is not None and route.modality != modality:
            raise ValidationError(f"route {name!r} is a {route.modality} route; it cannot generate {modality}")
        return route

    def run(self, name: str, request: GenerationRequest, on_progress: Any, modality: str,
            claim: HeldClaim | None = None, submit_only: bool = False,
            webhook_url: str | ProviderWebhookUrl | None = None) -> Awaitable[Any]:
        """The call through route `name`, to await (an unknown route raises here)."""
        route = self.get(name, modality)
        return execute_targets(route.targets, route.policy, request, on_progress, modality, self.runtime,
                               route=name, cooldowns=self.cooldowns, claim=claim, submit_only=submit_only,
                               webhook_url=webhook_url)

    def explain(self, name: str, request: GenerationRequest, *, assume_keys: bool = False) -> Plan:
        """The plan for `request` through route `name`: order, skips and why, policies. No network.
        With `assume_keys`, a target is planned as if its API key were set (for CI, where none are);
        the keys that are not set are listed once, at the end."""
        route = self.get(name)
        policy = route.policy
        plan = Plan(route=name, modality=route.modality, strategy=policy.strategy)
        for target in route.targets:
            config = target.build_config(route.modality, None)
            target_request = target.apply_params(request)
            planned = self.runtime.plan(config, target_request, route.modality, check=True)
            reason = planned.unsupported
            cost, unpriced = estimate_or_reason(planned.family, config.model, target_request)
            if assume_keys and reason is not None and reason.startswith("no API key"):
                if reason not in plan.missing_keys:
                    plan.missing_keys.append(reason)
                reason = None
            step = PlanStep(target.provider, target.model, "try",
                            weight=target.weight if policy.strategy == "weighted" else None,
                            warnings=list(planned.notes), cost=cost, unpriced=unpriced)
            judged = planned.unsupported is None or planned.family is not None  # as the chain's cost guard does
            over = budget_refusal(target.budget or policy.budget, cost, unpriced) if judged else None
            if reason is None and over is not None:
                step.action, step.reason = "skip", over
            elif reason is not None:
                skips = policy.skip_unsupported and len(route.targets) > 1  # as the chain does
                step.action, step.reason = ("skip", f"unsupported: {reason}") if skips else (
                    "try", f"will fail: {reason}")
            elif policy.cooldown is not None and (left := run_sync(fail_open(self.cooldowns).remaining(target.key))) is not None:
                step.action, step.reason = "skip", f"cooling down for {left:.1f}s more"
            plan.steps.append(step)
        retry = policy.retry
        plan.policy = {
            "retry": f"{retry.attempts} tries per target on {', '.join(sorted(retry.on)) or 'nothing'}; backoff "
                     f"{retry.backoff.initial:g}s..{retry.backoff.max:g}s{' with jitter' if retry.backoff.jitter else ''}"
                     ", Retry-After honoured; a job that may exist is never re-submitted",
            "fallback_on": ", ".join(sorted(policy.fallback_on)) or "nothing",
            "skip_unsupported": policy.skip_unsupported,
            "cooldown": (f"{policy.cooldown.failures} failures in {policy.cooldown.window:g}s open a target for "
                         f"{policy.cooldown.duration:g}s") if policy.cooldown else "off",
            "deadline": f"{policy.deadline:g}s" if policy.deadline else "none",
            "max_attempts": policy.max_attempts or "unlimited",
        }
        if policy.budget is not None:
            plan.policy["budget"] = policy.budget.describe()
        if policy.spend_limit is not None:
            plan.policy["spend_limit"] = (f"{policy.spend_limit.describe()}, counted in "
                                          f"{self.runtime.settings.limits_store.split('://')[0]}")
        return plan


_DEFAULT: Lazy[Router] = Lazy(lambda: Router(list(get_settings().route_dirs)))


def get_router() -> Router:
    """The process-wide router: routes from `TARASH_ROUTE_DIRS` plus whatever `load_routes` added."""
    return _DEFAULT.get()


def load_routes(*paths: Path | str) -> list[str]:
    """Add routes files or directories to the process-wide router; returns the route names added."""
    return get_router().load(*paths)


def reset_router() -> None:
    _DEFAULT.set(None)


__all__ = ["Router", "Plan", "PlanStep", "get_router", "load_routes", "reset_router"]
