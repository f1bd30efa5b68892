"""The Images API through the `openai` SDK: OpenAI (`openai_images`) and Azure deployments
(`azure_openai_images`).

One synchronous call, `images.generate(**payload)` (`POST /images/generations`, JSON). Where the
images are in the answer is the spec's `response:` section (gpt-image `b64_json` becomes
`data:image/<output_format>;base64,...`; DALL-E `url` or `b64_json` per `response_format`).
Image edits (`mask_image`, input images) are not served by these families: validation refuses them.
"""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

from ..engine.render import prepare_job
from ..engine.runner import call_progress
from ..errors import GenerationFailedError, ValidationError
from ..errors import TimeoutError as GenerationTimeoutError
from ..models import ImageGenerationResponse, ImageGenerationUpdate
from ..specs.compiled import FamilySpec
from ..utils import generate_unique_id
from .openai_common import (
    AzureClients, OpenAIClients, capture, describe_request, import_openai, request_timeout, sdk_error,
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


class OpenAIImagesHandler(OpenAIClients):
    """`handler: openai_images` — the Images API on api.openai.com (Bearer key)."""

    async def run(self, family: FamilySpec, config: Any, request: Any, on_progress: Any,
                  modality: str) -> ImageGenerationResponse:
        openai = import_openai(family.provider.name)
        provider = family.provider.name
        if modality != "image":
            raise ValidationError(f"{config.model} generates images, not {modality}s", provider=provider,
                                  model=config.model)
        job = prepare_job(family, config, request)  # a mask_image is refused here: no family maps one
        warn_deprecated(family)
        client = self.async_client(job, openai)
        deadline = asyncio.get_running_loop().time() + config.timeout
        sent = False
        try:
            async with asyncio.timeout_at(deadline):
                timeout = request_timeout(deadline)
                sent = True
                raw = await invoke(client, job.payload, timeout, raw=True)
        except builtins.TimeoutError:
            raise GenerationTimeoutError(f"generation did not finish within {config.timeout:g}s", provider=provider,
                                         model=config.model, timeout_seconds=config.timeout,
                                         job_may_exist=sent) from None
        except Exception as exc:
            mapped = sdk_error(exc, family, config.model, "submit", None, openai)
            if mapped is None:
                raise
            # A synchronous API has no job to re-attach to: once the request may have reached the
            # provider, sending it again may generate (and bill) twice.
            raise mapped from None
        data = raw.http_response.json()
        request_id = next((raw.headers[h] for h in _REQUEST_ID_HEADERS if raw.headers.get(h)), None)
        request_id = request_id or f"{provider}-image-{generate_unique_id()}"
        fields = family.response.extract(data, {"request": request, "model": config.model})
        images = [i for i in fields.get("images", []) if isinstance(i, str)]
        raw_response = data if isinstance(data, dict) else {"output": data}
        if not images:
            raise GenerationFailedError("the response has no images", provider=provider, model=config.model,
                                        request_id=request_id, raw_response=raw_response, retryable=False,
                                        job_may_exist=True)
        response = ImageGenerationResponse(
            request_id=request_id, images=images, content_type=fields.get("content_type") or "image/png",
            revised_prompt=fields.get("revised_prompt"), raw_response=raw_response, provider=provider,
            model=config.model)
        if on_progress is not None:
            await call_progress(on_progress, ImageGenerationUpdate(
                request_id=request_id, status="completed", progress_percent=100, update=raw_response,
                provider=provider, model=config.model, result=response))
        return response

    def render(self, family: FamilySpec, config: Any, request: Any) -> dict[str, Any]:
        openai = import_openai(family.provider.name)
        job = prepare_job(family, config, request, dry_run=True)
        sent = capture(_CANNED_IMAGES, lambda http: self.dry_run_client(job, openai, http),
                       lambda client: invoke(client, job.payload))
        auth = family.provider.file.auth
        return describe_request(sent, auth.header if auth else "Authorization")


class AzureOpenAIImagesHandler(AzureClients, OpenAIImagesHandler):
    """`handler: azure_openai_images` — a deployment's images endpoint.

    `{endpoint}/openai/deployments/{deployment}/images/generations?api-version=...` with the
    `api-key` header; the model name is the deployment (the SDK routes by the body's `model`, which
    stays in the body). Default api-version `2025-04-01-preview` (the version Azure documents for
    gpt-image-1).
    """

    DEFAULT_API_VERSION = "2025-04-01-preview"


__all__ = ["OpenAIImagesHandler", "AzureOpenAIImagesHandler"]
