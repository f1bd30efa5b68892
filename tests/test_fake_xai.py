"""Tests of the fake xAI server itself, over real loopback HTTP with plain httpx."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest

from fake_helpers import run_module, shared_fake
from tarash_router.testing._server import Failure
from tarash_router.testing.xai import FakeXAI, XAIJob, rate_limited, xai_error

AUTH = {"Authorization": "Bearer xai-test"}
VIDEO = {"model": "grok-imagine-video", "prompt": "a comet"}
IMAGE = {"model": "grok-imagine-image", "prompt": "a fox"}


server, xai = shared_fake(FakeXAI, "xai")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers=AUTH, timeout=5) as c:
        yield c


def create(client: httpx.Client, xai: FakeXAI, body: dict | None = None, endpoint: str = "generations") -> str:
    r = client.post(f"{xai.base_url}/v1/videos/{endpoint}", json=body or VIDEO)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"request_id"}
    return r.json()["request_id"]


def poll(client: httpx.Client, xai: FakeXAI, request_id: str) -> httpx.Response:
    return client.get(f"{xai.base_url}/v1/videos/{request_id}")


def assert_xai_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "error"}
    return body["error"]


# -- video --------------------------------------------------------------------------------------


def test_video_lifecycle_pending_202_then_done_200(xai: FakeXAI, client: httpx.Client) -> None:
    rid = create(client, xai, {**VIDEO, "duration": 6, "aspect_ratio": "16:9", "resolution": "480p"})
    assert uuid.UUID(rid)
    answers = [poll(client, xai, rid) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 200, 200]
    pending = [a.json() for a in answers[:2]]
    assert [p["status"] for p in pending] == ["pending", "pending"]
    assert pending[0]["progress"] < pending[1]["progress"] < 100
    assert answers[2].json() == {
        "status": "done",
        "video": {"url": f"https://vidgen.x.ai/xai-vidgen-bucket/xai-video-{rid}.mp4", "duration": 6,
                  "respect_moderation": True},
        "model": "grok-imagine-video",
    }
    assert answers[3].json() == answers[2].json()  # the last entry repeats
    assert xai.polls(rid) == 4 and xai.create_count() == 1
    submit = xai.submits[0]
    assert submit.endpoint == "videos/generations" and submit.json["duration"] == 6
    assert submit.headers["authorization"] == "Bearer xai-test"


def test_default_duration_is_eight(xai: FakeXAI, client: httpx.Client) -> None:
    xai.queue(XAIJob(statuses=["done"]))
    assert poll(client, xai, create(client, xai)).json()["video"]["duration"] == 8


def test_edit_endpoint_requires_a_video(xai: FakeXAI, client: httpx.Client) -> None:
    r = client.post(f"{xai.base_url}/v1/videos/edits", json=VIDEO)
    assert "video.url is required" in assert_xai_error(r, 400)
    rid = create(client, xai, {**VIDEO, "video": {"url": "https://example.com/a.mp4"}}, endpoint="edits")
    assert xai.submits[0].endpoint == "videos/edits" and xai.jobs[rid].submitted["video"]["url"].endswith(".mp4")


def test_image_to_video_takes_a_url_or_data_uri(xai: FakeXAI, client: httpx.Client) -> None:
    create(client, xai, {**VIDEO, "image": {"url": "data:image/png;base64,iVBORw=="}})
    r = client.post(f"{xai.base_url}/v1/videos/generations", json={**VIDEO, "image": "https://example.com/a.png"})
    assert "image.url" in assert_xai_error(r, 400)


def test_moderated_failed_and_expired_outcomes(xai: FakeXAI, client: httpx.Client) -> None:
    xai.queue(XAIJob.moderated(), XAIJob.failed("GPU fell over"), XAIJob.expired())
    moderated, failed, expired = (create(client, xai) for _ in range(3))
    for rid in (moderated, failed, expired):
        assert poll(client, xai, rid).status_code == 202
    body = poll(client, xai, moderated).json()
    assert body["status"] == "done" and body["video"]["respect_moderation"] is False and "url" not in body["video"]
    r = poll(client, xai, failed)
    assert r.status_code == 200 and r.json()["status"] == "failed"
    assert r.json()["error"] == {"code": "internal_error", "message": "GPU fell over"}
    r = poll(client, xai, expired)
    assert r.status_code == 200 and r.json() == {"status": "expired", "model": "grok-imagine-video"}


@pytest.mark.parametrize(("shape", "body"), [("empty", b""), ("request_id", None)])
def test_pending_body_shapes(xai: FakeXAI, client: httpx.Client, shape: str, body: bytes | None) -> None:
    xai.queue(XAIJob(pending_body=shape))  # type: ignore[arg-type]
    rid = create(client, xai)
    r = poll(client, xai, rid)
    assert r.status_code == 202
    if body is not None:
        assert r.content == body
    else:
        assert r.json() == {"request_id": rid}


def test_pending_can_answer_200(xai: FakeXAI, client: httpx.Client) -> None:
    xai.queue(XAIJob(pending_status=200, statuses=[{"status": "pending", "progress": 40}, "done"]))
    r = poll(client, xai, create(client, xai))
    assert r.status_code == 200 and r.json() == {"status": "pending", "progress": 40}


def test_poll_failures_do_not_advance_the_sequence(xai: FakeXAI, client: httpx.Client) -> None:
    xai.queue(XAIJob(statuses=["pending", "done"], poll_failures={1: xai_error(500, "boom"), 2: Failure.html(503)}))
    rid = create(client, xai)
    assert assert_xai_error(poll(client, xai, rid), 500) == "boom"
    assert poll(client, xai, rid).status_code == 503
    assert poll(client, xai, rid).json()["status"] == "pending"
    assert poll(client, xai, rid).json()["status"] == "done"
    assert xai.polls(rid) == 4


def test_submit_rate_limit_then_accepted_creates_one_job(xai: FakeXAI, client: httpx.Client) -> None:
    xai.queue(XAIJob(submit_failures=[rate_limited(1)]))
    r = client.post(f"{xai.base_url}/v1/videos/generations", json=VIDEO)
    assert_xai_error(r, 429)
    assert r.headers["retry-after"] == "1"
    create(client, xai)
    assert xai.submit_attempts == 2 and xai.create_count() == 1


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({**VIDEO, "duration": 16}, 400, "between 1 and 15"),
    ({**VIDEO, "duration": 5.5}, 400, "between 1 and 15"),
    ({**VIDEO, "resolution": "1080p"}, 400, "supported: 480p, 720p"),
    ({**VIDEO, "aspect_ratio": "21:9"}, 400, "supported: 1:1, 16:9"),
    ({"model": "grok-imagine-video"}, 422, "missing field `prompt`"),
    ({"prompt": "x"}, 422, "missing field `model`"),
    ({**VIDEO, "model": "grok-video-9"}, 404, "does not exist"),
])
def test_invalid_video_requests(xai: FakeXAI, client: httpx.Client, body: dict, status: int, needle: str) -> None:
    assert needle in assert_xai_error(client.post(f"{xai.base_url}/v1/videos/generations", json=body), status)
    assert xai.create_count() == 0


def test_non_object_body_is_422(xai: FakeXAI, client: httpx.Client) -> None:
    r = client.post(f"{xai.base_url}/v1/videos/generations", content=b"[1]", headers={"Content-Type": "application/json"})
    assert "deserialize" in assert_xai_error(r, 422)


def test_unknown_job_and_no_cancel_route(xai: FakeXAI, client: httpx.Client) -> None:
    assert_xai_error(poll(client, xai, "nope"), 404)
    rid = create(client, xai)
    assert_xai_error(client.delete(f"{xai.base_url}/v1/videos/{rid}"), 404)
    assert_xai_error(client.post(f"{xai.base_url}/v1/videos/{rid}/cancel"), 404)


def test_auth_missing_401_wrong_400() -> None:
    with FakeXAI(api_key="xai-right") as fake:
        url = f"{fake.base_url}/v1/videos/generations"
        assert_xai_error(httpx.post(url, json=VIDEO), 401)
        error = assert_xai_error(httpx.post(url, json=VIDEO, headers={"Authorization": "Bearer xai-wrong"}), 400)
        assert "Incorrect API key" in error and "xai-wrong" not in error
        rid = httpx.post(url, json=VIDEO, headers={"Authorization": "Bearer xai-right"}).json()["request_id"]
        assert_xai_error(httpx.get(f"{fake.base_url}/v1/videos/{rid}"), 401)
        assert fake.submit_attempts == 3 and fake.create_count() == 1


# -- images -------------------------------------------------------------------------------------


def test_images_as_urls(xai: FakeXAI, client: httpx.Client) -> None:
    r = client.post(f"{xai.base_url}/v1/images/generations", json={**IMAGE, "n": 3, "aspect_ratio": "20:9"})
    assert r.status_code == 200
    data = r.json()["data"]
    assert len(data) == 3 and all(d["url"].startswith("https://imgen.x.ai/") and d["b64_json"] is None for d in data)
    assert data[0]["revised_prompt"].endswith("a fox")
    assert xai.image_count() == 1 and xai.create_count() == 0


def test_images_as_base64(xai: FakeXAI, client: httpx.Client) -> None:
    r = client.post(f"{xai.base_url}/v1/images/generations", json={**IMAGE, "response_format": "b64_json"})
    (item,) = r.json()["data"]
    assert item["url"] is None and base64.b64decode(item["b64_json"]).startswith(b"\xff\xd8")


def test_scripted_image_answer_and_failure(xai: FakeXAI, client: httpx.Client) -> None:
    xai.queue(XAIJob(images=[{"url": "https://x/y.jpeg", "respect_moderation": False}]),
              XAIJob(submit_failures=[xai_error(500, "down")]))
    url = f"{xai.base_url}/v1/images/generations"
    assert client.post(url, json=IMAGE).json() == {"data": [{"url": "https://x/y.jpeg", "respect_moderation": False}]}
    assert_xai_error(client.post(url, json=IMAGE), 500)
    assert client.post(url, json=IMAGE).status_code == 200
    assert xai.image_count() == 2 and xai.submit_attempts == 3


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({**IMAGE, "n": 11}, 400, "between 1 and 10"),
    ({**IMAGE, "aspect_ratio": "21:9"}, 400, "supported: 1:1"),
    ({"model": "grok-2-image", "prompt": "x", "aspect_ratio": "1:1"}, 400, "not supported by model grok-2-image"),
    ({**IMAGE, "size": "1024x1024"}, 400, "Argument not supported: size"),
    ({**IMAGE, "resolution": "4k"}, 400, "1k or 2k"),
    ({**IMAGE, "response_format": "png"}, 400, "url or b64_json"),
    ({"model": "grok-imagine-image"}, 422, "missing field `prompt`"),
    ({**IMAGE, "model": "dall-e-3"}, 404, "does not exist"),
])
def test_invalid_image_requests(xai: FakeXAI, client: httpx.Client, body: dict, status: int, needle: str) -> None:
    assert needle in assert_xai_error(client.post(f"{xai.base_url}/v1/images/generations", json=body), status)
    assert xai.image_count() == 0


# -- lifecycle ----------------------------------------------------------------------------------


def test_clear_forgets_jobs_and_scripts(xai: FakeXAI, client: httpx.Client) -> None:
    xai.queue(XAIJob.failed())
    create(client, xai)
    xai.queue(XAIJob.failed())
    xai.clear()
    assert xai.jobs == {} and xai.submits == [] and xai.requests == [] and xai.submit_attempts == 0
    rid = create(client, xai)
    assert [poll(client, xai, rid).json()["status"] for _ in range(3)] == ["pending", "pending", "done"]


async def test_usable_from_async_code() -> None:
    async with FakeXAI() as fake:
        async with httpx.AsyncClient(headers=AUTH) as client:
            r = await client.post(f"{fake.base_url}/v1/videos/generations", json=VIDEO)
            assert (await client.get(f"{fake.base_url}/v1/videos/{r.json()['request_id']}")).status_code == 202


def test_runs_as_a_separate_process() -> None:
    with run_module("xai") as url:
        r = httpx.post(f"{url}/v1/videos/generations", json=VIDEO, headers=AUTH, timeout=5)
        assert r.status_code == 200 and "request_id" in r.json()
