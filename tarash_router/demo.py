"""The demo behind `make demo`: a video and an image job on the loopback fake Fal server.

No API key and no network: the fake speaks fal's real queue protocol on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .models import (
    ImageGenerationConfig, ImageGenerationRequest, ImageGenerationUpdate, VideoGenerationConfig,
    VideoGenerationRequest, VideoGenerationUpdate,
)


def _print_update(update: VideoGenerationUpdate | ImageGenerationUpdate) -> None:
    parts = [f"  [{update.status:<10}]"]
    if update.queue_position is not None:
        parts.append(f"queue position {update.queue_position}")
    for log in update.logs or []:
        parts.append(f"log: {log.get('message') if isinstance(log, dict) else log}")
    if update.result is not None:
        parts.append("result ready")
    print(" ".join(parts), flush=True)


async def _print_update_async(update: ImageGenerationUpdate) -> None:
    _print_update(update)


def run_demo(poll_interval: float = 0.2) -> int:
    """Run the demo; returns a process exit code."""
    try:
        from .testing.fal import FakeFal, FalJob
    except ImportError:
        print("the demo needs the loopback fakes: pip install 'tarash-router[testing]'")
        return 1
    from .api import generate_image, generate_video_async

    with FakeFal() as fal:
        fal.queue(FalJob(statuses=["IN_QUEUE", "IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]))
        video_config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3/fast", api_key="demo-key",
                                             base_url=fal.base_url, poll_interval=poll_interval, timeout=60)
        request = VideoGenerationRequest(prompt="A cat playing piano, cinematic lighting", duration_seconds=8,
                                         aspect_ratio="16:9", generate_audio=True)
        print(f"fake fal server at {fal.base_url}")
        print(f"video: {video_config.provider} / {video_config.model}  ({request.duration_seconds}s, "
              f"{request.aspect_ratio})", flush=True)
        started = time.perf_counter()
        video = asyncio.run(generate_video_async(video_config, request, on_progress=_print_update))
        print(f"  video url:   {video.video}")
        print(f"  request id:  {video.request_id}")
        attempts = video.execution_metadata.total_attempts if video.execution_metadata else "?"
        print(f"  attempts:    {attempts}, {time.perf_counter() - started:.2f}s", flush=True)

        fal.queue(FalJob.images(2))
        image_config = ImageGenerationConfig(provider="fal", model="fal-ai/flux/dev", api_key="demo-key",
                                             base_url=fal.base_url, poll_interval=poll_interval, timeout=60)
        image_request = ImageGenerationRequest(prompt="A lighthouse at dawn, watercolor", n=2)
        print(f"image: {image_config.provider} / {image_config.model} (sync API, async callback)", flush=True)
        images = generate_image(image_config, image_request, on_progress=_print_update_async)
        for url in images.images:
            print(f"  image url:   {url}")
        _generate_from_the_command_line(fal, poll_interval)
        print(f"fal saw {fal.submit_count()} submits; each job was submitted once.")
    return 0


def _generate_from_the_command_line(fal: Any, poll_interval: float) -> None:
    """`tarash-router generate` on the same fake: progress, then the video saved to a file."""
    import os
    import tempfile

    from .console.generate import run
    from .testing.fal import FalJob

    video = fal.host_file("fox.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 256)
    fal.queue(FalJob(statuses=["IN_QUEUE", {"status": "IN_PROGRESS", "logs": [{"message": "rendering"}]},
                               "COMPLETED"], result={"video": {"url": video, "content_type": "video/mp4"}}))
    os.environ.setdefault("FAL_KEY", "demo-key")  # the command reads keys from the environment only
    with tempfile.TemporaryDirectory() as folder:
        argv = ["--provider", "fal", "--model", "fal-ai/veo3/fast", "--prompt", "a red fox in the snow",
                "--duration", "8", "--base-url", fal.base_url, "--poll-interval", str(poll_interval),
                "--out", os.path.join(folder, "fox.mp4")]
        print("$ tarash-router generate " + " ".join(a if " " not in a else repr(a) for a in argv), flush=True)
        run(argv)
