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
