"""Loopback fake provider servers for offline tests and benchmarks.

Only the standard library and aiohttp are used here (``pip install tarash-router[testing]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._server import Failure, FakeServer, RecordedRequest

if TYPE_CHECKING:
    from .fal import FakeFal, FalJob
    from .google import FakeGoogle, GoogleJob
    from .openai import FakeAzureOpenAI, FakeOpenAI, SoraJob
    from .replicate import FakeReplicate, ReplicateJob
    from .runway import FakeRunway, RunwayJob
    from .stability import FakeStability, StabilityScript
    from .xai import FakeXAI, XAIJob

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
