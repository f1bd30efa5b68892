"""Tests of the fake fal.ai queue server itself, over real loopback HTTP with httpx."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from fake_helpers import run_module
from tarash_router.testing import Failure, FakeFal, FalJob, RecordedRequest

AUTH = {"Authorization": "Key test-key"}
KLING = "fal-ai/kling-video/v2.1/pro/image-to-video"


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    """A running fake for one test."""
    with FakeFal() as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A sync client that authenticates like fal_client does."""
    with httpx.Client(headers=AUTH, timeout=5) as c:
        yield c


def submit(client: httpx.Client, fal: FakeFal, endpoint: str = KLING, body: object = None) -> dict:
    """Submit a job and return the envelope (asserting acceptance)."""
    r = client.post(f"{fal.base_url}/{endpoint}", json=body if body is not None else {"prompt": "a cat"})
    assert r.status_code == 200, r.text
    return r.json()


def poll_until_completed(client: httpx.Client, status_url: str, limit: int = 20) -> httpx.Response:
    """Poll a status URL until it reports COMPLETED."""
    for _ in range(limit):
        r = client.get(status_url)
        if r.json()["status"] == "COMPLETED":
            return r
    raise AssertionError("job never completed")


# -- submit -------------------------------------------------------------------------------------


def test_submit_envelope_uses_app_id_and_drops_subpath(fal: FakeFal, client: httpx.Client) -> None:
    env = submit(client, fal)
    rid = env["request_id"]
    assert uuid.UUID(rid).version == 4
    base = f"{fal.base_url}/fal-ai/kling-video/requests/{rid}"
    assert env["status"] == "IN_QUEUE"
    assert isinstance(env["queue_position"], int)
    assert env["response_url"] == base
    assert env["status_url"] == f"{base}/status"
    assert env["cancel_url"] == f"{base}/cancel"
    assert fal.submits[0].endpoint == KLING
    assert fal.submit_count(KLING) == 1 and fal.submit_count("fal-ai/other") == 0


def test_namespaced_endpoint_keeps_three_segments(fal: FakeFal, client: httpx.Client) -> None:
    env = submit(client, fal, "workflows/me/my-flow/extra")
    assert env["response_url"] == f"{fal.base_url}/workflows/me/my-flow/requests/{env['request_id']}"


def test_submit_status_can_be_in_progress(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(submit_status="IN_PROGRESS"))
    env = submit(client, fal)
    assert env["status"] == "IN_PROGRESS" and "queue_position" not in env


def test_submit_requires_key_auth(client: httpx.Client) -> None:
    with FakeFal(api_key="right") as fal:
        url = f"{fal.base_url}/fal-ai/veo3"
        for headers in ({}, {"Authorization": "Bearer right"}, {"Authorization": "Key wrong"}):
            r = httpx.post(url, json={"prompt": "x"}, headers=headers)
            assert r.status_code == 401
            assert "detail" in r.json()
        assert httpx.post(url, json={"prompt": "x"}, headers={"Authorization": "Key right"}).status_code == 200
        assert fal.submit_attempts == 4 and fal.submit_count() == 1


def test_status_requires_auth(fal: FakeFal, client: httpx.Client) -> None:
    env = submit(client, fal)
    assert httpx.get(env["status_url"]).status_code == 401


@pytest.mark.parametrize("content", [b"not json", b"", b"[1, 2]"])
def test_submit_rejects_non_object_bodies(fal: FakeFal, client: httpx.Client, content: bytes) -> None:
    r = client.post(f"{fal.base_url}/fal-ai/veo3", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list)
    assert fal.submit_count() == 0 and fal.jobs == {}


def test_body_is_stored_byte_exact(fal: FakeFal, client: httpx.Client) -> None:
    prompt = 'He said "hi" \\ back\\slash\nnew line 🎬 {{ 7*7 }} {% raw %}'
    raw = json.dumps({"prompt": prompt, "seed": 7}, ensure_ascii=False).encode()
    r = client.post(f"{fal.base_url}/fal-ai/veo3", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    sub = fal.submits[0]
    assert sub.body == raw
    assert sub.json["prompt"] == prompt
    assert sub.headers["authorization"] == sub.headers["Authorization"] == "Key test-key"
    assert fal.requests[0].body == raw


# -- status -------------------------------------------------------------------------------------


def test_status_sequence_codes_and_queue_positions(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "COMPLETED"]))
    env = submit(client, fal)
    assert env["queue_position"] == 2
    seen = []
    for _ in range(6):
        r = client.get(env["status_url"])
        body = r.json()
        seen.append((r.status_code, body["status"], body.get("queue_position")))
        assert body["request_id"] == env["request_id"]
        assert body["response_url"] == env["response_url"]
        assert body["cancel_url"] == env["cancel_url"]
    assert seen == [
        (202, "IN_QUEUE", 2),
        (202, "IN_QUEUE", 1),
        (202, "IN_QUEUE", 0),
        (202, "IN_PROGRESS", None),
        (200, "COMPLETED", None),
        (200, "COMPLETED", None),  # the last entry repeats
    ]
    assert client.get(env["status_url"]).json()["metrics"] == {"inference_time": 1.2}
    assert fal.status_polls(env["request_id"]) == 7


def test_status_dict_entries(fal: FakeFal, client: httpx.Client) -> None:
    logs = [{"message": "warming", "level": "DEBUG", "source": "USER", "timestamp": "2025-01-01T00:00:00Z"}]
    fal.queue(
        FalJob(
            statuses=[
                {"status": "IN_QUEUE", "queue_position": 9},
                {"status": "IN_PROGRESS", "logs": logs},
                {"status": "COMPLETED", "metrics": {"inference_time": 3.5}},
            ]
        )
    )
    env = submit(client, fal)
    assert env["queue_position"] == 9
    assert client.get(env["status_url"]).json()["queue_position"] == 9
    assert client.get(env["status_url"], params={"logs": 1}).json()["logs"] == logs
    assert client.get(env["status_url"]).json()["metrics"] == {"inference_time": 3.5}


@pytest.mark.parametrize(("value", "expect_logs"), [("1", True), ("true", True), ("0", False), ("false", False), (None, False)])
def test_logs_only_when_requested(fal: FakeFal, client: httpx.Client, value: str | None, expect_logs: bool) -> None:
    fal.queue(FalJob(statuses=["IN_PROGRESS"]))
    env = submit(client, fal)
    params = {} if value is None else {"logs": value}
    body = client.get(env["status_url"], params=params).json()
    assert body["status"] == "IN_PROGRESS"
    if expect_logs:
        assert body["logs"] and set(body["logs"][0]) == {"message", "level", "source", "timestamp"}
    else:
        assert body["logs"] is None


def test_both_prefixes_reach_the_job(fal: FakeFal, client: httpx.Client) -> None:
    env = submit(client, fal)
    rid = env["request_id"]
    app_prefix = f"{fal.base_url}/fal-ai/kling-video/requests/{rid}"
    full_prefix = f"{fal.base_url}/{KLING}/requests/{rid}"
    assert client.get(f"{app_prefix}/status").status_code == 202
    assert client.get(f"{full_prefix}/status").status_code == 202
    assert client.get(f"{full_prefix}/status").status_code == 200
    assert client.get(app_prefix).json() == client.get(full_prefix).json()
    # Another app's prefix does not see this request.
    assert client.get(f"{fal.base_url}/fal-ai/veo3/requests/{rid}/status").status_code == 404


# -- result -------------------------------------------------------------------------------------


def test_result_default_video_and_not_ready(fal: FakeFal, client: httpx.Client) -> None:
    env = submit(client, fal)
    rid = env["request_id"]
    early = client.get(env["response_url"])
    assert early.status_code == 400 and early.json() == {"detail": "Request is still in progress"}
    poll_until_completed(client, env["status_url"])
    r = client.get(env["response_url"])
    assert r.status_code == 200
    assert r.json() == {
        "video": {
            "url": f"https://v3.fal.media/files/fake/{rid}.mp4",
            "content_type": "video/mp4",
            "file_name": f"{rid}.mp4",
            "file_size": 1048576,
        }
    }


def test_unknown_request_is_404(fal: FakeFal, client: httpx.Client) -> None:
    base = f"{fal.base_url}/fal-ai/veo3/requests/{uuid.uuid4()}"
    assert client.get(base).json() == {"detail": "Request not found"}
    assert client.get(f"{base}/status").status_code == 404
    r = client.put(f"{base}/cancel")
    assert r.status_code == 404 and r.json() == {"status": "NOT_FOUND"}


def test_images_helper_echoes_prompt(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob.images(2, statuses=["COMPLETED"]))
    env = submit(client, fal, "fal-ai/flux/dev", {"prompt": "a red fox"})
    poll_until_completed(client, env["status_url"])
    out = client.get(env["response_url"]).json()
    assert out["prompt"] == "a red fox"
    assert len(out["images"]) == 2 and out["has_nsfw_concepts"] == [False, False]
    assert out["images"][0]["width"] == 1024 and out["images"][0]["content_type"] == "image/jpeg"


def test_moderated_result_is_422_detail_list(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob.moderated())
    env = submit(client, fal)
    final = poll_until_completed(client, env["status_url"])
    assert "error" not in final.json()  # the failure only shows on the result GET
    r = client.get(env["response_url"])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, list)
    assert detail[0]["type"] == "content_policy_violation" and detail[0]["loc"] == ["body", "prompt"]


def test_completed_with_error(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob.completed_with_error())
    env = submit(client, fal)
    final = poll_until_completed(client, env["status_url"])
    assert final.status_code == 200
    assert final.json()["error"] == "Runner disconnected"
    assert final.json()["error_type"] == "runner_disconnected"
    r = client.get(env["response_url"])
    assert r.status_code == 503
    assert r.json()["error_type"] == "runner_disconnected"
    assert r.headers["x-fal-error-type"] == "runner_disconnected"


def test_result_failures_malformed_json_and_html(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(statuses=["COMPLETED"], result_failures=[Failure.malformed_json(), Failure.html(502)]))
    env = submit(client, fal)
    client.get(env["status_url"])
    bad = client.get(env["response_url"])
    assert bad.status_code == 200 and bad.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        bad.json()
    page = client.get(env["response_url"])
    assert page.status_code == 502 and page.headers["content-type"].startswith("text/html")
    assert "nginx" in page.text
    assert "video" in client.get(env["response_url"]).json()


def test_truncated_body_raises(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(statuses=["COMPLETED"], result_failures=[Failure.truncated()]))
    env = submit(client, fal)
    client.get(env["status_url"])
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(env["response_url"])
    assert client.get(env["response_url"]).status_code == 200


# -- scripted faults ----------------------------------------------------------------------------


def test_submit_rate_limited_then_accepted(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(submit_failures=[Failure.rate_limited(2), Failure.rate_limited()]), FalJob.moderated())
    url = f"{fal.base_url}/fal-ai/veo3"
    first = client.post(url, json={"prompt": "x"})
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "2"
    assert first.json() == {"detail": "Rate limit exceeded"}
    assert client.post(url, json={"prompt": "x"}).headers["Retry-After"] == "1"
    assert fal.jobs == {}  # failed attempts create no job
    accepted = client.post(url, json={"prompt": "x"}).json()
    assert fal.submit_attempts == 3 and fal.submit_count() == 1
    # The next submit takes the next script (moderated).
    second = submit(client, fal, "fal-ai/veo3")
    assert fal.jobs[second["request_id"]].script.result_status == 422
    assert fal.jobs[accepted["request_id"]].script.result_status == 200


def test_queued_scripts_are_independent_copies(fal: FakeFal, client: httpx.Client) -> None:
    job = FalJob(submit_failures=[Failure.server_error(503)])
    fal.queue(job, job)
    codes = [client.post(f"{fal.base_url}/fal-ai/veo3", json={}).status_code for _ in range(4)]
    assert codes == [503, 200, 503, 200]
    assert job.submit_failures  # the caller's object is untouched
    with pytest.raises(ValueError):
        FalJob(statuses=[])


def test_poll_failures_do_not_advance(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(
        FalJob(
            statuses=["IN_QUEUE", "COMPLETED"],
            poll_failures={1: Failure.server_error(), 2: Failure.connection_reset(), 4: Failure.server_error(503)},
        )
    )
    env = submit(client, fal)
    assert client.get(env["status_url"]).status_code == 500
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(env["status_url"])
    assert client.get(env["status_url"]).json()["status"] == "IN_QUEUE"
    assert client.get(env["status_url"]).status_code == 503
    assert client.get(env["status_url"]).json()["status"] == "COMPLETED"
    assert fal.status_polls(env["request_id"]) == 5


def test_delay_triggers_client_timeout(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(poll_failures={1: Failure.timeout(2)}), FalJob(delay=0.5))
    env = submit(client, fal)
    with pytest.raises(httpx.TimeoutException):
        client.get(env["status_url"], timeout=0.1)
    assert client.get(env["status_url"]).json()["status"] == "IN_QUEUE"
    with pytest.raises(httpx.TimeoutException):
        client.post(f"{fal.base_url}/fal-ai/veo3", json={"prompt": "slow"}, timeout=0.1)


# -- status stream ------------------------------------------------------------------------------


def stream_events(client: httpx.Client, status_url: str) -> tuple[httpx.Response, list[dict]]:
    """GET the status stream to its end: the response and its events' data, parsed."""
    with client.stream("GET", f"{status_url}/stream", params={"logs": "1"}) as response:
        lines = [line for line in response.iter_lines()]
    return response, [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]


def test_status_stream_sends_each_step_and_closes_after_completed(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]))
    env = submit(client, fal)
    response, events = stream_events(client, env["status_url"])
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert [e["status"] for e in events] == ["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    assert events[0]["queue_position"] == 0 and events[0]["request_id"] == env["request_id"]
    assert [e["logs"][0]["message"] for e in events[1:3]] == ["step 1/2", "step 2/2"]  # each step's own logs
    assert fal.status_streams(env["request_id"]) == 1 and fal.status_polls(env["request_id"]) == 0
    assert client.get(env["response_url"]).status_code == 200  # the job is done


def test_status_stream_holds_an_unfinished_job_with_keep_alives_until_cancelled(fal: FakeFal,
                                                                                client: httpx.Client) -> None:
    fal.queue(FalJob(statuses=["IN_QUEUE"], stream_keepalive=0.05))
    env = submit(client, fal)
    received: list[str] = []
    with client.stream("GET", f"{env['status_url']}/stream") as response:
        for line in response.iter_lines():
            received.append(line)
            if received.count(": keep-alive") == 2:
                client.put(env["cancel_url"])
    data = [json.loads(line[6:]) for line in received if line.startswith("data: ")]
    assert [e["status"] for e in data] == ["IN_QUEUE", "COMPLETED"] and data[-1]["error_type"] == "cancelled"


@pytest.mark.parametrize(("fault", "what"), [
    ("malformed", 'data: {"status": "IN_PROG'), ("end", None), ("oversized", "x" * 1000)])
def test_status_stream_faults_come_after_the_first_event(fal: FakeFal, client: httpx.Client, fault: str,
                                                         what: str | None) -> None:
    fal.queue(FalJob(statuses=["IN_QUEUE", "COMPLETED"], stream_fault=fault, stream_oversize=1000))
    env = submit(client, fal)
    with client.stream("GET", f"{env['status_url']}/stream") as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[0].startswith('data: {"status": "IN_QUEUE"')
    assert (what is None and len(lines) == 1) or (what is not None and what in lines[1])


def test_status_stream_drop_resets_and_a_failure_answers_instead(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(stream_fault="drop"), FalJob(stream_failure=Failure.server_error(502)))
    env = submit(client, fal)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        stream_events(client, env["status_url"])
    env = submit(client, fal)
    assert client.get(f"{env['status_url']}/stream").status_code == 502


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_then_already_completed(fal: FakeFal, client: httpx.Client) -> None:
    env = submit(client, fal)
    r = client.put(env["cancel_url"])
    assert r.status_code == 202 and r.json() == {"status": "CANCELLATION_REQUESTED"}
    assert fal.cancels == [env["request_id"]]
    status = client.get(env["status_url"])
    assert status.status_code == 200
    assert status.json()["status"] == "COMPLETED"
    assert (status.json()["error"], status.json()["error_type"]) == ("Request cancelled", "cancelled")
    result = client.get(env["response_url"])
    assert result.status_code == 400 and result.json() == {"detail": "Request was cancelled"}
    again = client.put(env["cancel_url"])
    assert again.status_code == 400 and again.json() == {"status": "ALREADY_COMPLETED"}


def test_cancel_after_completion(fal: FakeFal, client: httpx.Client) -> None:
    fal.queue(FalJob(statuses=["COMPLETED"]))
    env = submit(client, fal)
    client.get(env["status_url"])
    r = client.put(env["cancel_url"])
    assert r.status_code == 400 and r.json() == {"status": "ALREADY_COMPLETED"}
    assert fal.cancels == []
    assert client.post(env["cancel_url"]).status_code == 405


# -- inspection / lifecycle ---------------------------------------------------------------------


def test_records_and_clear(fal: FakeFal, client: httpx.Client) -> None:
    fal.default_job = FalJob(statuses=["COMPLETED"])
    env = submit(client, fal)
    client.get(env["status_url"], params={"logs": "1"})
    rec = fal.requests[-1]
    assert isinstance(rec, RecordedRequest)
    assert (rec.method, rec.query, rec.body, rec.json) == ("GET", {"logs": "1"}, b"", None)
    assert rec.path == f"/fal-ai/kling-video/requests/{env['request_id']}/status"
    assert "AUTHORIZATION" in rec.headers
    assert fal.requests[0].json == {"prompt": "a cat"}
    fal.queue(FalJob.moderated())
    fal.clear()
    assert (fal.requests, fal.jobs, fal.submits, fal.cancels, fal.submit_attempts) == ([], {}, [], [], 0)
    env = submit(client, fal)
    assert fal.jobs[env["request_id"]].script.result_status == 200  # queued script was dropped


def test_jobs_in_flight_count_until_they_finish(fal: FakeFal, client: httpx.Client) -> None:
    """What an account cap is about: jobs accepted and not finished (completed, served or cancelled)."""
    fal.default_job = FalJob(statuses=["IN_QUEUE", "COMPLETED"])
    first, second, third = (submit(client, fal) for _ in range(3))
    assert (fal.in_flight, fal.max_in_flight) == (3, 3)
    client.get(first["status_url"])
    assert fal.in_flight == 3  # still queued
    poll_until_completed(client, first["status_url"])
    assert client.put(second["cancel_url"]).status_code == 202
    assert (fal.in_flight, fal.max_in_flight) == (1, 3)
    fal.jobs[third["request_id"]].status = "COMPLETED"
    client.get(third["response_url"])
    assert fal.in_flight == 0
    fal.clear()
    assert (fal.in_flight, fal.max_in_flight) == (0, 0)


def test_start_stop_restart() -> None:
    fake = FakeFal()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    fake.start()
    assert fake.base_url.startswith("http://127.0.0.1:")
    fake.stop()
    fake.stop()  # idempotent
    with fake:
        assert httpx.post(f"{fake.base_url}/fal-ai/veo3", json={}, headers=AUTH).status_code == 200


async def test_usable_from_async_test() -> None:
    async with FakeFal() as fal, httpx.AsyncClient(headers=AUTH, timeout=5) as client:
        fal.queue(FalJob.images())
        r = await client.post(f"{fal.base_url}/fal-ai/flux/dev", json={"prompt": "owl"})
        env = r.json()
        statuses = [(await client.get(env["status_url"])).status_code for _ in range(3)]
        assert statuses == [202, 202, 200]
        assert (await client.get(env["response_url"])).json()["prompt"] == "owl"


async def test_concurrent_submits_and_polls() -> None:
    # 200 jobs in flight at once, spread over 20 clients: httpcore's pool rescans every queued
    # request on each state change, so one client with 200 in flight is slow client-side.
    async with FakeFal(default_job=FalJob(statuses=["IN_PROGRESS", "COMPLETED"])) as fal:
        clients = [httpx.AsyncClient(headers=AUTH, timeout=10) for _ in range(20)]

        async def run_one(i: int) -> dict:
            client = clients[i % len(clients)]
            env = (await client.post(f"{fal.base_url}/fal-ai/veo3/fast", json={"prompt": f"p{i}"})).json()
            while (await client.get(env["status_url"])).status_code != 200:
                pass
            return (await client.get(env["response_url"])).json()

        try:
            results = await asyncio.gather(*(run_one(i) for i in range(200)))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
    assert len({r["video"]["url"] for r in results}) == 200
    assert fal.submit_count("fal-ai/veo3/fast") == 200
    assert sorted(s.json["prompt"] for s in fal.submits) == sorted(f"p{i}" for i in range(200))


def test_runs_as_a_separate_process() -> None:
    with run_module("fal") as url:
        r = httpx.post(f"{url}/fal-ai/veo3", json={"prompt": "x"}, headers=AUTH, timeout=5)
        assert r.status_code == 200
        assert r.json()["status_url"].startswith(url)
