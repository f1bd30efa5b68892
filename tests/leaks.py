"""Leak checks for tests that run the real engine against a loopback fake: after a call no task may
be left on its event loop, and no client socket to the fake left open (read from /proc, so it sees
real file descriptors, not the engine's bookkeeping)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import tarash_router

T = TypeVar("T")


def _tcp_table() -> dict[int, int]:
    """inode -> remote port of every TCP socket on this host (IPv4 and IPv6)."""
    table: dict[int, int] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, inode = fields[2], int(fields[9])
            if inode:
                table[inode] = int(remote.rsplit(":", 1)[1], 16)
    return table


def client_sockets(port: int) -> set[int]:
    """Inodes of the TCP sockets this process holds open whose peer is `port` (client side only).

    The fakes run in this process too, but their accepted sockets have `port` as the LOCAL port,
    so they are not counted. A socket in CLOSE_WAIT (the server hung up, we never closed) still
    has a file descriptor and is counted; TIME_WAIT has none and is not.
    """
    table = _tcp_table()
    found: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inode = int(target[8:-1])
            if table.get(inode) == port:
                found.add(inode)
    return found


CAN_SEE_SOCKETS = os.path.isdir("/proc/self/fd") and os.path.exists("/proc/net/tcp")


def run_fresh(make: Callable[[], Awaitable[T]], port: int) -> T:
    """Run `make()` in a new event loop; afterwards no task may remain and no socket to `port` stay open.

    Returns the result or re-raises the call's exception once the checks passed.
    """
    before = client_sockets(port) if CAN_SEE_SOCKETS else set()
    leftover: list[set[asyncio.Task[Any]]] = []

    async def scenario() -> T:
        try:
            return await make()
        finally:
            await tarash_router.aclose_clients()
            await asyncio.sleep(0)  # let transports run connection_lost (that closes the fds)
            leftover.append(asyncio.all_tasks() - {asyncio.current_task()})

    error: BaseException | None = None
    result: Any = None
    try:
        result = asyncio.run(scenario())
    except BaseException as exc:  # re-raised below, after the leak checks
        error = exc
    assert leftover and not leftover[0], f"tasks still pending after the call: {leftover}"
    if CAN_SEE_SOCKETS:
        leaked = client_sockets(port) - before
        assert not leaked, f"{len(leaked)} client connection(s) to port {port} left open"
    if error is not None:
        raise error
    return result


def port_of(fake: Any) -> int:
    """The port a loopback fake listens on."""
    return int(fake.base_url.rsplit(":", 1)[1])
