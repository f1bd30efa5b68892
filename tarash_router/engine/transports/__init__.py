"""Transports: the spec engine, the SDK transports a spec names (`handler:`), and adapters that let a
seed-style `ProviderHandler` or a whole-generation `run()` object plug into the same lifecycle."""

from __future__ import annotations

import importlib
import threading
from typing import Any, cast

from ...errors import TarashException
from ...specs.loader import KNOWN_HANDLERS
from ..transport import BaseTransport, Call, Status, Transport
from .spec import SpecTransport

# `handler:` names of the built-in SDK transports, imported on first use (their SDKs are extras).
BUILTIN_TRANSPORTS: dict[str, str] = {
    "openai_videos": "tarash_router.engine.transports.openai_videos:OpenAIVideosTransport",
    "openai_images": "tarash_router.engine.transports.openai_images:OpenAIImagesTransport",
    "azure_openai_videos": "tarash_router.engine.transports.openai_videos:AzureOpenAIVideosTransport",
    "azure_openai_images": "tarash_router.engine.transports.openai_images:AzureOpenAIImagesTransport",
    "google_vertex": "tarash_router.engine.transports.vertex:VertexTransport",
}


class RunAdapter(BaseTransport):
    """An object with `run(family, config, request, on_progress, modality)` (a whole generation in one
    call) as a transport: its submit is the run. It reports its own progress."""

    reports_progress = True

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    async def submit(self, call: Call) -> Status:
        response = await self.handler.run(call.family, call.config, call.request, call.on_progress, call.modality)
        return Status("completed", native=response)

    def render(self, call: Call) -> dict[str, Any]:
        rendered: dict[str, Any] = self.handler.render(call.family, call.config, call.request)
        return rendered


class ProviderHandlerAdapter(BaseTransport):
    """The seed API's four-method `ProviderHandler` (registered with `register_provider`) as a transport."""

    reports_progress = True

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    async def submit(self, call: Call) -> Status:
        method = getattr(self.handler, f"generate_{call.modality}_async")
        return Status("completed", native=await method(call.config, call.request, call.on_progress))

    async def fetch(self, call: Call, status: Status) -> Any:
        """The handler's response, naming the provider and model it was called for when it did not."""
        response = status.native
        missing = {name: getattr(call.config, name) for name in ("provider", "model")
                   if getattr(response, name, "") is None}
        return response.model_copy(update=missing) if missing and hasattr(response, "model_copy") else response


def as_transport(target: Any) -> Transport:
    """A transport from what a user registered: a transport as is, a `run()` object adapted."""
    if callable(getattr(target, "submit", None)) and callable(getattr(target, "poll", None)):
        return cast(Transport, target)  # duck-typed: the verbs are there
    if callable(getattr(target, "run", None)):
        return RunAdapter(target)
    raise TypeError(f"{type(target).__name__} is neither a transport (submit, poll, fetch, cancel) nor has run()")


class TransportTable:
    """The transports one client can use: the spec engine, named SDK transports, and providers served
    by a Python handler. Named transports are built on first use and kept (one SDK client cache each)."""

    def __init__(self, parent: TransportTable | None = None) -> None:
        self.spec = SpecTransport()
        self._named: dict[str, Any] = {}
        self._providers: dict[str, Transport] = {}
        self._parent = parent  # consulted for names and providers this table does not have
        self._lock = threading.Lock()

    def register(self, name: str, target: Any) -> None:
        """Make `handler: <name>` valid in specs; `target` is a transport, a `run()` object, or a lazy
        "module:attribute" path."""
        with self._lock:
            self._named[name] = target
        KNOWN_HANDLERS.add(name)

    def named(self, name: str) -> Transport:
        target = self._named.get(name)
        if target is None:
            if self._parent is not None:
                return self._parent.named(name)
            if name not in BUILTIN_TRANSPORTS:
                known = ", ".join(sorted({*self._named, *BUILTIN_TRANSPORTS}))
                raise TarashException(f"no handler named {name!r} (known: {known})")
            target = BUILTIN_TRANSPORTS[name]
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)()
        transport = as_transport(target)
        with self._lock:
            self._named[name] = transport
        return transport

    def serve_provider(self, provider: str, handler: Any) -> None:
        """Serve every model of `provider` with a seed-style ProviderHandler (overrides specs)."""
        missing = [m for m in ("generate_video", "generate_video_async", "generate_image", "generate_image_async")
                   if not callable(getattr(handler, m, None))]
        if missing:
            raise TypeError(f"handler for {provider!r} lacks ProviderHandler methods: {', '.join(missing)}")
        with self._lock:
            self._providers[provider] = ProviderHandlerAdapter(handler)

    def unserve_provider(self, provider: str) -> None:
        with self._lock:
            self._providers.pop(provider, None)

    def for_provider(self, provider: str) -> Transport | None:
        found = self._providers.get(provider)
        if found is None and self._parent is not None:
            return self._parent.for_provider(provider)
        return found

    def for_family(self, family: Any) -> Transport:
        return self.spec if family.handler_name is None else self.named(family.handler_name)


__all__ = ["TransportTable", "SpecTransport", "RunAdapter", "ProviderHandlerAdapter", "as_transport",
           "BUILTIN_TRANSPORTS"]
