"""Webhooks in: a submit with webhook_url carries the provider's own webhook parameter; the loopback
fakes deliver signed webhooks for real (fal: ED25519 with keys from the fake's JWKS; Replicate:
Standard Webhooks HMAC) to a receiver in the test, which hands them to `handle_webhook`."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from conftest import API_KEY, REPLICATE_KEY, video_config
from tarash_router import ValidationError, WebhookError
from tarash_router.client import Client
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
from tarash_router.settings import TarashSettings
from tarash_router.testing import FalJob
from tarash_router.testing.replicate import FakeReplicate, ReplicateJob

REQUEST = VideoGenerationRequest(prompt="a cat", duration_seconds=8)


@pytest.fixture
def client(tmp_path, fal, replicate, monkeypatch):
    monkeypatch.setenv("FAL_KEY", API_KEY)
    settings = TarashSettings(fal_webhook_jwks_url=fal.jwks_url, replicate_webhook_secret=replicate.webhook_secret)
    with Client(journal=f"sqlite:///{tmp_path / 'jobs.db'}", settings=settings) as own:
        yield own


def replicate_config(fake: FakeReplicate) -> VideoGenerationConfig:
    return VideoGenerationConfig(provider="replicate", model="google/veo-3.1", api_key=REPLICATE_KEY,
                                 base_url=fake.base_url, poll_interval=0.01, timeout=30)


class Receiver:
    """A web app's webhook route: POST /hooks/{provider} -> client.handle_webhook_async. Answers 200
    for a handled delivery or a replay, 401/400 for a refused one; keeps what each delivery did."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.outcomes: list[tuple[str, float | None]] = []  # (job state or refusal reason, journal updated_at)
        self.url = ""

    async def hook(self, request: web.Request) -> web.Response:
        try:
            job = await self.client.handle_webhook_async(request.match_info["provider"], request.headers,
                                                         await request.read())
        except WebhookError as exc:
            self.outcomes.append((exc.reason, None))
            return web.json_response({"error": exc.reason}, status=200 if exc.reason == "replay" else 401)
        record = await self.client.runtime.journal.get(job.id)
        self.outcomes.append((job.state, record.updated_at))
        return web.json_response({"id": job.id, "state": job.state})


@pytest.fixture
async def receiver(client):
    hooks = Receiver(client)
    app = web.Application()
    app.router.add_post("/hooks/{provider}", hooks.hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hooks.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    yield hooks
    await runner.cleanup()


async def delivered(fake, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(fake.webhooks.deliveries) < count:
        assert time.monotonic() < deadline, "the fake did not deliver its webhooks"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ submit carries the webhook


def test_fal_submit_carries_the_url_as_fal_webhook_query_parameter(client, fal):
    fal.webhooks.delay = 60  # not delivered within this test
    job = client.submit_video(video_config(fal), REQUEST, webhook_url="https://app.example/hooks/fal")
    assert fal.submits[0].webhook == "https://app.example/hooks/fal"
    assert "webhook" not in fal.submits[0].json
    assert journaled(client, job.id).state == "queued"


def test_replicate_submit_carries_webhook_and_events_filter_in_the_body(client, replicate):
    replicate.webhooks.delay = 60
    client.submit_video(replicate_config(replicate), REQUEST, webhook_url="https://app.example/hooks/replicate")
    sent = replicate.creates[0].json
    assert sent["webhook"] == "https://app.example/hooks/replicate"
    assert sent["webhook_events_filter"] == ["completed"]
    assert "webhook" not in sent["input"]


def test_a_provider_without_a_webhook_refuses_webhook_url_before_sending(client, fal, tmp_path):
    no_hook = tmp_path / "specs" / "nohook"
    no_hook.mkdir(parents=True)
    (no_hook / "provider.yaml").write_text(
        "spec_version: 1\nprovider: nohook\nbase_url: " + fal.base_url + "\nauth: {header: Authorization, scheme: Key}\n"
        "protocol:\n  submit: {method: POST, url: \"{{ base_url }}/{{ model }}\"}\n"
        "  job: {id: $.request_id, status_url: $.status_url}\n"
        "  poll: {url: \"{{ job.status_url }}\", status: $.status}\n"
        "  status_map: {COMPLETED: completed}\nresponse: {video: $.video.url}\n")
    (no_hook / "video.yaml").write_text(
        "spec_version: 1\nprovider: nohook\nfamily: nohook-video\nmodality: video\nmodels: [some/model]\nbody: {prompt: \"{{ request.prompt }}\"}\n")
    client.load_specs(tmp_path / "specs")
    config = VideoGenerationConfig(provider="nohook", model="some/model", api_key="k", base_url=fal.base_url)
    with pytest.raises(ValidationError, match="no webhook"):
        client.submit_video(config, VideoGenerationRequest(prompt="a cat"), webhook_url="https://app.example/h")
    assert fal.submit_attempts == 0


# ------------------------------------------------------------------ deliveries complete the job


async def test_fal_delivery_completes_the_job_and_wait_does_not_poll(client, fal, receiver):
    job = await client.submit_video_async(video_config(fal), REQUEST, webhook_url=f"{receiver.url}/fal")
    await delivered(fal, 1)
    assert fal.webhooks.deliveries[0].answer == 200
    assert receiver.outcomes[0][0] == "completed"
    response = await client.wait_async(job.id)
    assert response.request_id == job.id and response.video
    assert fal.status_polls(job.id) == 0 and fal.submit_count() == 1


async def test_fal_job_delivered_twice_is_completed_once(client, fal, receiver):
    fal.webhooks.repeats = 2  # two distinct deliveries (fal retries with a new timestamp)
    job = await client.submit_video_async(video_config(fal), REQUEST, webhook_url=f"{receiver.url}/fal")
    await delivered(fal, 2)
    assert [d.answer for d in fal.webhooks.deliveries] == [200, 200]
    (first, at_first), (second, at_second) = receiver.outcomes
    assert first == second == "completed" and at_first == at_second  # the second changed nothing
    jwks_fetches = [r for r in fal.requests if r.path == "/.well-known/jwks.json"]
    assert len(jwks_fetches) == 1  # the keys are cached
    assert (await client.get_job_async(job.id)).response.video


async def test_fal_error_delivery_records_the_job_failed_with_the_error(client, fal, receiver):
    fal.queue(FalJob.moderated())
    job = await client.submit_video_async(video_config(fal), REQUEST, webhook_url=f"{receiver.url}/fal")
    await delivered(fal, 1)
    finished = await client.get_job_async(job.id)
    assert finished.state == "failed" and "422" in finished.error["message"]
    assert fal.status_polls(job.id) == 0


async def test_replicate_job_delivered_twice_is_completed_once_and_wait_does_not_poll(client, replicate, receiver):
    replicate.webhooks.repeats = 2  # two deliveries, each with its own webhook-id
    job = await client.submit_video_async(replicate_config(replicate), REQUEST,
                                          webhook_url=f"{receiver.url}/replicate")
    await delivered(replicate, 2)
    assert [d.answer for d in replicate.webhooks.deliveries] == [200, 200]
    (first, at_first), (second, at_second) = receiver.outcomes
    assert first == second == "completed" and at_first == at_second
    response = await client.wait_async(job.id)
    assert response.request_id == job.id and response.video
    assert replicate.polls(job.id) == 0 and replicate.create_count() == 1


async def test_replicate_failed_prediction_is_recorded_failed(client, replicate, receiver):
    replicate.queue(ReplicateJob.failed())
    job = await client.submit_video_async(replicate_config(replicate), REQUEST,
                                          webhook_url=f"{receiver.url}/replicate")
    await delivered(replicate, 1)
    finished = await client.get_job_async(job.id)
    assert finished.state == "failed" and "E1001" in finished.error["message"]


# ------------------------------------------------------------------ refused deliveries


def submitted(client, fake, provider):
    """A journaled job (submitted without a webhook, so nothing is delivered on its own)."""
    config = video_config(fake) if provider == "fal" else replicate_config(fake)
    return client.submit_video(config, REQUEST)


def journaled(client, job_id):
    """The job as the journal has it (no status request)."""
    return next(j for j in client.list_jobs() if j.id == job_id)


def refused(client, provider, headers, body) -> str:
    with pytest.raises(WebhookError) as info:
        client.handle_webhook(provider, headers, body)
    return info.value.reason


@pytest.mark.parametrize("provider", ["fal", "replicate"])
def test_a_bad_signature_is_refused_and_the_job_is_unchanged(client, fal, replicate, provider):
    fake = fal if provider == "fal" else replicate
    job = submitted(client, fake, provider)
    headers, body = fake.webhook_delivery(job.id)
    assert refused(client, provider, headers, body.replace(b'"', b' "', 1)) == "signature"  # body altered
    forged = dict(headers)
    if provider == "fal":
        forged["X-Fal-Webhook-Signature"] = "00" * 64
    else:
        forged["webhook-signature"] = "v1,AAAA"
    assert refused(client, provider, forged, body) == "signature"
    assert refused(client, provider, {}, body) == "signature"  # unsigned
    assert journaled(client, job.id).state == "queued"


@pytest.mark.parametrize("provider", ["fal", "replicate"])
def test_a_stale_timestamp_is_refused_and_the_job_is_unchanged(client, fal, replicate, provider):
    fake = fal if provider == "fal" else replicate
    job = submitted(client, fake, provider)
    headers, body = fake.webhook_delivery(job.id, timestamp=int(time.time()) - 301)
    assert refused(client, provider, headers, body) == "stale"
    assert journaled(client, job.id).state == "queued"


@pytest.mark.parametrize("provider", ["fal", "replicate"])
def test_a_replayed_delivery_is_refused(client, fal, replicate, provider):
    fake = fal if provider == "fal" else replicate
    job = submitted(client, fake, provider)
    if provider == "replicate":  # the prediction has finished when Replicate delivers
        entry = fake.jobs[job.id]
        while not entry.terminal:
            entry.advance()
    headers, body = fake.webhook_delivery(job.id)
    assert client.handle_webhook(provider, headers, body).state == "completed"
    before = journaled(client, job.id)
    assert refused(client, provider, headers, body) == "replay"
    assert journaled(client, job.id).updated_at == before.updated_at


def test_a_delivery_for_an_unknown_job_is_refused(client, fal):
    with Client(journal="memory", settings=client.settings) as elsewhere:  # journaled in another journal
        job = submitted(elsewhere, fal, "fal")
    headers, body = fal.webhook_delivery(job.id)
    assert refused(client, "fal", headers, body) == "unknown_job"


def test_a_provider_that_declares_no_webhook_refuses_deliveries(client):
    assert refused(client, "runway", {}, b"{}") == "unsupported"


def test_fal_keys_are_fetched_again_when_fal_rotates_them(client, fal, monkeypatch):
    from tarash_router.engine import webhooks

    first = submitted(client, fal, "fal")
    assert client.handle_webhook("fal", *fal.webhook_delivery(first.id)).state == "completed"
    fal._signing_key = None  # fal signs with a new key from now on
    monkeypatch.setattr(webhooks, "JWKS_MIN_REFRESH", 0.0)
    second = submitted(client, fal, "fal")
    assert client.handle_webhook("fal", *fal.webhook_delivery(second.id)).state == "completed"
    assert len([r for r in fal.requests if r.path == "/.well-known/jwks.json"]) == 2


async def test_a_burst_of_deliveries_fetches_the_keys_once(fal):
    from tarash_router.engine.webhooks import JwksCache

    cache = JwksCache(fal.jwks_url)
    results = await asyncio.gather(*(cache.keys() for _ in range(10)))
    assert all(keys == results[0] for keys in results)
    assert [r.path for r in fal.requests].count("/.well-known/jwks.json") == 1
