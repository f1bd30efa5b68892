"""The two wires under the HTTP seam send the same bytes and honour the same environment.

Each test runs on both wires (aiohttp's and httpx's own) against a loopback server that records
the raw request, so a difference between the two shows as a failing parameter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tarash_router.engine.client import ClientPool
from tarash_router.engine.http import ResponseTooLarge, send
from tarash_router.settings import TarashSettings

WIRES = ["aiohttp", "httpx"]


class Recorder:
    """A loopback HTTP/1.1 server that records each request (line, headers, body) and answers
    `reply` (raw response bytes)."""

    def __init__(self, reply: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: 2\r\n\r\n{}") -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Recorder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # pooled keep-alive connections: wait_closed waits for them
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")[:-2]
                headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append({"line": line, "headers": headers, "body": body})
                if not self.reply:  # hang up without an answer
                    break
                writer.write(self.reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(wire: str, scenario: Callable[[ClientPool], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        pool = ClientPool(TarashSettings(transport=wire))
        try:
            return await scenario(pool)
        finally:
            await pool.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("wire", WIRES)
def test_json_body_query_and_headers_go_out_as_given(wire):
    async def scenario(pool: ClientPool) -> list[dict[str, Any]]:
        async with Recorder() as server:
            url = f"http://127.0.0.1:{server.port}/fal-ai/veo3?existing=1"
            await send(pool.get("p"), "POST", url, headers={"Authorization": "Key k-1", "X-Trace": "t"},
                       params={"logs": "1", "flag": True, "existing": "2"},
                       json={"prompt": "a café", "n": 2, "nested": {"ok": None}}, max_bytes=1024, timeout=5)
            return server.requests

    [request] = run(wire, scenario)
    assert request["line"] == "POST /fal-ai/veo3?logs=1&flag=true&existing=2 HTTP/1.1"
    assert request["headers"]["authorization"] == "Key k-1" and request["headers"]["x-trace"] == "t"
    assert request["headers"]["content-type"] == "application/json"
    # Compact UTF-8 JSON, as httpx encodes it: the same bytes whichever wire sends them.
    assert request["body"] == '{"prompt":"a café","n":2,"nested":{"ok":null}}'.encode()


@pytest.mark.parametrize("wire", WIRES)
def test_a_multipart_upload_and_raw_bytes_go_out_as_given(wire):
    async def scenario(pool: ClientPool) -> list[dict[str, Any]]:
        async with Recorder() as server:
            url = f"http://127.0.0.1:{server.port}/upload"
            await send(pool.get("p"), "POST", url, headers={}, data={"prompt": "a cat"},
                       files={"image": ("cat.png", b"\x89PNG-bytes", "image/png")}, max_bytes=1024, timeout=5)
            await send(pool.get("p"), "PUT", url, headers={}, content=b"raw", max_bytes=1024, timeout=5)
            return server.requests

    multipart, raw = run(wire, scenario)
    boundary = multipart["headers"]["content-type"].removeprefix("multipart/form-data; boundary=")
    assert boundary != multipart["headers"]["content-type"]
    assert f"--{boundary}".encode() in multipart["body"] and b"\x89PNG-bytes" in multipart["body"]
    assert b'name="prompt"\r\n\r\na cat\r\n' in multipart["body"]
    assert raw["body"] == b"raw" and "content-type" not in raw["headers"]  # none invented for raw bytes


@pytest.mark.parametrize("wire", WIRES)
def test_a_cookie_one_answer_sets_is_never_sent_back(wire):
    # A shared pool serves every caller: a provider's session cookie from one caller's request
    # must not ride along on the next caller's.
    reply = (b"HTTP/1.1 200 OK\r\nSet-Cookie: session=caller-a; Path=/\r\nContent-Type: application/json\r\n"
             b"Content-Length: 2\r\n\r\n{}")

    async def scenario(pool: ClientPool) -> list[dict[str, Any]]:
        async with Recorder(reply) as server:
            for _ in range(2):
                await send(pool.get("p"), "GET", f"http://127.0.0.1:{server.port}/s", headers={}, max_bytes=1024,
                           timeout=5)
            return server.requests

    first, second = run(wire, scenario)
    assert "cookie" not in first["headers"] and "cookie" not in second["headers"]


@pytest.mark.parametrize("wire", WIRES)
def test_proxies_come_from_the_environment_and_no_proxy_is_honoured(wire, monkeypatch):
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)

    async def scenario(pool_for: Callable[[], ClientPool]) -> tuple[list[dict[str, Any]], Exception | None]:
        async with Recorder() as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://proxy-user:proxy-pw@127.0.0.1:{proxy.port}")
            monkeypatch.setenv("NO_PROXY", "bypassed.invalid")
            pool = pool_for()
            try:
                received = await send(pool.get("p"), "GET", "http://provider.invalid/v1/jobs/7",
                                      headers={"Authorization": "Key k-1"}, max_bytes=1024, timeout=5)
                assert json.loads(received.content) == {}
                failure: Exception | None = None
                try:  # NO_PROXY: sent directly, so the name has to resolve (and .invalid never does)
                    await send(pool.get("p"), "GET", "http://bypassed.invalid/x", headers={}, max_bytes=1024,
                               timeout=5)
                except httpx.HTTPError as exc:
                    failure = exc
            finally:
                await pool.aclose()
            return proxy.requests, failure

    requests, failure = asyncio.run(scenario(lambda: ClientPool(TarashSettings(transport=wire))))
    [request] = requests  # only the first went through the proxy
    assert request["line"] == "GET http://provider.invalid/v1/jobs/7 HTTP/1.1"
    assert request["headers"]["authorization"] == "Key k-1"
    assert request["headers"]["proxy-authorization"] == "Basic cHJveHktdXNlcjpwcm94eS1wdw=="  # proxy-user:proxy-pw
    assert isinstance(failure, httpx.ConnectError)  # nothing sent: a submit may be retried


@pytest.mark.parametrize("wire", WIRES)
def test_a_refused_connect_and_a_dropped_answer_are_told_apart(wire):
    # ConnectError: the request never left (a submit may be sent again); ReadError or
    # RemoteProtocolError: it may have arrived (a submit is never sent again).
    async def scenario(pool: ClientPool) -> tuple[Exception, Exception]:
        async with Recorder(reply=b"") as server:  # closes without answering
            port = server.port
            with pytest.raises(httpx.HTTPError) as dropped:
                await send(pool.get("p"), "POST", f"http://127.0.0.1:{port}/submit", headers={}, json={},
                           max_bytes=1024, timeout=5)
        with pytest.raises(httpx.HTTPError) as refused:  # the server is gone: nothing listens there
            await send(pool.get("q"), "POST", f"http://127.0.0.1:{port}/submit", headers={}, json={},
                       max_bytes=1024, timeout=5)
        return refused.value, dropped.value

    refused, dropped = run(wire, scenario)
    assert isinstance(refused, httpx.ConnectError)
    assert isinstance(dropped, (httpx.ReadError, httpx.RemoteProtocolError))
    assert not isinstance(dropped, (httpx.ConnectError, httpx.ConnectTimeout))


@pytest.mark.parametrize("wire", WIRES)
def test_a_small_declared_length_beside_a_chunked_body_does_not_pass_the_cap(wire):
    # Content-Length says 2, Transfer-Encoding says chunked and sends 64 KiB: a client that reads
    # by the declared length alone would take the whole chunked body past the 1 KiB cap.
    chunk = b"x" * 65536
    reply = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
             + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")

    async def scenario(pool: ClientPool) -> Exception:
        async with Recorder(reply) as server:
            with pytest.raises((ResponseTooLarge, httpx.HTTPError)) as refused:
                await send(pool.get("p"), "GET", f"http://127.0.0.1:{server.port}/status", headers={},
                           max_bytes=1024, timeout=5)
            return refused.value

    run(wire, scenario)


@pytest.mark.parametrize("wire", WIRES)
def test_an_https_request_through_a_proxy_tunnels_and_keeps_the_key_inside(wire, monkeypatch):
    # CONNECT carries the proxy's own credentials; the API key travels only inside the tunnel's TLS.
    for name in ("ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def scenario() -> list[dict[str, Any]]:
        async with Recorder(b"HTTP/1.1 200 Connection established\r\n\r\n") as proxy:
            monkeypatch.setenv("HTTPS_PROXY", f"http://proxy-user:proxy-pw@127.0.0.1:{proxy.port}")
            pool = ClientPool(TarashSettings(transport=wire))
            try:
                with pytest.raises(httpx.HTTPError):  # the "tunnel" answers no TLS: the handshake fails
                    await send(pool.get("p"), "GET", "https://provider.invalid/v1/jobs/7",
                               headers={"Authorization": "Key sek-tunnel-1"}, max_bytes=1024, timeout=1)
            finally:
                await pool.aclose()
            return proxy.requests

    connect = asyncio.run(scenario())[0]
    assert connect["line"] == "CONNECT provider.invalid:443 HTTP/1.1"
    assert connect["headers"]["proxy-authorization"] == "Basic cHJveHktdXNlcjpwcm94eS1wdw=="
    assert "authorization" not in connect["headers"]
