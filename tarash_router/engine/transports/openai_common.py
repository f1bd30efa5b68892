"""Shared plumbing of the OpenAI and Azure OpenAI transports (the `openai` SDK as transport).

- the SDK is imported lazily (`tarash-router[openai]`), never at package import;
- one SDK client per (event loop, kind, base URL, key, api-version), SDK retries off (routing
  decides about re-sending a create, so a paid job is never created twice behind its back);
- SDK exceptions are classified by the provider spec's `errors:` rules, as the HTTP engine does;
- dry runs build a sync SDK client on a recording transport: the request is captured, nothing sent
  (it equals the async run's request but for the SDK's telemetry headers X-Stainless-Async and
  X-Stainless-Read-Timeout);
- Azure endpoint and api-version resolution.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import os
import sys
import threading
import weakref
from email import message_from_bytes
from email.policy import HTTP as _HTTP_POLICY
from typing import Any, cast
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ...errors import HTTPConnectionError, HTTPError, TarashException, ValidationError
from ...errors import TimeoutError as GenerationTimeoutError
from ...extras import require_sdk
from ...settings import get_settings
from ...specs.compiled import FamilySpec
from ..classify import ErrorContext, error_from_response
from ..render import REDACTED, JobContext

logger = logging.getLogger("tarash_router.transports.openai")

EXTRA = "openai"
# Where Azure's resource endpoint is read from when config.base_url is not set (the SDK's variable).
AZURE_ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
AZURE_VERSION_ENV = "OPENAI_API_VERSION"  # the SDK's AzureOpenAI reads it too
# Shown by dry runs of an Azure config that names no endpoint (nothing is sent anyway).
AZURE_PLACEHOLDER_ENDPOINT = "https://YOUR-RESOURCE.openai.azure.com"
# SDK keyword arguments that are not API fields.
_SDK_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
# A failed connect never reached the provider: no job can exist (class names of httpx and httpx2).
_NOT_REACHED = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout"})


def import_openai(provider: str) -> Any:
    """The `openai` module, or MissingExtraError naming `tarash-router[openai]`."""
    return require_sdk("openai", EXTRA, provider)


def http_module() -> Any:
    """The HTTP library the installed SDK builds requests with (httpx2 for openai 3.x, else httpx)."""
    base = sys.modules.get("openai._base_client")
    if base is not None and getattr(base, "httpx2", None) is not None:
        return base.httpx2
    import httpx

    return httpx


# ---------------------------------------------------------------- clients


class ClientCache:
    """SDK clients keyed by (event loop, key); a client is bound to the loop it was first used on."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[object, ...], Any]] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...], factory: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._by_loop.get(loop)
            if clients is None:
                clients = self._by_loop[loop] = {}
            client = clients.get(key)
            if client is None or client.is_closed():
                client = clients[key] = factory()
            return client

    async def aclose(self) -> None:
        """Close this loop's clients (call before the loop ends to release sockets)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._by_loop.pop(loop, {})
        for client in clients.values():
            await client.close()


CLIENTS = ClientCache()


async def aclose_openai_clients() -> None:
    """Close the OpenAI/Azure SDK clients of the running event loop."""
    await CLIENTS.aclose()


class OpenAIClients:
    """How a handler builds its SDK clients: api.openai.com style (Bearer key, `base_url` incl. /v1)."""

    kind = "openai"

    def client_settings(self, job: JobContext, dry_run: bool = False) -> dict[str, Any]:
        """Constructor arguments of the SDK client for this job (besides key and HTTP client)."""
        return {"base_url": job.base_url}

    def client_class(self, openai: Any, sync: bool) -> Any:
        return openai.OpenAI if sync else openai.AsyncOpenAI

    def async_client(self, job: JobContext, openai: Any) -> Any:
        """The cached async client for this job's loop, endpoint, key and api-version."""
        settings = self.client_settings(job)
        cls = self.client_class(openai, sync=False)
        key = (self.kind, tuple(sorted(settings.items())), job.api_key)
        return CLIENTS.get(key, lambda: cls(api_key=job.api_key, max_retries=0,
                                            timeout=get_settings().request_timeout, **settings))

    def dry_run_client(self, job: JobContext, openai: Any, http_client: Any) -> Any:
        """A sync client on `http_client` (a recording transport) for `render`."""
        settings = self.client_settings(job, dry_run=True)
        cls = self.client_class(openai, sync=True)
        return cls(api_key=job.api_key or "dry-run", max_retries=0, http_client=http_client, **settings)


class AzureClients(OpenAIClients):
    """Azure OpenAI clients: `api-key` header, `api-version` query; the endpoint from config or env.

    api-version: config.api_version, else an `?api-version=` in config.base_url, else OPENAI_API_VERSION,
    else the spec's `handler_options.api_version`, else the handler's DEFAULT_API_VERSION.
    """

    kind = "azure"
    DEFAULT_API_VERSION = "preview"

    def client_settings(self, job: JobContext, dry_run: bool = False) -> dict[str, Any]:
        endpoint, version = azure_endpoint(job.base_url, dry_run, job.provider, job.model)
        spec_default = job.family.handler_options.get("api_version")
        return {**self.azure_target(endpoint),
                "api_version": (job.config.api_version or version or os.environ.get(AZURE_VERSION_ENV)
                                or spec_default or self.DEFAULT_API_VERSION)}

    def azure_target(self, endpoint: str) -> dict[str, Any]:
        """How the client is pointed at the resource (deployment routing by `azure_endpoint`)."""
        return {"azure_endpoint": endpoint}

    def client_class(self, openai: Any, sync: bool) -> Any:
        return openai.AzureOpenAI if sync else openai.AsyncAzureOpenAI


def split_sdk_kwargs(method: Any, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Payload keys the SDK method takes as keyword arguments, and the rest (sent via extra_body)."""
    params = _method_params(getattr(method, "__func__", method))
    known = {k: v for k, v in payload.items() if k in params}
    extra = {k: v for k, v in payload.items() if k not in params}
    return known, extra


_PARAMS: dict[Any, frozenset[str]] = {}


def _method_params(func: Any) -> frozenset[str]:
    cached = _PARAMS.get(func)
    if cached is None:
        target = inspect.unwrap(func)
        cached = frozenset(n for n, p in inspect.signature(target).parameters.items()
                           if p.kind is inspect.Parameter.KEYWORD_ONLY) - _SDK_OPTIONS
        _PARAMS[func] = cached
    return cached


# ---------------------------------------------------------------- errors


def sdk_error(exc: BaseException, family: FamilySpec, model: str, phase: str, request_id: str | None,
              openai: Any) -> TarashException | None:
    """Our exception for an SDK exception (None when it is not an SDK/transport error).

    HTTP errors go through the provider spec's `errors:` rules. At `submit`, only a 5xx other than
    503 may hide a created job; later phases always concern an existing job.
    """
    provider = family.provider.name
    if isinstance(exc, openai.APIStatusError):
        response = exc.response
        status = response.status_code
        try:
            text = response.text
        except Exception:  # noqa: BLE001 - a streamed body that was never read
            text = ""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        may_exist = phase != "submit" or (status >= 500 and status != 503)
        return error_from_response(family.provider, phase, status, response.headers, text, data, model=model,
                                   request_id=request_id or getattr(exc, "request_id", None),
                                   job_may_exist=may_exist)
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is a subclass
        cause = exc.__cause__
        reached = type(cause).__name__ not in _NOT_REACHED
        common: ErrorContext = {"provider": provider, "model": model, "request_id": request_id,
                                "job_may_exist": phase != "submit" or reached}
        detail = type(cause).__name__ if cause is not None else type(exc).__name__
        if isinstance(exc, openai.APITimeoutError):
            return GenerationTimeoutError(f"{phase} request timed out ({detail})", **common)
        return HTTPConnectionError(f"{phase} request failed: {detail}: {cause or exc}", **common)
    if isinstance(exc, openai.APIResponseValidationError):
        return HTTPError(f"{phase}: the response does not have the expected shape", provider=provider, model=model,
                         request_id=request_id, status_code=exc.status_code, retryable=phase != "submit",
                         job_may_exist=phase != "submit")
    return None


# ---------------------------------------------------------------- media


_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/webp": "webp",
               "image/gif": "gif"}


def data_uri_to_file(uri: str, name: str) -> tuple[str, bytes, str]:
    """`data:<type>;base64,<b64>` as an SDK file tuple `(filename, bytes, content_type)`."""
    header, sep, encoded = uri.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise ValidationError("expected a base64 data: URI for a file upload")
    content_type = header[len("data:"):-len(";base64")] or "application/octet-stream"
    ext = _EXTENSIONS.get(content_type.lower(), "bin")
    return f"{name}.{ext}", base64.b64decode(encoded), content_type


# ---------------------------------------------------------------- dry runs


class RecordingTransport:
    """Builds an SDK-compatible transport that records requests and answers with canned JSON."""

    def __init__(self, canned: dict[str, Any]) -> None:
        self.canned = canned
        self.requests: list[Any] = []
        self.http = http_module()

    def transport(self) -> Any:
        def handle(request: Any) -> Any:
            request.read()
            self.requests.append(request)
            return self.http.Response(200, json=self.canned)

        return self.http.MockTransport(handle)

    def client(self) -> Any:
        return self.http.Client(transport=self.transport())


def capture(canned: dict[str, Any], build: Callable[[Any], Any], call: Callable[[Any], Any]) -> Any:
    """Run `call(build(http_client))` against a recording transport; return the first request sent."""
    recorder = RecordingTransport(canned)
    http_client = recorder.client()
    try:
        call(build(http_client))
    except Exception:  # noqa: BLE001 - the canned answer may not parse; the request is what we want
        if not recorder.requests:
            raise
    finally:
        http_client.close()
    if not recorder.requests:
        raise TarashException("the SDK sent no request")
    return recorder.requests[0]


def describe_request(request: Any, auth_header: str) -> dict[str, Any]:
    """An httpx/httpx2 request as `{method, url, headers, json | form/files}`, secrets masked.

    Header names are shown Title-Case (as the engine's dry runs show them), the auth header in the
    spelling of the spec's `auth.header`.
    """
    secrets = {auth_header.lower(), "authorization", "api-key"}
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        lower = name.lower()
        if lower in ("host", "content-length", "accept-encoding", "connection"):
            continue  # transport-level, added by the HTTP client
        if lower in secrets:
            scheme, sep, _ = value.partition(" ")
            value = f"{scheme} {REDACTED}" if sep else REDACTED
        shown = auth_header if lower == auth_header.lower() else "-".join(p.capitalize() for p in lower.split("-"))
        headers[shown] = value
    out: dict[str, Any] = {"method": request.method, "url": str(request.url), "headers": headers}
    content_type = request.headers.get("content-type", "")
    body = request.content
    if content_type.startswith("multipart/form-data"):
        form, files = parse_multipart_parts(content_type, body)
        out["form"] = form
        out["files"] = {name: f"<{len(content)} bytes, {ctype}>" for name, (_, content, ctype) in files.items()}
    elif body:
        try:
            out["json"] = json.loads(body)
        except ValueError:
            out["body"] = body.decode("utf-8", "replace")
    return out


def parse_multipart_parts(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """Text fields and file parts `(filename, bytes, content_type)` of a multipart/form-data body."""
    message = message_from_bytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body,
                                 policy=_HTTP_POLICY)
    form: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    if not message.is_multipart():
        return form, files
    for part in message.iter_parts():
        # The HTTP policy decodes an RFC 2231 value, so a parameter is a str (never the raw triple).
        name = cast("str | None", part.get_param("name", header="content-disposition"))
        if name is None:
            continue
        payload = cast("bytes | None", part.get_payload(decode=True)) or b""  # a leaf part decodes to bytes
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, payload, part.get_content_type())
        else:
            form[name] = payload.decode("utf-8")
    return form, files


# ---------------------------------------------------------------- Azure


def azure_endpoint(base_url: str, dry_run: bool, provider: str, model: str) -> tuple[str, str | None]:
    """The resource endpoint (`https://<resource>.openai.azure.com`) and an api-version found in it.

    `config.base_url` is the resource endpoint; a pasted `.../openai` or `.../openai/v1` suffix and an
    `?api-version=` query are accepted (the version is used unless config.api_version is set).
    """
    url = base_url or os.environ.get(AZURE_ENDPOINT_ENV, "")
    if not url:
        if dry_run:
            return AZURE_PLACEHOLDER_ENDPOINT, None
        raise ValidationError(
            f"{provider} needs the resource endpoint: set config.base_url (https://<resource>.openai.azure.com) "
            f"or {AZURE_ENDPOINT_ENV}", provider=provider, model=model, retryable=False)
    parts = urlsplit(url)
    versions = parse_qs(parts.query).get("api-version")
    version = versions[0] if versions else None
    path = parts.path.rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), version


# ---------------------------------------------------------------- deprecations


_WARNED: set[tuple[str, str]] = set()
_WARNED_LOCK = threading.Lock()


def warn_deprecated(family: FamilySpec) -> None:
    """Log a family's `deprecated:`/`shutdown:` note once per process."""
    spec = family.file
    if not spec.deprecated and not spec.shutdown:
        return
    key = (family.provider.name, family.name)
    with _WARNED_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    when = f" (shutdown: {spec.shutdown.isoformat()})" if spec.shutdown else ""
    logger.warning("%s model family %r is deprecated%s: %s", family.provider.name, family.name, when,
                   spec.deprecated or "the provider retires it")


__all__ = [
    "import_openai", "http_module", "ClientCache", "CLIENTS", "OpenAIClients", "AzureClients", "aclose_openai_clients",
    "split_sdk_kwargs", "sdk_error", "data_uri_to_file", "capture", "describe_request", "parse_multipart_parts",
    "azure_endpoint", "warn_deprecated", "AZURE_PLACEHOLDER_ENDPOINT",
]
