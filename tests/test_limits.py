"""Account limits: a cap on jobs in flight and on creates per minute per provider account, in one
process (memory) or shared by every process on one Redis. A job over the cap waits its turn."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from conftest import API_KEY, video_config
from journal_helpers import redis_server
from tarash_router import AccountAtLimitError, TimeoutError
from tarash_router.client import Client
from tarash_router.models import VideoGenerationRequest
from tarash_router.settings import TarashSettings
from tarash_router.testing import FalJob

REQUEST = VideoGenerationRequest(prompt="a cat")


def _client(**limits: object) -> Client:
    return Client(settings=TarashSettings(limits=json.dumps({"fal": limits})), journal="memory")


def _max_in_flight(fal) -> int:
    """The most jobs the fake had between their submit and their result fetch, in arrival order."""
    running = peak = 0
    for request in fal.requests:
        if request.method == "POST":
            running += 1
        elif request.method == "GET" and not request.path.endswith("/status"):
            running -= 1
        peak = max(peak, running)
    return peak


def test_jobs_over_the_in_flight_cap_wait_their_turn(fal):
    fal.default_job = FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"])
    try:
        async def many(client: Client) -> list:
            return await asyncio.gather(*(client.generate_video_async(video_config(fal), REQUEST) for _ in range(6)))

        with _client(in_flight=2) as client:
            responses = asyncio.run(many(client))
    finally:
        fal.default_job = FalJob()
    assert len(responses) == 6 and fal.submit_count() == 6
    assert _max_in_flight(fal) == 2


def test_a_submitted_job_holds_its_slot_until_it_finishes(fal, monkeypatch):
    monkeypatch.setenv("FAL_KEY", API_KEY)
    fal.queue(FalJob(statuses=["IN_QUEUE", "COMPLETED"]), FalJob())
    with _client(in_flight=1) as client:
        first = client.submit_video(video_config(fal), REQUEST)
        with pytest.raises(TimeoutError, match="stayed at its limit .1 in flight.*nothing was sent"):
            client.submit_video(video_config(fal, timeout=0.3), REQUEST)
        assert fal.submit_count() == 1
        client.wait(first.id, base_url=fal.base_url)  # finished: the slot is free again
        assert client.submit_video(video_config(fal), REQUEST).state == "queued"
    assert fal.submit_count() == 2


def test_creates_per_minute(fal):
    fal.default_job = FalJob(statuses=["COMPLETED"])
    try:
        with _client(creates_per_minute=2) as client:
            client.generate_video(video_config(fal), REQUEST)
            client.generate_video(video_config(fal), REQUEST)
            with pytest.raises(TimeoutError, match="2 creates a minute"):
                client.generate_video(video_config(fal, timeout=0.3), REQUEST)
    finally:
        fal.default_job = FalJob()
    assert fal.submit_count() == 2


def test_two_clients_on_one_redis_share_the_cap(fal):
    fal.default_job = FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"])
    try:
        with redis_server() as url:
            settings = TarashSettings(limits=json.dumps({"fal": {"in_flight": 2}}), limits_store=url)

            async def both() -> list:
                with Client(settings=settings, journal="memory") as a, Client(settings=settings, journal="memory") as b:
                    return await asyncio.gather(*(c.generate_video_async(video_config(fal), REQUEST)
                                                  for c in (a, b, a, b, a, b)))

            responses = asyncio.run(both())
    finally:
        fal.default_job = FalJob()
    assert len(responses) == 6 and fal.submit_count() == 6
    assert _max_in_flight(fal) == 2


def test_a_client_that_does_not_wait_raises_at_once_and_sends_nothing(fal, monkeypatch):
    """TARASH_AT_LIMIT=raise (task queues): a job over the cap fails fast, so the caller can try later
    instead of holding a worker; the refused submit leaves nothing behind."""
    monkeypatch.setenv("FAL_KEY", API_KEY)
    fal.queue(FalJob(statuses=["IN_QUEUE", "COMPLETED"]), FalJob())
    settings = TarashSettings(limits=json.dumps({"fal": {"in_flight": 1}}), at_limit="raise")
    with Client(settings=settings, journal="memory") as client:
        first = client.submit_video(video_config(fal), REQUEST)
        started = time.monotonic()
        with pytest.raises(AccountAtLimitError, match=r"fal account is at its limit \(1 in flight\)") as raised:
            client.submit_video(video_config(fal), REQUEST.model_copy(update={"idempotency_key": "task-1"}))
        assert time.monotonic() - started < 1.0 and raised.value.retry_after > 0
        assert fal.submit_count() == 1 and [j.id for j in client.list_jobs()] == [first.id]
        client.wait(first.id, base_url=fal.base_url)
        # the refused submit freed its key: the same task, tried again, is submitted now
        again = client.submit_video(video_config(fal), REQUEST.model_copy(update={"idempotency_key": "task-1"}))
        assert again.state == "queued"
    assert fal.submit_count() == 2


def test_a_per_minute_cap_says_when_to_try_again(fal):
    fal.default_job = FalJob(statuses=["COMPLETED"])
    try:
        settings = TarashSettings(limits=json.dumps({"fal": {"creates_per_minute": 1}}), at_limit="raise")
        with Client(settings=settings, journal="memory") as client:
            client.generate_video(video_config(fal), REQUEST)
            with pytest.raises(AccountAtLimitError, match="1 creates a minute") as raised:
                client.generate_video(video_config(fal), REQUEST)
    finally:
        fal.default_job = FalJob()
    assert 50 < raised.value.retry_after <= 60 and fal.submit_count() == 1
