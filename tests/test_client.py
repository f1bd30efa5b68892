"""`Client`: two configurations in one process, each with its own specs, routes, journal and handlers."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from conftest import API_KEY, video_config
from fake_helpers import acme_spec_dir
from tarash_router import ValidationError, generate_video
from tarash_router.client import Client
from tarash_router.journal import get_journal
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse
from tarash_router.testing import FakeFal, FalJob

REQUEST = VideoGenerationRequest(prompt="a cat")


def _routes(path: Path, name: str, provider: str, model: str, fal: FakeFal) -> Path:
    path.write_text(textwrap.dedent(f"""\
        spec_version: 1
        routes:
          {name}:
            modality: video
            targets:
              - {{provider: {provider}, model: {model}, base_url: "{fal.base_url}", poll_interval: 5ms,
                  api_key_env: TEST_ROUTE_KEY}}
    """))
    return path


@pytest.fixture(autouse=True)
def route_key(monkeypatch):
    monkeypatch.setenv("TEST_ROUTE_KEY", API_KEY)


def test_two_clients_keep_their_specs_routes_journals_and_handlers_apart(tmp_path, fal):
    acme = Client(spec_dirs=[acme_spec_dir(tmp_path / "specs")],
                  routes=[_routes(tmp_path / "a.yaml", "acme-route", "acme", "acme/clip", fal)],
                  journal=f"sqlite:///{tmp_path / 'a.db'}")
    plain = Client(routes=[_routes(tmp_path / "b.yaml", "fal-route", "fal", "fal-ai/veo3/fast", fal)],
                   journal="memory")
    with acme, plain:
        response = acme.generate_video("acme-route", REQUEST)
        assert response.video and fal.submits[-1].endpoint == "acme/clip"
        assert plain.generate_video("fal-route", REQUEST).video

        # Specs: only `acme` knows the acme provider (and the process-wide registry does not).
        config = VideoGenerationConfig(provider="acme", model="acme/clip", api_key=API_KEY, base_url=fal.base_url)
        with pytest.raises(ValidationError, match="unknown provider 'acme'"):
            plain.render_request(config, REQUEST)
        assert acme.render_request(config, REQUEST)["url"].endswith("/acme/clip")
        # Routes: each has its own.
        with pytest.raises(ValidationError, match="unknown route 'fal-route'"):
            acme.generate_video("fal-route", REQUEST)
        with pytest.raises(ValidationError, match="unknown route 'acme-route'"):
            plain.explain("acme-route", REQUEST)
        # Journals: each job is in its own client's journal only (and not in the process-wide one).
        assert asyncio.run(acme.runtime.journal.get(response.request_id)).state == "completed"
        assert asyncio.run(plain.runtime.journal.get(response.request_id)) is None
        assert asyncio.run(get_journal().get(response.request_id)) is None
        # Handlers: a provider served by Python in one client is unknown to the other.
        acme.register_provider("echo", _Echo())
        echo = VideoGenerationConfig(provider="echo", model="anything")
        assert acme.generate_video(echo, REQUEST).video == "https://echo.test/v.mp4"
        with pytest.raises(ValidationError, match="unknown provider 'echo'"):
            plain.generate_video(echo, REQUEST)
        with pytest.raises(ValidationError, match="unknown provider 'echo'"):
            generate_video(echo, REQUEST)


def test_a_client_resumes_and_explains_with_its_own_parts(tmp_path, fal):
    fal.queue(FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "COMPLETED"], poll_failures={1: _forbidden()},
                     stream_failure=_forbidden(),
                     cancel_failures=[_server_error()]))
    with Client(routes=[_routes(tmp_path / "r.yaml", "main", "fal", "fal-ai/veo3/fast", fal)]) as client:
        with pytest.raises(Exception) as caught:  # noqa: B017 - the refused poll gives the job up
            client.generate_video(video_config(fal), REQUEST)
        job_id = caught.value.request_id
        assert client.resume(job_id, api_key=API_KEY, base_url=fal.base_url).request_id == job_id
        assert fal.submit_count() == 1
        plan = client.explain("main", REQUEST)
        assert [(s.provider, s.action) for s in plan.steps] == [("fal", "try")]


def test_async_with_closes_the_clients_connections(fal):
    async def scenario() -> tuple[VideoGenerationResponse, bool]:
        async with Client() as client:
            response = await client.generate_video_async(video_config(fal), REQUEST)
            pooled = client.runtime.pool.get("fal").wire
        return response, pooled.is_closed

    response, closed = asyncio.run(scenario())
    assert response.video and closed


class _Echo:
    """A seed-style ProviderHandler."""

    def _response(self) -> VideoGenerationResponse:
        return VideoGenerationResponse(request_id="echo-1", video="https://echo.test/v.mp4")

    async def generate_video_async(self, config, request, on_progress=None):
        return self._response()

    def generate_video(self, config, request, on_progress=None):
        return self._response()

    async def generate_image_async(self, config, request, on_progress=None):
        raise NotImplementedError

    def generate_image(self, config, request, on_progress=None):
        raise NotImplementedError


def _forbidden():
    from tarash_router.testing._server import Failure

    return Failure(status=403, json={"detail": "no"})


def _server_error():
    from tarash_router.testing._server import Failure

    return Failure(status=500)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # the point of the test
def test_sync_calls_work_in_a_forked_child(fal):
    """A prefork task pool forks after the parent may have used the sync API: the child must start its
    own event-loop thread, not hand coroutines to the parent's, which does not exist there."""
    with Client(journal="memory") as parent:
        parent.generate_video(video_config(fal), REQUEST)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if a sync call completes
        code = 1
        try:
            with Client(journal="memory") as child:
                code = 0 if child.generate_video(video_config(fal), REQUEST).video else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's sync call hung")
    assert fal.submit_count() == 2
