"""Measured client processes. Each invocation is one fresh process that prints one JSON line.

    python -m benchmarks.client b1 --impl tarash|httpx|httpx-aiohttp|aiohttp|floor --url URL --inflight N --jobs M
    python -m benchmarks.client b4 --url URL --jobs K [--poll-interval S]
    python -m benchmarks.client specs [--dir DIR]          # load + compile specs (built-in by default)
    python -m benchmarks.client b3                         # render / extract microbenchmarks
    python -m benchmarks.client b5 --url URL --jobs K      # submit without waiting (jobs API)
    python -m benchmarks.client b6 --jobs K                # requests per job: webhooks, status stream, polling
    python -m benchmarks.client b7 --impl tarash|hand --inflight N --jobs M   # B1's job over an in-memory wire

CPU is `resource.getrusage(RUSAGE_SELF)` (user + sys, all threads) around the measured section
only; peak RSS is the process's `ru_maxrss`. The import-time probe lives in `run.py`
(`IMPORT_PROBE`) because it must run in an interpreter that has imported nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
import urllib.request
from typing import Any

from .baselines import API_KEY, BASELINES, MODEL, PROMPT, baseline



def _usage() -> tuple[float, float]:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime, u.ru_stime


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _server(url: str, action: str) -> dict[str, Any]:
    """Blocking call to the fake's /__bench endpoints (outside any measured section)."""
    method = "POST" if action == "reset" else "GET"
    req = urllib.request.Request(f"{url}/__bench/{action}", method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


# ---------------------------------------------------------------- B1: tarash-router (baselines: baselines.py)


def _tarash_job_factory(url: str, poll_interval: float) -> Any:
    from tarash_router import VideoGenerationConfig, VideoGenerationRequest, generate_video_async

    config = VideoGenerationConfig(provider="fal", model=MODEL, api_key=API_KEY, base_url=url,
                                   poll_interval=poll_interval, timeout=600)

    async def job(i: int) -> str:
        request = VideoGenerationRequest(prompt=PROMPT.format(i=i), duration_seconds=8, aspect_ratio="16:9")
        response = await generate_video_async(config, request)
        return str(response.video)

    async def close() -> None:
        from tarash_router import aclose_clients

        await aclose_clients()

    return job, close


async def _run_jobs(job: Any, inflight: int, total: int, first: int = 0) -> int:
    """Run `total` jobs with `inflight` workers (so at most, and mostly exactly, `inflight` in flight)."""
    next_index = first
    end = first + total
    done = 0

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < end:
            i = next_index
            next_index += 1
            await job(i)
            done += 1

    await asyncio.gather(*(worker() for _ in range(min(inflight, total))))
    return done


def cmd_b1(args: argparse.Namespace) -> dict[str, Any]:
    if args.impl == "tarash":
        job, close = _tarash_job_factory(args.url, args.poll_interval)
    else:
        job, close = baseline(args.impl, args.url, args.poll_interval, args.pool)

    async def server(action: str) -> dict[str, Any]:
        return await asyncio.to_thread(_server, args.url, action)

    return _measure(args, job, close, server)


def cmd_b7(args: argparse.Namespace) -> dict[str, Any]:
    """B1's job over the in-memory wire (benchmarks/memory_wire.py): the engine's own cost."""
    from .memory_wire import BASE_URL, MemoryWire, engine_on_memory_wire, hand_job

    wires: list[MemoryWire] = []
    if args.impl == "tarash":
        engine_on_memory_wire(wires)
        job, close = _tarash_job_factory(BASE_URL, args.poll_interval)
    else:
        wires.append(MemoryWire())
        job, close = hand_job(args.poll_interval, wires[0])

    async def server(action: str) -> dict[str, Any]:
        if action == "reset":
            for wire in wires:
                wire.requests = 0
        return {"counts": {"in memory": sum(w.requests for w in wires)}, "connections": 0}

    return _measure(args, job, close, server)


def _measure(args: argparse.Namespace, job: Any, close: Any, server: Any) -> dict[str, Any]:
    """Run the measured section of B1 or B7: `server(action)` resets and reads the request counters."""
    profiler = None

    async def main() -> dict[str, Any]:
        nonlocal profiler
        # Warm-up: spec registry load, template first use, connection set-up; not measured.
        await _run_jobs(job, min(args.warmup, 10), args.warmup, first=10_000_000)
        await server("reset")
        gc.collect()
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        u0, s0 = _usage()
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        done = await _run_jobs(job, args.inflight, args.jobs)
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - t0
        u1, s1 = _usage()
        stats = await server("stats")
        await close()
        return {"user_s": u1 - u0, "sys_s": s1 - s0, "wall_s": wall, "done": done, "server": stats}

    out = asyncio.run(main())
    if profiler is not None:
        profiler.dump_stats(args.profile)
    counts = out["server"]["counts"]
    out.update(impl=args.impl, inflight=args.inflight, jobs=args.jobs, maxrss_mb=_maxrss_mb(),
               cpu_ms_per_job=(out["user_s"] + out["sys_s"]) * 1000 / max(1, out["done"]),
               requests=sum(counts.values()), requests_per_job=sum(counts.values()) / max(1, out["done"]),
               counts=counts, connections=out["server"]["connections"])
    del out["server"]
    return out


# ---------------------------------------------------------------- B4: polling efficiency


def cmd_b4(args: argparse.Namespace) -> dict[str, Any]:
    from tarash_router import VideoGenerationConfig, VideoGenerationRequest, aclose_clients, generate_video_async

    extra: dict[str, Any] = {} if args.poll_interval is None else {"poll_interval": args.poll_interval}
    config = VideoGenerationConfig(provider="fal", model=MODEL, api_key=API_KEY, base_url=args.url, **extra)

    async def one(i: int) -> dict[str, Any]:
        request = VideoGenerationRequest(prompt=PROMPT.format(i=i), duration_seconds=8)
        response = await generate_video_async(config, request)
        return {"request_id": response.request_id, "seen_at": time.monotonic()}

    async def main() -> list[dict[str, Any]]:
        seen = await asyncio.gather(*(one(i) for i in range(args.jobs)))
        await aclose_clients()
        return list(seen)

    seen = asyncio.run(main())
    stats = _server(args.url, "stats")
    jobs = []
    for item in seen:
        t = stats["timing"][item["request_id"]]
        jobs.append({"complete_after_s": t["complete_after"], "polls": t["polls"],
                     "latency_s": item["seen_at"] - t["done_at"],
                     "server_latency_s": (t["first_completed_poll_at"] or t["done_at"]) - t["done_at"]})
    counts = stats["counts"]
    return {"poll_interval_s": config.poll_interval, "jobs": jobs, "counts": counts,
            "requests_per_job": sum(counts.values()) / max(1, len(jobs))}


# ---------------------------------------------------------------- B2: spec loading (fresh process)


def cmd_specs(args: argparse.Namespace) -> dict[str, Any]:
    import tarash_router  # noqa: F401 - imported before the clock starts: this measures loading only
    from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir

    path = args.dir or builtin_spec_dir()
    gc.collect()
    u0, s0 = _usage()
    t0 = time.perf_counter()
    families = SpecRegistry().load_paths([path])
    wall = time.perf_counter() - t0
    u1, s1 = _usage()
    vendors = [m for m in ("fal_client", "openai", "replicate", "google.genai") if m in sys.modules]
    return {"wall_s": wall, "cpu_s": (u1 - u0) + (s1 - s0), "families": len(families), "dir": str(path),
            "vendor_sdks": vendors}


# ---------------------------------------------------------------- B3: render + extract


def cmd_b5(args: argparse.Namespace) -> dict[str, Any]:
    """Submit without waiting: client CPU per `submit_video_async` against jobs that take 30 s."""
    from tarash_router import Client, VideoGenerationConfig, VideoGenerationRequest

    config = VideoGenerationConfig(provider="fal", model=MODEL, api_key=API_KEY, base_url=args.url, timeout=600)

    async def main() -> dict[str, Any]:
        async with Client(journal="memory") as client:
            for i in range(3):  # warm-up: spec registry, templates, connection set-up; not measured
                await client.submit_video_async(config, VideoGenerationRequest(prompt=PROMPT.format(i=i)))
            await asyncio.to_thread(_server, args.url, "reset")
            gc.collect()
            u0, s0 = _usage()
            t0 = time.perf_counter()
            for i in range(args.jobs):  # one after another: the latency a web request would see
                job = await client.submit_video_async(config, VideoGenerationRequest(prompt=PROMPT.format(i=i)))
                assert job.state in ("queued", "processing")
            wall = time.perf_counter() - t0
            u1, s1 = _usage()
            stats = await asyncio.to_thread(_server, args.url, "stats")
        cpu = (u1 - u0) + (s1 - s0)
        return {"jobs": args.jobs, "cpu_ms_per_submit": cpu * 1000 / args.jobs,
                "wall_ms_per_submit": wall * 1000 / args.jobs, "counts": stats["counts"],
                "requests_per_submit": sum(stats["counts"].values()) / args.jobs}

    return asyncio.run(main())


def cmd_b6(args: argparse.Namespace) -> dict[str, Any]:
    """Requests per job at the provider: webhooks (submit, then fal POSTs the result), the status stream
    (one long request per job) and polling."""
    import os

    from aiohttp import web

    from tarash_router import Client, VideoGenerationConfig, VideoGenerationRequest
    from tarash_router.settings import TarashSettings
    from tarash_router.testing import FakeFal, FalJob

    os.environ["TARASH_ALLOW_PRIVATE_URLS"] = "1"  # the fake and the receiver are on loopback
    script = FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"])

    async def main() -> dict[str, Any]:
        with FakeFal() as fal:
            fal.default_job = script
            settings = TarashSettings(fal_webhook_jwks_url=fal.jwks_url)
            config = VideoGenerationConfig(provider="fal", model=MODEL, api_key=API_KEY, base_url=fal.base_url,
                                           poll_interval=0.02, timeout=60)
            async with Client(journal="memory", settings=settings) as client:
                async def hook(request: web.Request) -> web.Response:
                    await client.handle_webhook_async("fal", request.headers, await request.read())
                    return web.json_response({"ok": True})

                app = web.Application()
                app.router.add_post("/hook", hook)
                runner = web.AppRunner(app)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
                jobs = [await client.submit_video_async(config, VideoGenerationRequest(prompt=PROMPT.format(i=i)),
                                                        webhook_url=url) for i in range(args.jobs)]
                while True:  # until every job is completed in the journal (no requests to the provider)
                    states = [(await client.runtime.journal.get(j.id)).state for j in jobs]
                    if all(s == "completed" for s in states):
                        break
                    await asyncio.sleep(0.02)
                webhook_requests = len(fal.requests)
                await runner.cleanup()

            async def generate_all(settings: TarashSettings) -> int:
                fal.clear()
                fal.default_job = script
                async with Client(journal="memory", settings=settings) as client:
                    await asyncio.gather(*(client.generate_video_async(config, VideoGenerationRequest(
                        prompt=PROMPT.format(i=i))) for i in range(args.jobs)))
                return len(fal.requests)

            stream_requests = await generate_all(TarashSettings(status_stream=True))
            polling_requests = await generate_all(TarashSettings(status_stream=False))
        return {"jobs": args.jobs, "requests_per_job_webhooks": webhook_requests / args.jobs,
                "requests_per_job_stream": stream_requests / args.jobs,
                "requests_per_job_polling": polling_requests / args.jobs}

    return asyncio.run(main())


def cmd_b3(args: argparse.Namespace) -> dict[str, Any]:
    import timeit

    from tarash_router import VideoGenerationConfig, VideoGenerationRequest
    from tarash_router.engine.render import prepare_job
    from tarash_router.specs.registry import get_registry

    family = get_registry().resolve("fal", MODEL, "video")
    config = VideoGenerationConfig(provider="fal", model=MODEL, api_key=API_KEY, base_url="http://127.0.0.1:9")
    request = VideoGenerationRequest(prompt=PROMPT.format(i=1), duration_seconds=8, aspect_ratio="16:9",
                                     resolution="1080p", generate_audio=True, seed=7)
    jc = prepare_job(family, config, request)
    job_handle = {"id": "req-1", "status_url": "http://127.0.0.1:9/fal-ai/veo3/requests/req-1/status",
                  "result_url": "http://127.0.0.1:9/fal-ai/veo3/requests/req-1"}
    result_json = {"video": {"url": "https://v3.fal.media/files/fake/req-1.mp4", "content_type": "video/mp4",
                             "file_name": "req-1.mp4", "file_size": 1048576}}
    ctx = {"request": request, "model": MODEL}

    def render_submit() -> Any:
        return prepare_job(family, config, request).build(family.submit)

    def render_poll() -> Any:
        return jc.build(family.poll, job_handle)

    def extract() -> Any:
        return family.response.extract(result_json, ctx)

    def baseline_render() -> Any:
        # What a hand-written client does for the same submit: build the dict and headers directly.
        body = {"prompt": request.prompt, "duration": f"{request.duration_seconds}s",
                "aspect_ratio": request.aspect_ratio, "resolution": request.resolution,
                "generate_audio": request.generate_audio, "seed": request.seed}
        return f"{config.base_url}/{MODEL}", {"Authorization": f"Key {API_KEY}"}, body

    def baseline_extract() -> Any:
        video = result_json.get("video") or {}
        return {"video": video.get("url"), "content_type": video.get("content_type")}

    ops = {"render_submit": render_submit, "render_poll": render_poll, "extract_response": extract,
           "baseline_render_submit": baseline_render, "baseline_extract": baseline_extract}
    # sanity: the rendered body is what the spec promises
    body = render_submit().json
    assert body["prompt"] == request.prompt and body["duration"] == "8s", body
    assert extract()["video"] == result_json["video"]["url"]
    out: dict[str, Any] = {}
    for name, fn in ops.items():
        timer = timeit.Timer(fn)
        number, _ = timer.autorange()  # ~0.2 s per repeat
        times = sorted(t / number for t in timer.repeat(repeat=args.repeat, number=number))
        out[name] = {"us_per_op": times[len(times) // 2] * 1e6, "min_us": times[0] * 1e6, "number": number}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="benchmark client process")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b1 = sub.add_parser("b1")
    b1.add_argument("--impl", choices=["tarash", *BASELINES], required=True)
    b1.add_argument("--url", required=True)
    b1.add_argument("--pool", type=int, default=10, help="baseline httpx pool size")
    b7 = sub.add_parser("b7", help="B1's job over an in-memory wire: tarash, or the same requests by hand")
    b7.add_argument("--impl", choices=["tarash", "hand"], required=True)
    for jobs_run in (b1, b7):
        jobs_run.add_argument("--inflight", type=int, required=True)
        jobs_run.add_argument("--jobs", type=int, required=True)
        jobs_run.add_argument("--poll-interval", type=float, default=0.02)
        jobs_run.add_argument("--warmup", type=int, default=10)
        jobs_run.add_argument("--profile", default=None, help="write cProfile stats of the measured section here")
    b4 = sub.add_parser("b4")
    b4.add_argument("--url", required=True)
    b4.add_argument("--jobs", type=int, default=8)
    b4.add_argument("--poll-interval", type=float, default=None, help="omit for the library default")
    b6 = sub.add_parser("b6")
    b6.add_argument("--jobs", type=int, default=20)
    b5 = sub.add_parser("b5")
    b5.add_argument("--url", required=True)
    b5.add_argument("--jobs", type=int, default=50)
    specs = sub.add_parser("specs")
    specs.add_argument("--dir", default=None)
    b3 = sub.add_parser("b3")
    b3.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if args.cmd in ("b1", "b4", "b5", "b7"):
        # They measure the polling engine (against a hand-written polling client, and polling's pace):
        # jobs poll, as before status streams. B6 compares the stream with polling itself.
        import os

        os.environ.setdefault("TARASH_STATUS_STREAM", "0")
    result = {"b1": cmd_b1, "b4": cmd_b4, "specs": cmd_specs, "b3": cmd_b3, "b5": cmd_b5,
              "b6": cmd_b6, "b7": cmd_b7}[args.cmd](args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
