"""tarash-router: one API for AI video and image generation across providers, driven by YAML specs.

    from tarash_router import generate_video
    from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .api import (
    generate_image, generate_image_async, generate_video, generate_video_async, get_provider_field_mapping,
    register_provider, register_provider_field_mapping, render_request, resume, resume_async,
)
from .engine.client import aclose_clients
from .errors import (
    AuthenticationError, ConfigError, ContentModerationError, GenerationFailedError, HTTPConnectionError, HTTPError,
    RateLimitError, SpecError, TarashException, TimeoutError, ValidationError,
)
from .models import (
    AspectRatio, ExecutionMetadata, ImageGenerationConfig, ImageGenerationRequest, ImageGenerationResponse,
    ImageGenerationUpdate, ImageType, MediaContent, Resolution, VideoGenerationConfig, VideoGenerationRequest,
    VideoGenerationResponse, VideoGenerationUpdate,
)
from .routing import Router, get_router, load_routes
from .specs.registry import get_registry, load_specs

try:
    __version__ = version("tarash-router")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "generate_video", "generate_video_async", "generate_image", "generate_image_async", "register_provider",
    "register_provider_field_mapping", "get_provider_field_mapping", "render_request", "load_specs", "get_registry",
    "aclose_clients", "Router", "get_router", "load_routes", "resume", "resume_async",
    "VideoGenerationConfig", "VideoGenerationRequest", "VideoGenerationResponse", "VideoGenerationUpdate",
    "ImageGenerationConfig", "ImageGenerationRequest", "ImageGenerationResponse", "ImageGenerationUpdate",
    "ExecutionMetadata", "MediaContent", "ImageType", "Resolution", "AspectRatio",
    "TarashException", "ValidationError", "ContentModerationError", "HTTPError", "AuthenticationError",
    "RateLimitError", "GenerationFailedError", "HTTPConnectionError", "TimeoutError", "SpecError", "ConfigError",
    "__version__",
]
