"""The HTTP seam: redirects never carry credentials to another origin, bodies are bounded, transport
errors never quote a header, and media downloads are not an SSRF. "Another host" is a second
loopback fake on its own port (another origin)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

import httpx
import pytest

from conftest import video_config
from tarash_router import HTTPError, ValidationError, generate_image, generate_video
from tarash_router.engine.classify import error_from_transport
from tarash_router.engine.client import ClientPool
from tarash_router.engine.http import ResponseTooLarge, send
from tarash_router.engine.netguard import check_public_url, is_public_address
from tarash_router.errors import UnsafeURLError
from tarash_router.models import ImageGenerationConfig, ImageGenerationRequest, VideoGenerationRequest
from tarash_router.testing import Failure, FakeGoogle, FalJob

SECRETS = {"Authorization": "Key sek-auth-123", "x-goog-api-key": "sek-goog-456", "api-key": "sek-azure-789",
           "X-Vendor-Token": "sek-vendor-000"}
SECRET_NAMES = frozenset(k.lower() for k in SECRETS)


@pytest.fixture
def private_urls_refused(setting):
    setting("TARASH_ALLOW_PRIVATE_URLS", "0")


def _send(url: str, *, method: str = "POST", headers: dict | None = None, max_bytes: int = 1 << 20,
          url_guard=None):
    async def go():
        pool = ClientPool()
        try:
            return await send(pool.get("t"), method, url, headers=headers or dict(SECRETS),
                              secret_headers=SECRET_NAMES, json={"a": 1}, max_bytes=max_bytes, url_guard=url_guard,
                              timeout=10)
        finally:
            await pool.aclose()
    return asyncio.run(go())


# ------------------------------------------------------------------ redirects

def test_a_cross_origin_redirect_drops_every_secret_header(fal, elsewhere):
    fal.queue(FalJob(submit_failures=[Failure(status=307, headers={"Location": f"{elsewhere.base_url}/landing"})]))
    _send(f"{fal.base_url}/fal-ai/veo3")
    landed = elsewhere.requests[0]
    assert landed.path == "/landing" and landed.method == "POST" and landed.json == {"a": 1}  # 307 keeps the body
    assert not any(name in landed.headers for name in SECRETS)


def test_a_same_origin_redirect_keeps_the_credentials(fal):
    fal.queue(FalJob(submit_failures=[Failure(status=308, headers={"Location": "/fal-ai/veo3/again"})]))
    _send(f"{fal.base_url}/fal-ai/veo3")
    landed = fal.requests[1]
    assert landed.path == "/fal-ai/veo3/again"
    assert all(landed.headers.get(name) == value for name, value in SECRETS.items())


def test_a_303_becomes_a_get_without_the_body(fal, elsewhere):
    fal.queue(FalJob(submit_failures=[Failure(status=303, headers={"Location": f"{elsewhere.base_url}/see"})]))
    _send(f"{fal.base_url}/fal-ai/veo3")
    assert elsewhere.requests[0].method == "GET" and elsewhere.requests[0].body == b""


def test_a_redirected_poll_never_takes_the_key_to_another_host(fal, elsewhere):
    away = Failure(status=302, headers={"Location": f"{elsewhere.base_url}/s"})
    fal.queue(FalJob(poll_failures={1: away}, stream_failure=away))  # the status stream, then the poll
    with pytest.raises(HTTPError, match="405"):  # the other host does not know the job
        generate_video(video_config(fal), VideoGenerationRequest(prompt="a cat"))
    assert elsewhere.requests and all("Authorization" not in r.headers for r in elsewhere.requests)
    assert fal.submit_count() == 1


def test_credentials_are_never_carried_from_https_down_to_http():
    from tarash_router.engine.http import _headers_for_hop
    from tarash_router.engine.url_safety import origin_of

    start = origin_of("https://api.example.com/v1")
    with pytest.raises(UnsafeURLError, match="https to plain http"):
        _headers_for_hop(dict(SECRETS), SECRET_NAMES, start, "https://api.example.com/v1", "http://api.example.com/v1")
    # Without credentials a downgrade is the server's business.
    assert _headers_for_hop({"Accept": "*/*"}, SECRET_NAMES, start, "https://api.example.com/v1",
                            "http://api.example.com/v1") == {"Accept": "*/*"}


def test_every_redirect_hop_is_vetted(fal, elsewhere):
    seen: list[str] = []

    async def guard(url: str) -> None:
        seen.append(url)
        if url.startswith(elsewhere.base_url):
            raise UnsafeURLError("refused hop")

    fal.queue(FalJob(submit_failures=[Failure(status=302, headers={"Location": f"{elsewhere.base_url}/x"})]))
    with pytest.raises(UnsafeURLError, match="refused hop"):
        _send(f"{fal.base_url}/fal-ai/veo3", url_guard=guard)
    assert seen == [f"{fal.base_url}/fal-ai/veo3", f"{elsewhere.base_url}/x"] and elsewhere.requests == []


def test_a_media_redirect_to_the_metadata_address_is_refused_at_that_hop(fal, private_urls_refused):
    # The first hop is the loopback fake (let through by the test); the real check judges the redirect.
    async def guard(url: str) -> None:
        if not url.startswith(fal.base_url):
            await check_public_url(url)

    fal.queue(FalJob(submit_failures=[Failure(status=302, headers={"Location": "http://169.254.169.254/latest/"})]))
    with pytest.raises(UnsafeURLError, match="169.254.169.254"):
        _send(f"{fal.base_url}/fal-ai/veo3", url_guard=guard)


def test_a_post_redirected_by_302_arrives_as_a_get_without_body_headers(fal):
    fal.queue(FalJob(submit_failures=[Failure(status=302, headers={"Location": "/fal-ai/veo3/again"})]))
    _send(f"{fal.base_url}/fal-ai/veo3", headers={**SECRETS, "Content-Type": "application/json"})
    landed = fal.requests[1]
    assert landed.method == "GET" and landed.body == b"" and "Content-Type" not in landed.headers


def test_a_redirect_loop_ends_in_too_many_redirects(fal):
    loop = Failure(status=307, headers={"Location": "/fal-ai/veo3"})
    fal.queue(FalJob(submit_failures=[loop] * 10))
    with pytest.raises(httpx.TooManyRedirects):
        _send(f"{fal.base_url}/fal-ai/veo3")
    assert len(fal.requests) == 6  # the request and five redirects


# ------------------------------------------------------------------ bounded bodies

def test_a_body_over_the_limit_is_refused_without_reading_it_all(fal):
    huge = "x" * (40 * 1024 * 1024)
    fal.queue(FalJob(submit_failures=[Failure(status=200, text=huge)]))
    started = time.monotonic()
    with pytest.raises(ResponseTooLarge):
        _send(f"{fal.base_url}/fal-ai/veo3", max_bytes=64 * 1024)
    assert time.monotonic() - started < 10


@pytest.mark.usefixtures("polling")  # the faults are scripted on polls
def test_an_oversized_status_response_is_a_failed_poll_and_polling_goes_on(fal, setting):
    setting("TARASH_MAX_RESPONSE_BYTES", "65536")
    fal.queue(FalJob(poll_failures={1: Failure(status=200, text="[" + "1," * 100_000 + "1]")}))
    response = generate_video(video_config(fal), VideoGenerationRequest(prompt="a cat"))
    assert response.video and fal.submit_count() == 1


# ------------------------------------------------------------------ transport errors never quote headers

def test_a_transport_error_never_quotes_a_header_value(fal):
    value = "Key sek-illegal-5150\nX-Injected: 1"

    async def go():
        pool = ClientPool()
        try:
            await send(pool.get("t"), "GET", f"{fal.base_url}/x", headers={"Authorization": value},
                       secret_headers=frozenset({"authorization"}), max_bytes=1024, timeout=5)
        except httpx.HTTPError as exc:
            error = error_from_transport(exc, "fal", "m", "poll", "job-1", 5, [value])
        else:
            raise AssertionError("h11 accepted a header with a newline")
        finally:
            await pool.aclose()
        return error

    error = asyncio.run(go())
    assert "sek-illegal-5150" not in str(error) and "sek-illegal-5150" not in repr(error)
    assert error.__cause__ is None and error.__context__ is None


def test_the_seams_own_transport_error_quotes_no_header_and_chains_nothing(fal):
    with pytest.raises(httpx.LocalProtocolError) as caught:
        _send(f"{fal.base_url}/x", headers={"x-goog-api-key": "sek-illegal-5150\n"})
    assert "sek-illegal-5150" not in str(caught.value) and "sek-illegal-5150" not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_non_ascii_key_is_named_never_echoed(fal):
    with pytest.raises(ValidationError, match="x-goog-api-key") as caught:
        _send(f"{fal.base_url}/x", headers={"x-goog-api-key": "sek-nonascii-\u00e9t\u00e9"})
    assert "sek-nonascii" not in str(caught.value) and "sek-nonascii" not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
def test_a_header_with_a_line_break_is_refused_before_any_connection_layer_sees_it(fal, caplog, setting,
                                                                                   transport):
    setting("TARASH_TRANSPORT", transport)
    fal.clear()
    with caplog.at_level(logging.DEBUG), pytest.raises(httpx.LocalProtocolError, match="api-key"):
        _send(f"{fal.base_url}/x", headers={"api-key": "sek-logged-7373\n"})
    assert fal.requests == []  # nothing was sent
    assert not any("sek-logged-7373" in r.getMessage() for r in caplog.records)


def test_the_httpcore_debug_trace_never_quotes_a_header_value(caplog):
    # httpcore logs the h11 error whole ("Illegal header value b'<the value>'"); every httpcore
    # logger that can carry one masks it, in case a value reaches h11 some other way.
    with caplog.at_level(logging.DEBUG, logger="httpcore"):
        logging.getLogger("httpcore.http11").debug(
            "send_request_headers.failed exception=%r", ValueError("Illegal header value b'sek-logged-7373\\n'"))
    assert caplog.records and "Illegal header value ***" in caplog.records[0].getMessage()
    assert not any("sek-logged-7373" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ media downloads are not an SSRF

def _google_image(google: FakeGoogle, url: str):
    config = ImageGenerationConfig(provider="google", model="gemini-2.5-flash-image", api_key="g-key-1",
                                   base_url=google.base_url, timeout=20)
    request = ImageGenerationRequest(prompt="a dress", image_list=[{"image": url, "type": "reference"}])
    return generate_image(config, request)


@pytest.fixture(scope="module")
def google(retired_still_served):  # gemini-2.5-flash-image was retired on 2026-10-02
    with FakeGoogle() as server:
        yield server


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "[::1]", "10.0.0.7",
                                  "[::ffff:127.0.0.1]", "metadata.google.internal"])
def test_private_media_urls_are_refused_before_anything_is_sent(google, private_urls_refused, host):
    google.clear()
    with pytest.raises(UnsafeURLError, match="refused to fetch"):
        _google_image(google, f"http://{host}:{google.base_url.rsplit(':', 1)[1]}/assets/dress.png")
    assert google.requests == []


def test_private_media_urls_work_when_allowed_for_development(google):
    google.clear()
    response = _google_image(google, google.add_asset("dress.png", b"\x89PNGdress"))
    assert response.images
    assert any(r.path.startswith("/assets/") for r in google.requests)


def test_the_unsafe_url_error_is_a_validation_error():
    assert issubclass(UnsafeURLError, ValidationError)


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
    ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False), ("fe80::1", False), ("fc00::1", False),
    ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True), ("2002:7f00:1::", False), ("64:ff9b::a9fe:a9fe", False),
])
def test_address_classification(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_schemes_other_than_http_are_refused(private_urls_refused):
    with pytest.raises(UnsafeURLError, match="only http"):
        asyncio.run(check_public_url("file:///etc/passwd"))


def test_the_api_key_reaches_google_only(google):
    # Sanity for the tests above: with the guard relaxed, the key goes to the provider's origin.
    google.clear()
    _google_image(google, google.add_asset("dress.png", b"\x89PNGdress"))
    keyed = [r for r in google.requests if r.headers.get("x-goog-api-key")]
    assert keyed and all(not r.path.startswith("/assets/") for r in keyed)
    assert all(r.headers.get("x-goog-api-key") is None for r in google.requests if r.path.startswith("/assets/"))
