"""Replicate's webhook signing secret fetched from its API when TARASH_REPLICATE_WEBHOOK_SECRET is unset:
`GET /v1/webhooks/default/secret` with the API token answers `{"key": "whsec_..."}`
(https://replicate.com/docs/topics/webhooks/verify-webhook). The loopback fake serves it with its own
secret; deliveries are verified with what was fetched, once per client; the secret is never shown."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from conftest import REPLICATE_KEY
from tarash_router import WebhookError
from tarash_router.client import Client
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
from tarash_router.settings import TarashSettings
from tarash_router.testing.replicate import FakeReplicate

SECRET_PATH = "/v1/webhooks/default/secret"


@pytest.fixture
def client(tmp_path, monkeypatch) -> Iterator[Client]:
    """A client with no webhook secret configured."""
    monkeypatch.delenv("TARASH_REPLICATE_WEBHOOK_SECRET", raising=False)
    with Client(journal=f"sqlite:///{tmp_path / 'jobs.db'}", settings=TarashSettings()) as own:
        assert own.settings.replicate_webhook_secret is None
        yield own


def finished_job(client: Client, replicate: FakeReplicate) -> str:
    """A journaled prediction that has finished at Replicate (no webhook was asked for)."""
    config = VideoGenerationConfig(provider="replicate", model="google/veo-3.1", api_key=REPLICATE_KEY,
                                   base_url=replicate.base_url, poll_interval=0.01, timeout=30)
    job = client.submit_video(config, VideoGenerationRequest(prompt="a cat"))
    entry = replicate.jobs[job.id]
    while not entry.terminal:
        entry.advance()
    return job.id


def secret_fetches(replicate: FakeReplicate) -> list:
    return [r for r in replicate.requests if r.path == SECRET_PATH]


def state(client: Client, job_id: str) -> str:
    return next(j for j in client.list_jobs() if j.id == job_id).state


def test_the_secret_is_fetched_once_with_the_token_and_verifies_deliveries(client, replicate, caplog):
    caplog.set_level(logging.DEBUG)
    first, second = finished_job(client, replicate), finished_job(client, replicate)
    for job_id in (first, second):
        headers, body = replicate.webhook_delivery(job_id)
        job = client.handle_webhook("replicate", headers, body, api_key=REPLICATE_KEY, base_url=replicate.base_url)
        assert job.state == "completed" and job.response.video
    (fetch,) = secret_fetches(replicate)  # kept by the client: one fetch for both deliveries
    assert fetch.method == "GET" and fetch.headers["Authorization"] == f"Bearer {REPLICATE_KEY}"
    assert replicate.webhook_secret not in caplog.text and REPLICATE_KEY not in caplog.text
    assert replicate.webhook_secret not in repr(client._webhooks.secrets)


def test_the_token_comes_from_replicates_variable_by_default(client, replicate, monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", REPLICATE_KEY)
    job_id = finished_job(client, replicate)
    headers, body = replicate.webhook_delivery(job_id)
    assert client.handle_webhook("replicate", headers, body, base_url=replicate.base_url).state == "completed"


def test_a_forged_delivery_is_refused_with_the_fetched_secret_without_fetching_it_again(client, replicate):
    job_id = finished_job(client, replicate)
    headers, body = replicate.webhook_delivery(job_id)
    forged = {**headers, "webhook-signature": "v1,AAAA"}
    with pytest.raises(WebhookError) as info:
        client.handle_webhook("replicate", forged, body, api_key=REPLICATE_KEY, base_url=replicate.base_url)
    assert info.value.reason == "signature"
    assert len(secret_fetches(replicate)) == 1  # fetched again at most once a minute (rotation)
    assert state(client, job_id) == "queued"


def test_a_wrong_token_is_a_clear_error_and_nothing_is_completed(client, replicate):
    job_id = finished_job(client, replicate)
    headers, body = replicate.webhook_delivery(job_id)
    with pytest.raises(WebhookError) as info:
        client.handle_webhook("replicate", headers, body, api_key="r8_wrong", base_url=replicate.base_url)
    error = info.value
    assert error.reason == "secret" and "HTTP 401" in error.message and "API key was refused" in error.message
    assert "r8_wrong" not in str(error) and replicate.webhook_secret not in str(error)
    assert state(client, job_id) == "queued"
    # A later delivery with the right token still works: a refused fetch is not kept.
    job = client.handle_webhook("replicate", headers, body, api_key=REPLICATE_KEY, base_url=replicate.base_url)
    assert job.state == "completed"


def test_a_missing_token_names_both_ways_to_give_the_secret_and_nothing_is_sent(client, replicate, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    job_id = finished_job(client, replicate)
    headers, body = replicate.webhook_delivery(job_id)
    with pytest.raises(WebhookError) as info:
        client.handle_webhook("replicate", headers, body, base_url=replicate.base_url)
    assert info.value.reason == "secret"
    assert "TARASH_REPLICATE_WEBHOOK_SECRET" in info.value.message and "REPLICATE_API_TOKEN" in info.value.message
    assert secret_fetches(replicate) == [] and state(client, job_id) == "queued"


def test_the_key_is_never_sent_to_an_untrusted_origin(client, replicate):
    job_id = finished_job(client, replicate)
    headers, body = replicate.webhook_delivery(job_id)
    with pytest.raises(WebhookError) as info:
        client.handle_webhook("replicate", headers, body, api_key=REPLICATE_KEY,
                              base_url=replicate.base_url.replace("http://", "ftp://"))
    assert info.value.reason == "secret" and "refused to send the replicate API key" in info.value.message
    assert REPLICATE_KEY not in str(info.value)
    assert secret_fetches(replicate) == [] and state(client, job_id) == "queued"


def test_a_configured_secret_is_used_as_is_and_nothing_is_fetched(tmp_path, replicate):
    settings = TarashSettings(replicate_webhook_secret=replicate.webhook_secret)
    with Client(journal=f"sqlite:///{tmp_path / 'jobs.db'}", settings=settings) as client:
        job_id = finished_job(client, replicate)
        assert client.handle_webhook("replicate", *replicate.webhook_delivery(job_id)).state == "completed"
    assert secret_fetches(replicate) == []


PROVIDER = """\
spec_version: 1
provider: acme
base_url: https://api.acme.test
auth: {header: Authorization, scheme: Bearer, env: ACME_KEY}
protocol:
  submit: {method: POST, url: "{{ base_url }}/v1/{{ model }}"}
webhook:
  body: webhook
  signature: standard-webhooks
  secret: {url: "{{ base_url }}/v1/webhooks/secret", key: $.key}
  id: $.id
"""


@pytest.mark.parametrize(("change", "line", "phrase"), [
    (("standard-webhooks", "fal-ed25519"), 10, "only a standard-webhooks secret can be fetched"),
    (("{{ base_url }}/v1", "{{ model }}/v1"), 10, "model"),
    (("key: $.key", "key: \"$.key[\""), 10, "invalid JSONPath"),
], ids=["not standard-webhooks", "a name the URL may not read", "a bad JSONPath"])
def test_a_bad_secret_declaration_is_refused_at_its_line(tmp_path, change, line, phrase):
    from tarash_router.errors import SpecError
    from tarash_router.specs.registry import SpecRegistry

    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "provider.yaml").write_text(PROVIDER.replace(*change))
    with pytest.raises(SpecError) as info:
        SpecRegistry().load_paths([tmp_path])
    assert info.value.line == line and phrase in info.value.message and info.value.key.startswith("webhook.secret")
