"""Run a call through its targets: capability skip, cooldown, retries (tenacity), fallback, deadline.

One implementation serves routes files and the seed API's `fallback_configs`. Every try, retry and
skip is an `AttemptMetadata`; the metadata is returned on the response and attached to the raised
exception when every target failed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any

from tenacity import DoSleep, RetryCallState, Retrying, stop_after_attempt, wait_exponential, wait_random
from tenacity.wait import wait_base

from ..engine import cost as costs
from ..engine.lifecycle import call_progress
from ..engine.runtime import Attempt, Runtime
from ..errors import BudgetExceededError, TarashException, ValidationError
from ..errors import TimeoutError as GenerationTimeoutError
from ..journal.idempotency import HeldClaim
from ..models import (
    AttemptMetadata, ExecutionMetadata, GenerationConfig, GenerationRequest, ImageGenerationUpdate,
    VideoGenerationUpdate,
)
from ..telemetry import CallTelemetry, watch_call
from .budget import CostGuard, Reservation
from .cooldown import CooldownStore, default_cooldowns, fail_open
from .policy import HEALTH_KINDS, RetryPolicy, RoutePolicy, error_kind
from .routes import Target

if TYPE_CHECKING:
    from ..engine.webhooks import ProviderWebhookUrl

logger = logging.getLogger("tarash_router.routing")


def collect_fallback_chain(config: GenerationConfig) -> list[GenerationConfig]:
    """The config, then its fallbacks depth-first (a fallback's own fallbacks come right after it)."""
    chain = [config]
    for fallback in config.fallback_configs or []:
        chain.extend(collect_fallback_chain(fallback))
    return chain


def _now() -> datetime:
    return datetime.now(UTC)


def _as_tarash(exc: BaseException, target: Target) -> TarashException:
    if isinstance(exc, TarashException):
        return exc
    wrapped = TarashException(f"{type(exc).__name__}: {exc}", provider=target.provider, model=target.model,
                              retryable=False)
    wrapped.__cause__ = exc
    return wrapped


def order_targets(targets: list[Target], policy: RoutePolicy) -> list[Target]:
    """`weighted`: pick the first target by weight, then fall back through the rest in order."""
    if policy.strategy != "weighted" or len(targets) < 2:
        return list(targets)
    first = random.choices(range(len(targets)), weights=[t.weight for t in targets])[0]
    return [targets[first], *targets[:first], *targets[first + 1:]]


class RouteRun:
    """One routed call in flight: the budget (deadline, max attempts) and the metadata."""

    def __init__(self, targets: list[Target], policy: RoutePolicy, modality: str, route: str | None,
                 cooldowns: CooldownStore | None, runtime: Runtime, claim: HeldClaim | None = None,
                 submit_only: bool = False, webhook_url: str | ProviderWebhookUrl | None = None) -> None:
        self.targets = order_targets(targets, policy)
        self.policy = policy
        self.modality = modality
        self.route = route
        self.cooldowns = fail_open(cooldowns if cooldowns is not None else default_cooldowns())
        self.runtime = runtime  # runs each target: settings, specs, journal, transports
        self.claim = claim  # the idempotency claim this call holds, if any
        self.submit_only = submit_only  # return each target's Job once submitted (submit_video/image)
        self.webhook_url = webhook_url  # where the provider reports the finished job (submit only)
        self.metadata = ExecutionMetadata(configs_in_chain=len(targets), route=route)
        self.costs = CostGuard(policy.budget, policy.spend_limit, route, runtime.settings)
        self.started = time.monotonic()
        self.tries = 0
        self.telemetry: CallTelemetry | None = None  # spans, metrics, on_event: None when nobody listens
        self._serving: Attempt | None = None  # who serves the target being tried: planned once, kept for retries

    def time_left(self) -> float | None:
        if self.policy.deadline is None:
            return None
        return self.policy.deadline - (time.monotonic() - self.started)

    def budget_exhausted(self) -> str | None:
        left = self.time_left()
        if left is not None and left <= 0:
            return f"route deadline of {self.policy.deadline:g}s reached"
        if self.policy.max_attempts is not None and self.tries >= self.policy.max_attempts:
            return f"max_attempts ({self.policy.max_attempts}) reached"
        return None

    def _record(self, target: Target, **fields: Any) -> AttemptMetadata:
        attempt = AttemptMetadata(provider=target.provider, model=target.model,
                                  attempt_number=len(self.metadata.attempts) + 1, **fields)
        self.metadata.attempts.append(attempt)
        self.metadata.total_attempts = sum(1 for a in self.metadata.attempts if a.status != "skipped")
        return attempt

    async def skip(self, target: Target, reason: str, cost: Any = None) -> None:
        now = _now()
        attempt = self._record(target, status="skipped", reason=reason, started_at=now, ended_at=now, cost=cost)
        logger.info("route %s: skipping %s: %s", self.route or "-", target.key, reason)
        if self.telemetry is not None:
            await self.telemetry.skipped(attempt)

    def execute(self, request: GenerationRequest, on_progress: Any) -> Awaitable[Any]:
        """The call, to await: observed when anyone listens (OpenTelemetry, on_event), else bare."""
        self.telemetry = watch_call(self.runtime.settings, getattr(self.runtime, "on_event", None),
                                    operation="submit" if self.submit_only else "generate", modality=self.modality,
                                    route=self.route, request=request)
        if self.telemetry is None:
            return self._execute(request, on_progress)
        return self._observed(self.telemetry, request, on_progress)

    async def _observed(self, telemetry: CallTelemetry, request: GenerationRequest, on_progress: Any) -> Any:
        try:
            response = await self._execute(request, on_progress)
        except BaseException as exc:  # cancellation too: its spans end, its in-flight count drops
            await telemetry.finished(self.metadata, error=exc)
            raise
        await telemetry.finished(self.metadata, response)
        return response

    async def _execute(self, request: GenerationRequest, on_progress: Any) -> Any:
        last_error: TarashException | None = None
        for index, target in enumerate(self.targets):
            exhausted = self.budget_exhausted()
            if exhausted:
                last_error = last_error or GenerationTimeoutError(exhausted, provider=target.provider,
                                                                  model=target.model)
                break
            if self.telemetry is not None:  # the last target failed and the chain goes on: a fallback
                await self.telemetry.falling_back(target)
            target_request = target.apply_params(request)
            config = target.build_config(self.modality, self.time_left())
            served = None  # who serves this target: decided once, reused by its retries
            following = self.targets[index + 1] if index + 1 < len(self.targets) else None
            if self.policy.skip_unsupported and len(self.targets) > 1:
                served = self.runtime.plan(config, target_request, self.modality, check=True)
                if served.unsupported is not None:
                    await self.skip(target, f"unsupported: {served.unsupported}")
                    await self._announce_fallback(on_progress, target, following, f"skipped: unsupported: "
                                                                                  f"{served.unsupported}")
                    continue
            if self.policy.cooldown is not None:
                wait = await self.cooldowns.check(target.key, self.policy.cooldown)
                if wait is not None:
                    await self.skip(target, f"cooling down for {wait:.1f}s more")
                    await self._announce_fallback(on_progress, target, following,
                                                  f"skipped: cooling down for {wait:.1f}s more")
                    continue
            reservation: Reservation | None = None
            if self.costs.active(target.budget) and not (config.mock is not None and config.mock.enabled):
                served, reservation, refused = await self._admit(target, config, target_request, served)
                if refused:
                    continue
            try:
                response = await self._try_target(target, config, target_request, on_progress, served)
            except TarashException as exc:
                if not exc.job_may_exist:  # nothing runs at the provider: nothing to pay for
                    await self.costs.release(reservation)
                last_error = exc
                kind = error_kind(exc)
                if self.policy.cooldown is not None:
                    if kind in HEALTH_KINDS:
                        await self.cooldowns.record_failure(target.key, self.policy.cooldown)
                    else:  # the target answered (moderation, validation...): it is healthy
                        await self.cooldowns.record_success(target.key)
                if kind not in self.policy.fallback_on:
                    break
                if following is not None:
                    logger.warning("route %s: %s failed (%s); falling back", self.route or "-", target.key,
                                   type(exc).__name__)
                    await self._announce_fallback(on_progress, target, following,
                                                  f"{type(exc).__name__}: {exc.message}", exc)
                continue
            if self.policy.cooldown is not None:
                await self.cooldowns.record_success(target.key)
            await self.costs.settle(reservation, self.metadata.attempts[-1].cost)
            self.metadata.successful_attempt = self.metadata.attempts[-1].attempt_number
            self.metadata.fallback_triggered = self._moved_on()
            return response.model_copy(update={"execution_metadata": self.metadata})
        raise self._final_error(last_error)

    async def _announce_fallback(self, on_progress: Any, left: Target, following: Target | None, reason: str,
                                 error: TarashException | None = None) -> None:
        """A progress event for the move to the next target: the caller's UI learns of a fallback as it
        happens (status `queued`, at the target the call goes to), not only from a log line."""
        if on_progress is None or following is None:
            return
        update_cls = VideoGenerationUpdate if self.modality == "video" else ImageGenerationUpdate
        await call_progress(on_progress, update_cls(
            request_id=(error.request_id if error is not None else None) or "", status="queued",
            provider=following.provider, model=following.model,
            error=error.message if error is not None else None,
            update={"event": "fallback", "from": left.key, "to": following.key, "reason": reason}))

    async def _admit(self, target: Target, config: GenerationConfig, request: GenerationRequest,
                     served: Attempt | None) -> tuple[Attempt | None, Reservation | None, bool]:
        """The cost guard's word on a target, before anything is sent: (who serves it, the spend
        reserved for it, whether it was skipped). A request the family refuses is left to the try,
        which raises its ValidationError as usual."""
        probe = served if served is not None else self.runtime.plan(config, request, self.modality, check=True)
        if probe.unsupported is None:
            served = probe  # the same decision the try would make: reused
        elif probe.family is None:
            return served, None, False
        estimate, why = self.costs.estimate(probe.family, config.model, request)
        reservation, refusal = await self.costs.admit(target.budget, estimate, why)
        if refusal is not None:
            await self.skip(target, refusal, cost=estimate)
            return served, None, True
        return served, reservation, False

    def _final_error(self, error: TarashException | None) -> TarashException:
        if error is None:  # every target was skipped
            reasons = "; ".join(f"{a.provider}/{a.model}: {a.reason}" for a in self.metadata.attempts)
            skipped = sum(1 for a in self.metadata.attempts if a.status == "skipped")
            error = (BudgetExceededError(f"the route's cost guard refused every target ({reasons})")
                     if skipped and self.costs.refusals == skipped else
                     ValidationError(f"no target can serve this request ({reasons})"))
        self.metadata.fallback_triggered = self._moved_on()
        error.execution_metadata = self.metadata
        return error

    def _moved_on(self) -> bool:
        """Whether the call left its first target (skipped it or fell back); retries alone do not count."""
        attempts = self.metadata.attempts
        return any(a.status == "skipped" for a in attempts) or len({(a.provider, a.model) for a in attempts}) > 1

    async def _try_target(self, target: Target, config: GenerationConfig, request: GenerationRequest,
                          on_progress: Any, served: Attempt | None) -> Any:
        """Try `target` until an attempt succeeds or tenacity, judging each failure, stops retrying."""
        retrying = _retrying(self.policy.retry, self.runtime.settings.max_retry_wait)
        state: RetryCallState | None = None  # made at the first failure: a call that succeeds needs none
        self._serving = served
        while True:
            try:
                retry_number = 0 if state is None else state.attempt_number - 1
                response = await self._attempt(target, config, request, on_progress, retry_number)
            except BaseException as failed:  # noqa: BLE001 - tenacity judges it, re-raises what it will not retry
                if state is None:
                    retrying.begin()  # tenacity's statistics for this thread: iter adds to them
                    state = RetryCallState(retrying, fn=None, args=(), kwargs={"run": self})
                state.set_exception((type(failed), failed, failed.__traceback__))
                action = retrying.iter(state)  # raises the failure once tenacity stops retrying
                assert isinstance(action, DoSleep)
                state.prepare_for_next_attempt()
                if self.telemetry is not None:  # tenacity sleeps only once it has decided to retry
                    await self.telemetry.retrying()
                await asyncio.sleep(action)
                config = target.build_config(self.modality, self.time_left())  # the route's time shrinks
                continue
            return response

    async def _attempt(self, target: Target, config: GenerationConfig, request: GenerationRequest,
                       on_progress: Any, retry_number: int) -> Any:
        """One try at `target`, recorded."""
        attempt = self._record(target, retry_number=retry_number)
        self.tries += 1
        progress = on_progress
        if self.telemetry is not None:
            await self.telemetry.attempt_started(attempt, config)
        try:
            served = self._serving
            if served is None:  # planned once per target, even when the try then fails
                served = self._serving = self.runtime.plan(config, request, self.modality)
            attempt.family = served.family_name
            if served.dropped:
                attempt.dropped_fields = list(served.dropped)
            if served.notes:
                attempt.warnings = list(served.notes)
            attempt.cost = served.cost = costs.estimate(served.family, config.model, request)
            if self.telemetry is not None:
                progress = self.telemetry.progress(served, on_progress)
            response = await self.runtime.dispatch(config, request, progress, self.modality, self.claim,
                                                   served, self.submit_only, self.webhook_url)
        except Exception as raw:  # noqa: BLE001 - every failure is recorded (cancellation passes through)
            exc = _as_tarash(raw, target)
            attempt.ended_at = _now()
            attempt.error_type = type(exc).__name__
            attempt.error_message = exc.message
            attempt.is_retryable = self.policy.retry.should_retry(exc)
            attempt.request_id = exc.request_id
            attempt.reason = error_kind(exc)
            if self.telemetry is not None:
                await self.telemetry.attempt_failed(exc)
            if exc is raw:
                raise
            raise exc from raw
        attempt.ended_at = _now()
        attempt.status = "success"
        attempt.request_id = getattr(response, "request_id", None)
        if "cost" in type(response).model_fields:  # a finished job (a submitted one is a Job)
            attempt.cost = response.cost  # the lifecycle's: reported by the provider, else the estimate
        if self.telemetry is not None:
            await self.telemetry.attempt_succeeded(response)
        return response


@functools.lru_cache(maxsize=64)
def _retrying(retry: RetryPolicy, cap: float) -> Retrying:
    """tenacity's judge for one retry policy, shared by every call under it: stop after the policy's
    tries, wait its backoff (or the provider's Retry-After, capped at `cap`) within the route's time
    left, retry only what the policy retries while the route has budget. The call in flight rides
    on the state (`kwargs["run"]`). Only its synchronous `iter` is used, and what tenacity keeps on
    the object besides (its statistics, per thread) is never read."""
    backoff = retry.backoff
    exponential: wait_base = wait_exponential(multiplier=backoff.initial, max=backoff.max)
    if backoff.jitter:
        exponential = exponential + wait_random(0, backoff.initial)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        seconds = min(float(hinted), cap) if hinted is not None else exponential(state)
        left = state.kwargs["run"].time_left()
        return max(0.0, min(seconds, left)) if left is not None else seconds

    def should_retry(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None and state.outcome.failed else None
        return exc is not None and retry.should_retry(exc) and state.kwargs["run"].budget_exhausted() is None

    return Retrying(stop=stop_after_attempt(retry.attempts), wait=wait, retry=should_retry, reraise=True)


def execute_targets(targets: list[Target], policy: RoutePolicy, request: GenerationRequest, on_progress: Any,
                    modality: str, runtime: Runtime, route: str | None = None,
                    cooldowns: CooldownStore | None = None, claim: HeldClaim | None = None,
                    submit_only: bool = False, webhook_url: str | ProviderWebhookUrl | None = None) -> Awaitable[Any]:
    """Route one call through `targets` under `policy`, each target run by `runtime` (or, with
    `submit_only`, submitted: the first target that accepts the job wins, and its Job is returned).
    To await; no coroutine of its own, as every frame is walked again each time a job resumes."""
    return RouteRun(targets, policy, modality, route, cooldowns, runtime, claim,
                    submit_only, webhook_url).execute(request, on_progress)


SEED_POLICY = RoutePolicy()


def execute(config: GenerationConfig, request: GenerationRequest, on_progress: Any, modality: str,
            runtime: Runtime | None = None, claim: HeldClaim | None = None, submit_only: bool = False,
            webhook_url: str | ProviderWebhookUrl | None = None) -> Awaitable[Any]:
    """The seed API: `config` then its `fallback_configs`, under the default policy (to await)."""
    targets = [Target.from_config(c) for c in collect_fallback_chain(config)]
    return execute_targets(targets, SEED_POLICY, request, on_progress, modality, runtime or Runtime(),
                           claim=claim, submit_only=submit_only, webhook_url=webhook_url)


__all__ = ["execute", "execute_targets", "collect_fallback_chain", "order_targets", "RouteRun"]
