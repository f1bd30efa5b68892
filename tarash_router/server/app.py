"""The gateway's ASGI app (Starlette): jobs over HTTP for callers in any language.

    POST   /v1/jobs               {route | provider + model, modality, request} -> 202 Job
    GET    /v1/jobs/{id}          the Job (one status request while it runs)
    GET    /v1/jobs/{id}/events   Server-Sent Events: state and progress changes, then the outcome
    DELETE /v1/jobs/{id}          cancel at the provider
    POST   /v1/webhooks/{provider} a provider's signed delivery (the signature is the credential)
    GET    /healthz               liveness, no key needed
    GET    /openapi.json          this API's OpenAPI document

Callers authenticate with a bearer key from `TARASH_SERVER_KEYS`; provider keys stay in the server's
environment and never leave it, and a caller cannot choose where they are sent (no base URL, no API
key in a request). Several server processes sharing one journal (Redis) answer for every job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal

import pydantic
import pydantic.json_schema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..client import Client
from ..engine.webhooks import ProviderWebhookUrl
from ..errors import JobMayExistError, TarashException, ValidationError, WebhookError
from ..models import (
    ImageGenerationConfig, ImageGenerationRequest, Job, VideoGenerationConfig, VideoGenerationRequest,
)

logger = logging.getLogger("tarash_router.server")
MAX_BODY = 1024 * 1024  # a job request is JSON; media go as URLs


class JobCreate(pydantic.BaseModel):
    """A job to start: through a route of the server's, or a provider and model it serves."""

    model_config = pydantic.ConfigDict(extra="forbid")  # no base_url, no api_key: the server decides

    route: str | None = None
    provider: str | None = None
    model: str | None = None
    modality: Literal["video", "image"] = "video"
    request: dict[str, Any]

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> JobCreate:
        if (self.route is None) == (self.provider is None or self.model is None):
            raise ValueError("give either route, or provider and model")
        return self


def create_app(client: Client, keys: Sequence[str], *, events_interval: float = 2.0,
               reconcile_every: float | None = None, reconcile_after: float = 300.0,
               public_url: str | None = None) -> Starlette:
    """The gateway over `client`; callers must present one of `keys` as a bearer token. With
    `reconcile_every`, a background pass finishes jobs whose webhook never came (see
    `Client.reconcile_async`); several servers may all run it: each check is one status request.
    With `public_url` (the gateway as providers reach it), a job whose provider declares a webhook is
    submitted with `{public_url}/v1/webhooks/{provider}` and finished by the delivery."""
    if not keys:
        raise ValueError("the gateway needs at least one caller key (TARASH_SERVER_KEYS)")
    accepted = [k.encode() for k in keys]
    # Per target: a route may mix providers with and without a webhook (those are polled).
    webhook_url = ProviderWebhookUrl(f"{public_url.rstrip('/')}/v1/webhooks/{{provider}}") if public_url else None

    def authorized(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip().encode()
        # compare with every key, always: the time taken says nothing about which one nearly matched
        matches = [hmac.compare_digest(presented, key) for key in accepted]
        return scheme.lower() == "bearer" and any(matches)

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return JSONResponse({"error": "Unauthorized", "message": "a valid bearer key is required"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            try:
                return await handler(request)
            except TarashException as exc:
                return _error(exc)
        return endpoint

    async def create(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "PayloadTooLarge", "message": f"at most {MAX_BODY} bytes"}, status_code=413)
        try:
            spec = JobCreate.model_validate_json(body)
            video = spec.modality == "video"
            gen_request = (VideoGenerationRequest if video else ImageGenerationRequest).model_validate(spec.request)
        except pydantic.ValidationError as exc:
            return JSONResponse({"error": "ValidationError", "message": _pydantic_message(exc)}, status_code=422)
        target: Any = spec.route
        if target is None:
            target = (VideoGenerationConfig if video else ImageGenerationConfig)(provider=spec.provider,
                                                                                model=spec.model)
        if isinstance(gen_request, VideoGenerationRequest):  # exactly when `video`
            job = await client.submit_video_async(target, gen_request, webhook_url=webhook_url)
        else:
            job = await client.submit_image_async(target, gen_request, webhook_url=webhook_url)
        return _job(job, status_code=202)

    async def get(request: Request) -> Response:
        return _job(await client.get_job_async(request.path_params["job_id"]))

    async def cancel(request: Request) -> Response:
        cancelled = await client.cancel_job_async(request.path_params["job_id"])
        return JSONResponse({"id": request.path_params["job_id"], "cancelled": cancelled})

    async def events(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        first = await client.get_job_async(job_id)  # an unknown job is a 404, not an empty stream
        return StreamingResponse(_event_stream(client, first, events_interval), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def webhook(request: Request) -> Response:
        # Authenticated by the provider's signature, not a caller key: providers present none.
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "PayloadTooLarge", "message": f"at most {MAX_BODY} bytes"}, status_code=413)
        try:
            job = await client.handle_webhook_async(request.path_params["provider"], dict(request.headers), body)
        except WebhookError as exc:
            if exc.reason == "replay":  # handled before: the provider may stop retrying
                return JSONResponse({"ok": True, "replay": True})
            # A secret we could not get: nothing was checked, so the provider should deliver again later.
            status = 401 if exc.reason in ("signature", "stale") else 503 if exc.reason == "secret" else 400
            return JSONResponse({"error": "WebhookError", "reason": exc.reason, "message": exc.message},
                                status_code=status)
        except TarashException as exc:
            return _error(exc)
        return JSONResponse({"ok": True, "id": job.id, "state": job.state})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def openapi(request: Request) -> Response:
        return JSONResponse(_openapi())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if reconcile_every:
            task = asyncio.create_task(client.reconcile_forever(every=reconcile_every, older_than=reconcile_after))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()

    return Starlette(lifespan=lifespan, routes=[
        Route("/v1/jobs", guarded(create), methods=["POST"]),
        Route("/v1/jobs/{job_id}", guarded(get), methods=["GET"]),
        Route("/v1/jobs/{job_id}", guarded(cancel), methods=["DELETE"]),
        Route("/v1/jobs/{job_id}/events", guarded(events), methods=["GET"]),
        Route("/v1/webhooks/{provider}", webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ])


async def _event_stream(client: Client, job: Job, interval: float) -> AsyncIterator[bytes]:
    """One event per change of state or progress, then the final one (with the response or error)."""
    last: tuple[str, int | None] | None = None
    while True:
        seen = (job.state, job.progress)
        if seen != last:
            last = seen
            yield f"event: {job.state}\ndata: {job.model_dump_json(exclude={'execution_metadata'})}\n\n".encode()
        if job.done:
            return
        await asyncio.sleep(interval)
        try:
            job = await client.get_job_async(job.id)
        except TarashException as exc:  # the provider did not answer this time: say so, keep following
            yield f"event: error\ndata: {json.dumps({'error': type(exc).__name__, 'message': exc.message})}\n\n".encode()


def _job(job: Job, status_code: int = 200) -> Response:
    return Response(job.model_dump_json(), status_code=status_code, media_type="application/json")


def _error(exc: TarashException) -> Response:
    if isinstance(exc, ValidationError):
        status = 404 if exc.message.startswith("no journaled job") else 422
    elif isinstance(exc, JobMayExistError):
        status = 409
    else:
        status = 502  # the provider failed or could not be reached
    return JSONResponse({"error": type(exc).__name__, "message": exc.message}, status_code=status)


def _pydantic_message(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _openapi() -> dict[str, Any]:
    _, schemas = pydantic.json_schema.models_json_schema(
        [(Job, "serialization"), (JobCreate, "validation")], ref_template="#/components/schemas/{model}")
    job_ref = {"$ref": "#/components/schemas/Job"}
    error = {"description": "error", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}}}}
    json_job = {"content": {"application/json": {"schema": job_ref}}}
    job_id = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "tarash-router gateway", "version": "1"},
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/jobs": {"post": {
                "summary": "Start a job (returns once the provider accepted it)",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/JobCreate"}}}},
                "responses": {"202": {"description": "accepted", **json_job}, "401": error, "422": error,
                              "502": error}}},
            "/v1/jobs/{job_id}": {
                "get": {"summary": "Where a job stands", "parameters": job_id,
                        "responses": {"200": {"description": "the job", **json_job}, "404": error}},
                "delete": {"summary": "Cancel a job at its provider", "parameters": job_id,
                           "responses": {"200": {"description": "whether the provider agreed"}, "404": error}}},
            "/v1/jobs/{job_id}/events": {"get": {
                "summary": "Server-Sent Events: one per change of state or progress, then the outcome",
                "parameters": job_id, "responses": {"200": {"description": "text/event-stream"}, "404": error}}},
            "/v1/webhooks/{provider}": {"post": {
                "summary": "A provider's webhook delivery, verified by its signature", "security": [],
                "parameters": [{"name": "provider", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "handled (or a replay of a handled delivery)"},
                              "400": error, "401": error}}},
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
        },
    }


__all__ = ["create_app", "JobCreate"]
