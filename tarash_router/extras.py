"""Optional dependencies (vendor SDKs, redis...): imported when used, with a clear error naming the extra."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import MissingExtraError


def require_sdk(module: str, extra: str, provider: str) -> Any:
    """Import an optional package, or raise MissingExtraError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{provider} needs the {module!r} package: pip install 'tarash-router[{extra}]'",
            provider=provider, retryable=False) from None


__all__ = ["require_sdk", "MissingExtraError"]
