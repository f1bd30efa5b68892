"""Fake Runway API (create task / get task / delete task) on loopback.

Follows https://docs.dev.runwayml.com/api and the runwayml SDK: every request needs
``Authorization: Bearer <key>`` and ``X-Runway-Version``; ``POST /v1/{image_to_video,
text_to_video,video_to_video,text_to_image}`` takes a camelCase JSON body, checked per model
(required keys, unknown keys, ratio, duration, image positions), and answers ``{"id": …}``;
``GET /v1/tasks/{id}`` walks the job's script PENDING → (THROTTLED) → RUNNING (progress 0..1)
→ SUCCEEDED (``output`` list) / FAILED (``failure``, ``failureCode``); ``DELETE
/v1/tasks/{id}`` cancels a running task (it then reads CANCELLED) or deletes a finished one,
answering 204 with no body. Each task follows a :class:`RunwayJob` script; faults are
:class:`Failure` objects.

Not verified against the live API (and so kept loose): the exact body of the missing-version
and not-found errors, and whether unknown body keys are rejected (``strict=True`` rejects them,
zod-style, which catches snake_case keys a spec forgot to rename).

Run standalone: ``python -m tarash_router.testing.runway --port 0``.
"""

from __future__ import annotations

import argparse
import re
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._server import (
    Failure, Headers, ScriptedFake, StatusScript, delayed_failure, format_seconds, json_response, now_iso, pop_first,
)

__all__ = [
    "FakeRunway", "RunwayJob", "RunwayTaskState", "RunwayCreate", "ModelRules", "MODELS", "RUNWAY_VERSION",
    "rate_limited", "overloaded", "insufficient_credits", "validate_body",
]

RUNWAY_VERSION = "2024-11-06"
PENDING, THROTTLED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
_ACTIVE = frozenset({PENDING, THROTTLED, RUNNING})
_DOC_URL = "https://docs.dev.runwayml.com/api"
_CDN = "https://cdn.runway.test/tasks"
_MAX_SEED = 4294967295
_MAX_IMAGE_URI = 5_000_000  # data: URIs of images are capped at 5 MB
_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9_]{2,15}$")

OutputFactory = Callable[[str, str, Any], list[str]]
"""A callable output: ``(task_id, endpoint, submitted_json) -> output URLs``."""


# -- what each endpoint accepts ------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRules:
    """The body one model takes at one endpoint: keys, ratios, durations, image positions."""

    required: frozenset[str]
    optional: frozenset[str]
    ratios: frozenset[str] | None = None
    durations: Collection[int] | None = None
    positions: frozenset[str] = frozenset({"first"})


def _rules(required: set[str], optional: set[str], ratios: Collection[str] | None = None,
           durations: Collection[int] | None = None, positions: Collection[str] = ("first",)) -> ModelRules:
    return ModelRules(frozenset(required | {"model"}), frozenset(optional),
                      frozenset(ratios) if ratios is not None else None, durations, frozenset(positions))


_GEN4_RATIOS = ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672")
_VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")
_ALEPH_RATIOS = (*_GEN4_RATIOS, "848:480", "640:480")
_IMAGE_RATIOS = ("1024:1024", "1080:1080", "1168:880", "1360:768", "1440:1080", "1080:1440", "1808:768",
                 "1920:1080", "1080:1920", "2112:912", "1280:720", "720:1280", "720:720", "960:720", "720:960",
                 "1680:720")
_MODERATION = "contentModeration"

MODELS: dict[str, dict[str, ModelRules]] = {
    "image_to_video": {
        "gen4_turbo": _rules({"promptImage", "ratio"}, {"promptText", "duration", "seed", _MODERATION},
                             _GEN4_RATIOS, (5, 10)),
        "gen4.5": _rules({"promptImage", "promptText", "ratio", "duration"}, {"seed", _MODERATION},
                         _GEN4_RATIOS, range(2, 11)),
        "veo3": _rules({"promptImage", "ratio", "duration"}, {"promptText", "negativePrompt"}, _VEO_RATIOS, (8,)),
        **{m: _rules({"promptImage", "ratio"}, {"promptText", "duration", "audio", "negativePrompt"},
                     _VEO_RATIOS, (4, 6, 8), ("first", "last")) for m in ("veo3.1", "veo3.1_fast")},
    },
    "text_to_video": {
        "gen4.5": _rules({"promptText", "ratio", "duration"}, {"seed", _MODERATION}, ("1280:720", "720:1280"),
                         range(2, 11)),
        "veo3": _rules({"promptText", "ratio", "duration"}, {"negativePrompt"}, _VEO_RATIOS, (8,)),
        **{m: _rules({"promptText", "ratio"}, {"duration", "audio", "negativePrompt"}, _VEO_RATIOS, (4, 6, 8))
           for m in ("veo3.1", "veo3.1_fast")},
    },
    "video_to_video": {
        "gen4_aleph": _rules({"videoUri", "promptText"}, {"ratio", "references", "seed", _MODERATION},
                             _ALEPH_RATIOS),
    },
    "text_to_image": {
        "gen4_image": _rules({"promptText", "ratio"}, {"referenceImages", "seed", _MODERATION}, _IMAGE_RATIOS),
        "gen4_image_turbo": _rules({"promptText", "ratio", "referenceImages"}, {"seed", _MODERATION},
                                   _IMAGE_RATIOS),
    },
}
"""Endpoint -> model -> accepted body (https://docs.dev.runwayml.com/api, runwayml SDK create params)."""


def _issue(path: list[Any], message: str, code: str = "custom") -> dict[str, Any]:
    return {"code": code, "path": path, "message": message}


def _check_uri(value: Any, path: list[Any], image: bool = True) -> list[dict[str, Any]]:
    if not isinstance(value, str):
        return [_issue(path, "Expected string", "invalid_type")]
    if not value.startswith(("https://", "data:", "runway://")):
        return [_issue(path, "Must be an HTTPS URL, a runway:// upload URI or a data URI", "invalid_string")]
    if image and value.startswith("data:") and len(value) > _MAX_IMAGE_URI:
        return [_issue(path, "Data URI exceeds 5MB", "too_big")]
    return []


def _check_prompt_image(value: Any, positions: frozenset[str]) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return _check_uri(value, ["promptImage"])
    if not isinstance(value, list) or not value:
        return [_issue(["promptImage"], "Expected a URI string or a non-empty array", "invalid_type")]
    issues: list[dict[str, Any]] = []
    seen: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"uri", "position"}:
            issues.append(_issue(["promptImage", i], "Expected {uri, position}", "invalid_type"))
            continue
        issues += _check_uri(item.get("uri"), ["promptImage", i, "uri"])
        position = item.get("position")
        if position not in positions:
            allowed = " | ".join(f"'{p}'" for p in sorted(positions))
            issues.append(_issue(["promptImage", i, "position"], f"Invalid enum value. Expected {allowed}",
                                 "invalid_enum_value"))
        elif position in seen:
            issues.append(_issue(["promptImage", i, "position"], f"Duplicate position '{position}'"))
        else:
            seen.append(position)
    if not issues and "first" not in seen:
        issues.append(_issue(["promptImage"], "This model does not support generating with only a last frame"))
    return issues


def validate_body(endpoint: str, body: Any, *, strict: bool = True) -> list[dict[str, Any]]:
    """Validation issues (zod-style dicts) of a create body at ``endpoint``; [] when valid."""
    if not isinstance(body, dict):
        return [_issue([], "Expected object", "invalid_type")]
    models = MODELS[endpoint]
    rules = models.get(body.get("model"))  # type: ignore[arg-type]
    if rules is None:
        expected = " | ".join(f"'{m}'" for m in models)
        return [_issue(["model"], f"Invalid discriminator value. Expected {expected}", "invalid_union_discriminator")]
    issues = [_issue([k], "Required", "invalid_type") for k in sorted(rules.required - set(body))]
    unknown = sorted(set(body) - rules.required - rules.optional)
    if strict and unknown:
        issues.append(_issue([], "Unrecognized key(s) in object: " + ", ".join(f"'{k}'" for k in unknown),
                             "unrecognized_keys"))
    for key in ("promptText", "negativePrompt"):
        if key in body and (not isinstance(body[key], str) or not body[key]):
            issues.append(_issue([key], "Expected a non-empty string", "invalid_type"))
    if "ratio" in body and rules.ratios is not None and body["ratio"] not in rules.ratios:
        allowed = " | ".join(f"'{r}'" for r in sorted(rules.ratios))
        issues.append(_issue(["ratio"], f"Invalid enum value. Expected {allowed}, received '{body['ratio']}'",
                             "invalid_enum_value"))
    if "duration" in body:
        duration = body["duration"]
        if not isinstance(duration, int) or isinstance(duration, bool):
            issues.append(_issue(["duration"], "Expected integer", "invalid_type"))
        elif rules.durations is not None and duration not in rules.durations:
            issues.append(_issue(["duration"], f"Invalid duration {duration}", "invalid_literal"))
    if "seed" in body:
        seed = body["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _MAX_SEED:
            issues.append(_issue(["seed"], f"Expected an integer from 0 to {_MAX_SEED}", "invalid_type"))
    if "audio" in body and not isinstance(body["audio"], bool):
        issues.append(_issue(["audio"], "Expected boolean", "invalid_type"))
    if _MODERATION in body:
        moderation = body[_MODERATION]
        if (not isinstance(moderation, dict) or set(moderation) - {"publicFigureThreshold"}
                or moderation.get("publicFigureThreshold", "auto") not in ("auto", "low")):
            issues.append(_issue([_MODERATION], "Expected {publicFigureThreshold: 'auto' | 'low'}", "invalid_type"))
    if "promptImage" in body:
        issues += _check_prompt_image(body["promptImage"], rules.positions)
    if "videoUri" in body:
        issues += _check_uri(body["videoUri"], ["videoUri"], image=False)
    issues += _check_list(body, "references", 1, lambda i, r: (
        [] if isinstance(r, dict) and r.get("type") == "image" and set(r) == {"type", "uri"}
        else [_issue(["references", i], "Expected {type: 'image', uri}", "invalid_type")]
    ) + _check_uri(r.get("uri") if isinstance(r, dict) else None, ["references", i, "uri"]))
    issues += _check_list(body, "referenceImages", 3, lambda i, r: (
        [] if isinstance(r, dict) and set(r) <= {"uri", "tag"} and (
            "tag" not in r or (isinstance(r["tag"], str) and _TAG.match(r["tag"])))
        else [_issue(["referenceImages", i], "Expected {uri, tag?}; tag: 3-16 letters, digits, _", "invalid_type")]
    ) + _check_uri(r.get("uri") if isinstance(r, dict) else None, ["referenceImages", i, "uri"]))
    return issues


def _check_list(body: dict[str, Any], key: str, limit: int,
                check: Callable[[int, Any], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if key not in body:
        return []
    value = body[key]
    if not isinstance(value, list) or not value:
        return [_issue([key], "Expected a non-empty array", "invalid_type")]
    if len(value) > limit:
        return [_issue([key], f"Array must contain at most {limit} element(s)", "too_big")]
    return [issue for i, item in enumerate(value) for issue in check(i, item)]


# -- scripting -------------------------------------------------------------------------------------


@dataclass
class RunwayJob(StatusScript):
    """Script for one created task.

    ``statuses`` is what successive ``GET /v1/tasks/{id}`` return (the last repeats); an entry is
    a status name or a dict with ``status`` and any of ``progress``, ``failure``, ``failureCode``,
    ``output``. RUNNING entries without ``progress`` get evenly spaced values from 0 up (below 1);
    FAILED entries without ``failure``/``failureCode`` get an INTERNAL one. ``output`` is the
    list of URLs of a SUCCEEDED task (or an :data:`OutputFactory`; None = one mp4, or one png
    for text_to_image). ``create_failures`` are played one per create attempt before the task
    is created (so a retried create still creates exactly one task); ``poll_failures`` is keyed
    by 1-based poll number and does not advance the script; ``delay`` precedes every response
    about this task.
    """

    statuses: list[str | dict[str, Any]] = field(default_factory=lambda: [PENDING, RUNNING, SUCCEEDED])
    output: list[str] | OutputFactory | None = None
    create_failures: list[Failure] = field(default_factory=list)
    poll_failures: dict[int, Failure] = field(default_factory=dict)
    delete_failures: list[Failure] = field(default_factory=list)
    delay: float = 0.0

    @classmethod
    def failed(cls, failure: str = "An unexpected error occurred.",
               failure_code: str = "INTERNAL.BAD_OUTPUT.CODE01", **kwargs: Any) -> RunwayJob:
        """A task that runs, then FAILED with ``failure``/``failureCode``."""
        entry = {"status": FAILED, "failure": failure, "failureCode": failure_code}
        return cls(statuses=[PENDING, RUNNING, entry], **kwargs)

    @classmethod
    def moderated(cls, failure_code: str = "SAFETY.INPUT.TEXT", **kwargs: Any) -> RunwayJob:
        """A task refused by Runway's moderation (a SAFETY.* failure code)."""
        return cls.failed("The prompt or input was flagged by our content moderation system.", failure_code,
                          **kwargs)

    @classmethod
    def never_finishing(cls, **kwargs: Any) -> RunwayJob:
        """A task that stays RUNNING until it is cancelled."""
        return cls(statuses=[PENDING, RUNNING], **kwargs)

    def resolved_statuses(self) -> list[dict[str, Any]]:
        """``statuses`` as dicts with the defaults filled in."""
        entries = self.status_dicts()
        running = [e for e in entries if e.get("status") == RUNNING]
        for index, entry in enumerate(running):
            entry.setdefault("progress", round(index / len(running), 2))
        for entry in entries:
            if entry.get("status") == FAILED:
                entry.setdefault("failure", "An unexpected error occurred.")
                entry.setdefault("failureCode", "INTERNAL.BAD_OUTPUT.CODE01")
        return entries


def rate_limited(retry_after: float | None = 1) -> Failure:
    """429 as Runway sends it, with Retry-After (seconds) when given."""
    headers = {} if retry_after is None else {"Retry-After": format_seconds(retry_after)}
    return Failure(status=429, json={"error": "Too many requests. Please slow down."}, headers=headers)


def overloaded(status: int = 503) -> Failure:
    """502/503 load shedding or 504 overloaded."""
    return Failure(status=status, json={"error": "The service is temporarily overloaded. Please try again."})


def insufficient_credits() -> Failure:
    """The 400 Runway answers when the organization is out of credits."""
    return Failure(status=400, json={"error": "You do not have enough credits to run this task."})


@dataclass
class RunwayCreate:
    """An accepted create as received (body byte-exact)."""

    task_id: str
    endpoint: str
    model: str
    body: bytes
    json: Any
    headers: Headers


@dataclass
class RunwayTaskState:
    """Server-side state of one task: its script, progress and counters."""

    task_id: str
    endpoint: str
    created_at: str
    script: RunwayJob
    output: list[str]
    entries: list[dict[str, Any]]
    status: str = PENDING
    step: int = 0
    poll_attempts: int = 0
    delete_attempts: int = 0
    cancelled: bool = False
    deleted: bool = False


# -- the server ------------------------------------------------------------------------------------


class FakeRunway(ScriptedFake[RunwayJob]):
    """Loopback fake of Runway's task API, scripted per task with :class:`RunwayJob`.

    ``api_key=None`` accepts any ``Authorization: Bearer <x>``; otherwise it must match.
    ``version`` is the ``X-Runway-Version`` required on every request (None: any value, but
    the header must be there). ``strict`` rejects body keys the model does not define.
    """

    job_type = RunwayJob
    failures_field = "create_failures"

    def __init__(self, api_key: str | None = None, *, version: str | None = RUNWAY_VERSION, strict: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.version = version
        self.strict = strict

    def _init_state(self) -> None:
        super()._init_state()
        self.tasks: dict[str, RunwayTaskState] = {}
        self.creates: list[RunwayCreate] = []
        self.deletes: list[str] = []

    # -- scripting / inspection --------------------------------------------------------------

    @property
    def create_attempts(self) -> int:
        """Create POSTs received, accepted or not."""
        return self.attempts

    def create_count(self, endpoint: str | None = None) -> int:
        """Tasks created, optionally only at ``endpoint`` (e.g. ``"image_to_video"``)."""
        return sum(1 for c in self.creates if endpoint is None or c.endpoint == endpoint)

    def poll_count(self, task_id: str) -> int:
        """``GET /v1/tasks/{id}`` received for ``task_id``, scripted failures included."""
        task = self.tasks.get(task_id)
        return task.poll_attempts if task else 0

    # -- routing -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        for endpoint in MODELS:
            app.router.add_post(f"/v1/{endpoint}", self._make_create(endpoint))
        app.router.add_get("/v1/tasks/{task_id}", self._get_task)
        app.router.add_delete("/v1/tasks/{task_id}", self._delete_task)

    def _make_create(self, endpoint: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._create(request, endpoint)

        return handler

    def _check_headers(self, request: web.Request) -> web.Response | None:
        """401 without a valid Bearer key; 400 without the X-Runway-Version header."""
        if not self.check_auth(request):
            message = "Invalid API key" if request.headers.get("Authorization") else "Missing API key"
            return json_response(401, {"error": message, "docUrl": _DOC_URL})
        version = request.headers.get("X-Runway-Version")
        if not version or (self.version is not None and version != self.version):
            expected = self.version or "a dated API version"
            found = f"'{version}'" if version else "none"
            return json_response(400, {
                "error": f"The X-Runway-Version header is required and must be {expected}; got {found}.",
                "docUrl": _DOC_URL,
            })
        return None

    # -- handlers ----------------------------------------------------------------------------

    async def _create(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        self.count_attempt()
        rejected = self._check_headers(request)
        if rejected is not None:
            return rejected
        record = self.recorded(request)
        body = record.json
        if body is None and record.body:
            issues = [_issue([], "Malformed JSON body", "invalid_type")]
        else:
            issues = validate_body(endpoint, body, strict=self.strict)
        if issues:
            return json_response(400, {"error": "Validation of body failed", "issues": issues, "docUrl": _DOC_URL})
        script, failed = await self.next_script(request)
        if failed is not None:
            return failed
        task = self._create_task(script, endpoint, body)
        with self._lock:
            self.tasks[task.task_id] = task
            self.creates.append(RunwayCreate(task.task_id, endpoint, body["model"], record.body, body,
                                             record.headers))
        return json_response(200, {"id": task.task_id})

    def _create_task(self, script: RunwayJob, endpoint: str, submitted: Any) -> RunwayTaskState:
        task_id = str(uuid.uuid4())
        if callable(script.output):
            output = list(script.output(task_id, endpoint, submitted))
        elif script.output is None:
            ext = "png" if endpoint == "text_to_image" else "mp4"
            output = [f"{_CDN}/{task_id}/0.{ext}?_jwt=fake"]
        else:
            output = list(script.output)
        return RunwayTaskState(task_id=task_id, endpoint=endpoint, created_at=now_iso(), script=script,
                               output=output, entries=script.resolved_statuses())

    def _task(self, request: web.Request) -> RunwayTaskState | web.Response:
        """The (undeleted) task a request names, or the 401/400/404 to answer instead."""
        rejected = self._check_headers(request)
        if rejected is not None:
            return rejected
        task = self.tasks.get(request.match_info["task_id"])
        if task is None or task.deleted:
            return json_response(404, {"error": "Task not found", "docUrl": _DOC_URL})
        return task

    async def _get_task(self, request: web.Request) -> web.StreamResponse:
        task = self._task(request)
        if isinstance(task, web.Response):
            return task
        task.poll_attempts += 1
        failed = await delayed_failure(request, task.script.delay, task.script.poll_failures.get(task.poll_attempts))
        if failed is not None:
            return failed
        body: dict[str, Any] = {"id": task.task_id, "createdAt": task.created_at}
        if task.cancelled:
            body["status"] = CANCELLED
            return json_response(200, body)
        entry = task.entries[min(task.step, len(task.entries) - 1)]
        task.step += 1
        task.status = entry.get("status", task.status)
        body["status"] = task.status
        if task.status == RUNNING:
            body["progress"] = entry.get("progress", 0.0)
        elif task.status == SUCCEEDED:
            body["output"] = entry.get("output", task.output)
        elif task.status == FAILED:
            body["failure"] = entry["failure"]
            body["failureCode"] = entry["failureCode"]
        return json_response(200, body)

    async def _delete_task(self, request: web.Request) -> web.StreamResponse:
        task = self._task(request)
        if isinstance(task, web.Response):
            return task
        task.delete_attempts += 1
        failed = await delayed_failure(request, task.script.delay, pop_first(task.script.delete_failures))
        if failed is not None:
            return failed
        if task.status in _ACTIVE and not task.cancelled:
            task.cancelled = True  # a running task is cancelled and still readable
        else:
            task.deleted = True  # a finished (or cancelled) one is deleted
        with self._lock:
            self.deletes.append(task.task_id)
        return web.Response(status=204)

    # -- command line ------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--version", default=RUNWAY_VERSION, help="required X-Runway-Version ('' = any)")
        parser.add_argument("--lenient", action="store_true", help="accept body keys a model does not define")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **options: Any) -> FakeRunway:
        return super().from_args(args, version=args.version or None, strict=not args.lenient, **options)


main = FakeRunway.main
"""``python -m tarash_router.testing.runway [--port N] [--api-key K]``."""


if __name__ == "__main__":
    main()
