"""Tests of the fake Runway API itself, over real loopback HTTP with plain httpx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from fake_helpers import run_module, shared_fake
from tarash_router.testing._server import Failure
from tarash_router.testing.runway import (
    RUNWAY_VERSION, FakeRunway, RunwayJob, insufficient_credits, overloaded, rate_limited,
)

KEY = "key_" + "ab" * 64
HEADERS = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": RUNWAY_VERSION}
I2V = {"model": "gen4_turbo", "promptImage": "https://example.com/cat.jpg", "promptText": "the cat jumps",
       "ratio": "1280:720", "duration": 5}


server, runway = shared_fake(lambda: FakeRunway(api_key=KEY), "runway")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A client that sends what the runwayml SDK sends on every request."""
    with httpx.Client(headers=HEADERS, timeout=5) as c:
        yield c


def create(client: httpx.Client, runway: FakeRunway, endpoint: str = "image_to_video", body: dict | None = None) -> str:
    r = client.post(f"{runway.base_url}/v1/{endpoint}", json=body if body is not None else I2V)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id"}
    return r.json()["id"]


def task(client: httpx.Client, runway: FakeRunway, task_id: str) -> httpx.Response:
    return client.get(f"{runway.base_url}/v1/tasks/{task_id}")


# -- create -----------------------------------------------------------------------------------------


def test_create_answers_only_an_id_and_records_the_body(runway, client):
    task_id = create(client, runway)
    assert uuid.UUID(task_id).version == 4
    (created,) = runway.creates
    assert (created.task_id, created.endpoint, created.model) == (task_id, "image_to_video", "gen4_turbo")
    assert created.json == I2V
    assert created.headers["x-runway-version"] == RUNWAY_VERSION
    assert runway.create_count() == runway.create_count("image_to_video") == 1
    assert runway.create_count("text_to_video") == 0


@pytest.mark.parametrize(("endpoint", "body"), [
    ("text_to_video", {"model": "gen4.5", "promptText": "rain", "ratio": "720:1280", "duration": 2, "seed": 1}),
    ("text_to_video", {"model": "veo3.1_fast", "promptText": "rain", "ratio": "1080:1920", "audio": True}),
    ("image_to_video", {"model": "veo3.1", "promptText": "x", "ratio": "1280:720", "promptImage": [
        {"uri": "https://example.com/a.png", "position": "first"},
        {"uri": "https://example.com/b.png", "position": "last"}]}),
    ("video_to_video", {"model": "gen4_aleph", "videoUri": "https://example.com/in.mp4", "promptText": "snow",
                        "references": [{"type": "image", "uri": "https://example.com/s.png"}]}),
    ("text_to_image", {"model": "gen4_image", "promptText": "a hat", "ratio": "1920:1080",
                       "referenceImages": [{"uri": "data:image/png;base64,iVBORw==", "tag": "ref1"}]}),
])
def test_every_endpoint_accepts_a_valid_body(runway, client, endpoint, body):
    create(client, runway, endpoint, body)
    assert runway.create_count(endpoint) == 1


def test_missing_version_header_is_rejected_and_creates_nothing(runway):
    r = httpx.post(f"{runway.base_url}/v1/image_to_video", json=I2V, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400
    assert "X-Runway-Version" in r.json()["error"]
    r = httpx.post(f"{runway.base_url}/v1/image_to_video", json=I2V,
                   headers={**HEADERS, "X-Runway-Version": "2023-01-01"})
    assert r.status_code == 400
    assert runway.create_count() == 0
    assert runway.create_attempts == 2


def test_version_header_is_required_on_polls_and_deletes_too(runway, client):
    task_id = create(client, runway)
    bare = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{runway.base_url}/v1/tasks/{task_id}", headers=bare).status_code == 400
    assert httpx.delete(f"{runway.base_url}/v1/tasks/{task_id}", headers=bare).status_code == 400
    assert runway.deletes == []


@pytest.mark.parametrize("auth", [None, f"Key {KEY}", "Bearer wrong", KEY])
def test_bad_or_missing_bearer_key_is_401(runway, auth):
    headers = {"X-Runway-Version": RUNWAY_VERSION} | ({"Authorization": auth} if auth else {})
    r = httpx.post(f"{runway.base_url}/v1/image_to_video", json=I2V, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]
    assert runway.create_count() == 0


def test_any_bearer_key_when_none_is_configured():
    with FakeRunway() as fake, httpx.Client(timeout=5) as c:
        r = c.post(f"{fake.base_url}/v1/image_to_video", json=I2V,
                   headers={**HEADERS, "Authorization": "Bearer anything"})
        assert r.status_code == 200


def _issues(r: httpx.Response) -> list[dict]:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "Validation of body failed"
    assert body["docUrl"].startswith("https://docs.dev.runwayml.com")
    return body["issues"]


@pytest.mark.parametrize(("endpoint", "body", "path", "snippet"), [
    ("image_to_video", {**I2V, "prompt_text": "x"}, [], "'prompt_text'"),
    ("image_to_video", {k: v for k, v in I2V.items() if k != "promptImage"}, ["promptImage"], "Required"),
    ("image_to_video", {**I2V, "ratio": "16:9"}, ["ratio"], "'1280:720'"),
    ("image_to_video", {**I2V, "duration": 8}, ["duration"], "8"),
    ("image_to_video", {**I2V, "duration": "5"}, ["duration"], "integer"),
    ("image_to_video", {**I2V, "promptImage": "http://example.com/a.png"}, ["promptImage"], "HTTPS"),
    ("image_to_video", {**I2V, "seed": -1}, ["seed"], "0 to"),
    ("image_to_video", {**I2V, "contentModeration": {"publicFigureThreshold": "none"}}, ["contentModeration"],
     "auto"),
    ("image_to_video", {**I2V, "model": "gen4_aleph"}, ["model"], "'gen4_turbo'"),
    ("text_to_video", {"model": "gen4.5", "promptText": "x", "ratio": "1104:832", "duration": 5}, ["ratio"],
     "'720:1280'"),
    ("text_to_video", {"model": "gen4_turbo", "promptText": "x", "ratio": "1280:720"}, ["model"], "discriminator"),
    ("image_to_video", {"model": "veo3.1", "ratio": "1280:720",
                        "promptImage": [{"uri": "https://example.com/b.png", "position": "last"}]},
     ["promptImage"], "only a last frame"),
    ("image_to_video", {**I2V, "promptImage": [{"uri": "https://example.com/b.png", "position": "last"}]},
     ["promptImage", 0, "position"], "'first'"),
    ("text_to_image", {"model": "gen4_image_turbo", "promptText": "x", "ratio": "1920:1080"},
     ["referenceImages"], "Required"),
    ("text_to_image", {"model": "gen4_image", "promptText": "x", "ratio": "1920:1080",
                       "referenceImages": [{"uri": "https://example.com/a.png"}] * 4},
     ["referenceImages"], "at most 3"),
    ("text_to_image", {"model": "gen4_image", "promptText": "x", "ratio": "1920:1080",
                       "referenceImages": [{"uri": "https://example.com/a.png", "tag": "1x"}]},
     ["referenceImages", 0], "tag"),
    ("video_to_video", {"model": "gen4_aleph", "videoUri": "https://example.com/in.mp4", "promptText": "x",
                        "references": [{"type": "image", "uri": "https://a.test/1.png"}] * 2}, ["references"],
     "at most 1"),
])
def test_invalid_bodies_get_zod_style_issues(runway, client, endpoint, body, path, snippet):
    issues = _issues(client.post(f"{runway.base_url}/v1/{endpoint}", json=body))
    assert any(i["path"] == path and snippet in i["message"] for i in issues), issues
    assert runway.create_count() == 0


def test_malformed_json_is_a_400(runway, client):
    r = client.post(f"{runway.base_url}/v1/image_to_video", content=b'{"model":',
                    headers={"Content-Type": "application/json"})
    assert _issues(r)[0]["message"] == "Malformed JSON body"


def test_lenient_mode_accepts_unknown_keys():
    with FakeRunway(strict=False) as fake, httpx.Client(headers=HEADERS, timeout=5) as c:
        r = c.post(f"{fake.base_url}/v1/image_to_video", json={**I2V, "futureField": 1})
        assert r.status_code == 200


# -- task status ------------------------------------------------------------------------------------


def test_status_sequence_with_progress_and_output(runway, client):
    runway.queue(RunwayJob(statuses=["PENDING", "THROTTLED", "RUNNING", "RUNNING", "SUCCEEDED"]))
    task_id = create(client, runway)
    bodies = [task(client, runway, task_id).json() for _ in range(6)]
    assert [b["status"] for b in bodies] == ["PENDING", "THROTTLED", "RUNNING", "RUNNING", "SUCCEEDED", "SUCCEEDED"]
    assert [b.get("progress") for b in bodies[2:4]] == [0.0, 0.5]
    assert all("progress" not in b for b in bodies[:2] + bodies[4:])
    assert all(b["id"] == task_id and b["createdAt"].endswith("Z") for b in bodies)
    output = bodies[4]["output"]
    assert isinstance(output, list) and output[0].startswith("https://") and ".mp4" in output[0]
    assert runway.poll_count(task_id) == 6


def test_text_to_image_outputs_a_png_and_output_can_be_scripted(runway, client):
    runway.queue(RunwayJob(statuses=["SUCCEEDED"]),
                 RunwayJob(statuses=["SUCCEEDED"], output=lambda tid, ep, body: [f"https://x.test/{ep}/{tid}.webp"]))
    body = {"model": "gen4_image", "promptText": "a hat", "ratio": "1920:1080"}
    first = create(client, runway, "text_to_image", body)
    assert ".png" in task(client, runway, first).json()["output"][0]
    second = create(client, runway, "text_to_image", body)
    assert task(client, runway, second).json()["output"] == [f"https://x.test/text_to_image/{second}.webp"]


@pytest.mark.parametrize(("job", "code"), [
    (RunwayJob.failed(), "INTERNAL.BAD_OUTPUT.CODE01"),
    (RunwayJob.moderated(), "SAFETY.INPUT.TEXT"),
    (RunwayJob.moderated("SAFETY.OUTPUT.VIDEO"), "SAFETY.OUTPUT.VIDEO"),
])
def test_failed_tasks_carry_failure_and_code(runway, client, job, code):
    runway.queue(job)
    task_id = create(client, runway)
    last = [task(client, runway, task_id) for _ in range(3)][-1]
    assert last.status_code == 200
    body = last.json()
    assert body["status"] == "FAILED" and body["failureCode"] == code and body["failure"]
    assert "output" not in body


def test_unknown_task_is_404(runway, client):
    assert task(client, runway, str(uuid.uuid4())).status_code == 404


# -- scripted failures ------------------------------------------------------------------------------


def test_create_failures_play_before_the_single_task_is_created(runway, client):
    runway.queue(RunwayJob(create_failures=[rate_limited(2), overloaded(503)]))
    url = f"{runway.base_url}/v1/image_to_video"
    first = client.post(url, json=I2V)
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert "Too many" in first.json()["error"]
    assert client.post(url, json=I2V).status_code == 503
    create(client, runway)
    assert runway.create_attempts == 3
    assert runway.create_count() == 1


def test_out_of_credits_is_a_400(runway, client):
    runway.queue(RunwayJob(create_failures=[insufficient_credits()]))
    r = client.post(f"{runway.base_url}/v1/image_to_video", json=I2V)
    assert r.status_code == 400 and "enough credits" in r.json()["error"]


def test_poll_failures_do_not_advance_the_script(runway, client):
    runway.queue(RunwayJob(statuses=["RUNNING", "SUCCEEDED"], poll_failures={1: overloaded(502),
                                                                           2: Failure.connection_reset()}))
    task_id = create(client, runway)
    assert task(client, runway, task_id).status_code == 502
    with pytest.raises(httpx.TransportError):
        task(client, runway, task_id)
    assert task(client, runway, task_id).json()["status"] == "RUNNING"
    assert task(client, runway, task_id).json()["status"] == "SUCCEEDED"


# -- delete -----------------------------------------------------------------------------------------


def test_delete_cancels_a_running_task(runway, client):
    runway.queue(RunwayJob.never_finishing())
    task_id = create(client, runway)
    assert task(client, runway, task_id).json()["status"] == "PENDING"
    r = client.delete(f"{runway.base_url}/v1/tasks/{task_id}", headers={"Accept": "*/*"})
    assert r.status_code == 204 and r.content == b""
    assert runway.deletes == [task_id]
    assert task(client, runway, task_id).json()["status"] == "CANCELLED"


def test_delete_removes_a_finished_task(runway, client):
    runway.queue(RunwayJob(statuses=["SUCCEEDED"]))
    task_id = create(client, runway)
    assert task(client, runway, task_id).json()["status"] == "SUCCEEDED"
    assert client.delete(f"{runway.base_url}/v1/tasks/{task_id}").status_code == 204
    assert task(client, runway, task_id).status_code == 404
    assert client.delete(f"{runway.base_url}/v1/tasks/{task_id}").status_code == 404


def test_delete_failures_are_scripted(runway, client):
    runway.queue(RunwayJob.never_finishing(delete_failures=[overloaded(500)]))
    task_id = create(client, runway)
    assert client.delete(f"{runway.base_url}/v1/tasks/{task_id}").status_code == 500
    assert runway.deletes == []
    assert client.delete(f"{runway.base_url}/v1/tasks/{task_id}").status_code == 204


def test_clear_forgets_everything(runway, client):
    runway.queue(RunwayJob(), RunwayJob())
    create(client, runway)
    runway.clear()
    assert (runway.creates, runway.tasks, runway.deletes, runway.requests) == ([], {}, [], [])
    assert runway.create_attempts == 0


# -- standalone -------------------------------------------------------------------------------------


def test_runs_as_a_module():
    with run_module("runway", "--api-key", KEY) as url:
        r = httpx.post(f"{url}/v1/image_to_video", json=I2V, headers=HEADERS, timeout=5)
        assert r.status_code == 200 and r.json()["id"]
