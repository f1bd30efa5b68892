"""Tests of the fake Stability AI server itself, over real loopback HTTP with plain httpx."""

from __future__ import annotations

import base64

import httpx
import pytest

from fake_helpers import run_module, shared_fake
from tarash_router.testing._server import Failure
from tarash_router.testing.stability import (
    IMAGE_BYTES, FakeStability, StabilityScript, moderation_error, rate_limited, stability_error,
)

AUTH = {"Authorization": "Bearer sk-test"}
JSON_ACCEPT = {**AUTH, "Accept": "application/json"}


server, stability = shared_fake(FakeStability, "stability")


def parts(**fields: object) -> dict[str, tuple[None, str]]:
    """Form fields as httpx multipart parts (no file needed to make the body multipart)."""
    return {k: (None, str(v)) for k, v in fields.items()}


def generate(fake: FakeStability, endpoint: str = "core", headers: dict | None = None, **fields: object) -> httpx.Response:
    fields.setdefault("prompt", "a lighthouse")
    return httpx.post(f"{fake.base_url}/v2beta/stable-image/generate/{endpoint}", files=parts(**fields),
                      headers=JSON_ACCEPT if headers is None else headers, timeout=5)


def assert_stability_error(response: httpx.Response, status: int, name: str) -> list[str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"id", "name", "errors"} and body["name"] == name
    assert len(body["id"]) == 32 and body["errors"]
    return body["errors"]


# -- success ------------------------------------------------------------------------------------


def test_json_accept_mode_returns_base64_image_finish_reason_and_seed(stability: FakeStability) -> None:
    r = generate(stability, "ultra", seed=42, aspect_ratio="21:9", negative_prompt="people")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; type=image/png"
    assert "finish-reason" not in r.headers and "seed" not in r.headers
    body = r.json()
    assert body == {"image": base64.b64encode(IMAGE_BYTES["png"]).decode(), "finish_reason": "SUCCESS", "seed": 42}
    generation = stability.generations[0]
    assert generation.endpoint == "ultra" and generation.accept == "json"
    assert generation.form == {"prompt": "a lighthouse", "seed": "42", "aspect_ratio": "21:9",
                               "negative_prompt": "people"}
    assert generation.headers["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("accept", ["image/*", None, "*/*"])
def test_image_accept_mode_returns_bytes_with_headers(stability: FakeStability, accept: str | None) -> None:
    headers = dict(AUTH) if accept is None else {**AUTH, "Accept": accept}
    if accept is None:
        headers["Accept"] = ""  # httpx sends */* by default; an empty Accept means "not given"
    r = generate(stability, "core", headers=headers, output_format="webp", seed=7)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/webp"
    assert r.headers["finish-reason"] == "SUCCESS" and r.headers["seed"] == "7"
    assert r.content == IMAGE_BYTES["webp"] and r.content.startswith(b"RIFF")
    assert stability.generations[0].accept == "image"


def test_png_bytes_are_a_real_png(stability: FakeStability) -> None:
    r = generate(stability, headers={**AUTH, "Accept": "image/*"})
    assert r.content.startswith(b"\x89PNG\r\n\x1a\n") and r.content.endswith(b"IEND\xaeB`\x82")


def test_seed_zero_or_missing_is_random(stability: FakeStability) -> None:
    seeds = {generate(stability, seed=0).json()["seed"], generate(stability).json()["seed"]}
    assert all(1 <= s <= 4294967294 for s in seeds)


def test_sd3_takes_a_model_field(stability: FakeStability) -> None:
    r = generate(stability, "sd3", model="sd3.5-large-turbo", cfg_scale="4.5", output_format="jpeg")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json; type=image/jpeg"
    assert base64.b64decode(r.json()["image"]).startswith(b"\xff\xd8")
    assert stability.generation_count("sd3") == 1 and stability.generation_count("core") == 0


# -- request format -----------------------------------------------------------------------------


def test_json_body_is_rejected(stability: FakeStability) -> None:
    r = httpx.post(f"{stability.base_url}/v2beta/stable-image/generate/core", json={"prompt": "x"},
                   headers=JSON_ACCEPT)
    errors = assert_stability_error(r, 400, "bad_request")
    assert "multipart/form-data" in errors[0] and "application/json" in errors[0]
    assert stability.generation_count() == 0 and stability.attempts == 1


def test_urlencoded_body_is_rejected(stability: FakeStability) -> None:
    # httpx `data=` without `files=`: Stability requires multipart/form-data
    # (https://platform.stability.ai/docs/api-reference#tag/Generate).
    r = httpx.post(f"{stability.base_url}/v2beta/stable-image/generate/sd3", data={"prompt": "x"},
                   headers=JSON_ACCEPT)
    errors = assert_stability_error(r, 400, "bad_request")
    assert "application/x-www-form-urlencoded" in errors[0]


def test_unsupported_accept_is_rejected(stability: FakeStability) -> None:
    assert_stability_error(generate(stability, headers={**AUTH, "Accept": "text/html"}), 400, "bad_request")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Key sk-test"}, {"Authorization": "sk-test"}])
def test_missing_or_malformed_auth_is_401(stability: FakeStability, headers: dict) -> None:
    assert_stability_error(generate(stability, headers={**headers, "Accept": "application/json"}), 401,
                           "unauthorized")


def test_a_configured_key_must_match() -> None:
    with FakeStability(api_key="right") as fake:
        assert generate(fake, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert generate(fake, headers={"Authorization": "Bearer right"}).status_code == 200
        assert fake.attempts == 2 and fake.generation_count() == 1


@pytest.mark.parametrize(("endpoint", "fields", "needle"), [
    ("core", {"aspect_ratio": "4:3"}, "aspect_ratio: must be one of 16:9, 1:1"),
    ("sd3", {"output_format": "webp"}, "output_format: must be one of png, jpeg"),
    ("sd3", {"model": "sd4"}, "model: must be one of sd3.5-large"),
    ("core", {"style_preset": "watercolor"}, "style_preset: must be one of 3d-model"),
    ("ultra", {"seed": "4294967295"}, "seed: must be an integer between 0 and 4294967294"),
    ("sd3", {"cfg_scale": "35"}, "cfg_scale: must be a number between 1 and 10"),
    ("core", {"prompt": ""}, "prompt: is required"),
    ("core", {"prompt": "x" * 10001}, "prompt: must be at most 10000 characters"),
])
def test_invalid_fields_are_400(stability: FakeStability, endpoint: str, fields: dict, needle: str) -> None:
    errors = assert_stability_error(generate(stability, endpoint, **fields), 400, "bad_request")
    assert any(needle in e for e in errors), errors
    assert stability.generation_count() == 0


def test_unknown_endpoint_is_404(stability: FakeStability) -> None:
    r = httpx.post(f"{stability.base_url}/v2beta/stable-image/generate/sdxl", files=parts(prompt="x"),
                   headers=JSON_ACCEPT)
    assert_stability_error(r, 404, "not_found")
    assert_stability_error(httpx.get(f"{stability.base_url}/v1/engines", headers=AUTH), 404, "not_found")


# -- scripts ------------------------------------------------------------------------------------


def test_content_filtered_in_both_accept_modes(stability: FakeStability) -> None:
    stability.queue(StabilityScript.content_filtered(), StabilityScript.content_filtered(seed=5))
    assert generate(stability).json()["finish_reason"] == "CONTENT_FILTERED"
    r = generate(stability, headers={**AUTH, "Accept": "image/*"})
    assert r.status_code == 200 and r.headers["finish-reason"] == "CONTENT_FILTERED" and r.headers["seed"] == "5"
    assert stability.generation_count() == 2  # filtered images are still answered (blurred)


def test_flagged_request_is_403_content_moderation(stability: FakeStability) -> None:
    stability.queue(StabilityScript.flagged())
    errors = assert_stability_error(generate(stability), 403, "content_moderation")
    assert "content moderation" in errors[0]
    assert stability.generation_count() == 0
    assert generate(stability).status_code == 200  # the script is used up


def test_rate_limit_then_accepted_is_one_generation(stability: FakeStability) -> None:
    stability.queue(StabilityScript(failures=[rate_limited(2)], seed=11))
    first = generate(stability)
    assert_stability_error(first, 429, "rate_limit_exceeded")
    assert first.headers["retry-after"] == "2"
    assert "retry-after" not in generate_after_limit(stability).headers
    assert stability.attempts == 2 and stability.generation_count() == 1
    assert stability.generations[0].seed == 11


def generate_after_limit(fake: FakeStability) -> httpx.Response:
    r = generate(fake)
    assert r.status_code == 200
    return r


def test_generic_failures_and_error_helpers(stability: FakeStability) -> None:
    stability.queue(StabilityScript(failures=[stability_error(500, "internal_error", "boom"), Failure.html(502),
                                              moderation_error("nope")]))
    assert assert_stability_error(generate(stability), 500, "internal_error") == ["boom"]
    assert generate(stability).status_code == 502
    assert assert_stability_error(generate(stability), 403, "content_moderation") == ["nope"]
    assert generate(stability).status_code == 200
    assert stability.attempts == 4 and stability.generation_count() == 1


def test_scripts_are_fifo_copies_then_default(stability: FakeStability) -> None:
    script = StabilityScript(seed=3, image=b"custom", failures=[rate_limited()])
    stability.queue(script, script)
    answers = [generate(stability) for _ in range(5)]
    assert [a.status_code for a in answers] == [429, 200, 429, 200, 200]
    images = [base64.b64decode(a.json()["image"]) for a in answers if a.status_code == 200]
    assert images == [b"custom", b"custom", IMAGE_BYTES["png"]]
    assert [g.seed for g in stability.generations][:2] == [3, 3]
    assert len(script.failures) == 1  # queued copies, the caller's script is untouched


def test_clear_forgets_everything(stability: FakeStability) -> None:
    stability.queue(StabilityScript.flagged())
    generate(stability, headers={})  # 401, recorded
    stability.clear()
    assert stability.requests == [] and stability.attempts == 0
    assert generate(stability).status_code == 200  # the queued script is gone


async def test_usable_from_async_code() -> None:
    async with FakeStability() as fake:
        async with httpx.AsyncClient(headers=JSON_ACCEPT) as client:
            r = await client.post(f"{fake.base_url}/v2beta/stable-image/generate/core", files=parts(prompt="x"))
        assert r.status_code == 200 and fake.generation_count() == 1


def test_runs_as_a_separate_process() -> None:
    with run_module("stability") as url:
        r = httpx.post(f"{url}/v2beta/stable-image/generate/core", files=parts(prompt="x"), headers=JSON_ACCEPT,
                       timeout=5)
        assert r.status_code == 200 and r.json()["finish_reason"] == "SUCCESS"
