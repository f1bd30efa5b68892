"""Small helpers that are part of the public API."""

from __future__ import annotations

import uuid


def generate_unique_id() -> str:
    """A random request id for providers that do not return one."""
    return str(uuid.uuid4())


__all__ = ["generate_unique_id"]
