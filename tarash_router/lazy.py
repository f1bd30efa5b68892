"""`Lazy`: a process-wide object built on first use (thread-safe), replaceable and resettable."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """Holds one instance made by `factory` the first time `get()` is called."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
                value = self._value
        return value

    def peek(self) -> T | None:
        """The instance if one was built, without building one."""
        return self._value

    def set(self, value: T | None) -> None:
        """Use `value` from now on; None makes the next `get()` build a fresh one."""
        with self._lock:
            self._value = value


__all__ = ["Lazy"]
