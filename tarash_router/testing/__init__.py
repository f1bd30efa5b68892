"""Loopback fake provider servers for offline tests and benchmarks.

Only the standard library and aiohttp are used here (``pip install tarash-router[testing]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._server import Failure, FakeServer, RecordedRequest

if TYPE_CHECKING:
    from .fal import FakeFal, FalJob

__all__ = ["Failure", "FakeFal", "FakeServer", "FalJob", "RecordedRequest"]

# Provider fakes load lazily so ``python -m tarash_router.testing.fal`` does not import the
# module twice (once via this package, once as __main__).
_LAZY = {"FakeFal": "fal", "FalJob": "fal"}


def __getattr__(name: str) -> Any:
    """Import provider fakes on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
