"""Run the async core from sync code, including from a thread whose event loop is already running.

One daemon thread owns a long-lived event loop; sync calls submit coroutines to it and block on
the result. Pooled connections therefore live on one loop and are reused across sync calls.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def forget_after_fork(self) -> None:
        """In a forked child (a prefork task pool) the parent's loop thread does not exist: start afresh
        on first use instead of handing coroutines to a loop nobody runs."""
        self._loop = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="tarash-router-loop", daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop()
        if threading.current_thread().name == "tarash-router-loop":
            coro.close()
            raise RuntimeError("a sync tarash_router call from a progress callback would deadlock; "
                               "use the async API (await generate_video_async(...)) there")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()  # cancels the job remotely where the provider supports it
            raise


_RUNNER = _LoopThread()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_RUNNER.forget_after_fork)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on the shared background loop and return its result."""
    return _RUNNER.run(coro)


__all__ = ["run_sync"]
