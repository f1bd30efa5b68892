"""The HTTP gateway, driven over real HTTP: uvicorn on 127.0.0.1, httpx as the caller, the fake fal
behind it. Two server processes share one Redis journal and answer for each other's jobs."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from conftest import API_KEY
from journal_helpers import redis_server
from tarash_router.client import Client
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
from tarash_router.server.app import create_app
from tarash_router.testing import FalJob

KEY = "gw-test-key-1"
ROOT = Path(__file__).resolve().parents[1]


def _routes(tmp_path: Path, fal) -> Path:
    folder = tmp_path / "routes"
    folder.mkdir(exist_ok=True)
    (folder / "video.yaml").write_text(textwrap.dedent(f"""\
        spec_version: 1
        routes:
          fast:
            modality: video
            targets:
              - {{provider: fal, model: fal-ai/veo3/fast, base_url: "{fal.base_url}", poll_interval: 5ms}}
    """))
    return folder


@pytest.fixture
def gateway(tmp_path, fal, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("FAL_KEY", API_KEY)
    monkeypatch.setenv("TARASH_FAL_WEBHOOK_JWKS_URL", fal.jwks_url)  # the fake signs as fal does
    client = Client(routes=[_routes(tmp_path, fal)], journal=f"sqlite:///{tmp_path / 'jobs.db'}")
    app = create_app(client, [KEY], events_interval=0.02)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def test_create_follow_by_events_and_get_the_result(gateway, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]))
    with httpx.Client(base_url=gateway, headers=_auth(), timeout=10) as http:
        created = http.post("/v1/jobs", json={"route": "fast", "request": {"prompt": "a cat", "duration_seconds": 8}})
        assert created.status_code == 202
        job = created.json()
        assert job["state"] == "queued" and job["model"] == "fal-ai/veo3/fast"
        events = []
        with http.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
        assert events[-1] == "completed" and "processing" in events
        final = http.get(f"/v1/jobs/{job['id']}").json()
        assert final["state"] == "completed" and final["response"]["video"].startswith("https://")
    assert fal.submit_count() == 1


def test_cancel_unknown_and_refused_requests(gateway, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 1000))
    with httpx.Client(base_url=gateway, headers=_auth(), timeout=10) as http:
        job = http.post("/v1/jobs", json={"route": "fast", "request": {"prompt": "a cat"}}).json()
        assert http.delete(f"/v1/jobs/{job['id']}").json() == {"id": job["id"], "cancelled": True}
        assert http.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"
        assert http.get("/v1/jobs/nope").status_code == 404
        # A caller never chooses where the server's keys go, nor passes a key.
        smuggled = http.post("/v1/jobs", json={"provider": "fal", "model": "fal-ai/veo3/fast", "base_url": "http://evil",
                                               "request": {"prompt": "x"}})
        assert smuggled.status_code == 422 and "base_url" in smuggled.json()["message"]
        refused = http.post("/v1/jobs", json={"route": "fast", "request": {"prompt": "x", "duration_seconds": 5}})
        assert refused.status_code == 422 and "allowed: 4, 6, 8" in refused.json()["message"]
    assert fal.submit_count() == 1


def test_keys_health_and_openapi(gateway):
    with httpx.Client(base_url=gateway, timeout=10) as http:
        assert http.get("/healthz").json() == {"ok": True}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
            answer = http.post("/v1/jobs", json={"route": "fast", "request": {"prompt": "x"}}, headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        doc = http.get("/openapi.json").json()
        assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events"} <= set(doc["paths"])
        assert "Job" in doc["components"]["schemas"] and KEY not in json.dumps(doc)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_server_processes_on_one_redis_answer_for_each_others_jobs(tmp_path, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]))
    routes = _routes(tmp_path, fal)
    with redis_server() as redis_url:
        env = {**os.environ, "TARASH_JOURNAL": redis_url, "TARASH_ROUTE_DIRS": str(routes),
               "TARASH_SERVER_KEYS": KEY, "FAL_KEY": API_KEY, "TARASH_ALLOW_PRIVATE_URLS": "1"}
        ports = [_free_port(), _free_port()]
        servers = [subprocess.Popen([sys.executable, "-m", "tarash_router.cli", "serve", "--port", str(port)],
                                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                   for port in ports]
        try:
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            for url in urls:
                _wait_healthy(url)
            created = httpx.post(f"{urls[0]}/v1/jobs", headers=_auth(), timeout=10,
                                 json={"route": "fast", "request": {"prompt": "a cat"}})
            job_id = created.json()["id"]
            state = None
            for _ in range(200):
                state = httpx.get(f"{urls[1]}/v1/jobs/{job_id}", headers=_auth(), timeout=10).json()["state"]
                if state == "completed":
                    break
                time.sleep(0.02)
            assert state == "completed"
            assert httpx.get(f"{urls[0]}/v1/jobs/{job_id}", headers=_auth(), timeout=10).json()["state"] == "completed"
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)
    assert fal.submit_count() == 1


def _wait_healthy(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the gateway at {url} never answered")


def test_the_gateway_takes_signed_webhooks_and_refuses_forged_ones(gateway, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE"] * 1000))
    with httpx.Client(base_url=gateway, headers=_auth(), timeout=10) as http:
        job = http.post("/v1/jobs", json={"route": "fast", "request": {"prompt": "a cat"}}).json()
        headers, body = fal.webhook_delivery(job["id"])
        forged = http.post("/v1/webhooks/fal", headers={**headers, "Authorization": ""},
                           content=body.replace(b'"OK"', b'"ERROR"') if isinstance(body, bytes) else body + " ")
        assert forged.status_code == 401 and forged.json()["reason"] == "signature"
        handled = httpx.post(f"{gateway}/v1/webhooks/fal", headers=headers, content=body, timeout=10)
        assert handled.status_code == 200 and handled.json() == {"ok": True, "id": job["id"], "state": "completed"}
        again = httpx.post(f"{gateway}/v1/webhooks/fal", headers=headers, content=body, timeout=10)
        assert again.status_code == 200 and again.json()["replay"] is True
        assert http.get(f"/v1/jobs/{job['id']}").json()["state"] == "completed"


def test_a_job_whose_webhook_never_comes_is_finished_by_reconciliation(tmp_path, fal, monkeypatch):
    monkeypatch.setenv("FAL_KEY", API_KEY)
    fal.queue(FalJob(statuses=["COMPLETED"]))
    client = Client(routes=[_routes(tmp_path, fal)], journal=f"sqlite:///{tmp_path / 'jobs.db'}")
    # The delivery goes to a port nobody listens on: it is lost.
    job = client.submit_video(VideoGenerationConfig(provider="fal", model="fal-ai/veo3/fast", base_url=fal.base_url),
                              VideoGenerationRequest(prompt="a cat"), webhook_url=f"http://127.0.0.1:{_free_port()}/h")
    assert asyncio.run(client.runtime.journal.get(job.id)).state == "queued"
    app = create_app(client, [KEY], reconcile_every=0.05, reconcile_after=0.01)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        state = None
        for _ in range(200):
            state = asyncio.run(client.runtime.journal.get(job.id)).state
            if state == "completed":
                break
            time.sleep(0.02)
        assert state == "completed"  # nobody asked: the background pass found it finished
    finally:
        server.should_exit = True
        thread.join(10)
    assert fal.submit_count() == 1


# ------------------------------------------------------------------ TARASH_SERVER_PUBLIC_URL: jobs finished by webhooks

def _routes_with_runway(tmp_path: Path, fal, runway) -> Path:
    folder = _routes(tmp_path, fal)
    (folder / "runway.yaml").write_text(textwrap.dedent(f"""\
        spec_version: 1
        routes:
          runway:
            modality: video
            targets:
              - {{provider: runway, model: gen4_turbo, base_url: "{runway.base_url}", poll_interval: 5ms}}
    """))
    return folder


@pytest.fixture
def public_gateway(tmp_path, fal, monkeypatch) -> Iterator[tuple[str, Client]]:
    """A gateway that knows its own public URL (TARASH_SERVER_PUBLIC_URL), with a fal and a Runway route."""
    from tarash_router.server.settings import ServerSettings
    from tarash_router.testing.runway import FakeRunway

    monkeypatch.setenv("FAL_KEY", API_KEY)
    monkeypatch.setenv("RUNWAYML_API_SECRET", "key_runway_test")
    monkeypatch.setenv("TARASH_FAL_WEBHOOK_JWKS_URL", fal.jwks_url)  # the fake signs as fal does
    port = _free_port()
    monkeypatch.setenv("TARASH_SERVER_PUBLIC_URL", f"http://127.0.0.1:{port}/")
    public_url = ServerSettings().server_public_url
    assert public_url == f"http://127.0.0.1:{port}"  # the trailing slash is dropped
    with FakeRunway(api_key="key_runway_test") as runway:
        client = Client(routes=[_routes_with_runway(tmp_path, fal, runway)],
                        journal=f"sqlite:///{tmp_path / 'jobs.db'}")
        app = create_app(client, [KEY], events_interval=0.02, public_url=public_url)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        client.runway = runway  # type: ignore[attr-defined] - the test reads the fake through it
        yield public_url, client
        server.should_exit = True
        thread.join(10)


def test_with_a_public_url_a_fal_job_is_finished_by_its_webhook_without_a_status_request(public_gateway, fal):
    url, client = public_gateway
    with httpx.Client(base_url=url, headers=_auth(), timeout=10) as http:
        job = http.post("/v1/jobs", json={"route": "fast", "request": {"prompt": "a cat"}}).json()
        assert fal.submits[0].webhook == f"{url}/v1/webhooks/fal"
        state = None
        for _ in range(500):  # the journal, not the gateway: a GET of a running job would ask fal
            state = asyncio.run(client.runtime.journal.get(job["id"])).state
            if state == "completed":
                break
            time.sleep(0.01)
        assert state == "completed"
        final = http.get(f"/v1/jobs/{job['id']}").json()
        assert final["state"] == "completed" and final["response"]["video"].startswith("https://")
    assert [d.answer for d in fal.webhooks.deliveries] == [200]  # signed by the fake, verified by the gateway
    assert fal.status_polls(job["id"]) == 0 and fal.status_streams(job["id"]) == 0
    assert sorted(r.path for r in fal.requests) == sorted(["/fal-ai/veo3/fast", "/.well-known/jwks.json"])


def test_with_a_public_url_a_provider_without_a_webhook_is_submitted_without_one_and_polled(public_gateway):
    url, client = public_gateway
    runway = client.runway  # type: ignore[attr-defined]
    request = {"prompt": "the cat jumps", "image_list": [{"image": "https://example.com/cat.jpg", "type": "first_frame"}]}
    with httpx.Client(base_url=url, headers=_auth(), timeout=10) as http:
        created = http.post("/v1/jobs", json={"route": "runway", "request": request})
        assert created.status_code == 202, created.text
        job = created.json()
        assert "webhook" not in json.dumps(runway.creates[0].json)  # the fake refuses unknown fields anyway
        state = None
        for _ in range(200):
            state = http.get(f"/v1/jobs/{job['id']}").json()["state"]
            if state == "completed":
                break
            time.sleep(0.01)
        assert state == "completed" and runway.poll_count(job["id"]) >= 1


def test_a_public_url_that_is_not_a_base_url_is_refused(monkeypatch):
    from pydantic import ValidationError as SettingsError

    from tarash_router.server.settings import ServerSettings

    for bad in ("gateway.example", "ftp://gateway.example", "https://gateway.example/?x=1"):
        monkeypatch.setenv("TARASH_SERVER_PUBLIC_URL", bad)
        with pytest.raises(SettingsError, match="TARASH_SERVER_PUBLIC_URL"):
            ServerSettings()
    monkeypatch.setenv("TARASH_SERVER_PUBLIC_URL", "")
    assert ServerSettings().server_public_url is None
