"""Run a config's fallback chain (the seed API's `fallback_configs`), recording every attempt."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from ..engine.runner import run_generation
from ..errors import TarashException
from ..handlers import get_handler
from ..models import AttemptMetadata, ExecutionMetadata, GenerationConfig, GenerationRequest
from ..specs.registry import get_registry

logger = logging.getLogger("tarash_router.routing")


def collect_fallback_chain(config: GenerationConfig) -> list[GenerationConfig]:
    """The config, then its fallbacks depth-first (a fallback's own fallbacks come right after it)."""
    chain = [config]
    for fallback in config.fallback_configs or []:
        chain.extend(collect_fallback_chain(fallback))
    return chain


async def dispatch(config: GenerationConfig, request: GenerationRequest, on_progress: Any, modality: str) -> Any:
    """Run one target: a mock, a registered handler, or the spec engine."""
    if config.mock is not None and config.mock.enabled:
        from ..handlers.mock import run_mock

        return await run_mock(config, request, on_progress, modality)
    handler = get_handler(config.provider)
    if handler is not None:
        method = getattr(handler, f"generate_{modality}_async")
        return await method(config, request, on_progress)
    family = get_registry().resolve(config.provider, config.model, modality)
    return await run_generation(family, config, request, on_progress, modality)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _as_tarash(exc: Exception, config: GenerationConfig) -> TarashException:
    if isinstance(exc, TarashException):
        return exc
    wrapped = TarashException(f"{type(exc).__name__}: {exc}", provider=config.provider, model=config.model,
                              retryable=False)
    wrapped.__cause__ = exc
    return wrapped


async def execute(config: GenerationConfig, request: GenerationRequest, on_progress: Any, modality: str) -> Any:
    """Try each config of the chain in order; fall back only on retryable errors."""
    chain = collect_fallback_chain(config)
    metadata = ExecutionMetadata(configs_in_chain=len(chain))
    for number, target in enumerate(chain, start=1):
        attempt = AttemptMetadata(provider=target.provider, model=target.model, attempt_number=number)
        metadata.attempts.append(attempt)
        metadata.total_attempts = number
        metadata.fallback_triggered = number > 1
        try:
            response = await dispatch(target, request, on_progress, modality)
        except Exception as raw:  # noqa: BLE001 - every failure is recorded, then re-raised or fallen back from
            exc = _as_tarash(raw, target)
            attempt.ended_at = _now()
            attempt.error_type = type(exc).__name__
            attempt.error_message = str(exc.message)
            attempt.is_retryable = exc.retryable
            attempt.request_id = exc.request_id
            if not exc.retryable or number == len(chain):
                exc.execution_metadata = metadata
                if exc is raw:
                    raise
                raise exc from raw
            logger.warning("%s/%s failed (%s); falling back to %s/%s", target.provider, target.model,
                           type(exc).__name__, chain[number].provider, chain[number].model)
            continue
        attempt.ended_at = _now()
        attempt.status = "success"
        attempt.request_id = getattr(response, "request_id", None)
        metadata.successful_attempt = number
        return response.model_copy(update={"execution_metadata": metadata})
    raise AssertionError("empty chain")
