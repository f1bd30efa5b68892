"""Python handlers a spec can name (`handler: openai_videos`) where a vendor SDK is the right transport.

The family spec still declares models, params, capabilities and the `body` mapping from the unified
request to the SDK's arguments; routing, validation, `render` and `providers` treat it like any
other spec. The handler only does the transport: call the SDK, poll, report progress, build the
response. SDKs are optional extras, imported when a handler runs, never at package import.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from ..errors import TarashException
from ..specs.compiled import FamilySpec
from ..specs.loader import KNOWN_HANDLERS


class SpecHandler(Protocol):
    """What a spec-named handler implements."""

    async def run(self, family: FamilySpec, config: Any, request: Any, on_progress: Any, modality: str) -> Any:
        """Run one generation and return the response model. Call `engine.render.prepare_job` first:
        it validates the request against the family's params and renders the body."""

    def render(self, family: FamilySpec, config: Any, request: Any) -> dict[str, Any]:
        """The first HTTP request the SDK would send, as `{method, url, headers, json|form|files}`,
        secret header values masked. No network."""


class MissingExtraError(TarashException):
    """A handler needs an optional SDK that is not installed."""


# handler name -> "module:attribute" (imported on first use) or an instance.
_SPEC_HANDLERS: dict[str, Any] = {}


def register_spec_handler(name: str, target: str | SpecHandler) -> None:
    """Make `handler: <name>` valid in specs; `target` is an object or a lazy "module:attr" path."""
    _SPEC_HANDLERS[name] = target
    KNOWN_HANDLERS.add(name)


def get_spec_handler(name: str) -> SpecHandler:
    target = _SPEC_HANDLERS.get(name)
    if target is None:
        known = ", ".join(sorted(_SPEC_HANDLERS)) or "none"
        raise TarashException(f"no handler named {name!r} (known: {known})")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)()
        _SPEC_HANDLERS[name] = target
    return target


def require_sdk(module: str, extra: str, provider: str) -> Any:
    """Import an optional SDK, or raise a clear error naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{provider} needs the {module!r} package: pip install 'tarash-router[{extra}]'",
            provider=provider, retryable=False) from None


__all__ = ["SpecHandler", "register_spec_handler", "get_spec_handler", "require_sdk", "MissingExtraError"]
