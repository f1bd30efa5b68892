"""The spec file format, version 1, as pydantic models (unknown keys are errors).

Two kinds of file live in a provider folder:
- `provider.yaml`: the transport envelope shared by all of a provider's models (auth, protocol,
  error rules, media handling, response defaults);
- one family file per model family: the models it serves, the params it accepts, the request body,
  where the result is in the response, and golden examples.
The JSON Schema published by `tarash-router schema` is generated from these models.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from .pricing_schema import PricingSpec

Status = Literal["queued", "processing", "completed", "failed"]
# HTTP phases answer with an error status; `job` is a job the provider reports as failed; `output`
# is a successful result that still carries a refusal (e.g. finish_reason CONTENT_FILTERED).
Phase = Literal["submit", "poll", "result", "cancel", "upload", "job", "output"]
ErrorName = Literal[
    "ValidationError", "ContentModerationError", "HTTPError", "AuthenticationError", "RateLimitError",
    "GenerationFailedError", "HTTPConnectionError", "TimeoutError",
]
Modality = Literal["video", "image"]
MediaForm = Literal["url", "data_uri"]
_ALL_MEDIA_FORMS: tuple[MediaForm, ...] = ("url", "data_uri")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


PathOrPaths = Union[str, list[str]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, (str, int)) else value


class AuthSpec(_Strict):
    """How the API key is sent: `{header}: {scheme} {key}`; the key comes from config or `env`."""

    header: str = "Authorization"
    scheme: str | None = Field(default=None, description="Prefix such as 'Key' or 'Bearer'; none sends the bare key")
    env: Annotated[list[str], WithJsonSchema({"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}}]})] = Field(
        default_factory=list, description="Environment variables tried in order")
    join_env: list[str] | None = Field(default=None, description="Variables joined with ':' when `env` is unset")

    _l = field_validator("env", mode="before")(lambda cls, v: _listify(v))


class RequestSpec(_Strict):
    """One HTTP request of the job lifecycle; `url`, header, query and body values are templates."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = Field(default=None, description="Submit: defaults to the family body ('{{ payload }}')")
    body_format: Literal["json", "multipart", "form", "raw", "none"] = Field(
        "json", description="raw: the uploaded file's bytes (upload steps only)")
    auth: bool = Field(default=True, description="Send the provider's auth header (false for pre-signed URLs)")


class JobSpec(_Strict):
    """Where the submit response keeps the job id and the URLs to poll, fetch and cancel it."""

    id: str
    status_url: str | None = None
    result_url: str | None = None
    cancel_url: str | None = None
    status: str | None = Field(default=None, description="Status already reported in the submit response")
    queue_position: str | None = None


class PollSpec(RequestSpec):
    """The status request, and where its response keeps status, progress, logs and errors."""

    status: PathOrPaths | None = Field(default=None, description="JSONPath(s) of the status; the first present wins")
    status_codes: dict[int, Status] = Field(
        default_factory=dict, description="HTTP status codes that alone give the status (e.g. 202: processing)")
    queue_position: str | None = None
    progress: str | None = None
    progress_pattern: str | None = Field(
        None, description="Regex over a text progress value; the last match's first group is the number")
    progress_scale: float = Field(default=1.0, gt=0, description="Multiplier to percent, e.g. 100 for a 0..1 value")
    delay_header: str | None = Field(default=None, description="Response header hinting when to poll next")
    delay_scale: float = Field(default=1.0, gt=0, description="Multiplier to seconds, e.g. 0.001 for milliseconds")
    logs: str | None = None
    error: str | None = Field(default=None, description="Error message; present on a finished job means it failed")
    error_type: str | None = None


class StreamSpec(RequestSpec):
    """The provider's status stream (Server-Sent Events): one long request whose events are the poll's
    status objects, read with the poll's own paths; the engine follows it instead of polling, and polls
    from where it stopped if it breaks."""

    headers: dict[str, str] = Field(default_factory=dict, validate_default=True,
                                    description="Accept: text/event-stream unless given here")
    incremental_logs: bool = Field(
        False, description="Each event carries only the logs since the previous one (they are accumulated, so "
                           "progress updates show all logs so far, as a poll does)")

    @field_validator("headers", mode="after")
    @classmethod
    def _asks_for_events(cls, headers: dict[str, str]) -> dict[str, str]:
        if any(name.lower() == "accept" for name in headers):
            return headers
        return {"Accept": "text/event-stream", **headers}


class ProtocolSpec(_Strict):
    """The job lifecycle: submit, then (optionally) poll, fetch the result, cancel."""

    submit: RequestSpec
    job: JobSpec | None = None
    poll: PollSpec | None = None
    stream: StreamSpec | None = Field(
        None, description="A status stream to follow instead of polling (needs `poll`: its paths read the events, "
                          "and polling takes over when the stream breaks)")
    status_map: dict[str, Status] = Field(default_factory=dict)
    result: RequestSpec | None = Field(default=None, description="Omitted: the last poll response is the result")
    cancel: RequestSpec | None = None


class ProtocolOverride(_Strict):
    """A family may replace whole phases of its provider's protocol (`poll: null` removes one)."""

    submit: RequestSpec | None = None
    poll: PollSpec | None = None
    stream: StreamSpec | None = Field(
        None, description="Replaces the provider's status stream; a family that replaces `poll` follows no "
                          "stream unless it declares its own")
    result: RequestSpec | None = None
    cancel: RequestSpec | None = None


class ErrorRule(_Strict):
    """Map a provider error to an exception class; the first rule that matches wins."""

    status: Annotated[list[int] | None, WithJsonSchema({"anyOf": [
        {"type": "integer"}, {"type": "array", "items": {"type": "integer"}}, {"type": "null"}]})] = None
    phase: Annotated[list[Phase] | None, WithJsonSchema({"anyOf": [
        {"enum": list(get_args(Phase))}, {"type": "array", "items": {"enum": list(get_args(Phase))}},
        {"type": "null"}]})] = None
    body_contains: str | None = None
    json_path: str | None = None
    equals: Any = None
    contains: str | None = None
    matches: str | None = Field(default=None, description="Regex searched in the values json_path finds")
    unless: str | None = Field(default=None, description="JSONPath: the rule does not apply when it finds a value")
    raise_: ErrorName = Field(alias="raise")
    retryable: bool | None = None
    message: str | None = Field(default=None, description="JSONPath ($...) of the message to report, or a fixed text")

    _s = field_validator("status", "phase", mode="before")(lambda cls, v: _listify(v))


class UploadSpec(_Strict):
    """How to put a file on the provider's storage: requests run in order, then `url` names the file.

    Templates see `file` (name, content_type, size; a body value `{{ file }}` is the file part of a
    multipart body), `steps` (the JSON responses so far), `base_url`, `model`, `provider_config`.
    """

    steps: list[RequestSpec] = Field(min_length=1)
    url: str


class MediaSpec(_Strict):
    """Which media forms the provider accepts inline; bytes become a data: URI when allowed."""

    accepts: list[MediaForm] = Field(default_factory=lambda: list(_ALL_MEDIA_FORMS))
    max_inline_bytes: int | None = None
    download: bool = Field(default=False, description="Fetch URL media and send the bytes inline (for APIs that take no URLs)")
    max_download_bytes: int = Field(50 * 1024 * 1024, gt=0)
    upload_over_bytes: int | None = Field(
        None, ge=0, description="Bytes media larger than this go through `upload` and are sent as its URL")
    upload: UploadSpec | None = None


class ResponseSpec(_Strict):
    """JSONPaths into the result; a list tries each path in turn."""

    video: PathOrPaths | None = None
    content_type: PathOrPaths | None = None
    audio_url: PathOrPaths | None = None
    duration: PathOrPaths | None = None
    resolution: PathOrPaths | None = None
    aspect_ratio: PathOrPaths | None = None
    images: PathOrPaths | None = None
    revised_prompt: PathOrPaths | None = None
    cost: PathOrPaths | None = Field(
        None, description="What the provider says the job cost, in the family's pricing currency, when its result "
                          "carries it; it replaces the estimate")


class WebhookSecretSpec(_Strict):
    """Where the account's signing secret can be fetched with the API key, when it is not configured
    (Replicate: GET /v1/webhooks/default/secret -> {"key": "whsec_..."})."""

    url: str = Field(description="Template of the URL (reads base_url); the provider's auth header is sent")
    key: str = Field("$.key", description="JSONPath of the whsec_ secret in the answer")


class WebhookSpec(_Strict):
    """The provider's own webhook: where a submit carries the caller's URL, how deliveries are signed
    and where a delivery keeps the job id, its status and its result."""

    query: str | None = Field(default=None, description="Query parameter of the submit that takes the URL (fal: fal_webhook)")
    body: str | None = Field(default=None, description="Body field of the submit that takes the URL (Replicate: webhook)")
    body_extra: dict[str, Any] = Field(
        default_factory=dict, description="Fixed body fields sent with it (Replicate: webhook_events_filter)")
    signature: Literal["fal-ed25519", "standard-webhooks"] = Field(
        description="fal-ed25519: ED25519 over request id, user id, timestamp and the body's SHA-256, keys from "
                    "TARASH_FAL_WEBHOOK_JWKS_URL; standard-webhooks: HMAC-SHA256 with TARASH_<PROVIDER>_WEBHOOK_SECRET")
    id: str = Field(description="JSONPath of the job id in a delivery")
    status: str | None = Field(default=None, description="JSONPath of the job's status in a delivery")
    status_map: dict[str, Status] = Field(
        default_factory=dict, description="Delivery statuses to job states (default: the protocol's status_map)")
    result: str = Field("$", description="JSONPath of the result the family's response paths read")
    error: str | None = Field(default=None, description="JSONPath of the error message of a failed job")
    secret: WebhookSecretSpec | None = Field(
        None, description="standard-webhooks: fetch the signing secret from the provider's API when "
                          "TARASH_<PROVIDER>_WEBHOOK_SECRET is unset (kept by the client)")

    @field_validator("body", mode="after")
    @classmethod
    def _one_place(cls, value: str | None, info: Any) -> str | None:
        if value is not None and info.data.get("query") is not None:
            raise ValueError("the URL goes in one place: `query` or `body`, not both")
        return value


class LimitsSpec(_Strict):
    """What one provider account allows: jobs in flight at once, creates per minute."""

    in_flight: int | None = Field(default=None, ge=1)
    creates_per_minute: int | None = Field(default=None, ge=1)


class ProviderFile(_Strict):
    """`provider.yaml`: what every model of one provider shares."""

    spec_version: Literal[1]
    provider: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    docs: str | None = None
    aliases: list[str] = Field(default_factory=list)
    base_url: str | None = None
    base_url_env: list[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]] = Field(
        default_factory=list,
        description="Environment variables read for the base URL when a config sets none, first set wins (the "
                    "vendor SDK's own, e.g. OPENAI_BASE_URL); configuration, so the URL is trusted with the key")
    trusted_origins: list[Annotated[str, Field(pattern=r"^https?://[^/?#\s]+$")]] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) besides base_url that may receive credentials, such as "
                    "the hosts a provider's job URLs or storage API live on; any other origin is refused")
    auth: AuthSpec | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: list[str] = Field(
        default_factory=list, description="Header names (besides auth.header) whose values are credentials")
    max_response_bytes: int | None = Field(
        None, gt=0, description="Largest JSON body read from this provider (default: TARASH_MAX_RESPONSE_BYTES)")
    protocol: ProtocolSpec | None = None
    handler: str | None = None
    handler_options: dict[str, Any] = Field(default_factory=dict, description="Settings the handler reads")
    errors: list[ErrorRule] = Field(default_factory=list)
    media: MediaSpec = Field(default_factory=MediaSpec)
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    webhook: WebhookSpec | None = Field(
        None, description="The provider's webhook, when it has one (submit_video(..., webhook_url=...))")
    limits: LimitsSpec | None = Field(
        None, description="Caps per provider account, shared through TARASH_LIMITS_STORE; TARASH_LIMITS overrides")


class ParamSpec(_Strict):
    """Constraints on one request field, checked before any HTTP call."""

    allowed: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = Field(default=None, description="Regular expression the whole value must match")
    required: bool = False
    forbidden: bool = Field(default=False, description="The model does not take this field: setting it is an error")
    message: str | None = Field(default=None, description="Explanation added to the error")


class RoleSpec(_Strict):
    """An image slot: which request roles feed it, whether it is required, how many it takes."""

    required: bool = False
    max: int | None = Field(default=1, ge=1, description="Most images the slot takes; null for no limit")
    as_list: bool | None = Field(default=None, alias="list", description="Render as a list (default: when max is not 1)")
    from_: list[str] | None = Field(default=None, alias="from")


class CheckSpec(_Strict):
    """A cross-field rule: when the template is true the request is refused with `error`.

    The template sees `request`, `model`, `extra` (extra_params), `images` (slot -> list of
    images) and `image_roles` (the roles the request's images have).
    """

    when: str
    error: str


class ExampleCost(_Strict):
    """An expected estimate: the amount and, optionally, the exact basis text."""

    amount: float | None = Field(description="null: the family prices nothing for this request")
    basis: str | None = None


class ExampleSpec(_Strict):
    """A golden case: a request and the body it must render to (or the error it must raise)."""

    name: str | None = None
    model: str | None = None
    request: dict[str, Any]
    body: dict[str, Any] | None = None
    raises: ErrorName | None = None
    message_contains: str | None = None
    response: Any = Field(default=None, description="A recorded provider result to extract from")
    result: dict[str, Any] | None = Field(default=None, description="What `response` must extract to")
    cost: Union[float, ExampleCost, None] = Field(
        None, description="The estimate the request must price to: an amount, or {amount, basis}")


class ExtraParamsSpec(_Strict):
    """Which extra_params a family takes and where in the body they go."""

    allow: list[str] | None = Field(default=None, description="Keys accepted (others are an error); omitted: any key")
    into: str | None = Field(default=None, description="Dotted body key to merge into (e.g. parameters); default: top level")


class ModelEntry(_Strict):
    """A model id with options; `exact: true` serves that id only, not ids below it; `params`
    replaces the family's constraints on request fields for this model (e.g. one more aspect ratio)."""

    id: str
    exact: bool = False
    params: dict[str, Any] = Field(default_factory=dict)


class FamilyFile(_Strict):
    """One model family: models, params, body mapping, response paths, examples.

    `models` and `modality` are required, except that a family with `extends` takes `modality` from
    its parent and an `abstract` family serves no models; the loader checks this after `extends`.
    """

    spec_version: Literal[1]
    provider: str = Field(pattern=NAME_PATTERN)
    family: str | None = None
    extends: str | None = Field(
        None, description="A family of the same provider whose keys this one inherits (one level deep): params and "
                          "body merge key by key (null removes a key), other keys replace the parent's whole; "
                          "family, models, examples, description, docs, notes and the parent's "
                          "retirement (deprecated, shutdown, successor) are never inherited")
    abstract: bool = Field(default=False, description="A parent for other families only: serves no models, has no examples")
    description: str | None = None
    docs: str | None = Field(default=None, description="The provider's documentation of these models (the source of the mapping)")
    checked: date | None = Field(default=None, description="When the mapping was last checked against `docs` (YYYY-MM-DD)")
    notes: str | None = None
    models: list[Union[str, ModelEntry]] = Field(
        default_factory=list,
        description="The model ids this family serves, exactly; a version pattern may use '*' within a path "
                    "segment and '**' across segments (the most specific match wins); '*' alone: the generic "
                    "family, for ids no other family claims")
    modality: Modality | None = None
    capabilities: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    checks: list[CheckSpec] = Field(default_factory=list)
    body: dict[str, Any] = Field(default_factory=dict)
    extra_params: Union[Literal["checked", "merge", "reject"], ExtraParamsSpec] = Field(
        "checked", description="How request.extra_params reach the body: checked (the default: merged, except a "
                               "key that looks like a misspelling of a field the family sends or declares), merge "
                               "(any key, unchecked), reject, or {allow, into}")
    protocol: ProtocolOverride | None = None
    media: MediaSpec | None = Field(default=None, description="Replaces the provider's media rules for this family")
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    handler: str | None = None
    handler_options: dict[str, Any] = Field(
        default_factory=dict, description="Settings the handler reads (override the provider's)")
    deprecated: str | None = None
    shutdown: date | None = Field(default=None, description="The day the provider stops serving these models: from then "
                                                    "on a call is refused and routes skip them")
    successor: str | None = Field(default=None, description="The model id to use instead once these models are shut down")
    pricing: PricingSpec | None = Field(
        None, description="What a job costs, as the provider publishes it (docs/cost.md); inherited through "
                          "`extends` whole, `pricing: null` drops the parent's")
    examples: list[ExampleSpec] = Field(default_factory=list)


__all__ = [
    "ProviderFile", "FamilyFile", "AuthSpec", "RequestSpec", "JobSpec", "PollSpec", "ProtocolSpec",
    "ProtocolOverride", "StreamSpec", "ErrorRule", "MediaSpec", "ResponseSpec", "ParamSpec", "RoleSpec", "CheckSpec",
    "ExampleSpec", "WebhookSpec", "WebhookSecretSpec", "PricingSpec",
]
