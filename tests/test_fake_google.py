"""Tests of the fake Google server itself, over real loopback HTTP with plain httpx."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fake_helpers import run_module, shared_fake
from tarash_router.testing._server import Failure
from tarash_router.testing.google import FAKE_MP4, FakeGoogle, GoogleJob, google_error, rate_limited

KEY = {"x-goog-api-key": "g-key"}
BEARER = {"Authorization": "Bearer v-token"}
PNG = base64.b64encode(b"\x89PNG").decode()
VEO = "/v1beta/models/veo-3.1-generate-preview"
VERTEX = "/v1beta1/projects/p1/locations/us-central1/publishers/google/models/veo-3.1-generate-preview"


server, google = shared_fake(lambda: FakeGoogle(api_key="g-key", access_token="v-token"), "google")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def create(client: httpx.Client, google: FakeGoogle, body: dict | None = None) -> str:
    r = client.post(f"{google.base_url}{VEO}:predictLongRunning", headers=KEY,
                    json=body or {"instances": [{"prompt": "a cat"}], "parameters": {"durationSeconds": 8}})
    assert r.status_code == 200, r.text
    return r.json()["name"]


def test_gemini_operation_lifecycle_and_download(google, client):
    name = create(client, google)
    assert name.startswith("models/veo-3.1-generate-preview/operations/")
    answers = [client.get(f"{google.base_url}/v1beta/{name}", headers=KEY).json() for _ in range(4)]
    assert answers[0] == {"name": name} and answers[1] == {"name": name}
    done = answers[2]
    assert done["done"] is True and answers[3] == done
    uri = done["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    assert uri.startswith(f"{google.base_url}/v1beta/files/") and uri.endswith(":download?alt=media")
    assert client.get(uri).status_code == 403  # the file URI needs the key
    downloaded = client.get(uri, headers=KEY, follow_redirects=True)
    assert downloaded.status_code == 200 and downloaded.content == FAKE_MP4
    assert downloaded.headers["content-type"] == "video/mp4"
    assert google.polls(name) == 4 and google.create_count() == 1


def test_gemini_rejects_what_the_api_rejects(google, client):
    url = f"{google.base_url}{VEO}:predictLongRunning"
    cases = [
        ({"instances": [{"prompt": "x"}], "parameters": {"seed": 1}}, 'Unknown name "seed"'),
        ({"instances": [{"prompt": "x"}], "parameters": {"generateAudio": True}}, 'Unknown name "generateAudio"'),
        ({"instances": [{"prompt": "x", "image": {"gcsUri": "https://x/a.png"}}]}, 'Unknown name "gcsUri"'),
        ({"instances": [{"prompt": "x", "image": {"bytesBase64Encoded": "@@", "mimeType": "image/png"}}]},
         "not valid base64"),
        ({"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": "8s"}}, "must be an integer"),
        ({"instances": [{"prompt": "x", "lastFrame": {"bytesBase64Encoded": PNG, "mimeType": "image/png"}}]},
         "lastFrame requires image"),
    ]
    for body, phrase in cases:
        r = client.post(url, headers=KEY, json=body)
        assert r.status_code == 400 and phrase in r.json()["error"]["message"], (body, r.text)
        assert r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert google.create_count() == 0


def test_gemini_auth(google, client):
    url = f"{google.base_url}{VEO}:predictLongRunning"
    body = {"instances": [{"prompt": "x"}]}
    missing = client.post(url, json=body)
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    wrong = client.post(url, json=body, headers={"x-goog-api-key": "nope"})
    assert wrong.status_code == 400 and wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert client.post(url, json=body, params={"key": "g-key"}).status_code == 200


def test_scripted_outcomes(google, client):
    google.queue(GoogleJob.moderated(["bad words"], statuses=["done"]), GoogleJob.failed("boom", statuses=["done"]),
                 GoogleJob(statuses=["running", {"done": True, "response": {"custom": 1}}], metadata={"p": 1}))
    moderated = client.get(f"{google.base_url}/v1beta/{create(client, google)}", headers=KEY).json()
    assert moderated["response"]["generateVideoResponse"] == {"raiMediaFilteredCount": 1,
                                                              "raiMediaFilteredReasons": ["bad words"]}
    failed = client.get(f"{google.base_url}/v1beta/{create(client, google)}", headers=KEY).json()
    assert failed["done"] is True and failed["error"] == {"code": 13, "message": "boom"}
    name = create(client, google)
    assert client.get(f"{google.base_url}/v1beta/{name}", headers=KEY).json() == {"name": name, "metadata": {"p": 1}}
    assert client.get(f"{google.base_url}/v1beta/{name}", headers=KEY).json()["response"] == {"custom": 1}


def test_submit_and_poll_failures(google, client):
    google.queue(GoogleJob(submit_failures=[rate_limited(2)], poll_failures={1: google_error(503, "busy")}))
    url = f"{google.base_url}{VEO}:predictLongRunning"
    first = client.post(url, headers=KEY, json={"instances": [{"prompt": "x"}]})
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    assert first.json()["error"]["status"] == "RESOURCE_EXHAUSTED" and google.create_count() == 0
    name = create(client, google)
    assert client.get(f"{google.base_url}/v1beta/{name}", headers=KEY).status_code == 503
    assert client.get(f"{google.base_url}/v1beta/{name}", headers=KEY).json() == {"name": name}
    assert google.submit_attempts == 2 and google.create_count() == 1


def test_imagen_predict_and_filtering(google, client):
    url = f"{google.base_url}/v1beta/models/imagen-4.0-generate-001:predict"
    r = client.post(url, headers=KEY, json={"instances": [{"prompt": "x"}], "parameters": {"sampleCount": 3}})
    assert [set(p) for p in r.json()["predictions"]] == [{"bytesBase64Encoded", "mimeType"}] * 3
    google.queue(GoogleJob(filtered=1))
    r = client.post(url, headers=KEY, json={"instances": [{"prompt": "x"}],
                                            "parameters": {"sampleCount": 2, "includeRaiReason": True}})
    predictions = r.json()["predictions"]
    assert "bytesBase64Encoded" in predictions[0] and "raiFilteredReason" in predictions[1]
    bad = client.post(url, headers=KEY, json={"instances": [{"prompt": "x"}], "parameters": {"seed": 3}})
    assert bad.status_code == 400 and 'Unknown name "seed"' in bad.json()["error"]["message"]
    assert google.predict_count() == 2


def test_generate_content_returns_inline_images(google, client):
    url = f"{google.base_url}/v1beta/models/gemini-2.5-flash-image:generateContent"
    r = client.post(url, headers=KEY, json={"contents": [{"parts": [{"text": "a cat"}]}],
                                            "generationConfig": {"responseModalities": ["IMAGE"]}})
    parts = r.json()["candidates"][0]["content"]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    google.queue(GoogleJob(prompt_feedback={"blockReason": "SAFETY"}))
    blocked = client.post(url, headers=KEY, json={"contents": [{"parts": [{"text": "x"}]}]}).json()
    assert blocked["promptFeedback"] == {"blockReason": "SAFETY"} and "candidates" not in blocked
    empty = client.post(url, headers=KEY, json={"contents": [{"parts": []}]})
    assert empty.status_code == 400 and google.predict_count() == 2


def test_vertex_operation_lifecycle(google, client):
    r = client.post(f"{google.base_url}{VERTEX}:predictLongRunning", headers=BEARER,
                    json={"instances": [{"prompt": "x", "image": {"gcsUri": "gs://b/a.png", "mimeType": "image/png"}}],
                          "parameters": {"storageUri": "gs://out/dir", "seed": 5, "generateAudio": True}})
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    assert name.startswith("projects/p1/locations/us-central1/publishers/google/models/veo-3.1-generate-preview/"
                           "operations/")
    fetch = f"{google.base_url}{VERTEX}:fetchPredictOperation"
    answers = [client.post(fetch, headers=BEARER, json={"operationName": name}).json() for _ in range(3)]
    assert answers[0] == {"name": name}
    video = answers[2]["response"]["videos"][0]
    assert video["gcsUri"].startswith("gs://out/dir/") and video["mimeType"] == "video/mp4"
    # Without storageUri the video comes back as bytes.
    r = client.post(f"{google.base_url}{VERTEX}:predictLongRunning", headers=BEARER,
                    json={"instances": [{"prompt": "x"}]})
    for _ in range(3):
        done = client.post(fetch, headers=BEARER, json={"operationName": r.json()["name"]}).json()
    assert base64.b64decode(done["response"]["videos"][0]["bytesBase64Encoded"]) == FAKE_MP4


def test_vertex_rejects_https_as_gcs_uri_and_bad_tokens(google, client):
    url = f"{google.base_url}{VERTEX}:predictLongRunning"
    body = {"instances": [{"prompt": "x", "image": {"gcsUri": "https://example.com/a.png", "mimeType": "image/png"}}]}
    r = client.post(url, headers=BEARER, json=body)
    assert r.status_code == 400 and "Cloud Storage URI" in r.json()["error"]["message"]
    assert client.post(url, headers={"Authorization": "Bearer other"}, json=body).status_code == 401
    assert client.post(url, json=body).status_code == 401


def test_unknown_paths_are_404(google, client):
    assert client.get(f"{google.base_url}/v2/models/x:predict", headers=KEY).status_code == 404
    assert client.get(f"{google.base_url}/v1beta/models/veo/operations/none", headers=KEY).status_code == 404


def test_runs_as_a_module(tmp_path: Path):
    with run_module("google") as base_url:
        r = httpx.post(f"{base_url}{VEO}:predictLongRunning", headers=KEY,
                       json={"instances": [{"prompt": "x"}]}, timeout=5)
        assert r.status_code == 200 and r.json()["name"].startswith("models/veo-3.1-generate-preview/operations/")


def test_failure_objects_render_google_envelopes():
    body, content_type = google_error(404, "gone").render()
    assert content_type == "application/json" and b'"status": "NOT_FOUND"' in body
    assert Failure.html(502).status == 502
