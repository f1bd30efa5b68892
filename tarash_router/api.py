"""The public facade: generate video/images (sync and async), register providers, dry-run requests."""

from __future__ import annotations

import logging
from typing import Any

from .engine.render import prepare_job
from .engine.sync import run_sync
from .handlers import register_provider
from .handlers.base import get_spec_handler
from .models import (
    ImageGenerationConfig, ImageGenerationRequest, ImageGenerationResponse, ImageProgressCallback,
    ProgressCallback, VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse,
)
from .routing import execute, get_router
from .specs.mapping import get_provider_field_mapping, register_provider_field_mapping
from .specs.registry import get_registry

logger = logging.getLogger("tarash_router.api")


async def _run(config: Any, request: Any, on_progress: Any, modality: str) -> Any:
    if isinstance(config, str):
        logger.info("generate_%s route=%s", modality, config)
        return await get_router().run(config, request, on_progress, modality)
    logger.info("generate_%s provider=%s model=%s", modality, config.provider, config.model)
    return await execute(config, request, on_progress, modality)


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
    modality = "image" if isinstance(config, ImageGenerationConfig) else "video"
    family = get_registry().resolve(config.provider, config.model, modality)
    if family.handler_name is not None:
        return get_spec_handler(family.handler_name).render(family, config, request)
    job = prepare_job(family, config, request, dry_run=True)
    return job.build(family.submit, dry_run=True).redacted()


__all__ = [
    "generate_video", "generate_video_async", "generate_image", "generate_image_async", "register_provider",
    "register_provider_field_mapping", "get_provider_field_mapping", "render_request",
]
