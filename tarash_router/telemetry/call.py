"""`CallTelemetry`: one routed call, watched. Routing tells it what happens (an attempt starts, fails,
succeeds, a target is skipped, the chain retries or falls back, the call ends); it turns that into
a span for the call with one child span per attempt, the metrics, and `on_event` callbacks.

A failed attempt's outcome (`retry`, `fallback` or `failed`) is known only when routing takes its
next step, so its span is ended then, with the time it really ended.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, overload

from .events import OnEvent, TelemetryEvent, deliver

logger = logging.getLogger("tarash_router.telemetry")

MAX_MESSAGE = 500  # characters of an error message kept on a span or event
MIN_MASKED = 4  # shorter values are not masked: replacing "x" everywhere would garble the message
MASK = "***"


class _Attempt:
    """One try at a target while it runs and until its outcome is settled."""

    __slots__ = ("meta", "ident", "span", "token", "started", "ended", "end_ns", "queued_at", "queue_wait", "error")

    def __init__(self, meta: Any, ident: dict[str, Any], span: Any, token: Any) -> None:
        self.meta = meta  # its AttemptMetadata
        self.ident = ident  # provider, model, modality, route: on its span and its metrics
        self.span, self.token = span, token
        self.started = time.monotonic()
        self.ended: float | None = None
        self.end_ns: int | None = None
        self.queued_at: float | None = None
        self.queue_wait: float | None = None
        self.error: tuple[str, str] | None = None  # (type, masked message)

    def stop(self) -> None:
        self.ended, self.end_ns = time.monotonic(), time.time_ns()

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def observe(self, status: Any) -> None:
        """Queue wait, from the progress updates: the job's first report, queued, to its first
        report of running (or done). A job first seen running waited 0s; a provider that answers
        in full at once has no queue to report."""
        if self.queue_wait is not None:
            return
        now = time.monotonic()
        if status == "queued":
            if self.queued_at is None:
                self.queued_at = now
        elif status == "processing":
            self.queue_wait = now - self.queued_at if self.queued_at is not None else 0.0
        elif status == "completed" and self.queued_at is not None:
            self.queue_wait = now - self.queued_at


def cost_of(*sources: Any) -> tuple[float, str] | None:
    """(amount, currency) of the first source with a `cost` (an object or a mapping with `amount`
    and `currency`), or None. Read defensively: cost is optional everywhere."""
    for source in sources:
        cost = getattr(source, "cost", None)
        amount = _field(cost, "amount")
        if amount is None or isinstance(amount, bool):
            continue
        try:
            return float(amount), str(_field(cost, "currency") or "USD")
        except (TypeError, ValueError):
            continue
    return None


def _field(cost: Any, name: str) -> Any:
    return cost.get(name) if isinstance(cost, Mapping) else getattr(cost, name, None)


Step = TypeVar("Step", bound=Callable[..., Awaitable[None]])


def _never_raises(step: Step) -> Step:
    """Telemetry must not cost anyone a paid job: a failing step is logged and the call goes on."""
    @functools.wraps(step)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            await step(*args, **kwargs)
        except Exception:  # noqa: BLE001
            logger.exception("telemetry failed in %s; the generation continues", step.__name__)

    return guarded  # type: ignore[return-value]


class CallTelemetry:
    """Spans, metrics and events for one routed call (`sink` None: events only)."""

    def __init__(self, sink: Any, on_event: OnEvent | None, *, operation: str, modality: str, route: str | None,
                 request: Any, prompts: bool) -> None:
        self.sink = sink
        self.on_event = on_event
        self.operation = operation  # "generate" | "submit"
        self.modality = modality
        self.route = route
        self.started = time.monotonic()
        self.masked: set[str] = set()
        self.base: dict[str, Any] = {"tarash.modality": modality}
        if route is not None:
            self.base["tarash.route"] = route
        self.attempt: _Attempt | None = None  # the attempt running now
        self.pending: _Attempt | None = None  # a failed attempt whose outcome routing has not decided yet
        prompt = getattr(request, "prompt", None)
        if not prompts:
            self._mask_value(prompt)
            self._mask_value(getattr(request, "negative_prompt", None))
        self.span = self.token = None
        if sink is not None:
            attributes = {**self.base, "tarash.operation": operation}
            if prompts and isinstance(prompt, str):
                attributes["tarash.prompt"] = prompt
            self.span, self.token = sink.start(f"tarash.{operation}", attributes)

    # ------------------------------------------------------------ what routing reports

    @_never_raises
    async def attempt_started(self, meta: Any, config: Any) -> None:
        self._mask_value(getattr(config, "api_key", None))
        ident = {**self.base, "tarash.provider": meta.provider, "tarash.model": meta.model}
        span = token = None
        if self.sink is not None:
            span, token = self.sink.start("tarash.attempt", {**ident, "tarash.attempt": meta.attempt_number,
                                                             "tarash.retry": meta.retry_number}, parent=self.span)
            self.sink.attempt_began(ident)
        self.attempt = _Attempt(meta, ident, span, token)
        await self._emit("attempt_start", meta)

    def progress(self, served: Any, on_progress: Any) -> Any:
        """The progress callback to run the attempt with: the caller's, watched for the queue wait.
        Transports that report progress themselves (handlers, the mock) get the caller's as is."""
        self._mask_value(getattr(served, "api_key", None))
        attempt = self.attempt
        if attempt is None or getattr(served.transport, "reports_progress", False):
            return on_progress

        def watch(update: Any) -> Any:
            attempt.observe(getattr(update, "status", None))
            return on_progress(update) if on_progress is not None else None

        return watch

    @_never_raises
    async def attempt_failed(self, error: Any) -> None:
        attempt = self._stop()
        if attempt is None:
            return
        attempt.error = (type(error).__name__, self.mask(getattr(error, "message", None) or str(error)))
        self.pending = attempt  # retry, fallback or failed: routing's next step says which

    @_never_raises
    async def attempt_succeeded(self, response: Any) -> None:
        attempt = self._stop()
        if attempt is not None:
            await self._settle(attempt, "submitted" if self.operation == "submit" else "completed", response)

    @_never_raises
    async def retrying(self) -> None:
        """Routing will try the failed attempt's target again."""
        if self.pending is not None:
            await self._settle(self.pending, "retry")

    @_never_raises
    async def falling_back(self, target: Any) -> None:
        """Routing moves on from the failed attempt's target to `target`."""
        left = self.pending
        if left is None:
            return
        await self._settle(left, "fallback")
        error_type = left.error[0] if left.error else "an error"
        await self._emit("fallback", None, provider=target.provider, model=target.model, outcome="fallback",
                         reason=f"{left.meta.provider}/{left.meta.model} failed with {error_type}")

    @_never_raises
    async def skipped(self, meta: Any) -> None:
        reason = self.mask(meta.reason)
        if self.sink is not None:
            ident = {**self.base, "tarash.provider": meta.provider, "tarash.model": meta.model}
            span, _ = self.sink.start("tarash.attempt", {**ident, "tarash.attempt": meta.attempt_number,
                                                         "tarash.retry": meta.retry_number},
                                      parent=self.span, current=False)
            self.sink.end(span, _present({"tarash.outcome": "skipped", "tarash.reason": reason}))
        await self._emit("skip", meta, outcome="skipped", reason=reason)

    @_never_raises
    async def finished(self, metadata: Any, response: Any = None, error: BaseException | None = None) -> None:
        """The call is over: settle what is left, end its span, record it, send success or failure."""
        if self.attempt is not None:  # the caller cancelled it mid-attempt
            attempt = self._stop()
            if attempt is not None:
                await self._settle(attempt, "cancelled")
        if self.pending is not None:
            await self._settle(self.pending, "failed")
        if error is None:
            outcome = "submitted" if self.operation == "submit" else "completed"
        else:
            outcome = "failed" if isinstance(error, Exception) else "cancelled"
        tried = [a for a in getattr(metadata, "attempts", []) if a.status != "skipped"]
        last = tried[-1] if tried else None
        failure = None
        if outcome == "failed":
            failure = (type(error).__name__, self.mask(getattr(error, "message", None) or str(error)))
        job_id = getattr(response, "request_id", None)
        cost = cost_of(last, response) if response is not None else None
        elapsed = time.monotonic() - self.started
        if self.sink is not None:
            ident = {**self.base, "tarash.outcome": outcome}
            if last is not None:
                ident.update({"tarash.provider": last.provider, "tarash.model": last.model})
            final = {**ident, "tarash.attempts": getattr(metadata, "total_attempts", len(tried)),
                     "tarash.fallback": bool(getattr(metadata, "fallback_triggered", False)),
                     "tarash.job_id": job_id, **_cost_attributes(cost)}
            if self.token is not None:
                self.sink.leave(self.token)
            self.sink.end(self.span, _present(final), failure)
            self.sink.call_settled({**ident, **({"error.type": failure[0]} if failure else {})}, elapsed)
        await self._emit("success" if error is None else "failure", last, outcome=outcome, elapsed=elapsed,
                         job_id=job_id, error_type=failure[0] if failure else None,
                         error_message=failure[1] if failure else None, cost=cost)

    # ------------------------------------------------------------ inside

    @overload
    def mask(self, text: str) -> str: ...

    @overload
    def mask(self, text: None) -> None: ...

    def mask(self, text: str | None) -> str | None:
        """`text` with the call's keys (and, unless allowed, its prompt) masked, cut to MAX_MESSAGE."""
        if text is None:
            return None
        for value in self.masked:
            text = text.replace(value, MASK)
        return text[:MAX_MESSAGE]

    def _mask_value(self, value: Any) -> None:
        if isinstance(value, str) and len(value.strip()) >= MIN_MASKED:
            self.masked.add(value)
            self.masked.add(value.strip())

    def _stop(self) -> _Attempt | None:
        attempt, self.attempt = self.attempt, None
        if attempt is None:
            return None
        attempt.stop()
        if self.sink is not None:
            if attempt.token is not None:
                self.sink.leave(attempt.token)
            self.sink.attempt_ended(attempt.ident)
        return attempt

    async def _settle(self, attempt: _Attempt, outcome: str, response: Any = None) -> None:
        if attempt is self.pending:
            self.pending = None
        meta = attempt.meta
        cost = cost_of(meta, response)
        reason = self.mask(meta.reason) if attempt.error is not None else None
        if self.sink is not None:
            final = {"tarash.outcome": outcome, "tarash.family": meta.family, "tarash.job_id": meta.request_id,
                     "tarash.queue_wait_s": attempt.queue_wait, "tarash.reason": reason, **_cost_attributes(cost)}
            error = attempt.error if outcome != "cancelled" else None
            self.sink.end(attempt.span, _present(final), error, attempt.end_ns)
            measured = {**attempt.ident, "tarash.outcome": outcome, **({"error.type": error[0]} if error else {})}
            self.sink.attempt_settled(measured, attempt.elapsed, attempt.queue_wait, cost)
        error_type, message = attempt.error if attempt.error else (None, None)
        await self._emit("attempt_end", meta, outcome=outcome, elapsed=attempt.elapsed, job_id=meta.request_id,
                         queue_wait=attempt.queue_wait, error_type=error_type, error_message=message,
                         reason=reason, cost=cost)

    async def _emit(self, kind: str, meta: Any, *, cost: tuple[float, str] | None = None, **fields: Any) -> None:
        if self.on_event is None:
            return
        if meta is not None:
            fields = {"provider": meta.provider, "model": meta.model, "attempt": meta.attempt_number,
                      "retry": meta.retry_number, **fields}
        if cost is not None:
            fields["cost_amount"], fields["cost_currency"] = cost
        await deliver(self.on_event, TelemetryEvent(kind=kind, modality=self.modality,  # type: ignore[arg-type]
                                                    route=self.route, **fields))


def _present(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes cannot be None: leave out what is not known."""
    return {k: v for k, v in attributes.items() if v is not None}


def _cost_attributes(cost: tuple[float, str] | None) -> dict[str, Any]:
    return {} if cost is None else {"tarash.cost.amount": cost[0], "tarash.cost.currency": cost[1]}


__all__ = ["CallTelemetry", "cost_of"]
