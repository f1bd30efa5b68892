"""Fake Replicate predictions API (create / get / cancel) on loopback.

Follows https://replicate.com/docs/reference/http and what the replicate Python client sends:
official models are created
with ``POST /v1/models/{owner}/{name}/predictions`` and ``{"input": {...}}``, versions with
``POST /v1/predictions`` and ``{"version": ..., "input": {...}}``, deployments under
``/v1/deployments/...``; every create answers **201** with the prediction object, whose
``urls.get``/``urls.cancel`` point back at this server. ``GET /v1/predictions/{id}`` walks the
job's scripted statuses (``starting`` -> ``processing`` -> ``succeeded``/``failed``/...), ``logs``
is one growing string with tqdm-style progress lines, and ``output`` appears on success as
whatever the script says (a URL string, a list, an object). ``Prefer: wait[=N]`` makes the create
call run the script server-side and answer with the state reached (``Preference-Applied: wait``).
Each job follows a :class:`ReplicateJob` script; faults are :class:`Failure` objects.

A create whose body carries ``webhook`` is delivered for real: the prediction runs to its end at
once and the fake POSTs the prediction object to the URL, signed per Standard Webhooks as Replicate
signs it (https://replicate.com/docs/topics/webhooks/verify-webhook): ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body``
with the fake's ``webhook_secret`` (``whsec_...``), which ``GET /v1/webhooks/default/secret`` answers
as ``{"key": ...}`` to a caller with the API token.

Run standalone (benchmarks): ``python -m tarash_router.testing.replicate --port 0``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._server import (
    Failure, Headers, ScriptedFake, StatusScript, WebhookSender, delayed_failure, json_response, multipart_parts,
    now_iso, pop_first,
)

__all__ = [
    "FakeReplicate", "ReplicateJob", "ReplicateJobState", "ReplicateCreate", "throttled", "invalid_input",
    "invalid_version", "delivery_url",
]

STARTING, PROCESSING, SUCCEEDED, FAILED, CANCELED, ABORTED = (
    "starting", "processing", "succeeded", "failed", "canceled", "aborted")
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED, ABORTED})
_DELIVERY = "https://replicate.delivery/xezq/fake"
_VERSION = re.compile(r"^(?:(?P<model>[\w.-]+/[\w.-]+):)?(?P<hash>[0-9a-f]{64})$")
_OFFICIAL = re.compile(r"^[\w.-]+/[\w.-]+$")
_MODERATION_ERROR = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)")

OutputFactory = Callable[[str, Any], Any]
"""A callable output: ``(prediction_id, submitted_input) -> model output``."""


def delivery_url(prediction_id: str, name: str = "output.mp4") -> str:
    """A replicate.delivery-style URL for one output file of a prediction."""
    return f"{_DELIVERY}/{prediction_id}/{name}"


def _prediction_id() -> str:
    """A 26-character lower-case base32 id like Replicate's (``gm3qorzdhgbfurvjtvhg6dckhu``)."""
    return base64.b32encode(uuid.uuid4().bytes).decode("ascii").rstrip("=").lower()


def _progress_line(percent: int, steps: int = 50) -> str:
    """One tqdm progress line, the form the Replicate SDK parses progress from."""
    done = steps * percent // 100
    bar = ("█" * (percent // 10)).ljust(10)
    return f"{percent:3d}%|{bar}| {done}/{steps} [00:0{done % 10}<00:03, 12.50it/s]"


# -- scripted faults with Replicate-shaped bodies -----------------------------------------------


def throttled(retry_after: float | None = 1) -> Failure:
    """429 ``{"detail": "Request was throttled. ..."}`` with a Retry-After header (seconds)."""
    wait = 1 if retry_after is None else retry_after
    seconds = int(wait) if float(wait).is_integer() else wait
    body = {"detail": f"Request was throttled. Your rate limit resets in ~{max(1, round(wait))}s."}
    headers = {"ratelimit-remaining": "0", "ratelimit-reset": str(max(1, round(wait)))}
    if retry_after is not None:
        headers["Retry-After"] = str(seconds)
    return Failure(status=429, json=body, headers=headers)


def invalid_input(*fields: tuple[str, str] | tuple[str, str, str]) -> Failure:
    """422 "Input validation failed" with ``invalid_fields``; each field is (field, description[, type])."""
    entries = [{"type": f[2] if len(f) > 2 else "invalid", "field": f[0], "description": f[1]}
               for f in fields] or [{"type": "required", "field": "input", "description": "prompt is required"}]
    detail = "".join(f"- {e['field']}: {e['description']}\n" for e in entries)
    return Failure(status=422, json={"detail": detail, "status": 422, "title": "Input validation failed",
                                     "invalid_fields": entries})


def invalid_version() -> Failure:
    """422 for a version that does not exist (or is not visible to the token)."""
    return Failure(status=422, json=_INVALID_VERSION)


_INVALID_VERSION = {
    "title": "Invalid version or not permitted",
    "detail": "The specified version does not exist (or perhaps you don't have permission to use it?)",
    "status": 422,
}


@dataclass
class ReplicateJob(StatusScript):
    """Script for one prediction.

    ``statuses`` is what successive GETs return (the last repeats); an entry is a status name or
    a dict with ``status`` and any of ``logs`` (the whole log string so far), ``output``,
    ``error``, ``metrics``. Logs are generated when an entry has none. ``output`` is the model
    output on success: a value (URL string, list, object) or an :data:`OutputFactory`; None means
    one mp4 URL. ``error`` is the message of a ``failed`` entry without its own. The create
    answers with ``submit_status``. With ``Prefer: wait`` the create advances ``wait_steps``
    entries (None: until a terminal one). Failures are consumed one per attempt;
    ``poll_failures`` is keyed by 1-based GET number. ``delay`` is added before every response
    about this job.
    """

    statuses: list[str | dict[str, Any]] = field(default_factory=lambda: [STARTING, PROCESSING, SUCCEEDED])
    output: Any = None
    error: str | None = None
    submit_status: str = STARTING
    wait_steps: int | None = None
    submit_failures: list[Failure] = field(default_factory=list)
    poll_failures: dict[int, Failure] = field(default_factory=dict)
    cancel_failures: list[Failure] = field(default_factory=list)
    delay: float = 0.0

    @classmethod
    def failed(cls, error: str = "Prediction failed: CUDA out of memory (E1001)", **kwargs: Any) -> ReplicateJob:
        """A prediction that runs, then ends ``failed`` with ``error``."""
        kwargs.setdefault("statuses", [STARTING, PROCESSING, FAILED])
        return cls(error=error, **kwargs)

    @classmethod
    def moderated(cls, **kwargs: Any) -> ReplicateJob:
        """A prediction whose input or output was flagged: ``failed`` with an E005 message."""
        return cls.failed(_MODERATION_ERROR, **kwargs)

    @classmethod
    def images(cls, n: int = 1, ext: str = "png", as_list: bool = True, **kwargs: Any) -> ReplicateJob:
        """An image model's output: a list of ``n`` URLs (or one URL string with ``as_list=False``)."""

        def output(prediction_id: str, submitted: Any) -> Any:
            urls = [delivery_url(prediction_id, f"out-{i}.{ext}") for i in range(n)]
            return urls if as_list else urls[0]

        return cls(output=output, **kwargs)

    def resolved_statuses(self) -> list[dict[str, Any]]:
        """Expand ``statuses`` into full entries, with a growing log string filled in."""
        entries = self.status_dicts()
        running_total = sum(1 for e in entries if e.get("status") == PROCESSING)
        running_seen = 0
        log: list[str] = []
        for entry in entries:
            status = entry.get("status")
            if "logs" in entry:
                log = [entry["logs"]] if entry["logs"] else []
                continue
            if status == PROCESSING:
                running_seen += 1
                if running_seen == 1:
                    log.append("Using seed: 42")
                log.append(_progress_line(100 * running_seen // (running_total + 1)))
            elif status == SUCCEEDED and running_total:
                if not log or not log[-1].startswith("100%"):
                    log.append(_progress_line(100))
            elif status == FAILED:
                log.append(entry.get("error") or self.error or "Prediction failed")
            entry["logs"] = "\n".join(log)
        return entries


@dataclass
class ReplicateCreate:
    """An accepted create as received (body byte-exact)."""

    prediction_id: str
    kind: str  # "model" | "version" | "deployment"
    model: str | None
    version: str | None
    body: bytes
    json: Any
    headers: Headers
    prefer: str | None = None


@dataclass
class ReplicateJobState:
    """Server-side state of one prediction: its script, current entry and counters."""

    prediction_id: str
    model: str
    version: str
    input: Any
    script: ReplicateJob
    output: Any
    entries: list[dict[str, Any]]
    urls: dict[str, str]
    current: dict[str, Any]
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    deployment: str | None = None
    step: int = 0
    poll_attempts: int = 0
    cancel_attempts: int = 0
    cancelled: bool = False

    @property
    def status(self) -> str:
        return str(self.current.get("status"))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def advance(self) -> None:
        """Move to the next scripted entry (the last one repeats)."""
        self.set_entry(self.entries[min(self.step, len(self.entries) - 1)])
        self.step += 1

    def set_entry(self, entry: dict[str, Any]) -> None:
        self.current = entry
        if self.status != STARTING and self.started_at is None:
            self.started_at = now_iso()
        if self.terminal and self.completed_at is None:
            self.completed_at = now_iso()

    def to_json(self) -> dict[str, Any]:
        """The prediction object as Replicate returns it."""
        entry = self.current
        status = self.status
        output = entry.get("output", self.output if status == SUCCEEDED else None)
        error = entry.get("error")
        if status == FAILED and error is None:
            error = self.script.error or "Prediction failed"
        body: dict[str, Any] = {
            "id": self.prediction_id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "logs": entry.get("logs", ""),
            "output": output,
            "data_removed": False,
            "error": error,
            "status": status,
            "source": "api",
            "created_at": self.created_at,
            "urls": dict(self.urls),
        }
        if self.deployment:
            body["deployment"] = self.deployment
        if self.started_at:
            body["started_at"] = self.started_at
        if self.completed_at:
            body["completed_at"] = self.completed_at
            metrics = {"predict_time": 1.23, "total_time": 1.5}
            if isinstance(output, list):
                metrics["image_count"] = len(output)
            body["metrics"] = entry.get("metrics", metrics)
        return body


def _not_found() -> web.Response:
    return json_response(404, {"detail": "Not found.", "status": 404})


def _parse_prefer(value: str | None) -> int | None:
    """Seconds asked for by ``Prefer: wait`` (60) or ``Prefer: wait=N``; None when absent."""
    if not value:
        return None
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return max(1, min(60, int(arg))) if arg else 60
            except ValueError:
                return 60
    return None


class FakeReplicate(ScriptedFake[ReplicateJob]):
    """Loopback fake of Replicate's predictions API, scripted per prediction with :class:`ReplicateJob`.

    ``api_key=None`` accepts any ``Authorization: Bearer <x>`` (or the legacy ``Token <x>``);
    otherwise the token must match exactly.
    """

    job_type = ReplicateJob

    def _init_state(self) -> None:
        super()._init_state()
        self.jobs: dict[str, ReplicateJobState] = {}
        self.creates: list[ReplicateCreate] = []
        self.cancels: list[str] = []
        self.files: dict[str, tuple[str, str, bytes]] = {}  # file id -> (name, content type, bytes)
        # Webhooks: `webhooks.delay`/`webhooks.repeats` tune deliveries, `webhooks.deliveries` records them.
        self.webhooks = WebhookSender()
        if not getattr(self, "webhook_secret", None):  # kept across clear(): receivers are configured with it
            self.webhook_secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()

    def webhook_delivery(self, prediction_id: str, *, message_id: str | None = None,
                         timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
        """The signed delivery Replicate would POST for ``prediction_id`` as it stands: (headers, body)."""
        body = json.dumps(self.jobs[prediction_id].to_json()).encode()
        message_id = message_id or f"msg_{uuid.uuid4().hex}"
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        key = base64.b64decode(self.webhook_secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        headers = {"Content-Type": "application/json", "webhook-id": message_id, "webhook-timestamp": stamp,
                   "webhook-signature": "v1," + base64.b64encode(digest).decode()}
        return headers, body

    # -- scripting / inspection --------------------------------------------------------------

    @property
    def create_attempts(self) -> int:
        """Create POSTs received, accepted or not."""
        return self.attempts

    def create_count(self, model: str | None = None) -> int:
        """Accepted creates (predictions made), optionally only those of ``model`` (owner/name)."""
        if model is None:
            return len(self.creates)
        return sum(1 for c in self.creates if c.model == model)

    def polls(self, prediction_id: str) -> int:
        """GETs received for a prediction, scripted failures included."""
        job = self.jobs.get(prediction_id)
        return job.poll_attempts if job else 0

    # -- routing -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The predictions API routes; anything else is a JSON 404."""
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._create_for_model)
        app.router.add_post("/v1/deployments/{owner}/{name}/predictions", self._create_for_deployment)
        app.router.add_post("/v1/predictions", self._create_for_version)
        app.router.add_get("/v1/predictions/{id}", self._get)
        app.router.add_post("/v1/predictions/{id}/cancel", self._cancel)
        app.router.add_post("/v1/files", self._create_file)
        app.router.add_get("/v1/files/{id}", self._get_file)
        app.router.add_get("/v1/webhooks/default/secret", self._webhook_secret)
        app.router.add_route("*", "/{tail:.*}", self._fallback)

    async def _fallback(self, request: web.Request) -> web.Response:
        return _not_found()

    async def _webhook_secret(self, request: web.Request) -> web.Response:
        """GET /v1/webhooks/default/secret: the account's signing secret, ``{"key": "whsec_..."}``
        (https://replicate.com/docs/topics/webhooks/verify-webhook)."""
        unauthorized = self._check_auth(request)
        if unauthorized is not None:
            return unauthorized
        return json_response(200, {"key": self.webhook_secret})

    async def _create_file(self, request: web.Request) -> web.Response:
        """POST /v1/files: multipart with a `content` file part -> the file object (urls.get)."""
        unauthorized = self._check_auth(request)
        if unauthorized is not None:
            return unauthorized
        record = self.recorded(request)
        parts = multipart_parts(record.headers.get("content-type", ""), record.body) or []
        content = next((p for p in parts if p[0] == "content" and p[1] is not None), None)
        if content is None:
            return json_response(422, {"title": "Invalid file", "detail": "a 'content' file part is required",
                                       "status": 422})
        _, filename, data, content_type = content
        filename = filename or "file"
        content_type = content_type or "application/octet-stream"
        file_id = uuid.uuid4().hex[:24]
        with self._lock:
            self.files[file_id] = (filename, content_type, data)
        url = f"{self.base_url}/v1/files/{file_id}"
        return json_response(201, {"id": file_id, "name": filename, "content_type": content_type,
                                   "size": len(data), "urls": {"get": url}, "created_at": now_iso()})

    async def _get_file(self, request: web.Request) -> web.Response:
        entry = self.files.get(request.match_info["id"])
        if entry is None:
            return _not_found()
        return web.Response(body=entry[2], content_type=entry[1])

    def _check_auth(self, request: web.Request) -> web.Response | None:
        """401 unless ``Authorization: Bearer <token>`` (matching ``api_key`` when set)."""
        if self.check_auth(request, ("Bearer", "Token")):
            return None
        return json_response(401, {"title": "Unauthenticated",
                                    "detail": "You did not pass a valid authentication token", "status": 401})

    # -- create ------------------------------------------------------------------------------

    async def _create_for_model(self, request: web.Request) -> web.StreamResponse:
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        return await self._create(request, "model", model, "hidden")

    async def _create_for_deployment(self, request: web.Request) -> web.StreamResponse:
        deployment = f"{request.match_info['owner']}/{request.match_info['name']}"
        return await self._create(request, "deployment", deployment, "hidden")

    async def _create_for_version(self, request: web.Request) -> web.StreamResponse:
        record = self.recorded(request)
        version = record.json.get("version") if isinstance(record.json, dict) else None
        if not isinstance(version, str) or not version:
            return await self._create(request, "version", None, None, missing_version=True)
        match = _VERSION.match(version)
        if match is not None:
            return await self._create(request, "version", match.group("model"), match.group("hash"))
        if _OFFICIAL.match(version):  # `owner/name` of an official model
            return await self._create(request, "version", version, "hidden")
        return await self._create(request, "version", None, None, bad_version=True)

    async def _create(self, request: web.Request, kind: str, model: str | None, version: str | None, *,
                      missing_version: bool = False, bad_version: bool = False) -> web.StreamResponse:
        """Validate, play the script's next create failure, or accept the prediction (201)."""
        self.count_attempt()
        unauthorized = self._check_auth(request)
        if unauthorized is not None:
            return unauthorized
        record = self.recorded(request)
        body = record.json
        problem = _body_problem(body, missing_version)
        if problem is not None:
            return json_response(422, problem)
        if bad_version:
            return json_response(422, _INVALID_VERSION)
        script, failed = await self.next_script(request)
        if failed is not None:
            return failed
        job = self._new_job(script, model or "unknown/model", version or "hidden", body["input"])
        if kind == "deployment":
            job.deployment = model
        prefer = request.headers.get("Prefer")
        wait = _parse_prefer(prefer)
        headers: dict[str, str] = {}
        if wait is not None:
            headers = {"Preference-Applied": "wait", "Location": job.urls["get"]}
            steps = script.wait_steps if script.wait_steps is not None else len(job.entries)
            while steps > 0 and not job.terminal:
                job.advance()
                steps -= 1
        with self._lock:
            self.jobs[job.prediction_id] = job
            self.creates.append(ReplicateCreate(job.prediction_id, kind, model, version, record.body, body,
                                                record.headers, prefer))
        answer = json_response(201, job.to_json(), headers)
        webhook = body.get("webhook")
        if isinstance(webhook, str) and webhook:
            while not job.terminal and job.step < len(job.entries):  # it runs to its end; Replicate reports it
                job.advance()
            self.webhooks.schedule(job.prediction_id, webhook,
                                   lambda i: self.webhook_delivery(job.prediction_id))
        return answer

    def _new_job(self, script: ReplicateJob, model: str, version: str, submitted: Any) -> ReplicateJobState:
        prediction_id = _prediction_id()
        output = script.output
        if callable(output):
            output = output(prediction_id, submitted)
        elif output is None:
            output = delivery_url(prediction_id)
        else:
            output = copy.deepcopy(output)
        get_url = f"{self.base_url}/v1/predictions/{prediction_id}"
        urls = {
            "get": get_url,
            "cancel": f"{get_url}/cancel",
            "stream": f"https://stream.replicate.com/v1/files/{prediction_id}",
            "web": f"https://replicate.com/p/{prediction_id}",
        }
        job = ReplicateJobState(
            prediction_id=prediction_id, model=model, version=version, input=submitted, script=script,
            output=output, entries=script.resolved_statuses(), urls=urls,
            current={"status": script.submit_status, "logs": ""}, created_at=now_iso())
        job.set_entry(job.current)
        return job

    # -- get / cancel ------------------------------------------------------------------------

    def _job(self, request: web.Request) -> ReplicateJobState | web.Response:
        """The prediction a request names, or the 401/404 to answer instead."""
        unauthorized = self._check_auth(request)
        if unauthorized is not None:
            return unauthorized
        job = self.jobs.get(request.match_info["id"])
        return _not_found() if job is None else job

    async def _get(self, request: web.Request) -> web.StreamResponse:
        """The prediction, moved on to its next scripted entry."""
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        job.poll_attempts += 1
        failed = await delayed_failure(request, job.script.delay, job.script.poll_failures.get(job.poll_attempts))
        if failed is not None:
            return failed  # does not advance the script
        if not job.cancelled and not job.terminal:
            job.advance()
        return json_response(200, job.to_json())

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        """Cancel a running prediction (200, status canceled); a finished one is returned as is."""
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        job.cancel_attempts += 1
        failed = await delayed_failure(request, job.script.delay, pop_first(job.script.cancel_failures))
        if failed is not None:
            return failed
        if not job.terminal:
            job.cancelled = True
            job.set_entry({"status": CANCELED, "logs": job.current.get("logs", ""), "output": None})
            with self._lock:
                self.cancels.append(job.prediction_id)
        return json_response(200, job.to_json())


def _body_problem(body: Any, missing_version: bool) -> dict[str, Any] | None:
    """The 422 body for a create whose JSON is not ``{"input": {...}}`` (or lacks ``version``)."""
    fields = []
    if not isinstance(body, dict):
        fields.append({"type": "invalid_type", "field": "(root)", "description": "Invalid type. Expected: object"})
    else:
        if "input" not in body:
            fields.append({"type": "required", "field": "(root)", "description": "input is required"})
        elif not isinstance(body["input"], dict):
            fields.append({"type": "invalid_type", "field": "input",
                           "description": "Invalid type. Expected: object, given: " + type(body["input"]).__name__})
        if missing_version:
            fields.append({"type": "required", "field": "(root)", "description": "version is required"})
    if not fields:
        return None
    detail = "".join(f"- {f['field']}: {f['description']}\n" for f in fields)
    return {"detail": detail, "status": 422, "title": "Input validation failed", "invalid_fields": fields}


main = FakeReplicate.main
"""``python -m tarash_router.testing.replicate [--port N] [--api-key K]``."""


if __name__ == "__main__":
    main()
