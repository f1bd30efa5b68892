"""Fake fal.ai queue API (submit / status / result / cancel) on loopback.

Follows fal's queue protocol (https://docs.fal.ai/model-endpoints/queue): submit to the
full endpoint path, poll status/result/cancel under the app id (``owner/alias``) or the full
path, 202 while queued/running and 200 once COMPLETED, failures surfacing on the result GET.
Each job follows a :class:`FalJob` script; faults are :class:`Failure` objects.

``GET …/requests/{id}/status/stream`` is fal's status stream
(https://fal.ai/docs/inference-api/queue/status-stream): ``text/event-stream``, one ``data: {status}``
event per step of the script (each one what the next poll would have said, logs only those of that
step), closed after COMPLETED; an unfinished script's last step holds, with keep-alive comments,
until the job is cancelled. ``FalJob.stream_fault`` breaks it on purpose after the first event.

A submit with ``?fal_webhook=<url>`` is delivered for real: the job finishes at once and the fake
POSTs ``{request_id, gateway_request_id, status: OK|ERROR, payload, error}`` to the URL, signed as fal
signs it (https://docs.fal.ai/model-apis/model-endpoints/webhooks): ED25519 over ``request_id \n
user_id \n timestamp \n sha256_hex(body)``, headers ``X-Fal-Webhook-*``; the public key is served
as a JWKS at ``/.well-known/jwks.json``. Signing needs the ``cryptography`` package.

Run standalone (benchmarks): ``python -m tarash_router.testing.fal --port 0``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from ._server import (
    Failure, Headers, ScriptedFake, StatusScript, WebhookSender, abort_connection, delayed_failure, json_response,
    now_iso, pop_first,
)

__all__ = ["FakeFal", "FalJob", "FalJobState", "FalSubmit", "app_id_of"]

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"
_NAMESPACES = frozenset({"workflows", "comfy"})
_TRUE = frozenset({"1", "true", "True", "TRUE", "yes"})
_CDN = "https://v3.fal.media/files/fake"

# Typical status codes of fal's infrastructure error types (docs.fal.ai request-errors).
_ERROR_TYPE_STATUS = {
    "request_timeout": 504,
    "startup_timeout": 504,
    "runner_scheduling_failure": 503,
    "runner_connection_timeout": 503,
    "runner_disconnected": 503,
    "runner_connection_refused": 503,
    "runner_connection_error": 503,
    "runner_incomplete_response": 502,
    "runner_server_error": 500,
    "internal_error": 500,
}

StreamFault = Literal["drop", "malformed", "idle", "oversized", "flood", "end"]

ResultFactory = Callable[[str, Any], Any]
"""A callable result: ``(request_id, submitted_json) -> model output``."""


def app_id_of(endpoint: str) -> str:
    """The fal app id of an endpoint id: ``owner/alias`` (``ns/owner/alias`` for workflows/comfy)."""
    parts = endpoint.strip("/").split("/")
    size = 3 if parts[0] in _NAMESPACES else 2
    return "/".join(parts[:size])


def _log(message: str, level: str = "INFO") -> dict[str, str]:
    """One fal log line."""
    return {"message": message, "level": level, "source": "USER", "timestamp": now_iso()}


@dataclass
class FalJob(StatusScript):
    """Script for one submitted request.

    ``statuses`` is what successive status polls return (the last repeats); an entry
    is a status name or a dict with ``status`` and any of ``queue_position``, ``logs``,
    ``error``, ``error_type``, ``metrics``. ``result`` is the model output (or a
    :data:`ResultFactory`; None = a default video); ``result_status``/``result_body``
    (body defaults to the output) script a failing result. Failures are consumed one
    per attempt; ``poll_failures`` is keyed by 1-based poll number. ``delay`` is
    added before every response about this job.
    """

    statuses: list[str | dict[str, Any]] = field(default_factory=lambda: [IN_QUEUE, IN_PROGRESS, COMPLETED])
    submit_status: str = IN_QUEUE
    result: Any = None
    result_status: int = 200
    result_body: Any = None
    result_headers: dict[str, str] = field(default_factory=dict)
    submit_failures: list[Failure] = field(default_factory=list)
    poll_failures: dict[int, Failure] = field(default_factory=dict)
    result_failures: list[Failure] = field(default_factory=list)
    cancel_failures: list[Failure] = field(default_factory=list)
    delay: float = 0.0
    # Where the job's status/result/cancel URLs point (default: this server); tests of hostile
    # responses point them at another origin.
    url_base: str | None = None
    # The status stream: seconds between events, and between keep-alive comments while the script's
    # last step holds; an HTTP failure answered instead of the stream; a fault after the first event:
    # "drop" (connection reset), "malformed" (an event that is not JSON), "idle" (silence, never
    # closed), "oversized" (one event of ``stream_oversize`` bytes), "flood" (keep-alive comments
    # without end), "end" (closed without COMPLETED).
    stream_interval: float = 0.01
    stream_keepalive: float = 1.0  # fal comments every 15 s
    stream_failure: Failure | None = None
    stream_fault: StreamFault | None = None
    stream_oversize: int = 2 * 1024 * 1024

    @classmethod
    def images(cls, n: int = 1, **kwargs: Any) -> FalJob:
        """A job whose result is an image-model output with ``n`` images, echoing the prompt."""

        def output(request_id: str, submitted: Any) -> dict[str, Any]:
            prompt = submitted.get("prompt", "") if isinstance(submitted, dict) else ""
            images = [
                {
                    "url": f"{_CDN}/{request_id}_{i}.jpg",
                    "width": 1024,
                    "height": 1024,
                    "content_type": "image/jpeg",
                }
                for i in range(n)
            ]
            return {
                "images": images,
                "timings": {"inference": 1.2},
                "seed": 42,
                "has_nsfw_concepts": [False] * n,
                "prompt": prompt,
            }

        return cls(result=output, **kwargs)

    @classmethod
    def moderated(cls, msg: str | None = None, **kwargs: Any) -> FalJob:
        """A job that completes normally but whose result GET is a 422 content-policy error."""
        detail = {
            "loc": ["body", "prompt"],
            "msg": msg
            or "The content could not be processed because it contained material flagged by a content checker.",
            "type": "content_policy_violation",
            "url": "https://docs.fal.ai/errors#content_policy_violation",
        }
        kwargs.setdefault("result_headers", {"X-Fal-Retryable": "false"})
        return cls(result_status=422, result_body={"detail": [detail]}, **kwargs)

    @classmethod
    def completed_with_error(
        cls,
        error: str = "Runner disconnected",
        error_type: str = "runner_disconnected",
        result_status: int | None = None,
        **kwargs: Any,
    ) -> FalJob:
        """A job whose final status is COMPLETED with ``error``/``error_type`` (infra failure)."""
        final = {"status": COMPLETED, "error": error, "error_type": error_type, "metrics": {}}
        kwargs.setdefault("statuses", [IN_QUEUE, IN_PROGRESS, final])
        return cls(
            result_status=result_status or _ERROR_TYPE_STATUS.get(error_type, 500),
            result_body={"detail": error, "error_type": error_type},
            result_headers={"X-Fal-Error-Type": error_type},
            **kwargs,
        )

    def resolved_statuses(self) -> list[dict[str, Any]]:
        """Expand ``statuses`` into full entries (queue positions, logs, metrics filled in)."""
        entries = self.status_dicts()
        queued_left = sum(1 for e in entries if e.get("status") == IN_QUEUE)
        running_total = sum(1 for e in entries if e.get("status") == IN_PROGRESS)
        running_seen = 0
        for entry in entries:
            status = entry.get("status")
            if status == IN_QUEUE:
                queued_left -= 1
                entry.setdefault("queue_position", queued_left)
                entry.setdefault("logs", [])
            elif status == IN_PROGRESS:
                running_seen += 1
                entry.setdefault("logs", [_log(f"step {running_seen}/{running_total}")])
            elif status == COMPLETED:
                entry.setdefault("metrics", {} if "error" in entry else {"inference_time": 1.2})
                entry.setdefault("logs", [])
        return entries


@dataclass
class FalSubmit:
    """An accepted submit as received (body byte-exact)."""

    request_id: str
    endpoint: str
    body: bytes
    json: Any
    headers: Headers
    webhook: str | None = None


@dataclass
class FalJobState:
    """Server-side state of one request: its script, progress and counters."""

    request_id: str
    endpoint: str
    app_id: str
    script: FalJob
    output: Any
    entries: list[dict[str, Any]]
    urls: dict[str, str]
    status: str
    step: int = 0
    poll_attempts: int = 0
    stream_attempts: int = 0
    result_attempts: int = 0
    cancel_attempts: int = 0
    cancelled: bool = False

    @property
    def completed(self) -> bool:
        """Whether the result is final (COMPLETED observed, or cancelled)."""
        return self.cancelled or self.status == COMPLETED


_CANCELLED_ENTRY: dict[str, Any] = {
    "status": COMPLETED,
    "metrics": {},
    "error": "Request cancelled",
    "error_type": "cancelled",
    "logs": [],
}


class FakeFal(ScriptedFake[FalJob]):
    """Loopback fake of fal.ai's queue API, scripted per job with :class:`FalJob`.

    ``api_key=None`` accepts any ``Authorization: Key <x>``; otherwise it must be exact.
    """

    job_type = FalJob
    auth_help = "require Authorization: Key <api-key>"

    def _init_state(self) -> None:
        super()._init_state()
        self.jobs: dict[str, FalJobState] = {}
        self.submits: list[FalSubmit] = []
        self.cancels: list[str] = []
        # Storage: upload id -> (file name, content type, bytes once PUT).
        self.uploads: dict[str, tuple[str, str, bytes | None]] = {}
        # Webhooks: `webhooks.delay`/`webhooks.repeats` tune deliveries, `webhooks.deliveries` records them.
        self.webhooks = WebhookSender()
        self.webhook_user_id = "fake-user"
        self._signing_key: Any = None
        # Jobs running at once, as fal counts them against an account: accepted and not yet finished
        # (COMPLETED reported, result served or cancelled). `max_in_flight` is the most seen at once.
        self._running: set[str] = set()
        self.max_in_flight = 0

    # -- webhooks ----------------------------------------------------------------------------

    @property
    def jwks_url(self) -> str:
        """Where this fake publishes its webhook signing key (set TARASH_FAL_WEBHOOK_JWKS_URL to it)."""
        return f"{self.base_url}/.well-known/jwks.json"

    def _key(self) -> Any:
        if self._signing_key is None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            self._signing_key = Ed25519PrivateKey.generate()
        return self._signing_key

    def jwks(self) -> dict[str, Any]:
        """The JWKS holding this fake's ED25519 public key."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self._key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "fake", "use": "sig", "alg": "EdDSA"}]}

    def webhook_delivery(self, request_id: str, *, timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
        """The signed delivery fal would POST for a finished ``request_id``: (headers, body)."""
        job = self.jobs[request_id]
        if job.script.result_status >= 400:
            body_json: dict[str, Any] = {
                "request_id": request_id, "gateway_request_id": request_id, "status": "ERROR",
                "error": f"Invalid status code: {job.script.result_status}",
                "payload": job.script.result_body if job.script.result_body is not None else job.output}
        else:
            body_json = {"request_id": request_id, "gateway_request_id": request_id, "status": "OK",
                         "payload": job.output, "error": None}
        body = json.dumps(body_json).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        message = "\n".join([request_id, self.webhook_user_id, stamp, hashlib.sha256(body).hexdigest()]).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": self.webhook_user_id,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": self._key().sign(message).hex(),
        }
        return headers, body

    # -- scripting / inspection --------------------------------------------------------------

    @property
    def submit_attempts(self) -> int:
        """Submit POSTs received, accepted or not."""
        return self.attempts

    def submit_count(self, endpoint: str | None = None) -> int:
        """Accepted submits, optionally only those to ``endpoint`` (full endpoint id)."""
        if endpoint is None:
            return len(self.submits)
        wanted = endpoint.strip("/")
        return sum(1 for s in self.submits if s.endpoint == wanted)

    @property
    def in_flight(self) -> int:
        """Jobs accepted and not yet finished (see `max_in_flight`)."""
        return len(self._running)

    def _started(self, request_id: str) -> None:
        with self._lock:
            self._running.add(request_id)
            self.max_in_flight = max(self.max_in_flight, len(self._running))

    def _finished(self, job: FalJobState) -> None:
        with self._lock:
            self._running.discard(job.request_id)

    def status_polls(self, request_id: str) -> int:
        """Status polls received for ``request_id``, including scripted failures."""
        job = self.jobs.get(request_id)
        return job.poll_attempts if job else 0

    def status_streams(self, request_id: str) -> int:
        """Status stream requests received for ``request_id``, including scripted failures."""
        job = self.jobs.get(request_id)
        return job.stream_attempts if job else 0

    # -- routing -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """One catch-all route: fal endpoint ids have arbitrary depth."""
        app.router.add_route("*", "/{tail:.*}", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route by path shape: storage, ``…/requests/{id}[/status|/cancel]`` or submit."""
        path = request.path.strip("/")
        if path == ".well-known/jwks.json" and request.method == "GET":
            return json_response(200, self.jwks())
        if path.startswith(("storage/", "files/")):
            return await self._storage(request, path)
        prefix, sep, rest = path.rpartition("/requests/")
        if not sep:
            if request.method != "POST":
                return json_response(405, {"detail": "Method Not Allowed"})
            return await self._submit(request, path)
        unauthorized = self._check_auth(request)
        if unauthorized is not None:
            return unauthorized
        request_id, _, action = rest.partition("/")
        job = self.jobs.get(request_id)
        if job is not None and prefix not in (job.app_id, job.endpoint):
            job = None  # only reachable under its own app, so URL-building bugs show up
        if action == "status" and request.method == "GET":
            return await self._status(request, job)
        if action == "status/stream" and request.method == "GET":
            return await self._status_stream(request, job)
        if action == "" and request.method == "GET":
            return await self._result(request, job)
        if action == "cancel" and request.method == "PUT":
            return await self._cancel(request, job)
        if action in ("", "status", "cancel"):
            return json_response(405, {"detail": "Method Not Allowed"})
        return json_response(404, {"detail": "Not Found"})

    async def _storage(self, request: web.Request, path: str) -> web.StreamResponse:
        """fal's upload flow (fal-js): POST storage/upload/initiate {file_name, content_type} ->
        {upload_url, file_url}; PUT the bytes to upload_url (pre-signed: no auth); GET file_url."""
        base = self.base_url
        if path == "storage/upload/initiate" and request.method == "POST":
            unauthorized = self._check_auth(request)
            if unauthorized is not None:
                return unauthorized
            body = self.recorded(request).json or {}
            if not isinstance(body, dict) or not body.get("file_name") or not body.get("content_type"):
                return json_response(422, {"detail": "file_name and content_type are required"})
            upload_id = uuid.uuid4().hex
            with self._lock:
                self.uploads[upload_id] = (str(body["file_name"]), str(body["content_type"]), None)
            return json_response(200, {"upload_url": f"{base}/storage/put/{upload_id}",
                                       "file_url": f"{base}/files/{upload_id}/{body['file_name']}"})
        kind, _, rest = path.partition("/")
        upload_id = rest.split("/")[-1] if kind == "storage" else rest.split("/")[0]
        entry = self.uploads.get(upload_id)
        if entry is None:
            return json_response(404, {"detail": "Not found"})
        if kind == "storage" and request.method == "PUT":
            with self._lock:
                self.uploads[upload_id] = (entry[0], entry[1], self.recorded(request).body)
            return web.Response(status=200)
        if kind == "files" and request.method == "GET" and entry[2] is not None:
            return web.Response(body=entry[2], content_type=entry[1])
        return json_response(404, {"detail": "Not found"})

    def host_file(self, file_name: str, content: bytes, content_type: str = "video/mp4") -> str:
        """Serve `content` as fal's CDN would serve a generated file; returns its URL (to script a
        result with, e.g. ``FalJob(result={"video": {"url": url}})``)."""
        upload_id = uuid.uuid4().hex
        with self._lock:
            self.uploads[upload_id] = (file_name, content_type, content)
        return f"{self.base_url}/files/{upload_id}/{file_name}"

    def _check_auth(self, request: web.Request) -> web.Response | None:
        """401 unless ``Authorization: Key <key>`` (matching ``api_key`` when set)."""
        if self.check_auth(request, "Key"):
            return None
        detail = "Invalid API key" if request.headers.get("Authorization") else "Missing Authorization header"
        return json_response(401, {"detail": detail})

    # -- handlers ----------------------------------------------------------------------------

    async def _submit(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        """Accept a job (or play the script's next submit failure)."""
        self.count_attempt()
        unauthorized = self._check_auth(request)
        if unauthorized is not None:
            return unauthorized
        record = self.recorded(request)
        if not isinstance(record.json, dict):
            return json_response(422, _invalid_body_detail(record.body))
        script, failed = await self.next_script(request)
        if failed is not None:
            return failed
        job = self._create_job(script, endpoint, record.json)
        webhook = request.query.get("fal_webhook")
        with self._lock:
            self.jobs[job.request_id] = job
            self.submits.append(
                FalSubmit(job.request_id, endpoint, record.body, record.json, record.headers, webhook)
            )
        body: dict[str, Any] = {"status": job.status, "request_id": job.request_id, **job.urls}
        if job.status == IN_QUEUE:
            body["queue_position"] = _first_queue_position(job.entries)
        if webhook:
            body["gateway_request_id"] = job.request_id
            job.status, job.step = COMPLETED, len(job.entries)  # it finishes now; fal reports it to the URL
            now = int(time.time())
            self.webhooks.schedule(job.request_id, webhook,
                                   lambda i: self.webhook_delivery(job.request_id, timestamp=now + i))
        elif job.status != COMPLETED:
            self._started(job.request_id)
        return json_response(200, body, {"x-fal-request-id": job.request_id})

    def _create_job(self, script: FalJob, endpoint: str, submitted: Any) -> FalJobState:
        """Build the state of a newly accepted job."""
        request_id = str(uuid.uuid4())
        app_id = app_id_of(endpoint)
        base = f"{script.url_base or self.base_url}/{app_id}/requests/{request_id}"
        result = script.result
        if callable(result):
            output = result(request_id, submitted)
        elif result is None:
            output = _default_video(request_id)
        else:
            output = copy.deepcopy(result)
        return FalJobState(
            request_id=request_id,
            endpoint=endpoint,
            app_id=app_id,
            script=script,
            output=output,
            entries=script.resolved_statuses(),
            urls={"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"},
            status=script.submit_status,
        )

    async def _status(self, request: web.Request, job: FalJobState | None) -> web.StreamResponse:
        """Return the next scripted status (202 until COMPLETED, then 200)."""
        if job is None:
            return json_response(404, {"detail": "Request not found"})
        job.poll_attempts += 1
        failed = await delayed_failure(request, job.script.delay, job.script.poll_failures.get(job.poll_attempts))
        if failed is not None:
            return failed  # does not advance the sequence
        body = self._next_status(job, with_logs=request.query.get("logs", "") in _TRUE)
        return json_response(200 if body.get("status") == COMPLETED else 202, body)

    def _next_status(self, job: FalJobState, *, with_logs: bool) -> dict[str, Any]:
        """The job's next status object (the script moves one step), as a poll or stream event shows it."""
        if job.cancelled:
            entry = _CANCELLED_ENTRY
        else:
            entry = job.entries[min(job.step, len(job.entries) - 1)]
            job.step += 1
            job.status = entry.get("status", job.status)
            if job.status == COMPLETED:
                self._finished(job)
        body: dict[str, Any] = {k: v for k, v in entry.items() if k != "logs"}
        body["request_id"] = job.request_id
        body.update(job.urls)
        body["logs"] = entry.get("logs", []) if with_logs else None
        return body

    async def _status_stream(self, request: web.Request, job: FalJobState | None) -> web.StreamResponse:
        """The status stream: one event per step until COMPLETED, then the stream closes."""
        if job is None:
            return json_response(404, {"detail": "Request not found"})
        job.stream_attempts += 1
        script = job.script
        failed = await delayed_failure(request, script.delay, script.stream_failure)
        if failed is not None:
            return failed
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "x-fal-request-id": job.request_id})
        await response.prepare(request)
        with_logs = request.query.get("logs", "") in _TRUE
        first, quiet_since = True, time.monotonic()
        try:
            while True:
                # An event when the status changes (the script has a step left, the job finished,
                # perhaps seen by another reader, or a cancel came); the last step of an unfinished
                # script holds, with keep-alive comments.
                if first or job.completed or job.step < len(job.entries):
                    body = self._next_status(job, with_logs=with_logs)
                    await response.write(b"data: " + json.dumps(body).encode() + b"\n\n")
                    if body.get("status") == COMPLETED:
                        break
                    if first and script.stream_fault is not None:
                        return await _stream_fault(request, response, script)
                    first, quiet_since = False, time.monotonic()
                elif time.monotonic() - quiet_since >= script.stream_keepalive:
                    await response.write(b": keep-alive\n\n")
                    quiet_since = time.monotonic()
                await asyncio.sleep(script.stream_interval)
        except ConnectionError:  # the client went away
            return response
        await response.write_eof()
        return response

    async def _result(self, request: web.Request, job: FalJobState | None) -> web.StreamResponse:
        """Return the model output once completed, or the scripted error."""
        if job is None:
            return json_response(404, {"detail": "Request not found"})
        job.result_attempts += 1
        script = job.script
        failed = await delayed_failure(request, script.delay, pop_first(script.result_failures))
        if failed is not None:
            return failed
        headers = {"x-fal-request-id": job.request_id}
        if job.cancelled:
            return json_response(400, {"detail": "Request was cancelled"}, headers)
        if not job.completed:
            return json_response(400, {"detail": "Request is still in progress"}, headers)
        self._finished(job)
        body = script.result_body if script.result_body is not None else job.output
        return json_response(script.result_status, body, {**headers, **script.result_headers})

    async def _cancel(self, request: web.Request, job: FalJobState | None) -> web.StreamResponse:
        """202 CANCELLATION_REQUESTED while running; 400 once completed; 404 if unknown."""
        if job is None:
            return json_response(404, {"status": "NOT_FOUND"})
        job.cancel_attempts += 1
        failed = await delayed_failure(request, job.script.delay, pop_first(job.script.cancel_failures))
        if failed is not None:
            return failed
        if job.completed:
            return json_response(400, {"status": "ALREADY_COMPLETED"})
        job.cancelled = True
        self._finished(job)
        with self._lock:
            self.cancels.append(job.request_id)
        return json_response(202, {"status": "CANCELLATION_REQUESTED"})


async def _stream_fault(request: web.Request, response: web.StreamResponse, script: FalJob) -> web.StreamResponse:
    """Break an open status stream the way ``script.stream_fault`` says."""
    fault = script.stream_fault
    if fault == "drop":
        abort_connection(request)
        return response
    if fault == "malformed":
        await response.write(b'data: {"status": "IN_PROG\n\n')
    elif fault == "oversized":
        await response.write(b'data: {"status": "IN_PROGRESS", "pad": "' + b"x" * script.stream_oversize + b'"}\n\n')
    elif fault == "idle":
        await asyncio.sleep(3600)  # until the client gives up (the server's shutdown ends it)
    elif fault == "flood":
        try:
            while True:
                await response.write(b": keep-alive\n" * 1024)
                await asyncio.sleep(0)
        except ConnectionError:  # the client gave up: the point of the fault
            return response
    await response.write_eof()  # "end", and after a malformed or oversized event
    return response


def _default_video(request_id: str) -> dict[str, Any]:
    """The default model output: one fal File for an mp4."""
    return {
        "video": {
            "url": f"{_CDN}/{request_id}.mp4",
            "content_type": "video/mp4",
            "file_name": f"{request_id}.mp4",
            "file_size": 1048576,
        }
    }


def _first_queue_position(entries: list[dict[str, Any]]) -> int:
    """Queue position reported at submit: that of the first IN_QUEUE poll."""
    for entry in entries:
        if entry.get("status") == IN_QUEUE:
            return int(entry.get("queue_position", 0))
    return 0


def _invalid_body_detail(body: bytes) -> dict[str, Any]:
    """A FastAPI-style 422 for a body that is not a JSON object."""
    msg = "Input should be a valid dictionary" if body else "Field required"
    return {"detail": [{"loc": ["body"], "msg": msg, "type": "value_error"}]}


main = FakeFal.main
"""``python -m tarash_router.testing.fal [--port N] [--api-key K]``."""


if __name__ == "__main__":
    main()
