"""Render a spec's requests: validate the request, map it to the provider payload, build HTTP requests."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlencode

from ..errors import AuthenticationError
from ..models import GenerationConfig, GenerationRequest, request_field
from ..settings import resolve_api_key
from ..specs.compiled import CompiledRequest, FamilySpec
from ..specs.params import assign_images, check_request
from .media import convert_media
from .url_safety import Origin, check_credentialed_url, check_url_shape, trusted_origins

logger = logging.getLogger("tarash_router.engine")
USER_AGENT = "tarash-router/0.1"
REDACTED = "***"


@dataclass
class PreparedRequest:
    """One HTTP request ready to send; `secret_headers` are masked whenever it is shown."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    form: dict[str, Any] | None = None
    files: list[tuple[str, Any]] | None = None
    content: bytes | None = None
    secret_headers: frozenset[str] = frozenset()
    # The header values once checked sendable (`http.checked_header_values`): a poll sends them again.
    checked_values: list[Any] | None = field(default=None, repr=False)

    def full_url(self) -> str:
        if not self.query:
            return self.url
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}{urlencode(self.query)}"

    def redacted(self) -> dict[str, Any]:
        """The request as printable JSON, secret header values replaced by ***."""
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.full_url(),
            "headers": {k: _mask(v) if k.lower() in self.secret_headers else v for k, v in self.headers.items()},
        }
        if self.json is not None:
            out["json"] = self.json
        if self.form is not None:
            out["form"] = self.form
        if self.files is not None:
            form: dict[str, Any] = {}
            for key, (filename, value, *_) in self.files:
                if filename is None:
                    form[key] = [*form[key], value] if isinstance(form.get(key), list) else (
                        [form[key], value] if key in form else value)
            out["form"] = form
            out["files"] = {k: f"<{len(v[1])} bytes, {v[2]}>" for k, v in self.files if v[0] is not None}
        return out


def _mask(value: str) -> str:
    scheme, sep, _ = value.partition(" ")
    return f"{scheme} {REDACTED}" if sep else REDACTED


@dataclass
class JobContext:
    """Everything rendered once per generation and reused by every request of its lifecycle."""

    family: FamilySpec
    config: GenerationConfig
    request: GenerationRequest
    model: str
    base_url: str
    api_key: str | None
    payload: dict[str, Any]
    warnings: list[str]
    trusted: frozenset[Origin] = frozenset()  # origins that may receive the credentials
    job_id: str | None = None  # set once the provider accepted the job (for error reports)
    poll_request: PreparedRequest | None = None  # the job's status request, rendered on the first poll

    @property
    def provider(self) -> str:
        return self.family.provider.name

    def template_context(self, job: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "timeout": self.config.timeout,
            "base_url": self.base_url,
            "model": self.model,
            "request": self.request,
            "payload": self.payload,
            "job": job or {},
            "provider_config": self.config.provider_config,
        }

    def build(self, template: CompiledRequest, job: dict[str, Any] | None = None,
              dry_run: bool = False, extra: dict[str, Any] | None = None) -> PreparedRequest:
        ctx = self.template_context(job)
        if extra:
            ctx.update(extra)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        provider = self.family.provider
        for tree in (provider.headers, template.headers):
            if tree is not None and not tree.empty:
                headers.update({k: str(v) for k, v in tree.render(ctx).items()})
        auth = provider.file.auth
        if auth is not None and template.auth:
            key = REDACTED if dry_run and not self.api_key else self.api_key
            headers[auth.header] = f"{auth.scheme} {key}" if auth.scheme else str(key)
        url = str(template.url.render(ctx))
        check_url_shape(url, provider.name, self.model)
        secret = provider.secret_headers
        if secret and any(k.lower() in secret and v for k, v in headers.items()):
            check_credentialed_url(url, self.trusted, provider.name, self.model, self.job_id)
        prepared = PreparedRequest(
            method=template.method,
            url=url,
            headers=headers,
            query=template.query.render(ctx) or {},  # a fresh dict each render
            secret_headers=secret,
        )
        body = template.body.render(ctx) if template.body is not None else None
        if body is not None and template.method != "GET":
            if template.body_format == "json":
                prepared.json = body
            elif template.body_format == "form":
                prepared.form = body
            elif template.body_format == "multipart":
                prepared.files = _multipart(body)
        if template.body_format == "raw" and extra and "file" in extra:
            prepared.content = extra["file"]["content"]
        return prepared


def _multipart(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every field as a multipart part (so the body is multipart even with no file); bytes as files."""
    parts: list[tuple[str, Any]] = []
    for key, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "content" in item:
                parts.append((key, (item.get("filename") or key, item["content"], item.get("content_type"))))
            else:
                parts.append((key, (None, _form_value(item))))
    return parts


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, ensure_ascii=False)
    return str(value)


def prepare_job(family: FamilySpec, config: GenerationConfig, request: GenerationRequest,
                dry_run: bool = False, fetched: dict[str, Any] | None = None, validate: bool = True,
                uploaded: dict[int, str] | None = None, api_key: str | None = None) -> JobContext:
    """Validate the request (ValidationError before any HTTP) and render the provider payload.

    `validate=False` is for re-attaching to an accepted job (resume, cancel), or for a request
    routing already checked; `api_key` is the key routing already found (else it is looked up).
    """
    provider = family.provider
    warnings = check_request(family, config.model, request, drop=config.adapt) if validate else []
    if not dry_run:
        for warning in warnings:
            logger.warning("%s", warning)
    media = family.media
    fetched = fetched or {}

    uploaded = uploaded or {}

    uploads = media.upload_over_bytes is not None and bool(provider.upload_steps)

    def convert(item: Any) -> str:
        if id(item) in uploaded:
            return uploaded[id(item)]  # bytes put on the provider's storage beforehand
        if (dry_run and uploads and isinstance(item, dict) and "content" in item
                and len(item["content"]) > cast(int, media.upload_over_bytes)):  # set when `uploads` is
            return f"<{len(item['content'])} bytes, uploaded to {provider.name} storage at send time>"
        if media.download and isinstance(item, str) and item in fetched:
            item = fetched[item]  # a URL the provider cannot take, fetched by the engine beforehand
        elif media.download and isinstance(item, str) and dry_run and item.startswith(("http://", "https://")):
            return f"<bytes of {item}, fetched at send time>"
        return convert_media(item, media.accepts, provider.name, media.max_inline_bytes)

    images: dict[str, Any] = {}
    for slot, items in assign_images(family, request).items():
        converted = [convert(i) for i in items]
        images[slot] = converted if family.params.renders_list(slot) else converted[0]
    video = request_field(request, "video")
    mask = request_field(request, "mask_image")
    body_ctx = {
        "request": request, "images": images, "video": convert(video) if video is not None else None,
        "mask": convert(mask) if mask is not None else None, "model": config.model,
        "extra": request.extra_params, "provider_config": config.provider_config,
    }
    payload = family.body.render(body_ctx) or {}
    if request.extra_params and family.file.extra_params != "reject":
        target = payload
        for key in family.extra_params_into:
            target = target.setdefault(key, {})
        target.update(request.extra_params)  # extra params win: they are the caller's explicit escape hatch
    if api_key is None and provider.file.auth is not None:
        auth = provider.file.auth
        try:
            api_key = resolve_api_key(config.api_key, auth.env, auth.join_env)
        except ValueError as exc:  # names the variable, never the value
            raise AuthenticationError(str(exc), provider=provider.name, model=config.model, retryable=False) from None
        if api_key is None and not dry_run:
            names = " or ".join(auth.env + ([":".join(auth.join_env)] if auth.join_env else []))
            raise AuthenticationError(f"no API key: set config.api_key or {names}",
                                      provider=provider.name, model=config.model, retryable=False)
    base_url = (config.base_url or provider.default_base_url).rstrip("/")
    trusted = trusted_origins(base_url, provider.file.trusted_origins, config.provider_config)
    return JobContext(family=family, config=config, request=request, model=config.model, base_url=base_url,
                      api_key=api_key, payload=payload, warnings=warnings, trusted=trusted)


__all__ = ["PreparedRequest", "JobContext", "prepare_job", "REDACTED"]
