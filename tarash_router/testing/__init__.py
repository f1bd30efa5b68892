"""Loopback fake provider servers for offline tests and benchmarks.

Only the standard library and aiohttp are used here (``pip install tarash-router[testing]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._server import Failure, FakeServer, RecordedRequest

if TYPE_CHECKING:  # noqa: F401 - names exported lazily through __getattr__
    from .fal import FakeFal, FalJob  # noqa: F401
    from .google import FakeGoogle, GoogleJob  # noqa: F401
    from .openai import FakeAzureOpenAI, FakeOpenAI, SoraJob  # noqa: F401
    from .replicate import FakeReplicate, ReplicateJob  # noqa: F401
    from .runway import FakeRunway, RunwayJob  # noqa: F401
    from .stability import FakeStability, StabilityScript  # noqa: F401
    from .xai import FakeXAI, XAIJob  # noqa: F401

# Provider fakes load lazily so ``python -m tarash_router.testing.fal`` does not import the
# module twice (once via this package, once as __main__).
_LAZY = {
    "FakeFal": "fal", "FalJob": "fal",
    "FakeReplicate": "replicate", "ReplicateJob": "replicate",
    "FakeRunway": "runway", "RunwayJob": "runway",
    "FakeStability": "stability", "StabilityScript": "stability",
    "FakeXAI": "xai", "XAIJob": "xai",
    "FakeGoogle": "google", "GoogleJob": "google",
    "FakeOpenAI": "openai", "FakeAzureOpenAI": "openai", "SoraJob": "openai",
}

__all__ = ["Failure", "FakeServer", "RecordedRequest", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import provider fakes on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
