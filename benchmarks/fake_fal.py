"""Benchmark launcher for the loopback fake Fal server (run in its own process).

    python -m benchmarks.fake_fal --polls 4            # every job: submit + 4 polls + result
    python -m benchmarks.fake_fal --complete-after 6,7.5  # job k finishes 6 s / 7.5 s / 6 s ... after submit

Prints the base URL as the first stdout line (like ``python -m tarash_router.testing.fal``) and
serves until SIGTERM. Adds two loopback-only endpoints used by the benchmark clients:

* ``GET /__bench/stats``: request counters by kind, this process's CPU time, and (timed mode)
  per-job timings on the system-wide monotonic clock, so a client process can compare them with
  its own ``time.monotonic()``;
* ``POST /__bench/reset``: forget jobs and zero the counters (called between warm-up and the
  measured section, when no job is in flight).
"""

from __future__ import annotations

import argparse
import itertools
import resource
import time
from typing import Any

from aiohttp import web

from tarash_router.testing.fal import COMPLETED, IN_PROGRESS, IN_QUEUE, FakeFal, FalJob, FalJobState

KINDS = ("submit", "status", "stream", "result", "cancel", "other")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class BenchFal(FakeFal):
    """FakeFal with request counters and an optional wall-clock completion time per job."""

    def __init__(self, *, complete_after: list[float] | None = None, **kwargs: Any) -> None:
        self.complete_after = complete_after
        super().__init__(**kwargs)
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.counts = dict.fromkeys(KINDS, 0)
        self.peers: set[Any] = set()  # (host, port) of every connection that sent a request
        self.timing: dict[str, dict[str, Any]] = {}
        self._cycle = itertools.cycle(self.complete_after) if self.complete_after else None

    def routes(self, app: web.Application) -> None:
        # Registered before FakeFal's catch-all route, so these paths win.
        app.router.add_get("/__bench/stats", self._stats)
        app.router.add_post("/__bench/reset", self._reset)
        super().routes(app)

    async def _stats(self, request: web.Request) -> web.Response:
        body = {"counts": self.counts, "connections": len(self.peers), "jobs": len(self.jobs), "server_cpu_s": _cpu_seconds(),
                "now": time.monotonic(), "timing": self.timing}
        return web.json_response(body)

    async def _reset(self, request: web.Request) -> web.Response:
        self.clear()
        self._reset_counters()
        return web.json_response({"ok": True})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        if "/requests/" not in path:
            kind = "submit" if request.method == "POST" else "other"
        elif path.endswith("/status"):
            kind = "status"
        elif path.endswith("/status/stream"):
            kind = "stream"
        elif path.endswith("/cancel"):
            kind = "cancel"
        else:
            kind = "result" if request.method == "GET" else "other"
        self.counts[kind] += 1
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername"))
        return await super()._dispatch(request)

    # -- timed mode: a job completes complete_after[k] seconds after it was accepted ----------

    def _create_job(self, script: FalJob, endpoint: str, submitted: Any) -> FalJobState:
        job = super()._create_job(script, endpoint, submitted)
        if self._cycle is not None:
            now = time.monotonic()
            after = next(self._cycle)
            self.timing[job.request_id] = {"submitted_at": now, "complete_after": after,
                                           "done_at": now + after, "polls": 0, "first_completed_poll_at": None,
                                           "result_at": None}
        return job

    async def _status(self, request: web.Request, job: FalJobState | None) -> web.StreamResponse:
        timing = self.timing.get(job.request_id) if job is not None else None
        if job is not None and timing is not None:
            # Entries are [IN_PROGRESS, COMPLETED]; pick by wall clock instead of by poll count.
            now = time.monotonic()
            done = now >= timing["done_at"]
            job.step = 1 if done else 0
            timing["polls"] += 1
            if done and timing["first_completed_poll_at"] is None:
                timing["first_completed_poll_at"] = now
        return await super()._status(request, job)

    async def _result(self, request: web.Request, job: FalJobState | None) -> web.StreamResponse:
        timing = self.timing.get(job.request_id) if job is not None else None
        if timing is not None and timing["result_at"] is None:
            timing["result_at"] = time.monotonic()
        return await super()._result(request, job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--polls", type=int, default=4, help="status polls per job (count mode)")
    parser.add_argument("--complete-after", default=None,
                        help="comma-separated seconds; job k completes after the k-th value (cycled)")
    args = parser.parse_args()
    if args.complete_after:
        after = [float(x) for x in args.complete_after.split(",")]
        job = FalJob(statuses=[IN_PROGRESS, COMPLETED], submit_status=IN_QUEUE)
        server = BenchFal(complete_after=after, default_job=job, host=args.host, port=args.port, record=False)
    else:
        if args.polls < 1:
            parser.error("--polls must be >= 1")
        # submit says IN_QUEUE; polls: IN_QUEUE, IN_PROGRESS..., COMPLETED on the last one.
        statuses = [IN_QUEUE] + [IN_PROGRESS] * (args.polls - 2) + [COMPLETED] if args.polls >= 2 else [COMPLETED]
        server = BenchFal(default_job=FalJob(statuses=statuses), host=args.host, port=args.port, record=False)
    server.serve_forever()


if __name__ == "__main__":
    main()
