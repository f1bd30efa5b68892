"""Credentials stay with their provider, URLs stay in their slot, keys never echo, hostile bodies are bounded.

"Another host" is a second loopback fake on its own port: a different origin.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from conftest import API_KEY, video_config
from tarash_router import (
    AuthenticationError, GenerationFailedError, HTTPError, ValidationError, generate_video, resume,
)
from tarash_router.engine.render import prepare_job
from tarash_router.errors import UnsafeURLError
from tarash_router.journal import JobRecord, get_journal
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
from tarash_router.specs.registry import get_registry
from tarash_router.testing import Failure, FalJob

REQUEST = VideoGenerationRequest(prompt="a cat")


def _fal_poll_context(status_url: str):
    family = get_registry().resolve("fal", "fal-ai/veo3", "video")
    config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key=API_KEY)
    jc = prepare_job(family, config, REQUEST)
    return jc, family, {"id": "job-1", "status_url": status_url}


# ------------------------------------------------------------------ credentials go only to their origin

def test_job_urls_on_another_origin_never_receive_the_key(fal, elsewhere):
    fal.queue(FalJob(url_base=elsewhere.base_url))
    with pytest.raises(UnsafeURLError, match="not the provider's base URL") as caught:
        generate_video(video_config(fal), REQUEST)
    job_id = fal.submits[0].request_id
    assert elsewhere.requests == []  # neither a poll nor a cancel went there
    assert fal.cancels == [] and fal.submit_count() == 1
    assert caught.value.request_id == job_id and caught.value.job_may_exist
    # The accepted job stays journaled, so nothing is lost.
    record = asyncio.run(get_journal().get(job_id))
    assert record is not None and record.state == "queued"


def test_the_api_key_is_never_in_the_refusal(fal, elsewhere):
    fal.queue(FalJob(url_base=elsewhere.base_url))
    with pytest.raises(UnsafeURLError) as caught:
        generate_video(video_config(fal), REQUEST)
    assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value)


def test_resume_does_not_trust_urls_from_the_journal(fal, elsewhere):
    # Whoever can write the journal (a shared Redis) rewrites a job's status URL.
    record = JobRecord(job_id="forged-1", provider="fal", model="fal-ai/veo3", modality="video", state="queued",
                       base_url=fal.base_url, job={"id": "forged-1", "status_url": f"{elsewhere.base_url}/x/status",
                                                   "result_url": f"{elsewhere.base_url}/x"})
    asyncio.run(get_journal().put(record))
    with pytest.raises(UnsafeURLError):
        resume("forged-1", api_key=API_KEY, base_url=fal.base_url)
    assert elsewhere.requests == []


def test_resume_does_not_take_the_base_url_from_the_journal(elsewhere):
    record = JobRecord(job_id="forged-2", provider="fal", model="fal-ai/veo3", modality="video", state="queued",
                       base_url=elsewhere.base_url, job={"id": "forged-2",
                                                         "status_url": f"{elsewhere.base_url}/x/status"})
    asyncio.run(get_journal().put(record))
    with pytest.raises(ValidationError, match="pass base_url="):
        resume("forged-2", api_key=API_KEY)
    assert elsewhere.requests == []


def test_resume_ignores_urls_in_the_journaled_provider_config(fal, elsewhere):
    record = JobRecord(job_id="forged-3", provider="fal", model="fal-ai/veo3", modality="video", state="queued",
                       base_url=fal.base_url, provider_config={"storage_url": elsewhere.base_url},
                       job={"id": "forged-3", "status_url": f"{elsewhere.base_url}/x/status"})
    asyncio.run(get_journal().put(record))
    with pytest.raises(UnsafeURLError):
        resume("forged-3", api_key=API_KEY, base_url=fal.base_url)
    assert elsewhere.requests == []


def test_an_http_downgrade_of_the_provider_origin_is_refused():
    jc, family, job = _fal_poll_context("http://queue.fal.run/fal-ai/veo3/requests/job-1/status")
    with pytest.raises(UnsafeURLError, match="downgrades"):
        jc.build(family.poll, job)


def test_origins_listed_in_the_provider_file_are_trusted():
    jc, family, job = _fal_poll_context("https://rest.alpha.fal.ai/fal-ai/veo3/requests/job-1/status")
    assert jc.build(family.poll, job).url.startswith("https://rest.alpha.fal.ai/")
    jc, family, job = _fal_poll_context("https://queue.fal.run.evil.example/fal-ai/veo3/requests/job-1/status")
    with pytest.raises(UnsafeURLError):
        jc.build(family.poll, job)


def test_a_request_without_credentials_may_go_anywhere():
    # fal's pre-signed storage PUT carries no key: its host is the storage provider's.
    family = get_registry().resolve("fal", "fal-ai/veo3", "video")
    config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key=API_KEY)
    jc = prepare_job(family, config, REQUEST)
    put = family.provider.upload_steps[1]
    file = {"name": "a.png", "content_type": "image/png", "content": b"x", "size": 1}
    prepared = jc.build(put, extra={"file": file, "steps": [{"upload_url": "https://storage.example/put?sig=1"}]})
    assert prepared.url == "https://storage.example/put?sig=1" and "Authorization" not in prepared.headers


# ------------------------------------------------------------------ URL slots

@pytest.mark.parametrize("model", [
    "fal-ai/veo3/../../../admin/delete", "fal-ai/veo3?admin=1", "fal-ai/veo3#x", "fal-ai/veo3/%2e%2e/admin",
    "fal-ai/veo3 /x", "fal-ai//veo3", "/fal-ai/veo3",
])
def test_a_model_id_cannot_leave_its_url_slot(fal, model):
    with pytest.raises(ValidationError, match="not a valid model id"):
        generate_video(video_config(fal, model=model), REQUEST)
    assert fal.requests == []


def test_a_job_url_with_dot_segments_is_refused(fal):
    fal.queue(FalJob(url_base=f"{fal.base_url}/a/%2E%2E/.."))
    with pytest.raises(UnsafeURLError, match="'..' path segment"):
        generate_video(video_config(fal), REQUEST)
    assert [r.method for r in fal.requests] == ["POST"]  # the submit only


# ------------------------------------------------------------------ malformed keys never echo

def test_a_key_with_a_trailing_newline_is_stripped(fal, monkeypatch):
    monkeypatch.setenv("FAL_KEY", f"{API_KEY}\n")
    response = generate_video(video_config(fal, api_key=None), REQUEST)
    assert response.video
    assert fal.submits[0].headers["Authorization"] == f"Key {API_KEY}"


@pytest.mark.parametrize("bad", [f"{API_KEY}\nX-Injected: 1", f"{API_KEY}é", f"fal key {API_KEY}"])
def test_a_key_a_header_cannot_carry_is_refused_by_name(fal, monkeypatch, caplog, bad):
    monkeypatch.setenv("FAL_KEY", bad)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError, match="FAL_KEY") as caught:
        generate_video(video_config(fal, api_key=None), REQUEST)
    exc = caught.value
    seen = [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__), caplog.text,
            str(exc.execution_metadata)]
    assert not any(API_KEY in text for text in seen)
    assert fal.requests == []


def test_a_bad_key_in_the_config_is_named_as_config_api_key(fal):
    with pytest.raises(AuthenticationError, match="config.api_key") as caught:
        generate_video(video_config(fal, api_key=f"{API_KEY}\x00"), REQUEST)
    assert API_KEY not in str(caught.value)


def test_a_config_dump_never_contains_the_key():
    config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key=API_KEY,
                                   provider_config={"access_token": "tok-123", "region": "eu"})
    for text in (str(config.model_dump()), config.model_dump_json(), repr(config)):
        assert API_KEY not in text and "tok-123" not in text
    assert config.api_key == API_KEY  # still usable


# ------------------------------------------------------------------ hostile response bodies

def _deeply_nested(depth: int = 100_000) -> Failure:
    return Failure(status=200, text="[" * depth + "]" * depth, content_type="application/json")


@pytest.mark.usefixtures("polling")  # the faults are scripted on polls
def test_deeply_nested_json_is_a_malformed_poll_and_polling_goes_on(fal):
    fal.queue(FalJob(poll_failures={1: _deeply_nested(), 2: _deeply_nested()}))
    response = generate_video(video_config(fal), REQUEST)
    assert response.video and fal.submit_count() == 1


@pytest.mark.usefixtures("polling")  # the faults are scripted on polls
def test_polls_that_stay_malformed_end_in_a_cancel_not_an_abandoned_job(fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 50, poll_failures={n: _deeply_nested() for n in range(1, 30)}))
    with pytest.raises((HTTPError, GenerationFailedError)):
        generate_video(video_config(fal), REQUEST)
    assert fal.submit_count() == 1 and fal.cancels == [fal.submits[0].request_id]


@pytest.mark.parametrize("url, sent", [
    ("https://queue.fal.run/fal-ai/veo3/requests/1/status", True),
    ("https://queue.fal.run:443/fal-ai/veo3/requests/1", True),
    ("https://QUEUE.fal.run/fal-ai/veo3/requests/1", True),  # hosts compare without case, as the parse does
    ("https://queue.fal.run.attacker.example/requests/1", False),
    ("https://queue.fal.run@attacker.example/requests/1", False),
    ("https://queue.fal.run:8443/requests/1", False),
    ("http://queue.fal.run/requests/1", False),  # never downgraded to plain http
    ("https://queue.fal.run?next=/requests/1", True),  # no slash after the host: the full parse decides
])
def test_a_url_that_only_begins_like_a_trusted_origin_gets_no_key(url, sent):
    """The quick check (does the URL begin with a trusted origin written plainly, up to the slash?)
    must agree with the full parse of its origin, for look-alikes too."""
    from tarash_router.engine.url_safety import check_credentialed_url, origin_of, trusted_origins

    trusted = trusted_origins("https://queue.fal.run", [], {})
    assert (origin_of(url) in trusted) == sent  # what the full parse says
    if sent:
        check_credentialed_url(url, trusted, "fal")
    else:
        with pytest.raises(UnsafeURLError):
            check_credentialed_url(url, trusted, "fal")


def test_a_trusted_ipv6_origin_is_recognised_written_plainly():
    from tarash_router.engine.url_safety import check_credentialed_url, trusted_origins

    trusted = trusted_origins("http://[::1]:8080", [], {})
    check_credentialed_url("http://[::1]:8080/jobs/1", trusted, "custom")
    with pytest.raises(UnsafeURLError):
        check_credentialed_url("http://[::1]:8081/jobs/1", trusted, "custom")
