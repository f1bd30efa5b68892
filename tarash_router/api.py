"""The seed API as module functions: each is a method of the default `Client`, which uses the
process-wide spec registry, routes, journal and cooldowns (configured by `TARASH_*` settings,
`load_specs`, `load_routes`, `register_provider`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .engine.sync import run_sync
from .models import (
    ImageGenerationConfig, ImageGenerationRequest, ImageGenerationResponse, ImageProgressCallback, Job,
    ProgressCallback, VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse,
)

if TYPE_CHECKING:
    from .client import Client

# The client, engine, routing, specs and journal (httpx, jinja2, jsonpath, yaml, tenacity...) load on
# first call, not here: `from tarash_router import generate_video` stays cheap for CLIs and workers
# that may never generate anything in a given run.
_DEFAULT: Client | None = None
_LOCK = threading.Lock()


def default_client() -> Client:
    """The client behind the module functions (created on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _LOCK:
            if _DEFAULT is None:
                from .client import Client
                from .routing import get_router

                _DEFAULT = Client._process_default(get_router)
    return _DEFAULT


async def generate_video_async(
    config: VideoGenerationConfig | str, request: VideoGenerationRequest, on_progress: ProgressCallback | None = None,
) -> VideoGenerationResponse:
    """Generate a video with a config (and its fallbacks) or through a named route."""
    return await default_client().generate_video_async(config, request, on_progress)


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
    return await default_client().generate_image_async(config, request, on_progress)


def generate_image(
    config: ImageGenerationConfig | str, request: ImageGenerationRequest, on_progress: ImageProgressCallback | None = None,
) -> ImageGenerationResponse:
    """Blocking `generate_image_async`."""
    return run_sync(generate_image_async(config, request, on_progress))


async def resume_async(job_id: str, *, api_key: str | None = None, on_progress: Any = None,
                       timeout: float | None = None, provider_config: dict[str, Any] | None = None,
                       base_url: str | None = None) -> VideoGenerationResponse | ImageGenerationResponse:
    """Re-attach to a journaled job (e.g. after a crash) and finish it without submitting again.

    Secrets are never journaled: pass `api_key` (or set the provider's env var) and any credential
    that lived in `provider_config` again; a job submitted through a custom `base_url` needs it again.
    """
    return await default_client().resume_async(job_id, api_key=api_key, on_progress=on_progress, timeout=timeout,
                                                provider_config=provider_config, base_url=base_url)


def resume(job_id: str, *, api_key: str | None = None, on_progress: Any = None, timeout: float | None = None,
           provider_config: dict[str, Any] | None = None,
           base_url: str | None = None) -> VideoGenerationResponse | ImageGenerationResponse:
    """Blocking `resume_async`."""
    return run_sync(resume_async(job_id, api_key=api_key, on_progress=on_progress, timeout=timeout,
                                 provider_config=provider_config, base_url=base_url))


async def cancel_job_async(job_id: str, *, api_key: str | None = None, base_url: str | None = None) -> bool:
    """Cancel a journaled job at its provider; True if the provider accepted the cancel."""
    return await default_client().cancel_job_async(job_id, api_key=api_key, base_url=base_url)


async def submit_video_async(config: VideoGenerationConfig | str, request: VideoGenerationRequest,
                             on_progress: ProgressCallback | None = None, *, webhook_url: str | None = None) -> Job:
    """Submit a video generation and return its `Job` at once (see `Client.submit_video_async`)."""
    return await default_client().submit_video_async(config, request, on_progress, webhook_url=webhook_url)


def submit_video(config: VideoGenerationConfig | str, request: VideoGenerationRequest,
                 on_progress: ProgressCallback | None = None, *, webhook_url: str | None = None) -> Job:
    """Blocking `submit_video_async` (it blocks only for the submit)."""
    return run_sync(submit_video_async(config, request, on_progress, webhook_url=webhook_url))


async def submit_image_async(config: ImageGenerationConfig | str, request: ImageGenerationRequest,
                             on_progress: ImageProgressCallback | None = None, *, webhook_url: str | None = None) -> Job:
    """Submit an image generation and return its `Job` at once."""
    return await default_client().submit_image_async(config, request, on_progress, webhook_url=webhook_url)


def submit_image(config: ImageGenerationConfig | str, request: ImageGenerationRequest,
                 on_progress: ImageProgressCallback | None = None, *, webhook_url: str | None = None) -> Job:
    """Blocking `submit_image_async`."""
    return run_sync(submit_image_async(config, request, on_progress, webhook_url=webhook_url))


async def handle_webhook_async(provider: str, headers: Mapping[str, str], body: bytes | str, **kwargs: Any) -> Job:
    """Verify one webhook delivery and complete its journaled job once (see `Client.handle_webhook_async`)."""
    return await default_client().handle_webhook_async(provider, headers, body, **kwargs)


def handle_webhook(provider: str, headers: Mapping[str, str], body: bytes | str, **kwargs: Any) -> Job:
    """Blocking `handle_webhook_async`."""
    return run_sync(handle_webhook_async(provider, headers, body, **kwargs))


async def get_job_async(job_id: str, **kwargs: Any) -> Job:
    """Where a journaled job stands (one status request unless it has finished)."""
    return await default_client().get_job_async(job_id, **kwargs)


def get_job(job_id: str, **kwargs: Any) -> Job:
    """Blocking `get_job_async`."""
    return run_sync(get_job_async(job_id, **kwargs))


async def wait_async(job_id: str, **kwargs: Any) -> VideoGenerationResponse | ImageGenerationResponse:
    """The response of a submitted job, polling it to the end."""
    return await default_client().wait_async(job_id, **kwargs)


def wait(job_id: str, **kwargs: Any) -> VideoGenerationResponse | ImageGenerationResponse:
    """Blocking `wait_async`."""
    return run_sync(wait_async(job_id, **kwargs))


def cancel_job(job_id: str, *, api_key: str | None = None, base_url: str | None = None) -> bool:
    """Blocking `cancel_job_async`."""
    return run_sync(cancel_job_async(job_id, api_key=api_key, base_url=base_url))


async def list_jobs_async(**kwargs: Any) -> list[Job]:
    """Journaled jobs, newest first (`state=`, `older_than=` seconds, `limit=`)."""
    return await default_client().list_jobs_async(**kwargs)


def list_jobs(**kwargs: Any) -> list[Job]:
    """Blocking `list_jobs_async`."""
    return run_sync(list_jobs_async(**kwargs))


def render_request(
    config: VideoGenerationConfig | ImageGenerationConfig,
    request: VideoGenerationRequest | ImageGenerationRequest,
) -> dict[str, Any]:
    """The first HTTP request a generation would send, as JSON, with secrets masked. No network.

    Raises ValidationError exactly where a real call would, before anything is sent.
    """
    return default_client().render_request(config, request)


def register_provider(provider: str, handler: Any) -> None:
    """Serve `provider` with a Python handler (four ProviderHandler methods); overrides a built-in."""
    from .engine.runtime import PROCESS_TRANSPORTS

    PROCESS_TRANSPORTS.serve_provider(provider, handler)


def unregister_provider(provider: str) -> None:
    """Remove a registered handler (the built-in spec, if any, serves the name again)."""
    from .engine.runtime import PROCESS_TRANSPORTS

    PROCESS_TRANSPORTS.unserve_provider(provider)


def register_transport(name: str, transport: Any) -> None:
    """Make `handler: <name>` valid in specs, served by `transport` (the four verbs, or an object
    with `run()` and `render()`); every client sees it."""
    from .engine.runtime import PROCESS_TRANSPORTS

    PROCESS_TRANSPORTS.register(name, transport)


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
    "unregister_provider", "register_transport", "register_provider_field_mapping", "get_provider_field_mapping",
    "render_request", "resume", "resume_async", "cancel_job_async", "default_client", "submit_video",
    "submit_video_async", "submit_image", "submit_image_async", "get_job", "get_job_async", "wait", "wait_async",
    "handle_webhook", "handle_webhook_async",
    "cancel_job", "list_jobs", "list_jobs_async",
]
