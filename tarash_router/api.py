"""The public facade: generate video/images (sync and async), register providers, dry-run requests."""

from __future__ import annotations

import logging
from typing import Any

from .engine.sync import run_sync
from .errors import GenerationFailedError, ValidationError
from .models import (
    ImageGenerationConfig, ImageGenerationRequest, ImageGenerationResponse, ImageProgressCallback,
    ProgressCallback, VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse,
)

# The engine, routing, specs and journal (httpx, jinja2, jsonpath, yaml, tenacity...) are imported on
# first call, not here: `from tarash_router import generate_video` stays cheap for CLIs and workers
# that may never generate anything in a given run. Functions below import what they use.

logger = logging.getLogger("tarash_router.api")


async def _run(config: Any, request: Any, on_progress: Any, modality: str) -> Any:
    from .routing import collect_fallback_chain, execute, get_router

    if isinstance(config, str):
        logger.info("generate_%s route=%s", modality, config)

        def run() -> Any:
            return get_router().run(config, request, on_progress, modality)

        policy = get_router().get(config, modality).policy
        target, timeout, allow_resubmit = f"route:{config}", policy.deadline or 3600.0, policy.resubmit_if_unknown
    else:
        logger.info("generate_%s provider=%s model=%s", modality, config.provider, config.model)

        def run() -> Any:
            return execute(config, request, on_progress, modality)

        chain = collect_fallback_chain(config)
        target = "|".join(f"{c.provider}/{c.model}" for c in chain)
        timeout = sum(c.timeout for c in chain)
        allow_resubmit = False
    if request.idempotency_key:
        from .journal import get_journal
        from .journal.idempotency import run_idempotent

        async def take_over(job_id: str) -> Any:  # resume the dead owner's job with this call's credentials
            record = await get_journal().get(job_id)
            source = _credentials_for(config, record.provider, record.model) if record else None
            return await resume_async(job_id, on_progress=on_progress, api_key=getattr(source, "api_key", None),
                                      provider_config=getattr(source, "provider_config", None),
                                      base_url=getattr(source, "base_url", None))

        return await run_idempotent(request.idempotency_key, target, request, modality, timeout, run, take_over,
                                    allow_resubmit=allow_resubmit)
    return await run()


def _credentials_for(config: Any, provider: str, model: str) -> Any:
    """The config (or route target config) of this call that sent the job to provider/model."""
    from .routing import collect_fallback_chain, get_router

    if isinstance(config, str):
        route = get_router().get(config)
        targets = [t.build_config(route.modality, None) for t in route.targets]
    else:
        targets = collect_fallback_chain(config)
    return next((c for c in targets if c.provider == provider and c.model == model), None)


async def resume_async(job_id: str, *, api_key: str | None = None, on_progress: Any = None,
                       timeout: float | None = None, provider_config: dict[str, Any] | None = None,
                       base_url: str | None = None) -> VideoGenerationResponse | ImageGenerationResponse:
    """Re-attach to a journaled job (e.g. after a crash) and finish it without submitting again.

    Secrets are never journaled: pass `api_key` (or set the provider's env var) and any credential
    that lived in `provider_config` again. The journal is not trusted to say where the key may go:
    a job submitted through a custom `base_url` needs that `base_url` again.
    """
    from .engine.runner import resume_generation
    from .handlers.base import get_spec_handler
    from .journal import get_journal
    from .settings import get_settings
    from .specs.registry import get_registry

    record = await get_journal().get(job_id)
    if record is None:
        raise ValidationError(f"no journaled job {job_id!r} (journal: {get_settings().journal})")
    response_cls = VideoGenerationResponse if record.modality == "video" else ImageGenerationResponse
    if record.state == "completed" and record.result is not None:
        return response_cls.model_validate(record.result)
    if record.state in ("failed", "cancelled"):
        error = record.error or {}
        raise GenerationFailedError(f"job {job_id} {record.state}: {error.get('message', 'no detail')}",
                                    provider=record.provider, model=record.model, request_id=job_id,
                                    raw_response=error, retryable=False, job_may_exist=True)
    family = get_registry().resolve(record.provider, record.model, record.modality)
    config = _config_for(record, family, api_key, timeout, provider_config, base_url)
    if family.handler_name is not None:
        handler = get_spec_handler(family.handler_name)
        if not hasattr(handler, "resume"):
            raise ValidationError(f"{record.provider} jobs cannot be resumed (handler {family.handler_name})",
                                  provider=record.provider, model=record.model, request_id=job_id)
        return await handler.resume(family, record, config, on_progress)
    return await resume_generation(record, config, on_progress)


async def cancel_job_async(job_id: str, *, api_key: str | None = None, base_url: str | None = None) -> bool:
    """Cancel a journaled job at its provider; True if the provider accepted the cancel."""
    from .engine.runner import cancel_recorded
    from .journal import get_journal
    from .settings import get_settings
    from .specs.registry import get_registry

    record = await get_journal().get(job_id)
    if record is None:
        raise ValidationError(f"no journaled job {job_id!r} (journal: {get_settings().journal})")
    if record.state in ("completed", "failed", "cancelled"):
        return False
    family = get_registry().resolve(record.provider, record.model, record.modality)
    return await cancel_recorded(record, _config_for(record, family, api_key, None, None, base_url))


def _config_for(record: Any, family: Any, api_key: str | None, timeout: float | None,
                provider_config: dict[str, Any] | None, base_url: str | None) -> Any:
    """The config to follow a journaled job with. What decides where credentials go (the base URL,
    URLs in provider_config) comes from the caller, never from the journal record."""
    default = (family.provider.file.base_url or "").rstrip("/")
    wanted = (base_url or default).rstrip("/")
    if record.base_url and record.base_url.rstrip("/") != wanted:
        raise ValidationError(
            f"job {record.job_id} was submitted through {record.base_url}; pass base_url={record.base_url!r} "
            "to follow it there (the journal alone cannot send the API key to a new host)",
            provider=record.provider, model=record.model, request_id=record.job_id)
    journaled = {k: v for k, v in record.provider_config.items()
                 if not (isinstance(v, str) and v.startswith(("http://", "https://")))}
    config_cls = VideoGenerationConfig if record.modality == "video" else ImageGenerationConfig
    return config_cls(provider=record.provider, model=record.model, api_key=api_key, base_url=base_url,
                      timeout=timeout or record.timeout, poll_interval=record.poll_interval,
                      max_poll_attempts=record.max_poll_attempts,
                      provider_config={**journaled, **(provider_config or {})})


def resume(job_id: str, *, api_key: str | None = None, on_progress: Any = None, timeout: float | None = None,
           provider_config: dict[str, Any] | None = None, base_url: str | None = None) -> VideoGenerationResponse | ImageGenerationResponse:
    """Blocking `resume_async`."""
    return run_sync(resume_async(job_id, api_key=api_key, on_progress=on_progress, timeout=timeout,
                                 provider_config=provider_config, base_url=base_url))


async def generate_video_async(
    config: VideoGenerationConfig | str, request: VideoGenerationRequest, on_progress: ProgressCallback | None = None,
) -> VideoGenerationResponse:
    """Generate a video with a config (and its fallbacks) or through a named route."""
    return await _run(config, request, on_progress, "video")


def generate_video(
    config: VideoGenerationConfig | str, request: VideoGenerationRequest, on_progress: ProgressCallback | None = None,
) -> VideoGenerationResponse:
    """Blocking `generate_video_async`; works inside a running event loop too; async callbacks are awaited."""
    return run_sync(generate_video_async(config, request, on_progress))


async def generate_image_async(
    config: ImageGenerationConfig | str, request: ImageGenerationRequest,
    on_progress: ImageProgressCallback | None = None,
) -> ImageGenerationResponse:
    """Generate images with a config (and its fallbacks) or through a named route."""
    return await _run(config, request, on_progress, "image")


def generate_image(
    config: ImageGenerationConfig | str, request: ImageGenerationRequest, on_progress: ImageProgressCallback | None = None,
) -> ImageGenerationResponse:
    """Blocking `generate_image_async`."""
    return run_sync(generate_image_async(config, request, on_progress))


def render_request(
    config: VideoGenerationConfig | ImageGenerationConfig,
    request: VideoGenerationRequest | ImageGenerationRequest,
) -> dict[str, Any]:
    """The first HTTP request a generation would send, as JSON, with secrets masked. No network.

    Raises ValidationError exactly where a real call would, before anything is sent.
    """
    from .engine.render import prepare_job
    from .handlers.base import get_spec_handler
    from .specs.registry import get_registry

    modality = "image" if isinstance(config, ImageGenerationConfig) else "video"
    family = get_registry().resolve(config.provider, config.model, modality)
    if family.handler_name is not None:
        return get_spec_handler(family.handler_name).render(family, config, request)
    job = prepare_job(family, config, request, dry_run=True)
    return job.build(family.submit, dry_run=True).redacted()


def register_provider(provider: str, handler: Any) -> None:
    """Serve `provider` with a Python handler (four ProviderHandler methods); overrides a built-in."""
    from .handlers import register_provider as register

    register(provider, handler)


def register_provider_field_mapping(provider: str, model_mappings: dict[str, dict[str, Any]],
                                    modality: str = "video") -> None:
    """Map model prefixes' request fields to provider fields (templates); becomes an in-memory family."""
    from .specs.mapping import register_provider_field_mapping as register

    register(provider, model_mappings, modality)


def get_provider_field_mapping(provider: str) -> dict[str, dict[str, Any]] | None:
    """Model prefix -> {provider field: template} for every family of `provider`, or None."""
    from .specs.mapping import get_provider_field_mapping as get

    return get(provider)


__all__ = [
    "generate_video", "generate_video_async", "generate_image", "generate_image_async", "register_provider",
    "register_provider_field_mapping", "get_provider_field_mapping", "render_request", "resume", "resume_async",
    "cancel_job_async",
]
