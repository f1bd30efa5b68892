"""Public data models: configs, requests, responses, progress updates, execution metadata.

Names and defaults follow the seed API (tarash-gateway). Differences, on purpose:
- `aspect_ratio` and `resolution` are plain strings; each model's spec says which values it takes,
  so "auto" or "3:4" work where the provider accepts them and fail early where it does not.
- `timeout` and `poll_interval` accept fractions of a second.
- `api_key` never appears in a repr.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, UTC
from typing import Any, Literal, Protocol, Union, runtime_checkable

from typing_extensions import TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from .errors import ValidationError
from .spelling import did_you_mean, near_misses

Resolution = Literal["360p", "480p", "720p", "1080p", "4k"]
AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "21:9"]
StatusType = Literal["queued", "processing", "completed", "failed"]
ImageRole = Literal["reference", "first_frame", "last_frame", "asset", "style"]


class MediaContent(TypedDict):
    """Raw media bytes with their MIME type."""

    content: bytes
    content_type: str


# A URL (https://, gs://), a data: URI, or raw bytes with a content type.
MediaType = Union[str, MediaContent]


class ImageType(TypedDict):
    """An input image and the role it plays (first frame, reference, ...)."""

    image: MediaType
    type: ImageRole


def _utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- configs


class MockPollingConfig(BaseModel):
    """How the mock provider reports progress."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    enabled: bool = True
    status_sequence: list[StatusType] = ["queued", "processing", "completed"]
    delay_between_updates: float = 0.5
    progress_percentages: list[int] | None = None
    custom_updates: list[dict[str, Any]] | None = None


class MockResponse(BaseModel):
    """One weighted outcome of the mock provider: a video/images or an error."""

    model_config = ConfigDict(defer_build=True, frozen=True, arbitrary_types_allowed=True)

    weight: float = Field(default=1.0, gt=0)
    output_video: MediaType | None = None
    output_images: list[str] | None = None
    error: Exception | None = None


class MockConfig(BaseModel):
    """Serve a config from the in-process mock provider instead of the network."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    enabled: bool
    responses: list[MockResponse] = Field(default_factory=lambda: [MockResponse()])
    polling: MockPollingConfig | None = None


_SECRET_KEY = re.compile(r"token|secret|password|credential|api[_-]?key|^key$|auth", re.IGNORECASE)


def redact_secrets(values: dict[str, Any]) -> dict[str, Any]:
    """A copy with secret-looking entries (access_token, credentials, api_key, ...) replaced by ***.

    Paths to credential files (`credentials_path`) are not secrets and stay.
    """
    return {k: "***" if _is_secret_key(str(k)) and v is not None else v for k, v in values.items()}


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) and not key.endswith(("_path", "_file"))


class _GenerationConfig(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    def __repr_args__(self) -> Any:
        # provider_config may carry credentials (e.g. a Vertex access_token): never print them.
        for name, value in super().__repr_args__():
            yield name, redact_secrets(value) if name == "provider_config" and isinstance(value, dict) else value

    model: str
    provider: str
    # Never in a repr or a dump (model_dump/model_dump_json leave it out): pass it again when rebuilding.
    api_key: str | None = Field(default=None, repr=False, exclude=True)
    base_url: str | None = None
    api_version: str | None = None
    provider_config: dict[str, Any] = Field(default_factory=dict)
    mock: MockConfig | None = None
    # Request fields this model may not honour, and what to do: `drop` sends the call without them
    # (recorded in the attempt's metadata) instead of refusing it with a ValidationError.
    adapt: dict[str, Literal["drop"]] = Field(default_factory=dict)
    # A model id no family lists but one keystroke from one that is (`fal-ai/veo3/fsat`) is refused as
    # a typo; True sends it anyway (a new model the catalogue does not know yet).
    allow_unknown_model: bool = False

    @field_validator("api_key")
    @classmethod
    def _strip_key(cls, value: str | None) -> str | None:
        # A trailing newline from a .env file or a mounted secret is a copy artefact, not part of the key.
        return value.strip() or None if isinstance(value, str) else value

    @field_serializer("provider_config")
    def _dump_provider_config(self, value: dict[str, Any]) -> dict[str, Any]:
        return redact_secrets(value)


class VideoGenerationConfig(_GenerationConfig):
    """Where and how to run one video generation; `fallback_configs` are tried in order on failure."""

    timeout: float = Field(default=600, gt=0, description="Overall deadline of one generation, seconds")
    max_poll_attempts: int = Field(default=120, ge=1)
    poll_interval: float = Field(default=5, ge=0)
    fallback_configs: list[VideoGenerationConfig] | None = None


class ImageGenerationConfig(_GenerationConfig):
    """Where and how to run one image generation."""

    timeout: float = Field(default=120, gt=0)
    max_poll_attempts: int = Field(default=60, ge=1)
    poll_interval: float = Field(default=2, ge=0)
    fallback_configs: list[ImageGenerationConfig] | None = None


# ---------------------------------------------------------------- requests


class _GenerationRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    prompt: str
    negative_prompt: str | None = None
    image_list: list[ImageType] = Field(default_factory=list)
    seed: int | None = None
    aspect_ratio: str | None = None
    extra_params: dict[str, Any] = Field(default_factory=dict)
    # The same key with the same request returns the first call's result (or waits for it) instead
    # of generating again, across processes sharing a SQLite/Redis journal; with another request it
    # is a ValidationError.
    idempotency_key: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _capture_extra_fields(cls, data: Any) -> Any:
        """Move unknown keyword arguments into `extra_params` (they win over same-named keys), unless
        one looks like a misspelt request field: `durations=8` would reach the provider as a field it
        ignores, and the model would run with its default duration."""
        if not isinstance(data, dict):
            return data
        known = cls.model_fields.keys()
        if data.keys() <= known:  # the usual call: only request fields
            return data
        extra = dict(data.get("extra_params") or {})
        unknown = {k: v for k, v in data.items() if k not in known}
        for name in unknown:
            meant = near_misses(str(name), known, leading_words=True)
            if meant:
                raise ValidationError(
                    f"unknown field {name!r}{did_you_mean(meant)} ({cls.__name__} has no such field; a raw "
                    f"provider field goes in explicitly: extra_params={{{str(name)!r}: ...}})")
        extra.update(unknown)
        cleaned = {k: v for k, v in data.items() if k in known}
        cleaned["extra_params"] = extra
        return cleaned


class VideoGenerationRequest(_GenerationRequest):
    """What to generate: the unified request every video spec maps from."""

    duration_seconds: int | None = None
    resolution: str | None = None
    generate_audio: bool | None = None
    video: MediaType | None = None
    number_of_videos: int = 1
    enhance_prompt: bool | None = None


class ImageGenerationRequest(_GenerationRequest):
    """What to generate: the unified request every image spec maps from."""

    size: str | None = None
    quality: str | None = None
    style: str | None = None
    n: int | None = None
    mask_image: MediaType | None = None


def request_field(request: Any, name: str) -> Any:
    """`request.<name>`, or None when its class has no such field (an image request has no `video`).
    A model's fields live in its `__dict__`: reading them there skips pydantic's missing-attribute
    path, an AttributeError raised and caught on every miss."""
    fields = getattr(request, "__dict__", None)
    return fields.get(name) if fields is not None else getattr(request, name, None)


# ---------------------------------------------------------------- cost


class Cost(BaseModel):
    """What a job costs: estimated from the family's published prices (`basis` shows the sum), or
    reported by the provider (`estimated` false). An estimate, not an invoice."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    currency: str = "USD"
    amount: float
    basis: str
    estimated: bool = True


# ---------------------------------------------------------------- execution metadata


class AttemptMetadata(BaseModel):
    """One attempt at one target (provider, model) in a chain."""

    model_config = ConfigDict(defer_build=True)

    provider: str
    model: str
    attempt_number: int
    started_at: datetime = Field(default_factory=_utcnow)
    ended_at: datetime | None = None
    status: Literal["success", "failed", "skipped"] = "failed"
    error_type: str | None = None
    error_message: str | None = None
    is_retryable: bool | None = None
    request_id: str | None = None
    reason: str | None = None
    retry_number: int = 0  # 0 for the first try on a target, 1.. for retries of it
    family: str | None = None  # provider/family that served (or would have served) this attempt
    dropped_fields: list[str] = Field(default_factory=list)  # request fields sent nowhere (adapt: drop)
    warnings: list[str] = Field(default_factory=list)  # e.g. a model only the generic family serves
    cost: Cost | None = None  # estimated before the submit; what the provider reported once it did

    @property
    def elapsed_seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class ExecutionMetadata(BaseModel):
    """Every attempt made for one call, in order, success or not."""

    model_config = ConfigDict(defer_build=True)

    total_attempts: int = 0
    successful_attempt: int | None = None
    attempts: list[AttemptMetadata] = Field(default_factory=list)
    fallback_triggered: bool = False
    configs_in_chain: int = 1
    route: str | None = None

    @property
    def total_elapsed_seconds(self) -> float | None:
        ended = [a.ended_at for a in self.attempts if a.ended_at]
        if not self.attempts or not ended:
            return None
        return (max(ended) - self.attempts[0].started_at).total_seconds()


# ---------------------------------------------------------------- responses and updates


class VideoGenerationResponse(BaseModel):
    """A finished video: a URL (or bytes for providers that only serve bytes)."""

    model_config = ConfigDict(defer_build=True, frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    request_id: str
    video: MediaType
    content_type: str | None = None
    audio_url: str | None = None
    duration: float | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    status: Literal["completed", "failed"] = "completed"
    is_mock: bool = False
    raw_response: dict[str, Any] = Field(default_factory=dict)
    provider: str | None = None
    model: str | None = None
    execution_metadata: ExecutionMetadata | None = None
    cost: Cost | None = None


class ImageGenerationResponse(BaseModel):
    """Finished images as URLs or data: URIs."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    request_id: str
    images: list[str]
    content_type: str | None = "image/png"
    status: Literal["completed", "failed"] = "completed"
    is_mock: bool = False
    revised_prompt: str | None = None
    raw_response: dict[str, Any] = Field(default_factory=dict)
    provider: str | None = None
    model: str | None = None
    execution_metadata: ExecutionMetadata | None = None
    cost: Cost | None = None


JobStateType = Literal["queued", "processing", "completed", "failed", "cancelled"]


class Job(BaseModel):
    """A generation started with `submit_video`/`submit_image`: where it stands and, once finished,
    its response or error. Any process sharing the journal can look it up by `id`."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    id: str  # the provider's job id (the response's request_id)
    provider: str
    model: str
    modality: Literal["video", "image"]
    state: JobStateType
    progress: int | None = Field(default=None, ge=0, le=100)
    response: VideoGenerationResponse | ImageGenerationResponse | None = None
    error: dict[str, Any] | None = None  # {type, message} of a failed or cancelled job
    created_at: datetime
    updated_at: datetime
    execution_metadata: ExecutionMetadata | None = None

    @property
    def request_id(self) -> str:
        return self.id

    @property
    def done(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")


class _GenerationUpdate(BaseModel):
    model_config = ConfigDict(defer_build=True)

    request_id: str
    status: StatusType
    progress_percent: int | None = Field(default=None, ge=0, le=100)
    queue_position: int | None = None
    logs: list[Any] | None = None
    update: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    provider: str | None = None
    model: str | None = None


class VideoGenerationUpdate(_GenerationUpdate):
    """A progress event; `update` is the provider's raw status payload."""

    result: VideoGenerationResponse | None = None


class ImageGenerationUpdate(_GenerationUpdate):
    """A progress event for an image job."""

    result: ImageGenerationResponse | None = None


ProgressCallback = Union[
    Callable[[VideoGenerationUpdate], None], Callable[[VideoGenerationUpdate], Awaitable[None]]
]
ImageProgressCallback = Union[
    Callable[[ImageGenerationUpdate], None], Callable[[ImageGenerationUpdate], Awaitable[None]]
]


@runtime_checkable
class ProviderHandler(Protocol):
    """What a custom provider implements (sync and async, video and image)."""

    def generate_video(
        self, config: VideoGenerationConfig, request: VideoGenerationRequest,
        on_progress: ProgressCallback | None = None,
    ) -> VideoGenerationResponse: ...

    async def generate_video_async(
        self, config: VideoGenerationConfig, request: VideoGenerationRequest,
        on_progress: ProgressCallback | None = None,
    ) -> VideoGenerationResponse: ...

    def generate_image(
        self, config: ImageGenerationConfig, request: ImageGenerationRequest,
        on_progress: ImageProgressCallback | None = None,
    ) -> ImageGenerationResponse: ...

    async def generate_image_async(
        self, config: ImageGenerationConfig, request: ImageGenerationRequest,
        on_progress: ImageProgressCallback | None = None,
    ) -> ImageGenerationResponse: ...


GenerationConfig = Union[VideoGenerationConfig, ImageGenerationConfig]
GenerationRequest = Union[VideoGenerationRequest, ImageGenerationRequest]
GenerationResponse = Union[VideoGenerationResponse, ImageGenerationResponse]

__all__ = [
    "Resolution", "AspectRatio", "StatusType", "ImageRole", "MediaContent", "MediaType", "ImageType",
    "MockConfig", "MockResponse", "MockPollingConfig",
    "VideoGenerationConfig", "VideoGenerationRequest", "VideoGenerationResponse", "VideoGenerationUpdate",
    "ImageGenerationConfig", "ImageGenerationRequest", "ImageGenerationResponse", "ImageGenerationUpdate",
    "ProgressCallback", "ImageProgressCallback", "AttemptMetadata", "ExecutionMetadata", "ProviderHandler",
    "Job", "JobStateType", "Cost",
]
