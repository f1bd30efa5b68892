"""The OpenAI / Azure OpenAI fakes behave like the real APIs (raw HTTP with httpx, no SDK)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from fake_helpers import run_module, shared_fake
from tarash_router.testing._server import Failure
from tarash_router.testing.openai import (
    FAKE_MP4, FakeAzureOpenAI, FakeOpenAI, SoraJob, moderation_blocked, openai_error, rate_limited, server_error,
)

AUTH = {"Authorization": "Bearer sk-test"}
AZURE = {"api-key": "az-test"}
V = {"api-version": "preview"}


server, fake = shared_fake(FakeOpenAI, "fake")


@pytest.fixture
def client(server: FakeOpenAI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as c:
        yield c


@pytest.fixture(scope="module")
def azure_server() -> Iterator[FakeAzureOpenAI]:
    with FakeAzureOpenAI(api_key="az-test", deployments={"my-sora": "sora-2", "img": "gpt-image-1",
                                                         "dalle": "dall-e-3"}) as fake:
        yield fake


@pytest.fixture
def azure(azure_server: FakeAzureOpenAI) -> Iterator[httpx.Client]:
    azure_server.clear()
    with httpx.Client(base_url=azure_server.base_url, headers=AZURE, timeout=5) as c:
        yield c


def create(client: httpx.Client, **fields: str) -> httpx.Response:
    """A multipart create like the SDK sends (text parts, no file)."""
    return client.post("/v1/videos", files={k: (None, v) for k, v in fields.items()})


# -- videos ---------------------------------------------------------------------------------------


def test_multipart_create_then_progress_to_completed_and_content(fake, client):
    r = create(client, prompt="a cat", model="sora-2", seconds="8", size="1280x720")
    assert r.status_code == 200
    video = r.json()
    assert video["status"] == "queued" and video["progress"] == 0 and video["seconds"] == "8"
    assert video["size"] == "1280x720" and video["id"].startswith("video_") and video["object"] == "video"
    seen = []
    for _ in range(5):
        body = client.get(f"/v1/videos/{video['id']}").json()
        seen.append((body["status"], body["progress"]))
    assert seen == [("queued", 0), ("in_progress", 33), ("in_progress", 67), ("completed", 100), ("completed", 100)]
    assert body["expires_at"] and body["completed_at"] and body["error"] is None
    content = client.get(f"/v1/videos/{video['id']}/content", headers={"Accept": "application/binary"})
    assert content.status_code == 200 and content.headers["content-type"] == "video/mp4"
    assert content.content == FAKE_MP4
    thumb = client.get(f"/v1/videos/{video['id']}/content", params={"variant": "thumbnail"})
    assert thumb.headers["content-type"] == "image/webp"
    created = fake.creates[0]
    assert created.kind == "multipart" and created.fields["seconds"] == "8"
    assert fake.create_count() == 1 and fake.polls(video["id"]) == 5 and fake.downloads(video["id"]) == 2


def test_json_create_with_image_url_and_file_part(fake, client):
    r = client.post("/v1/videos", json={"prompt": "x", "model": "sora-2", "seconds": "4",
                                        "input_reference": {"image_url": "https://example.com/a.png"}})
    assert r.status_code == 200
    r = client.post("/v1/videos", data={"prompt": "x"}, files={"input_reference": ("ref.png", b"\x89PNG", "image/png")})
    assert r.status_code == 200
    assert [c.kind for c in fake.creates] == ["json", "multipart"]
    assert fake.creates[0].fields["input_reference"] == {"image_url": "https://example.com/a.png"}
    assert fake.creates[1].files["input_reference"] == ("ref.png", b"\x89PNG", "image/png")


@pytest.mark.parametrize(("body", "needle"), [
    ({"prompt": "x", "seconds": 8}, "Invalid type for 'seconds'"),
    ({"prompt": "x", "seconds": "10"}, "Invalid value: '10'"),
    ({"prompt": "x", "size": "1024x1024"}, "Invalid value: '1024x1024'"),
    ({"prompt": "x", "size": "1792x1024"}, "sora-2 supports 720x1280 and 1280x720"),
    ({"prompt": "x", "model": "sora-3"}, "Invalid value: 'sora-3'"),
    ({"prompt": ""}, "Missing required parameter: 'prompt'"),
    ({"prompt": "x", "resolution": "720p"}, "Unknown parameter: 'resolution'"),
    ({"prompt": "x", "input_reference": {"image_url": "a", "file_id": "b"}}, "exactly one of"),
    ({"prompt": "x", "input_reference": {"image_url": "ftp://x"}}, "expected a URL"),
])
def test_invalid_creates_are_400_and_create_nothing(fake, client, body, needle):
    r = client.post("/v1/videos", json=body)
    assert r.status_code == 400 and needle in r.json()["error"]["message"]
    assert fake.create_count() == 0


def test_pro_sizes_and_bad_reference_file(fake, client):
    assert create(client, prompt="x", model="sora-2-pro", size="1792x1024").status_code == 200
    r = client.post("/v1/videos", data={"prompt": "x"}, files={"input_reference": ("a.gif", b"GIF8", "image/gif")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input_reference"


def test_create_failures_then_accept_and_moderation(fake, client):
    fake.queue(SoraJob(create_failures=[rate_limited(retry_after=2), server_error(503)]), SoraJob.blocked())
    r = create(client, prompt="x")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert create(client, prompt="x").status_code == 503
    assert create(client, prompt="x").status_code == 200
    blocked = create(client, prompt="x")
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "moderation_blocked"
    assert fake.create_count() == 1 and fake.create_attempts == 4


def test_failed_and_moderated_jobs_carry_error_code_and_message(fake, client):
    fake.queue(SoraJob.failed("internal_error", "boom"), SoraJob.moderated())
    first = create(client, prompt="x").json()["id"]
    second = create(client, prompt="y").json()["id"]
    for _ in range(3):
        body = client.get(f"/v1/videos/{first}").json()
    assert body["status"] == "failed" and body["error"] == {"code": "internal_error", "message": "boom"}
    assert client.get(f"/v1/videos/{first}/content").status_code == 400
    for _ in range(3):
        body = client.get(f"/v1/videos/{second}").json()
    assert body["error"]["code"] == "moderation_blocked"


def test_poll_failures_hint_header_and_unknown_video(fake, client):
    fake.queue(SoraJob(poll_failures={1: server_error(502)}, poll_after_ms=250))
    video = create(client, prompt="x").json()["id"]
    assert client.get(f"/v1/videos/{video}").status_code == 502
    ok = client.get(f"/v1/videos/{video}")
    assert ok.json()["status"] == "queued" and ok.headers["openai-poll-after-ms"] == "250"
    assert client.get("/v1/videos/video_nope").status_code == 404
    assert client.get(f"/v1/videos/{video}/content").json()["error"]["code"] == "video_not_ready"


def test_remix_and_delete(fake, client):
    fake.queue(SoraJob(statuses=["completed"]))
    source = create(client, prompt="day", seconds="12").json()["id"]
    assert client.post(f"/v1/videos/{source}/remix", json={"prompt": "night"}).status_code == 400  # not done yet
    client.get(f"/v1/videos/{source}")
    remix = client.post(f"/v1/videos/{source}/remix", json={"prompt": "night"})
    assert remix.status_code == 200 and remix.json()["remixed_from_video_id"] == source
    assert remix.json()["seconds"] == "12"
    assert fake.creates[-1].kind == "remix" and fake.creates[-1].source_video_id == source
    deleted = client.delete(f"/v1/videos/{source}")
    assert deleted.json() == {"id": source, "object": "video.deleted", "deleted": True}
    assert client.get(f"/v1/videos/{source}").status_code == 404


def test_auth(fake):
    with FakeOpenAI(api_key="sk-right") as strict:
        r = httpx.post(f"{strict.base_url}/v1/videos", files={"prompt": (None, "x")},
                       headers={"Authorization": "Bearer sk-wrong"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert "sk-wrong" not in r.text
        assert httpx.post(f"{strict.base_url}/v1/images/generations", json={"prompt": "x"}).status_code == 401


# -- images ---------------------------------------------------------------------------------------


def test_gpt_image_answers_base64_only(fake, client):
    r = client.post("/v1/images/generations", json={"model": "gpt-image-1.5", "prompt": "x", "n": 2,
                                                    "output_format": "webp", "size": "auto"})
    body = r.json()
    assert r.status_code == 200 and len(body["data"]) == 2 and body["output_format"] == "webp"
    assert all(set(item) == {"b64_json"} for item in body["data"])
    assert base64.b64decode(body["data"][0]["b64_json"]).startswith(b"RIFF")
    assert r.headers["x-request-id"].startswith("req_")
    bad = client.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x", "response_format": "url"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "response_format"


def test_dall_e_url_or_base64(fake, client):
    r = client.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "owl"}).json()
    assert r["data"][0]["url"].startswith(fake.base_url) and "owl" in r["data"][0]["revised_prompt"]
    assert httpx.get(r["data"][0]["url"]).headers["content-type"] == "image/png"
    r = client.post("/v1/images/generations", json={"model": "dall-e-2", "prompt": "x", "n": 3,
                                                    "response_format": "b64_json"}).json()
    assert len(r["data"]) == 3 and "b64_json" in r["data"][0] and "revised_prompt" not in r["data"][0]
    assert len(fake.image_calls) == 2


@pytest.mark.parametrize(("body", "needle"), [
    ({"model": "dall-e-3", "prompt": "x", "n": 2}, "n=1"),
    ({"model": "dall-e-3", "prompt": "x", "quality": "high"}, "Invalid value: 'high'"),
    ({"model": "dall-e-2", "prompt": "x", "size": "1792x1024"}, "Invalid value: '1792x1024'"),
    ({"model": "dall-e-2", "prompt": "x", "style": "vivid"}, "Supported values are: ."),
    ({"model": "gpt-image-1", "prompt": "x", "size": "1792x1024"}, "Invalid value: '1792x1024'"),
    ({"model": "gpt-image-1", "prompt": "x", "style": "vivid"}, "Unknown parameter: 'style'"),
    ({"model": "dall-e-3", "prompt": "x", "background": "transparent"}, "Unknown parameter: 'background'"),
    ({"model": "gpt-image-1-mini", "prompt": "x", "n": 11}, "between 1 and 10"),
])
def test_invalid_image_requests(fake, client, body, needle):
    r = client.post("/v1/images/generations", json=body)
    assert r.status_code == 400 and needle in r.json()["error"]["message"]
    assert fake.image_calls == []


def test_scripted_image_failures(fake, client):
    fake.queue_image_failures(moderation_blocked(), rate_limited(retry_after=1),
                              openai_error(400, "Your request was rejected as a result of our safety system.",
                                           code="content_policy_violation"))
    first = client.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x"})
    assert first.status_code == 400 and first.json()["error"]["moderation_details"]["moderation_stage"] == "input"
    assert client.post("/v1/images/generations", json={"prompt": "x"}).status_code == 429
    third = client.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "x"})
    assert third.json()["error"]["code"] == "content_policy_violation"
    assert client.post("/v1/images/generations", json={"prompt": "x"}).status_code == 200
    assert fake.image_attempts == 4 and len(fake.image_calls) == 1


# -- Azure ----------------------------------------------------------------------------------------


def test_azure_videos_need_api_key_and_api_version(azure_server, azure):
    r = azure.post("/openai/v1/videos", params=V, files={"prompt": (None, "x"), "model": (None, "my-sora")})
    assert r.status_code == 200 and r.json()["model"] == "sora-2"
    video = r.json()["id"]
    assert azure.get(f"/openai/v1/videos/{video}", params=V).json()["status"] == "queued"
    missing = azure.get(f"/openai/v1/videos/{video}")
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingApiVersionParameter"
    bearer = httpx.post(f"{azure_server.base_url}/openai/v1/videos", params=V, files={"prompt": (None, "x")},
                        headers={"Authorization": "Bearer az-test"})
    assert bearer.status_code == 401
    unknown = azure.post("/openai/v1/videos", params=V, json={"prompt": "x", "model": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "DeploymentNotFound"
    assert azure.post("/v1/videos", files={"prompt": (None, "x")}).status_code == 404  # OpenAI's path is not served
    assert azure_server.create_count() == 1 and azure_server.creates[0].query == V


def test_azure_images_on_deployment_endpoints(azure_server, azure):
    r = azure.post("/openai/deployments/img/images/generations", params={"api-version": "2025-04-01-preview"},
                   json={"model": "img", "prompt": "x"})
    assert r.status_code == 200 and "b64_json" in r.json()["data"][0]
    r = azure.post("/openai/deployments/dalle/images/generations", params=V, json={"model": "dalle", "prompt": "x"})
    assert "url" in r.json()["data"][0]
    assert azure.post("/openai/deployments/ghost/images/generations", params=V,
                      json={"prompt": "x"}).status_code == 404
    assert azure.post("/openai/deployments/img/images/generations", json={"prompt": "x"}).status_code == 400
    assert [c.deployment for c in azure_server.image_calls] == ["img", "dalle"]


def test_azure_api_version_allow_list():
    with FakeAzureOpenAI(api_versions=["preview"]) as fake:
        r = httpx.post(f"{fake.base_url}/openai/v1/videos", params={"api-version": "2024-05-01-preview"},
                       files={"prompt": (None, "x"), "model": (None, "sora")}, headers=AZURE)
        assert r.status_code == 400 and "not supported" in r.text


# -- plumbing -------------------------------------------------------------------------------------


def test_clear_forgets_scripts_and_state(fake, client):
    fake.queue(SoraJob.blocked())
    fake.queue_image_failures(Failure(status=500))
    fake.clear()
    assert create(client, prompt="x").status_code == 200
    assert client.post("/v1/images/generations", json={"prompt": "x"}).status_code == 200
    fake.clear()
    assert fake.creates == [] and fake.videos == {} and fake.requests == []


async def test_usable_from_async_code():
    async with FakeOpenAI() as fake:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{fake.base_url}/v1/videos", files={"prompt": (None, "x")}, headers=AUTH)
        assert r.status_code == 200


@pytest.mark.parametrize(("args", "path", "headers"), [
    ([], "/v1/videos", AUTH),
    (["--azure"], "/openai/v1/videos?api-version=preview", AZURE),
])
def test_runs_as_a_separate_process(args, path, headers):
    with run_module("openai", *args) as url:
        r = httpx.post(f"{url}{path}", files={"prompt": (None, "x"), "model": (None, "sora-2")}, headers=headers,
                       timeout=5)
        assert r.status_code == 200 and r.json()["object"] == "video"
