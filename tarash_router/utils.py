"""Small helpers that are part of the public API."""

from __future__ import annotations

import uuid
from typing import Any


def generate_unique_id() -> str:
    """A random request id for providers that do not return one."""
    return str(uuid.uuid4())


def to_float(value: Any) -> float | None:
    """float(value), or None when it is missing or not a number (provider fields vary)."""
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


__all__ = ["generate_unique_id", "to_float"]
