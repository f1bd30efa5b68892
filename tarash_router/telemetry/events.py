"""`TelemetryEvent`: what `Client(on_event=...)` callbacks receive, and their safe delivery."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Union

logger = logging.getLogger("tarash_router.telemetry")

EventKind = Literal["attempt_start", "attempt_end", "skip", "fallback", "success", "failure"]


@dataclass(frozen=True)
class TelemetryEvent:
    """One step of a routed call, for logging tools. Never carries a key; the prompt never, either.

    kind: `attempt_start` / `attempt_end` (one try at a target), `skip` (a target passed over),
      `fallback` (the chain moves on after a failure: provider/model name the next target),
      `success` / `failure` (the call as a whole).
    outcome: for `attempt_end`, `completed`, `submitted`, `retry` (the same target is tried again),
      `fallback` (the next target is tried), `failed` (the call ends) or `cancelled`; for the call,
      `completed`, `submitted`, `failed` or `cancelled`; `skipped` for a skip.
    attempt: the attempt's number in `ExecutionMetadata.attempts` (1-based, skips included);
    retry: 0 for the first try at a target, 1.. for its retries.
    elapsed: seconds the attempt (or, for success/failure, the whole call) took.
    error_message: the error's message with the keys and (unless prompts are allowed) the prompt
      masked.
    """

    kind: EventKind
    modality: str
    provider: str | None = None
    model: str | None = None
    route: str | None = None
    attempt: int | None = None
    retry: int | None = None
    outcome: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    reason: str | None = None
    elapsed: float | None = None
    queue_wait: float | None = None
    job_id: str | None = None
    cost_amount: float | None = None
    cost_currency: str | None = None


OnEvent = Callable[[TelemetryEvent], Union[Awaitable[None], None]]


async def deliver(callback: OnEvent, event: TelemetryEvent) -> None:
    """Call a sync or async callback; its failure is logged, never fatal to a paid job."""
    try:
        result = callback(event)
        if inspect.isawaitable(result):
            await result
    except Exception:  # noqa: BLE001 - a logging hook must not break the generation
        logger.exception("on_event callback raised on a %s event; the generation continues", event.kind)


__all__ = ["TelemetryEvent", "EventKind", "OnEvent", "deliver"]
