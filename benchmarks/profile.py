"""Profile one B1 client run (cProfile around the measured section) and print where its CPU goes.

    .venv/bin/python -m benchmarks.profile --inflight 1000            # tarash-router, 1,000 jobs in flight
    .venv/bin/python -m benchmarks.profile --impl httpx --inflight 200

cProfile times with the wall clock, so time blocked in `epoll.poll` (the idle event loop) is left
out of the shares: each share is a function's own time over the busy (non-idle) time. Profiling
roughly doubles the cost per call; read the shares, not the absolute milliseconds. Cumulative
shares of the event loop and of coroutines can exceed 100%: cProfile counts every resumption.
"""

from __future__ import annotations

import argparse
import pstats
import tempfile
from collections import defaultdict
from pathlib import Path

from .baselines import BASELINES
from .run import B1_BASELINE_POOL, B1_POLL_INTERVAL, client, fake_fal

# The event loop's idle wait (pstats names it with <> or {} depending on the Python version).
IDLE = tuple(f"{o}method 'poll' of 'select.epoll' objects{c}" for o, c in (("<", ">"), ("{", "}")))


def _area(filename: str, func: str) -> str:
    """Group a function by package (tarash_router by sub-package)."""
    if filename == "~":
        return "builtins: " + func.split(" of ")[-1].strip("{}' ").split("'")[0] if " of " in func else "builtins"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    if "tarash_router" in parts:
        i = parts.index("tarash_router")
        return "/".join(parts[i:i + 2]).removesuffix(".py")
    if "python3.11" in parts or "lib" in parts:
        return "stdlib: " + Path(filename).stem
    return Path(filename).name


def report(path: str, top: int) -> str:
    stats = pstats.Stats(path)
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    idle = sum(v[2] for (f, _, name), v in raw.items() if f == "~" and name in IDLE)
    busy = total - idle
    lines = [f"busy time {busy:.2f} s of {total:.2f} s profiled (idle epoll wait excluded)", ""]
    lines.append(f"{'own %':>6} {'cum %':>6} {'calls':>9}  function")
    rows = sorted(((v[2], v[3], v[1], k) for k, v in raw.items() if not (k[0] == "~" and k[2] in IDLE)),
                  reverse=True)
    for tt, ct, calls, (f, line, name) in rows[:top]:
        where = name if f == "~" else f"{_short(f)}:{line}({name})"
        lines.append(f"{100 * tt / busy:6.1f} {100 * ct / busy:6.1f} {calls:9d}  {where}")
    areas: dict[str, float] = defaultdict(float)
    for (f, _, name), v in raw.items():
        if not (f == "~" and name in IDLE):
            areas[_area(f, name)] += v[2]
    lines += ["", "own time by package / module:"]
    for area, tt in sorted(areas.items(), key=lambda x: -x[1])[:20]:
        lines.append(f"{100 * tt / busy:6.1f}  {area}")
    lines += ["", "by cumulative time (tarash_router functions):"]
    cum = sorted(((v[3], k) for k, v in raw.items() if "tarash_router" in k[0]), reverse=True)
    for ct, (f, line, name) in cum[:top]:
        lines.append(f"{100 * ct / busy:6.1f}  {_short(f)}:{line}({name})")
    return "\n".join(lines)


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", "main"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1:])
    return "/".join(parts[-2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["tarash", *BASELINES], default="tarash")
    parser.add_argument("--inflight", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=None, help="default: max(inflight, 40)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--save", default=None, help="also keep the .prof file here")
    args = parser.parse_args()
    jobs = args.jobs or max(args.inflight, 40)
    with tempfile.TemporaryDirectory() as tmp:
        prof = args.save or str(Path(tmp) / "b1.prof")
        with fake_fal("--polls", "4") as url:
            out = client("b1", "--impl", args.impl, "--url", url, "--inflight", str(args.inflight), "--jobs",
                         str(jobs), "--poll-interval", str(B1_POLL_INTERVAL), "--pool", str(B1_BASELINE_POOL),
                         "--profile", prof)
        print(f"{args.impl}, {args.inflight} in flight, {jobs} jobs: {out['cpu_ms_per_job']:.2f} ms CPU/job "
              f"under the profiler, {out['requests_per_job']:.2f} requests/job\n")
        print(report(prof, args.top))


if __name__ == "__main__":
    main()
