"""Tests of the fake Replicate predictions API itself, over real loopback HTTP with httpx."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from fake_helpers import run_module, shared_fake
from tarash_router.testing._server import Failure, RecordedRequest
from tarash_router.testing.replicate import (
    FakeReplicate, ReplicateJob, delivery_url, invalid_input, invalid_version, throttled,
)
import itertools

AUTH = {"Authorization": "Bearer r8_test"}
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
# The tqdm line the Replicate SDK parses progress from.
PROGRESS = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)", re.MULTILINE)


server, fake = shared_fake(FakeReplicate, "fake")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers=AUTH, timeout=5) as c:
        yield c


def create(client: httpx.Client, fake: FakeReplicate, model: str = "google/veo-3.1", **body: object) -> dict:
    """Create a prediction for an official model and return it (asserting 201)."""
    r = client.post(f"{fake.base_url}/v1/models/{model}/predictions", json={"input": {"prompt": "a cat"}, **body})
    assert r.status_code == 201, r.text
    return r.json()


def poll_all(client: httpx.Client, prediction: dict, limit: int = 10) -> list[dict]:
    """GET the prediction until it is terminal; every body seen."""
    seen = []
    for _ in range(limit):
        body = client.get(prediction["urls"]["get"]).json()
        seen.append(body)
        if body["status"] in ("succeeded", "failed", "canceled", "aborted"):
            return seen
    raise AssertionError("prediction never finished")


# -- create -------------------------------------------------------------------------------------


def test_official_model_create_is_201_with_the_prediction(fake: FakeReplicate, client: httpx.Client) -> None:
    p = create(client, fake, "kwaivgi/kling-v2.1")
    assert re.fullmatch(r"[a-z2-7]{26}", p["id"])
    assert (p["model"], p["version"], p["status"]) == ("kwaivgi/kling-v2.1", "hidden", "starting")
    assert p["input"] == {"prompt": "a cat"}
    assert (p["logs"], p["output"], p["error"], p["data_removed"]) == ("", None, None, False)
    assert p["urls"]["get"] == f"{fake.base_url}/v1/predictions/{p['id']}"
    assert p["urls"]["cancel"] == f"{fake.base_url}/v1/predictions/{p['id']}/cancel"
    assert p["urls"]["web"] == f"https://replicate.com/p/{p['id']}"
    assert "stream" in p["urls"] and p["created_at"].endswith("Z")
    assert "completed_at" not in p and "metrics" not in p
    sub = fake.creates[0]
    assert (sub.kind, sub.model, sub.version, sub.prefer) == ("model", "kwaivgi/kling-v2.1", "hidden", None)
    assert fake.create_count() == 1 and fake.create_count("kwaivgi/kling-v2.1") == 1
    assert fake.create_count("google/veo-3") == 0


@pytest.mark.parametrize(("version", "model", "stored"), [
    (VERSION, None, VERSION),
    (f"owner/community-model:{VERSION}", "owner/community-model", VERSION),
    ("black-forest-labs/flux-2-pro", "black-forest-labs/flux-2-pro", "hidden"),
])
def test_version_create_forms(fake: FakeReplicate, client: httpx.Client, version: str, model: str | None,
                              stored: str) -> None:
    r = client.post(f"{fake.base_url}/v1/predictions", json={"input": {"prompt": "x"}, "version": version})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == stored
    assert (fake.creates[0].kind, fake.creates[0].model, fake.creates[0].version) == ("version", model, stored)


def test_deployment_create(fake: FakeReplicate, client: httpx.Client) -> None:
    r = client.post(f"{fake.base_url}/v1/deployments/acme/my-flux/predictions", json={"input": {"prompt": "x"}})
    assert r.status_code == 201 and r.json()["deployment"] == "acme/my-flux"
    assert fake.creates[0].kind == "deployment"


@pytest.mark.parametrize("version", ["abc", "owner/name:nothex", "", None])
def test_bad_or_missing_version_is_422(fake: FakeReplicate, client: httpx.Client, version: str | None) -> None:
    body: dict = {"input": {"prompt": "x"}}
    if version is not None:
        body["version"] = version
    r = client.post(f"{fake.base_url}/v1/predictions", json=body)
    assert r.status_code == 422
    assert r.json()["status"] == 422 and r.json()["title"]
    assert fake.create_count() == 0 and fake.jobs == {}


@pytest.mark.parametrize("content", [b"not json", b"[1]", b'{"prompt": "no input wrapper"}', b'{"input": "str"}'])
def test_body_must_wrap_an_input_object(fake: FakeReplicate, client: httpx.Client, content: bytes) -> None:
    r = client.post(f"{fake.base_url}/v1/models/a/b/predictions", content=content,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    body = r.json()
    assert body["title"] == "Input validation failed"
    assert body["invalid_fields"] and body["detail"].startswith("- ")
    assert fake.create_count() == 0


def test_bearer_auth_required(client: httpx.Client) -> None:
    with FakeReplicate(api_key="right") as fake:
        url = f"{fake.base_url}/v1/models/a/b/predictions"
        for headers in ({}, {"Authorization": "Key right"}, {"Authorization": "Bearer wrong"}):
            r = httpx.post(url, json={"input": {}}, headers=headers)
            assert r.status_code == 401
            assert r.json() == {"title": "Unauthenticated",
                                "detail": "You did not pass a valid authentication token", "status": 401}
        ok = httpx.post(url, json={"input": {}}, headers={"Authorization": "Bearer right"})
        assert ok.status_code == 201
        assert httpx.post(url, json={"input": {}}, headers={"Authorization": "Token right"}).status_code == 201
        assert httpx.get(ok.json()["urls"]["get"]).status_code == 401
        assert fake.create_attempts == 5 and fake.create_count() == 2


def test_body_is_stored_byte_exact(fake: FakeReplicate, client: httpx.Client) -> None:
    prompt = 'He said "hi" \\ back\nnew line 🎬 {{ 7*7 }}'
    raw = json.dumps({"input": {"prompt": prompt, "seed": None}}, ensure_ascii=False).encode()
    r = client.post(f"{fake.base_url}/v1/models/a/b/predictions", content=raw,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 201
    assert fake.creates[0].body == raw
    assert fake.creates[0].json["input"] == {"prompt": prompt, "seed": None}
    assert fake.creates[0].headers["authorization"] == "Bearer r8_test"


# -- get ----------------------------------------------------------------------------------------


def test_status_sequence_logs_and_output(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(statuses=["starting", "processing", "processing", "succeeded"]))
    p = create(client, fake)
    seen = poll_all(client, p)
    assert [s["status"] for s in seen] == ["starting", "processing", "processing", "succeeded"]
    logs = [s["logs"] for s in seen]
    assert logs[0] == ""
    assert all(isinstance(log, str) for log in logs)
    assert all(a == b[:len(a)] for a, b in itertools.pairwise(logs))  # one string that only grows
    percents = [int(PROGRESS.findall(log)[-1][0]) for log in logs[1:]]
    assert percents == sorted(percents) and percents[-1] == 100
    assert [s["output"] for s in seen[:-1]] == [None, None, None]
    final = seen[-1]
    assert final["output"] == delivery_url(p["id"]) and final["error"] is None
    assert final["metrics"]["predict_time"] > 0 and final["completed_at"] and final["started_at"]
    assert client.get(p["urls"]["get"]).json()["status"] == "succeeded"  # terminal state repeats
    assert fake.polls(p["id"]) == 5


@pytest.mark.parametrize("output", [
    "https://replicate.delivery/x/out.mp4",
    ["https://replicate.delivery/x/0.png", "https://replicate.delivery/x/1.png"],
    {"video": "https://replicate.delivery/x/v.mp4", "seed": 3},
])
def test_output_shapes(fake: FakeReplicate, client: httpx.Client, output: object) -> None:
    fake.queue(ReplicateJob(statuses=["succeeded"], output=output))
    p = create(client, fake)
    assert client.get(p["urls"]["get"]).json()["output"] == output


def test_output_factory_and_images_helper(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(statuses=["succeeded"], output=lambda pid, inp: {"echo": inp["prompt"], "id": pid}),
               ReplicateJob.images(2, ext="webp", statuses=["succeeded"]),
               ReplicateJob.images(1, as_list=False, statuses=["succeeded"]))
    first, second, third = (create(client, fake) for _ in range(3))
    assert client.get(first["urls"]["get"]).json()["output"] == {"echo": "a cat", "id": first["id"]}
    done = client.get(second["urls"]["get"]).json()
    assert done["output"] == [delivery_url(second["id"], f"out-{i}.webp") for i in range(2)]
    assert done["metrics"]["image_count"] == 2
    assert client.get(third["urls"]["get"]).json()["output"] == delivery_url(third["id"], "out-0.png")


def test_dict_entries_override_logs_output_and_error(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(statuses=[
        {"status": "processing", "logs": "warming up", "output": ["partial"]},
        {"status": "failed", "error": "boom (E1000)"},
    ]))
    p = create(client, fake)
    running = client.get(p["urls"]["get"]).json()
    assert (running["logs"], running["output"]) == ("warming up", ["partial"])
    failed = client.get(p["urls"]["get"]).json()
    assert (failed["status"], failed["error"], failed["output"]) == ("failed", "boom (E1000)", None)
    assert failed["logs"].startswith("warming up")


def test_moderated_prediction_fails_with_e005(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob.moderated())
    final = poll_all(client, create(client, fake))[-1]
    assert final["status"] == "failed" and "(E005)" in final["error"] and "flagged as sensitive" in final["error"]
    assert final["output"] is None


def test_unknown_prediction_and_route_are_404(fake: FakeReplicate, client: httpx.Client) -> None:
    assert client.get(f"{fake.base_url}/v1/predictions/nope").json() == {"detail": "Not found.", "status": 404}
    assert client.post(f"{fake.base_url}/v1/predictions/nope/cancel").status_code == 404
    assert client.get(f"{fake.base_url}/v1/other").status_code == 404


# -- Prefer: wait -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefer", ["wait", "wait=5"])
def test_prefer_wait_returns_a_finished_prediction(fake: FakeReplicate, client: httpx.Client, prefer: str) -> None:
    r = client.post(f"{fake.base_url}/v1/models/a/b/predictions", json={"input": {"prompt": "x"}},
                    headers={"Prefer": prefer})
    assert r.status_code == 201
    assert r.headers["Preference-Applied"] == "wait"
    body = r.json()
    assert body["status"] == "succeeded" and body["output"] == delivery_url(body["id"])
    assert r.headers["Location"] == body["urls"]["get"]
    assert fake.creates[0].prefer == prefer
    assert client.get(body["urls"]["get"]).json()["status"] == "succeeded"


def test_prefer_wait_that_runs_out_returns_the_running_state(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(statuses=["starting", "processing", "processing", "succeeded"], wait_steps=2))
    r = client.post(f"{fake.base_url}/v1/models/a/b/predictions", json={"input": {}}, headers={"Prefer": "wait=1"})
    body = r.json()
    assert body["status"] == "processing" and body["output"] is None
    assert [s["status"] for s in poll_all(client, body)] == ["processing", "succeeded"]


def test_without_prefer_no_preference_applied(fake: FakeReplicate, client: httpx.Client) -> None:
    r = client.post(f"{fake.base_url}/v1/models/a/b/predictions", json={"input": {}})
    assert "Preference-Applied" not in r.headers and r.json()["status"] == "starting"


# -- scripted faults ----------------------------------------------------------------------------


def test_throttled_then_accepted(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(submit_failures=[throttled(2), throttled()]), ReplicateJob.moderated())
    url = f"{fake.base_url}/v1/models/a/b/predictions"
    first = client.post(url, json={"input": {}})
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert first.json()["detail"].startswith("Request was throttled.")
    assert client.post(url, json={"input": {}}).headers["Retry-After"] == "1"
    assert fake.jobs == {}
    accepted = client.post(url, json={"input": {}})
    assert accepted.status_code == 201
    assert fake.create_attempts == 3 and fake.create_count() == 1
    second = create(client, fake, "a/b")
    assert fake.jobs[second["id"]].script.error and not fake.jobs[accepted.json()["id"]].script.error


def test_invalid_input_and_invalid_version_bodies(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(submit_failures=[invalid_input(("input.duration", "duration must be one of 5, 10")),
                                             invalid_version()]))
    url = f"{fake.base_url}/v1/models/a/b/predictions"
    bad = client.post(url, json={"input": {"duration": 7}}).json()
    assert bad["title"] == "Input validation failed" and bad["status"] == 422
    assert bad["invalid_fields"] == [{"type": "invalid", "field": "input.duration",
                                      "description": "duration must be one of 5, 10"}]
    assert bad["detail"] == "- input.duration: duration must be one of 5, 10\n"
    version = client.post(url, json={"input": {}})
    assert version.status_code == 422 and version.json()["title"] == "Invalid version or not permitted"
    assert client.post(url, json={"input": {}}).status_code == 201


def test_poll_failures_do_not_advance(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(statuses=["processing", "succeeded"],
                            poll_failures={1: Failure.server_error(502), 2: Failure.connection_reset()}))
    p = create(client, fake)
    assert client.get(p["urls"]["get"]).status_code == 502
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(p["urls"]["get"])
    assert client.get(p["urls"]["get"]).json()["status"] == "processing"
    assert client.get(p["urls"]["get"]).json()["status"] == "succeeded"
    assert fake.polls(p["id"]) == 4


def test_delay_triggers_client_timeout(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(delay=0.5))
    with pytest.raises(httpx.TimeoutException):
        client.post(f"{fake.base_url}/v1/models/a/b/predictions", json={"input": {}}, timeout=0.1)


def test_queued_scripts_are_copies() -> None:
    job = ReplicateJob(submit_failures=[throttled()])
    with FakeReplicate() as fake:
        fake.queue(job, job)
        url = f"{fake.base_url}/v1/models/a/b/predictions"
        codes = [httpx.post(url, json={"input": {}}, headers=AUTH).status_code for _ in range(4)]
    assert codes == [429, 201, 429, 201]
    assert job.submit_failures
    with pytest.raises(ValueError):
        ReplicateJob(statuses=[])


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_running_prediction(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(statuses=["starting", "processing", "succeeded"]))
    p = create(client, fake)
    client.get(p["urls"]["get"])
    r = client.post(p["urls"]["cancel"])
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["output"], body["error"]) == ("canceled", None, None)
    assert body["completed_at"] and "predict_time" in body["metrics"]
    assert fake.cancels == [p["id"]]
    assert fake.requests[-1].body == b""
    assert client.get(p["urls"]["get"]).json()["status"] == "canceled"  # stays canceled


def test_cancel_finished_prediction_returns_it_unchanged(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(statuses=["succeeded"]))
    p = create(client, fake)
    done = client.get(p["urls"]["get"]).json()
    r = client.post(p["urls"]["cancel"])
    assert r.status_code == 200 and r.json()["status"] == "succeeded" and r.json()["output"] == done["output"]
    assert fake.cancels == []


def test_cancel_failures_are_scripted(fake: FakeReplicate, client: httpx.Client) -> None:
    fake.queue(ReplicateJob(statuses=["starting"], cancel_failures=[Failure.server_error(503)]))
    p = create(client, fake)
    assert client.post(p["urls"]["cancel"]).status_code == 503
    assert client.post(p["urls"]["cancel"]).json()["status"] == "canceled"
    assert fake.jobs[p["id"]].cancel_attempts == 2


# -- inspection / lifecycle ---------------------------------------------------------------------


def test_records_and_clear(fake: FakeReplicate, client: httpx.Client) -> None:
    p = create(client, fake)
    client.get(p["urls"]["get"])
    rec = fake.requests[-1]
    assert isinstance(rec, RecordedRequest)
    assert (rec.method, rec.path, rec.body) == ("GET", f"/v1/predictions/{p['id']}", b"")
    fake.queue(ReplicateJob.moderated())
    fake.clear()
    assert (fake.requests, fake.jobs, fake.creates, fake.cancels, fake.create_attempts) == ([], {}, [], [], 0)
    again = create(client, fake)
    assert fake.jobs[again["id"]].script.error is None  # the queued script was dropped


async def test_usable_from_async_test() -> None:
    async with FakeReplicate() as fake, httpx.AsyncClient(headers=AUTH, timeout=5) as client:
        fake.queue(ReplicateJob.images(1, statuses=["processing", "succeeded"]))
        r = await client.post(f"{fake.base_url}/v1/models/o/n/predictions", json={"input": {"prompt": "owl"}})
        p = r.json()
        statuses = [(await client.get(p["urls"]["get"])).json()["status"] for _ in range(2)]
        assert statuses == ["processing", "succeeded"]


def test_runs_as_a_separate_process() -> None:
    with run_module("replicate", "--api-key", "k") as url:
        r = httpx.post(f"{url}/v1/models/a/b/predictions", json={"input": {}},
                       headers={"Authorization": "Bearer k"}, timeout=5)
        assert r.status_code == 201 and r.json()["urls"]["get"].startswith(url)
