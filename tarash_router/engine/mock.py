"""The in-process mock provider (`config.mock = MockConfig(enabled=True)`): no network, no key."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from ..models import (
    GenerationConfig, GenerationRequest, ImageGenerationResponse, ImageGenerationUpdate, MockResponse,
    VideoGenerationResponse, VideoGenerationUpdate,
)
from ..specs.params import check_request
from ..utils import generate_unique_id
from .lifecycle import call_progress
from .transport import BaseTransport, Call, Status

_DEFAULT_PERCENT = {"queued": 0, "processing": 50, "completed": 100, "failed": None}
MOCK_VIDEO_URL = "https://mock.tarash-router.invalid/videos/{request_id}.mp4"
MOCK_IMAGE_URL = "https://mock.tarash-router.invalid/images/{request_id}-{index}.png"


class MockTransport(BaseTransport):
    """The mock as a transport: a mocked config that names a real model rejects what that model would
    reject; the submit plays the configured outcome and progress sequence."""

    reports_progress = True

    async def prepare(self, call: Call) -> None:
        if call.family is not None:
            check_request(call.family, call.config.model, call.request, drop=call.config.adapt)

    async def submit(self, call: Call) -> Status:
        return Status("completed", native=await run_mock(call.config, call.request, call.on_progress, call.modality))


async def run_mock(config: GenerationConfig, request: GenerationRequest, on_progress: Any, modality: str) -> Any:
    """Pick a weighted outcome, report the configured progress, then return it or raise its error."""
    mock = config.mock
    assert mock is not None
    choice: MockResponse = random.choices(mock.responses, weights=[r.weight for r in mock.responses])[0]
    request_id = f"mock_{generate_unique_id()}"
    response = None if choice.error is not None else _response(choice, request, request_id, config, modality)
    polling = mock.polling
    if polling is not None and polling.enabled and on_progress is not None:
        update_cls = VideoGenerationUpdate if modality == "video" else ImageGenerationUpdate
        sequence = list(polling.status_sequence)
        if choice.error is not None and sequence:
            sequence[-1] = "failed"
        for index, status in enumerate(sequence):
            percent = (polling.progress_percentages[index] if polling.progress_percentages
                       else _DEFAULT_PERCENT[status])
            custom = polling.custom_updates[index] if polling.custom_updates else {}
            await call_progress(on_progress, update_cls(
                request_id=request_id, status=status, progress_percent=percent, update=custom,
                error=str(choice.error) if status == "failed" and choice.error else None,
                result=response if status == "completed" else None,
                provider=config.provider, model=config.model))
            if index < len(sequence) - 1:
                await asyncio.sleep(polling.delay_between_updates)
    if choice.error is not None:
        raise choice.error
    return response


def _response(choice: MockResponse, request: GenerationRequest, request_id: str, config: GenerationConfig,
              modality: str) -> Any:
    raw = {"mock": True, "request_id": request_id}
    if modality == "video":
        video = choice.output_video or MOCK_VIDEO_URL.format(request_id=request_id)
        seconds = getattr(request, "duration_seconds", None)
        return VideoGenerationResponse(
            request_id=request_id, video=video, content_type="video/mp4",
            duration=float(seconds) if seconds else None,
            resolution=getattr(request, "resolution", None), aspect_ratio=request.aspect_ratio,
            is_mock=True, raw_response=raw, provider=config.provider, model=config.model)
    count = getattr(request, "n", None) or 1
    images = choice.output_images or [MOCK_IMAGE_URL.format(request_id=request_id, index=i) for i in range(count)]
    return ImageGenerationResponse(request_id=request_id, images=images, is_mock=True, raw_response=raw,
                                   provider=config.provider, model=config.model)
