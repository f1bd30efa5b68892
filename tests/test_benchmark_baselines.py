"""The hand-written clients the benchmarks compare the engine with do the same job it does: the same
six requests per Fal job, the same video back. A baseline that skipped a poll would flatter it."""

import asyncio

import pytest

from benchmarks.baselines import BASELINES, baseline
from tarash_router.testing.fal import COMPLETED, IN_PROGRESS, IN_QUEUE, FakeFal, FalJob


@pytest.mark.parametrize("impl", BASELINES)
def test_each_baseline_makes_the_six_requests_of_a_fal_job(impl):
    statuses = [IN_QUEUE, IN_PROGRESS, IN_PROGRESS, COMPLETED]
    with FakeFal(default_job=FalJob(statuses=statuses)) as fal:
        async def run() -> list[str]:
            job, close = baseline(impl, fal.base_url, 0.0, pool=4)
            try:
                return await asyncio.gather(*(job(i) for i in range(3)))
            finally:
                await close()

        videos = asyncio.run(run())
        kinds = [("submit" if r.method == "POST" else r.path.rsplit("/", 1)[-1]) for r in fal.requests]
    assert all(v.startswith("http") for v in videos)
    assert len(kinds) == 18 and kinds.count("submit") == 3 and kinds.count("status") == 12
    assert all(r.headers.get("Authorization") == "Key bench" for r in fal.requests)


def test_b7_the_engine_and_the_hand_client_make_the_same_six_calls_on_the_memory_wire(polling, monkeypatch):
    """B7 measures the engine against a hand-written client over an in-memory wire: both must send
    the job's six requests through it and get the video back, or the difference measures nothing."""
    from benchmarks import memory_wire
    from benchmarks.client import _tarash_job_factory

    wires: list[memory_wire.MemoryWire] = []

    def opened(settings, size):
        wires.append(memory_wire.MemoryWire())
        return wires[-1]

    monkeypatch.setattr("tarash_router.engine.client.open_wire", opened)
    hand_wire = memory_wire.MemoryWire()

    async def run(job, close) -> list[str]:
        try:
            return await asyncio.gather(*(job(i) for i in range(3)))
        finally:
            await close()

    engine_videos = asyncio.run(run(*_tarash_job_factory(memory_wire.BASE_URL, 0.0)))
    hand_videos = asyncio.run(run(*memory_wire.hand_job(0.0, hand_wire)))
    assert sum(w.requests for w in wires) == 18 and hand_wire.requests == 18
    assert sorted(engine_videos) == sorted(hand_videos)
    assert all(v.startswith("https://v3.fal.media/files/bench/") for v in engine_videos)


def test_b7_the_memory_wire_holds_no_more_exchanges_than_its_connections():
    """Like a real pool, B7's wire makes requests beyond its connections wait: without that the hand
    client would never wait for a connection while the engine's gate does, and B7 would count the
    waiting as the engine's own cost."""
    from benchmarks import memory_wire

    wire = memory_wire.MemoryWire(size=3)
    job, close = memory_wire.hand_job(0.0, wire)

    async def run() -> list[str]:
        try:
            return await asyncio.gather(*(job(i) for i in range(12)))
        finally:
            await close()

    videos = asyncio.run(run())
    assert len(set(videos)) == 12 and wire.requests == 72
    assert wire.most_at_once == 3
