"""Loopback fake provider servers for offline tests and benchmarks.

Only the standard library and aiohttp are used here (``pip install tarash-router[testing]``).
"""

from ._server import Failure, FakeServer, RecordedRequest
from .fal import FakeFal, FalJob

__all__ = ["Failure", "FakeFal", "FakeServer", "FalJob", "RecordedRequest"]
