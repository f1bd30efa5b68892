"""A recognisable API key never shows up in logs, exceptions, reprs, responses or CLI output."""

from __future__ import annotations

import logging

import pytest

from conftest import video_config
from tarash_router import TarashException, generate_video
from tarash_router.models import VideoGenerationRequest
from tarash_router.testing import Failure, FalJob

SECRET = "SECRET-KEY-7d1e0c"


@pytest.mark.parametrize("job", [
    FalJob(),
    FalJob.moderated(),
    FalJob.completed_with_error(),
    FalJob(submit_failures=[Failure.server_error(500)]),
    FalJob(submit_failures=[Failure(status=401, json={"detail": "bad key"})]),
    FalJob(poll_failures={1: Failure.connection_reset(), 2: Failure.malformed_json()}),
    FalJob(statuses=["IN_QUEUE"]),
])
def test_key_never_leaks(fal, caplog, job):
    caplog.set_level(logging.DEBUG)
    fal.queue(job)
    config = video_config(fal, api_key=SECRET, timeout=0.5, max_poll_attempts=5)
    texts = [repr(config), str(config)]
    try:
        response = generate_video(config, VideoGenerationRequest(prompt="x"), on_progress=lambda u: texts.append(
            u.model_dump_json()))
        texts += [repr(response), response.model_dump_json()]
    except TarashException as exc:
        texts += [str(exc), repr(exc), repr(exc.raw_response), repr(exc.execution_metadata)]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert fal.submit_attempts >= 1  # the key really was sent
    assert all(SECRET not in t for t in texts)
