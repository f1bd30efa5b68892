"""tarash-router: one API for AI video and image generation across providers, driven by YAML specs.

    from tarash_router import generate_video
    from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest

or, for a configuration of your own (specs, routes, journal) beside any other in the process:

    from tarash_router import Client

Names are imported on first use (PEP 562), so `import tarash_router` stays cheap and pulls in no
HTTP stack, template engine or vendor SDK until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    **dict.fromkeys([
        "generate_video", "generate_video_async", "generate_image", "generate_image_async", "register_provider",
        "unregister_provider", "register_transport", "register_provider_field_mapping", "get_provider_field_mapping",
        "render_request", "resume", "resume_async", "cancel_job_async", "default_client", "submit_video",
        "submit_video_async", "submit_image", "submit_image_async", "get_job", "get_job_async", "wait", "wait_async",
        "cancel_job", "list_jobs", "list_jobs_async", "handle_webhook", "handle_webhook_async",
    ], "api"),
    "Client": "client",
    "aclose_clients": "engine.client",
    **dict.fromkeys([
        "TarashException", "ValidationError", "ContentModerationError", "HTTPError", "AuthenticationError",
        "RateLimitError", "GenerationFailedError", "HTTPConnectionError", "TimeoutError", "SpecError", "ConfigError",
        "WebhookError", "AccountAtLimitError", "BudgetExceededError",
    ], "errors"),
    **dict.fromkeys([
        "VideoGenerationConfig", "VideoGenerationRequest", "VideoGenerationResponse", "VideoGenerationUpdate",
        "ImageGenerationConfig", "ImageGenerationRequest", "ImageGenerationResponse", "ImageGenerationUpdate",
        "ExecutionMetadata", "AttemptMetadata", "MediaContent", "ImageType", "Resolution", "AspectRatio", "Job",
        "Cost",
    ], "models"),
    **dict.fromkeys(["Router", "get_router", "load_routes"], "routing"),
    **dict.fromkeys(["get_registry", "load_specs"], "specs.registry"),
}

# Written out (not built from _EXPORTS) so that type checkers see what the package exports;
# tests/test_packaging.py keeps the two in step.
__all__ = [
    "AccountAtLimitError", "AspectRatio", "AttemptMetadata", "AuthenticationError", "BudgetExceededError", "Client",
    "ConfigError", "ContentModerationError", "Cost", "ExecutionMetadata", "GenerationFailedError",
    "HTTPConnectionError", "HTTPError", "ImageGenerationConfig", "ImageGenerationRequest", "ImageGenerationResponse",
    "ImageGenerationUpdate", "ImageType", "Job", "MediaContent", "RateLimitError", "Resolution", "Router",
    "SpecError", "TarashException", "TimeoutError", "ValidationError", "VideoGenerationConfig",
    "VideoGenerationRequest", "VideoGenerationResponse", "VideoGenerationUpdate", "WebhookError", "aclose_clients",
    "cancel_job", "cancel_job_async", "default_client", "generate_image", "generate_image_async", "generate_video",
    "generate_video_async", "get_job", "get_job_async", "get_provider_field_mapping", "get_registry", "get_router",
    "handle_webhook", "handle_webhook_async", "list_jobs", "list_jobs_async", "load_routes", "load_specs",
    "register_provider", "register_provider_field_mapping", "register_transport", "render_request", "resume",
    "resume_async", "submit_image", "submit_image_async", "submit_video", "submit_video_async",
    "unregister_provider", "wait", "wait_async", "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs ~30 ms: read it only when asked
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("tarash-router")
        except PackageNotFoundError:  # running from a source tree
            return "0.0.0"
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tarash_router' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the names as if imported eagerly
    from .api import (  # noqa: F401
        cancel_job, cancel_job_async, default_client, generate_image, generate_image_async, generate_video,
        generate_video_async, get_job, get_job_async, get_provider_field_mapping, handle_webhook, handle_webhook_async,
        list_jobs, list_jobs_async,
        register_provider, register_provider_field_mapping, register_transport, render_request, resume, resume_async,
        submit_image, submit_image_async, submit_video, submit_video_async, unregister_provider, wait, wait_async,
    )
    from .client import Client  # noqa: F401
    from .engine.client import aclose_clients  # noqa: F401
    from .errors import (  # noqa: F401
        AccountAtLimitError, AuthenticationError, BudgetExceededError, ConfigError, ContentModerationError,
        GenerationFailedError, HTTPConnectionError, HTTPError, RateLimitError, SpecError, TarashException, TimeoutError,
        ValidationError, WebhookError,
    )
    from .models import (  # noqa: F401
        AspectRatio, AttemptMetadata, Cost, ExecutionMetadata, ImageGenerationConfig, ImageGenerationRequest,
        ImageGenerationResponse, ImageGenerationUpdate, ImageType, Job, MediaContent, Resolution, VideoGenerationConfig,
        VideoGenerationRequest, VideoGenerationResponse, VideoGenerationUpdate,
    )
    from .routing import Router, get_router, load_routes  # noqa: F401
    from .specs.registry import get_registry, load_specs  # noqa: F401
