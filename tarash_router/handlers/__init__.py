"""Python provider handlers: user-registered ones (`register_provider`) and SDK special cases."""

from __future__ import annotations

import threading
from typing import Any

from ..models import ProviderHandler

_HANDLERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def register_provider(provider: str, handler: ProviderHandler) -> None:
    """Serve `provider` with `handler` (an object with the four ProviderHandler methods).

    Registering a built-in provider's name overrides the built-in for every model of it.
    """
    missing = [m for m in ("generate_video", "generate_video_async", "generate_image", "generate_image_async")
               if not callable(getattr(handler, m, None))]
    if missing:
        raise TypeError(f"handler for {provider!r} lacks ProviderHandler methods: {', '.join(missing)}")
    with _LOCK:
        _HANDLERS[provider] = handler


def unregister_provider(provider: str) -> None:
    """Remove a registered handler (the built-in spec, if any, serves the name again)."""
    with _LOCK:
        _HANDLERS.pop(provider, None)


def get_handler(provider: str) -> Any | None:
    return _HANDLERS.get(provider)


__all__ = ["register_provider", "unregister_provider", "get_handler"]


# Built-in SDK handlers, imported on first use (their SDKs are optional extras).
def _register_builtin_handlers() -> None:
    from .base import register_spec_handler

    for name, target in BUILTIN_SPEC_HANDLERS.items():
        register_spec_handler(name, target)


BUILTIN_SPEC_HANDLERS: dict[str, str] = {
    "openai_videos": "tarash_router.handlers.openai_videos:OpenAIVideosHandler",
    "openai_images": "tarash_router.handlers.openai_images:OpenAIImagesHandler",
    "azure_openai_videos": "tarash_router.handlers.openai_videos:AzureOpenAIVideosHandler",
    "azure_openai_images": "tarash_router.handlers.openai_images:AzureOpenAIImagesHandler",
    "google_vertex": "tarash_router.handlers.google_vertex:VertexHandler",
}
_register_builtin_handlers()
