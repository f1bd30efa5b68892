"""Shared helpers for journal tests: a throwaway redis-server, journal URLs, child processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

_PIDS: dict[str, int] = {}  # url -> pid of the redis-server started for it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on loopback for the test; skipped (visibly) only outside CI."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run must install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI always runs these")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                time.sleep(0.05)
        url = f"redis://127.0.0.1:{port}/0"
        _PIDS[url] = proc.pid
        yield url
    finally:
        _PIDS.pop(f"redis://127.0.0.1:{port}/0", None)
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def stalled(url: str) -> Iterator[None]:
    """The redis-server behind `url` stopped (SIGSTOP): it accepts connections and never answers."""
    pid = _PIDS[url]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
