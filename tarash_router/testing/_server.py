"""Reusable base for loopback fake provider servers.

A :class:`FakeServer` runs an aiohttp application on 127.0.0.1 in its own daemon
thread and event loop, so the same fake works from sync tests, from async tests
on any loop, and from a separate process (:meth:`FakeServer.main`). Every request
is recorded, and :class:`Failure` scripts faults (error bodies, delays, resets,
truncated bodies) that subclasses apply with :func:`apply_failure`.

:class:`ScriptedFake` adds what the provider fakes share: an API key, a FIFO of per-job scripts
(a dataclass each, :class:`StatusScript` for the poll sequence) with a default, scripted create
failures played before a job is accepted, attempt counting, key checks and ``--api-key``.

Depends only on the standard library and aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import email as _email
import email.policy as _email_policy
import json as _json
import signal
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, UTC
from http import HTTPStatus
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "FakeServer", "Failure", "abort_connection", "Headers", "RecordedRequest", "ScriptedFake", "StatusScript",
    "apply_failure", "credential", "delayed_failure", "failure_response", "format_seconds", "json_loads_or_none",
    "json_response", "key_accepted", "multipart_parts", "now_iso", "parse_multipart", "pop_first",
]

# Large enough for base64 data-URI inputs; the real providers accept tens of MiB.
_CLIENT_MAX_SIZE = 64 * 1024 * 1024
# Benchmarks open ~1,000 connections at once; the default backlog (128) drops SYNs.
_BACKLOG = 4096

# web.RequestKey only exists in newer aiohttp releases; older ones take a plain string.
_REQUEST_KEY: Any = (
    web.RequestKey("tarash_recorded_request", object)
    if hasattr(web, "RequestKey")
    else "tarash_recorded_request"
)
_SERVER_KEY = web.AppKey("tarash_fake_server", object)


class Headers(dict[str, str]):
    """A plain dict of headers with lower-cased keys and case-insensitive lookup."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        pairs = items.items() if hasattr(items, "items") else items
        for key, value in pairs:
            lower = key.lower()
            # Repeated headers are folded the way HTTP allows (comma-joined).
            super().__setitem__(lower, f"{self[lower]}, {value}" if lower in self else value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    """One request as the fake received it (body byte-exact, JSON parsed when possible)."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    json: Any = None  # None when the body is empty or not JSON


def json_loads_or_none(body: bytes) -> Any:
    """Parse a JSON body, returning None for empty or invalid bodies."""
    if not body:
        return None
    try:
        return _json.loads(body)
    except ValueError:
        return None


def multipart_parts(content_type: str, body: bytes) -> list[tuple[str, str | None, bytes, str]] | None:
    """Parts of a multipart/form-data body as ``(name, filename, payload, content type)``; None if not multipart.

    ``filename`` is None for a text field. Parts without a name are skipped.
    """
    if not content_type.startswith("multipart/form-data"):
        return None
    message = _email.message_from_bytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body, policy=_email_policy.HTTP)
    if not message.is_multipart():
        return None
    parts = []
    for part in message.iter_parts():
        # The HTTP policy decodes an RFC 2231 value, so a parameter is a str; a leaf part decodes to bytes.
        name = cast("str | None", part.get_param("name", header="content-disposition"))
        if name is not None:
            payload = cast("bytes | None", part.get_payload(decode=True)) or b""
            parts.append((name, part.get_filename(), payload, part.get_content_type()))
    return parts


def parse_multipart(content_type: str, body: bytes) -> dict[str, str | bytes] | None:
    """Fields of a multipart/form-data body (text parts as str, file parts as bytes); None if not multipart."""
    parts = multipart_parts(content_type, body)
    if parts is None:
        return None
    return {name: payload if filename else payload.decode("utf-8") for name, filename, payload, _ in parts}


@dataclass
class Failure:
    """A scripted fault returned instead of the normal response.

    ``json``/``text`` give the body (``text`` wins, for HTML or malformed JSON);
    ``delay`` sleeps first (to trip client timeouts); ``reset`` aborts the TCP
    connection without a response; ``truncate`` declares a longer
    Content-Length than it sends, then closes.
    """

    status: int = 500
    json: Any = None
    text: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    truncate: bool = False

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1) -> Failure:
        """429 with a JSON detail and, when given, a Retry-After header (seconds)."""
        headers = {} if retry_after is None else {"Retry-After": format_seconds(retry_after)}
        return cls(status=429, json={"detail": "Rate limit exceeded"}, headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Failure:
        """A plain 5xx with a JSON ``detail`` naming the status."""
        return cls(status=status, json={"detail": _reason(status)})

    @classmethod
    def connection_reset(cls) -> Failure:
        """Abort the connection with a TCP RST and no HTTP response."""
        return cls(reset=True)

    @classmethod
    def timeout(cls, seconds: float) -> Failure:
        """Answer 504 only after ``seconds``, so a shorter client timeout fires first."""
        return cls(status=504, json={"detail": "Gateway Timeout"}, delay=seconds)

    @classmethod
    def html(cls, status: int = 502) -> Failure:
        """An nginx-style HTML error page (a proxy in front of the API failing)."""
        title = f"{status} {_reason(status)}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return cls(status=status, text=page, content_type="text/html")

    @classmethod
    def malformed_json(cls, status: int = 200) -> Failure:
        """A body that claims to be JSON but does not parse."""
        return cls(status=status, text='{"bad', content_type="application/json")

    @classmethod
    def truncated(cls, status: int = 200, json: Any = None) -> Failure:
        """A response whose body ends before its declared Content-Length."""
        body = json if json is not None else {"detail": "truncated response body padding " * 4}
        return cls(status=status, json=body, truncate=True)

    def render(self) -> tuple[bytes, str]:
        """Return the body bytes and Content-Type this failure sends."""
        if self.text is not None:
            return self.text.encode(), self.content_type or "text/plain; charset=utf-8"
        payload = self.json if self.json is not None else {"detail": _reason(self.status)}
        return _json.dumps(payload).encode(), self.content_type or "application/json"


def format_seconds(value: float) -> str:
    """Render seconds for a header: ``2`` rather than ``2.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _reason(status: int) -> str:
    """The standard reason phrase for a status code (or a generic one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def apply_failure(request: web.Request, failure: Failure) -> web.StreamResponse:
    """Produce the response (or the broken connection) that ``failure`` describes."""
    if failure.delay > 0:
        await asyncio.sleep(failure.delay)
    if failure.reset:
        abort_connection(request)
        # Never sent: aiohttp sees the closed transport and drops it quietly.
        return web.Response(status=failure.status)
    if failure.truncate:
        body, content_type = failure.render()
        return await _send_truncated(request, failure.status, body, {**failure.headers, "Content-Type": content_type})
    return failure_response(failure)


def failure_response(failure: Failure) -> web.Response:
    """The plain response of ``failure`` (its status, headers and body; delay/reset/truncate ignored)."""
    body, content_type = failure.render()
    return web.Response(status=failure.status, body=body, headers={**failure.headers, "Content-Type": content_type})


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response (compact encoding; this sits on the benchmark hot path)."""
    return web.Response(
        status=status, body=_json.dumps(body).encode(), content_type="application/json", headers=headers)


def now_iso() -> str:
    """Current UTC time in ISO form with milliseconds (``2025-02-26T15:02:03.352Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def abort_connection(request: web.Request) -> None:
    """Close the socket with SO_LINGER=0 so the peer gets a RST, not a clean FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


async def _send_truncated(
    request: web.Request, status: int, body: bytes, headers: dict[str, str]
) -> web.StreamResponse:
    """Send headers promising more bytes than follow, then close the connection."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body) + 1024
    await response.prepare(request)
    await response.write(body[: max(1, len(body) // 2)])
    if request.transport is not None:
        request.transport.close()  # flushes what was written, then FIN
    return response


@web.middleware
async def _record_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record the request (see :meth:`FakeServer.recorded`) before dispatching it."""
    server = cast(FakeServer, request.app[_SERVER_KEY])
    body = await request.read()
    record = RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=Headers(request.headers.items()),
        body=body,
        json=json_loads_or_none(body),
    )
    request[_REQUEST_KEY] = record
    if server.record:
        with server._lock:
            server.requests.append(record)
    return await handler(request)



class FakeServer:
    """Base loopback HTTP server; subclasses add routes by overriding :meth:`routes`.

    Use ``with Fake() as fake:`` (or ``async with``), or ``start()``/``stop()``.
    ``record=False`` skips keeping every request (long benchmark runs).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, record: bool = True) -> None:
        self.host = host
        self.port = port
        self.record = record
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._bound_port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- to override -------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Register the provider's routes on ``app`` (subclasses override)."""

    def clear(self) -> None:
        """Forget recorded requests; subclasses also reset their scripted state."""
        with self._lock:
            self.requests.clear()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add subclass-specific command-line options for :meth:`main`."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FakeServer:
        """Build an instance from parsed command-line options."""
        return cls(host=args.host, port=args.port, record=not args.no_record)

    # -- addresses / records ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._bound_port is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self._bound_port}"

    @staticmethod
    def recorded(request: web.Request) -> RecordedRequest:
        """The :class:`RecordedRequest` of an in-flight request (body already read)."""
        return cast(RecordedRequest, request[_REQUEST_KEY])

    # -- lifecycle ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """Create the aiohttp application with recording middleware and the routes."""
        app = web.Application(middlewares=[_record_middleware], client_max_size=_CLIENT_MAX_SIZE)
        app[_SERVER_KEY] = self
        self.routes(app)
        return app

    async def _bind(self) -> None:
        """Start listening on ``self.host``/``self.port`` in the current loop."""
        # Short shutdown timeout: stop() must not wait for handlers sleeping in a delay.
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=_BACKLOG, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = runner.addresses[0][1]

    async def _unbind(self) -> None:
        """Stop listening and close every connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._bound_port = None

    def start(self) -> Self:
        """Start serving in a daemon thread; returns once the port is listening."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:  # reported to start()'s caller
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                _cancel_pending(loop)
                loop.close()

        thread = threading.Thread(target=run, name=f"{type(self).__name__}-server", daemon=True)
        thread.start()
        ready.wait()
        if errors:
            thread.join()
            raise errors[0]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Close all connections, stop the loop and join the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._unbind(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # start()/stop() block briefly on thread hand-off; keep the caller's loop free.
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- separate-process mode ---------------------------------------------------------------

    def serve_forever(self, host: str | None = None, port: int | None = None) -> None:
        """Serve in the current thread; print the base URL as the first stdout line."""
        if host is not None:
            self.host = host
        if port is not None:
            self.port = port

        async def serve() -> None:
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, stopping.set)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass  # not the main thread / not supported: rely on default handling
            await self._bind()
            print(self.base_url, flush=True)
            try:
                await stopping.wait()
            finally:
                await self._unbind()

        try:
            asyncio.run(serve())
        except KeyboardInterrupt:
            pass

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> None:
        """Command-line entry: ``--host``, ``--port`` (0 = random) plus subclass options."""
        parser = argparse.ArgumentParser(description=f"Run {cls.__name__} until killed.")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--no-record", action="store_true", help="do not keep every request in memory")
        cls.add_arguments(parser)
        args = parser.parse_args(argv)
        cls.from_args(args).serve_forever()


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel tasks left on a stopped loop so closing it does not warn."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


# -- scripted fakes --------------------------------------------------------------------------------

JobT = TypeVar("JobT")


class StatusScript:
    """Mixin for script dataclasses whose ``statuses`` (names or dicts) successive polls walk through."""

    statuses: list[str | dict[str, Any]]

    def __post_init__(self) -> None:
        if not self.statuses:
            raise ValueError(f"{type(self).__name__}.statuses must not be empty")

    def status_dicts(self) -> list[dict[str, Any]]:
        """``statuses`` with every bare name turned into ``{"status": name}`` (dicts are copied)."""
        return [{"status": s} if isinstance(s, str) else dict(s) for s in self.statuses]


def pop_first(failures: list[Failure]) -> Failure | None:
    """Take the next of a script's one-per-attempt failures (None when they are used up)."""
    return failures.pop(0) if failures else None


async def delayed_failure(request: web.Request, delay: float, failure: Failure | None) -> web.StreamResponse | None:
    """Sleep a script's ``delay``, then play ``failure``; None when there is none (answer normally)."""
    if delay:
        await asyncio.sleep(delay)
    return None if failure is None else await apply_failure(request, failure)


def credential(request: web.Request, scheme: str | tuple[str, ...] | None = "Bearer",
               header: str = "Authorization") -> str | None:
    """The key a request presents in ``header``, after one of the ``scheme`` names (None: the whole value).

    None when the header is missing, names another scheme or has an empty key.
    """
    value = request.headers.get(header, "")
    if scheme is None:
        return value or None
    name, _, key = value.partition(" ")
    schemes = (scheme,) if isinstance(scheme, str) else scheme
    return key if name in schemes and key else None


def key_accepted(key: str | None, expected: str | None) -> bool:
    """Whether a presented ``key`` passes: any non-empty key when ``expected`` is None, else exactly it."""
    return bool(key) and (expected is None or key == expected)


class ScriptedFake(FakeServer, Generic[JobT]):
    """A :class:`FakeServer` whose accepted creates each follow a script (a job dataclass).

    :meth:`queue` scripts the next creates, FIFO; once the queue is empty, copies of ``default_job``
    are used. A script's create failures (the list named by ``failures_field``) are played one per
    attempt before the create is accepted: the script stays pending until they are used up, so a
    retried create still makes exactly one job. ``attempts`` counts every create attempt, accepted
    or not (subclasses name it after the provider's verb). ``api_key=None`` accepts any key.
    """

    job_type: ClassVar[type[Any]]
    """The script class; ``job_type()`` is the default script."""
    failures_field: ClassVar[str] = "submit_failures"
    """The script's list of failures played before a create is accepted."""
    auth_help: ClassVar[str] = "require Authorization: Bearer <api-key>"
    """``--api-key`` help on the command line."""

    def __init__(self, api_key: str | None = None, *, default_job: JobT | None = None, host: str = "127.0.0.1",
                 port: int = 0, record: bool = True) -> None:
        super().__init__(host=host, port=port, record=record)
        self.api_key = api_key
        self.default_job: JobT = default_job if default_job is not None else self.job_type()
        self._init_state()

    def _init_state(self) -> None:
        """(Re)create the scripted and observed state; subclasses add their records."""
        self._scripts: deque[JobT] = deque()
        self._pending: JobT | None = None  # taken script still playing its create failures
        self.attempts = 0

    # -- scripting -------------------------------------------------------------------------------

    def queue(self, *jobs: JobT) -> Self:
        """Script the next creates, FIFO; afterwards copies of ``default_job`` are used.

        Jobs are copied, so queuing one job twice gives two independent scripts.
        """
        with self._lock:
            self._scripts.extend(copy.deepcopy(job) for job in jobs)
        return self

    def clear(self) -> None:
        """Forget requests, jobs and queued scripts (``api_key``/``default_job`` and options stay)."""
        with self._lock:
            super().clear()
            self._init_state()

    def count_attempt(self) -> None:
        """Count one create attempt."""
        with self._lock:
            self.attempts += 1

    def take_script(self) -> tuple[JobT, Failure | None]:
        """The script for this create attempt and its next create failure, if any remain."""
        with self._lock:
            script = self._pending
            if script is None:
                script = self._scripts.popleft() if self._scripts else copy.deepcopy(self.default_job)
            failure = pop_first(getattr(script, self.failures_field))
            self._pending = script if failure is not None else None
            return script, failure

    async def next_script(self, request: web.Request) -> tuple[JobT, web.StreamResponse | None]:
        """:meth:`take_script`, then the script's delay; the failure's response when one is due."""
        script, failure = self.take_script()
        return script, await delayed_failure(request, getattr(script, "delay", 0.0), failure)

    # -- auth ------------------------------------------------------------------------------------

    def check_auth(self, request: web.Request, scheme: str | tuple[str, ...] | None = "Bearer",
                   header: str = "Authorization") -> bool:
        """Whether the request presents a key :func:`key_accepted` takes for ``api_key`` (see :func:`credential`)."""
        return key_accepted(credential(request, scheme, header), self.api_key)

    # -- command line ----------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """``--api-key``: require exactly this key."""
        parser.add_argument("--api-key", default=None, help=cls.auth_help)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **options: Any) -> Self:
        """Build an instance from command-line options (plus subclass ``options``)."""
        return cls(api_key=args.api_key, host=args.host, port=args.port, record=not args.no_record, **options)


@dataclass
class WebhookDelivery:
    """One webhook POST a fake made: the job, where it went, what was sent and the receiver's answer
    (``answer`` is None when the receiver could not be reached)."""

    job_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    answer: int | None = None


class WebhookSender:
    """Sends a fake's signed webhook deliveries from its own event loop, after ``delay`` seconds,
    ``repeats`` distinct deliveries per job (providers deliver more than once); records each one."""

    def __init__(self) -> None:
        self.delay = 0.05
        self.repeats = 1
        self.deliveries: list[WebhookDelivery] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, job_id: str, url: str, build: Callable[[int], tuple[dict[str, str], bytes]]) -> None:
        """Deliver ``build(i)`` (headers, body) for i in range(repeats) to ``url``; call from the fake's loop."""
        task = asyncio.get_running_loop().create_task(self._send(job_id, url, build))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, job_id: str, url: str, build: Callable[[int], tuple[dict[str, str], bytes]]) -> None:
        from aiohttp import ClientError, ClientSession, ClientTimeout

        await asyncio.sleep(self.delay)
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            for i in range(self.repeats):
                headers, body = build(i)
                delivery = WebhookDelivery(job_id, url, headers, body)
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        delivery.answer = response.status
                except (TimeoutError, ClientError, OSError):
                    delivery.answer = None
                self.deliveries.append(delivery)
