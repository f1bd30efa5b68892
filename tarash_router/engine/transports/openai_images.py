"""The Images API through the `openai` SDK: OpenAI (`openai_images`) and Azure deployments
(`azure_openai_images`).

One synchronous call, `images.generate(**payload)` (`POST /images/generations`, JSON). Where the
images are in the answer is the spec's `response:` section (gpt-image `b64_json` becomes
`data:image/<output_format>;base64,...`; DALL-E `url` or `b64_json` per `response_format`).
Image edits (`mask_image`, input images) are not served by these families: validation refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import GenerationFailedError, ValidationError
from ...models import ImageGenerationResponse
from ...utils import generate_unique_id
from ..render import JobContext, prepare_job
from ..transport import BaseTransport, Call, Status
from .openai_common import (
    AzureClients, OpenAIClients, capture, describe_request, import_openai, sdk_error,
    split_sdk_kwargs, warn_deprecated,
)

_CANNED_IMAGES = {"created": 0, "data": []}
# Response headers that carry the provider's id of the call (OpenAI, then Azure API Management).
_REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id")


def invoke(client: Any, payload: dict[str, Any], timeout: float | None = None, raw: bool = False) -> Any:
    """`images.generate` with the rendered payload (unknown keys go as extra_body)."""
    method = client.images.with_raw_response.generate if raw else client.images.generate
    known, extra = split_sdk_kwargs(client.images.generate, payload)
    options = {} if timeout is None else {"timeout": timeout}
    return method(**known, extra_body=extra or None, **options)


@dataclass
class _Working:
    job: JobContext
    client: Any
    openai: Any


class OpenAIImagesTransport(OpenAIClients, BaseTransport):
    """`handler: openai_images`: the Images API on api.openai.com (Bearer key). One synchronous call:
    the submit answers with the images."""

    journal_results = False  # base64 images stay out of the journal

    async def prepare(self, call: Call) -> None:
        openai = import_openai(call.provider)
        if call.modality != "image":
            raise ValidationError(f"{call.model} generates images, not {call.modality}s", provider=call.provider,
                                  model=call.model)
        # A mask_image is refused by validation: no family maps one.
        job = prepare_job(call.family, call.config, call.request, validate=not call.checked, api_key=call.api_key)
        warn_deprecated(call.family)
        call.state = _Working(job, self.async_client(job, openai), openai)

    async def submit(self, call: Call) -> Status:
        work: _Working = call.state
        try:
            raw = await invoke(work.client, work.job.payload, call.request_timeout(), raw=True)
        except TimeoutError:
            raise
        except Exception as exc:
            mapped = sdk_error(exc, call.family, call.model, "submit", None, work.openai)
            if mapped is None:
                raise
            # A synchronous API has no job to re-attach to: once the request may have reached the
            # provider, sending it again may generate (and bill) twice.
            raise mapped from None
        data = raw.http_response.json()
        request_id = next((raw.headers[h] for h in _REQUEST_ID_HEADERS if raw.headers.get(h)), None)
        return Status("completed", data=data, native=(data, request_id))

    async def fetch(self, call: Call, status: Status) -> ImageGenerationResponse:
        data, request_id = status.native
        request_id = request_id or f"{call.provider}-image-{generate_unique_id()}"
        fields = call.family.response.extract(data, {"request": call.request, "model": call.model})
        images = [i for i in fields.get("images", []) if isinstance(i, str)]
        raw_response = data if isinstance(data, dict) else {"output": data}
        if not images:
            raise GenerationFailedError("the response has no images", provider=call.provider, model=call.model,
                                        request_id=request_id, raw_response=raw_response, retryable=False,
                                        job_may_exist=True)
        return ImageGenerationResponse(
            request_id=request_id, images=images, content_type=fields.get("content_type") or "image/png",
            revised_prompt=fields.get("revised_prompt"), raw_response=raw_response, provider=call.provider,
            model=call.model)

    def render(self, call: Call) -> dict[str, Any]:
        openai = import_openai(call.provider)
        job = prepare_job(call.family, call.config, call.request, dry_run=True)
        sent = capture(_CANNED_IMAGES, lambda http: self.dry_run_client(job, openai, http),
                       lambda client: invoke(client, job.payload))
        auth = call.family.provider.file.auth
        return describe_request(sent, auth.header if auth else "Authorization")


class AzureOpenAIImagesTransport(AzureClients, OpenAIImagesTransport):
    """`handler: azure_openai_images`: a deployment's images endpoint.

    `{endpoint}/openai/deployments/{deployment}/images/generations?api-version=...` with the
    `api-key` header; the model name is the deployment (the SDK routes by the body's `model`, which
    stays in the body). Default api-version `2025-04-01-preview` (the version Azure documents for
    gpt-image-1).
    """

    DEFAULT_API_VERSION = "2025-04-01-preview"


__all__ = ["OpenAIImagesTransport", "AzureOpenAIImagesTransport"]
