"""`tarash-router generate` and `models`, run as a user runs them: a real process, on a terminal
(pseudo-terminal) and in a pipe, against the loopback fake fal."""

import asyncio
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from tarash_router.engine.download import download
from tarash_router.errors import HTTPError, UnsafeURLError
from tarash_router.testing.fal import COMPLETED, IN_PROGRESS, IN_QUEUE, FakeFal, FalJob

KEY = "fal-key-that-must-never-show-0123456789"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + os.urandom(700_000)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARASH_", "FAL_"))}
    return {**env, "FAL_KEY": KEY, "PYTHONUNBUFFERED": "1", **extra}


def _argv(fal: FakeFal, *more: str) -> list[str]:
    return [sys.executable, "-m", "tarash_router.cli", "generate", "--provider", "fal", "--model", "fal-ai/veo3/fast",
            "--prompt", "a red fox", "--duration", "8", "--base-url", fal.base_url, "--poll-interval", "0.05", *more]


def _video_job(fal: FakeFal, statuses: list) -> str:
    url = fal.host_file("fox.mp4", VIDEO)
    fal.queue(FalJob(statuses=statuses, result={"video": {"url": url, "content_type": "video/mp4"}}))
    return url


def test_generate_in_a_pipe_saves_the_exact_bytes_and_prints_plain_progress(tmp_path):
    out = tmp_path / "fox.mp4"
    with FakeFal() as fal:
        _video_job(fal, [{"status": IN_QUEUE, "queue_position": 3},
                         {"status": IN_PROGRESS, "logs": [{"message": "denoising"}]}, COMPLETED])
        done = subprocess.run(_argv(fal, "--out", str(out)), env=_env(), capture_output=True, text=True, timeout=60)
        job_id = fal.submits[0].request_id
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == VIDEO
    assert not list(tmp_path.glob(".*.part"))  # nothing half-written left behind
    assert f"saved {out} ({len(VIDEO):,} bytes)" in done.stdout and job_id in done.stdout
    assert "position 3 in the queue" in done.stderr and "log: denoising" in done.stderr
    assert "\x1b[" not in done.stderr  # no terminal control codes in a pipe
    assert KEY not in done.stdout + done.stderr


def test_generate_json_output_is_machine_readable(tmp_path):
    with FakeFal() as fal:
        url = _video_job(fal, [COMPLETED])
        done = subprocess.run(_argv(fal, "--json", "--out", str(tmp_path / "v.mp4")), env=_env(),
                              capture_output=True, text=True, timeout=60)
    result = json.loads(done.stdout)
    assert result["urls"] == [url] and result["provider"] == "fal" and result["model"] == "fal-ai/veo3/fast"
    assert result["files"] == [{"path": str(tmp_path / "v.mp4"), "bytes": len(VIDEO), "content_type": "video/mp4"}]


def test_generate_on_a_terminal_draws_a_live_display_and_saves_the_file(tmp_path):
    out = tmp_path / "fox.mp4"
    with FakeFal() as fal:
        _video_job(fal, [IN_QUEUE, IN_PROGRESS, IN_PROGRESS, COMPLETED])
        fd, terminal = pty.openpty()  # the command's stdout and stderr are the pseudo-terminal
        proc = subprocess.Popen(_argv(fal, "--out", str(out)), env=_env(TERM="xterm-256color", COLUMNS="100"),
                                stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
        os.close(terminal)  # the child holds it now; reading fd ends with EIO once the child exits
        screen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
        code = proc.wait(timeout=30)
        os.close(fd)
    assert code == 0, screen.decode(errors="replace")
    assert out.read_bytes() == VIDEO
    text = screen.decode(errors="replace")
    assert "\x1b[" in text  # drawn in place with terminal control codes
    assert "completed" in text and f"saved {out}" in text and KEY not in text


def _following(job) -> bool:
    """The command is waiting on the running job: on fal's status stream, or polling."""
    return job.stream_attempts >= 1 or job.poll_attempts >= 2


@pytest.mark.parametrize("stream", ["1", "0"], ids=["status stream", "polling"])
def test_ctrl_c_cancels_the_remote_job_once(tmp_path, stream):
    with FakeFal() as fal:
        _video_job(fal, [IN_QUEUE] + [IN_PROGRESS] * 10_000)  # never finishes on its own
        proc = subprocess.Popen(_argv(fal, "--out", str(tmp_path / "v.mp4")), env=_env(TARASH_STATUS_STREAM=stream),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not (fal.submits and _following(fal.jobs[fal.submits[0].request_id])):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=30)
        job_id = fal.submits[0].request_id
        cancels = list(fal.cancels)
    assert proc.returncode == 130, stderr
    assert cancels == [job_id]
    assert f"asked to cancel the job (job {job_id})" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "v.mp4").exists()


def test_a_request_the_model_cannot_serve_is_refused_before_any_request():
    with FakeFal() as fal:
        done = subprocess.run(_argv(fal)[:-6] + ["--duration", "5", "--base-url", fal.base_url], env=_env(),
                              capture_output=True, text=True, timeout=60)
        assert fal.requests == []
    assert done.returncode == 1 and "allowed: 4, 6, 8" in done.stderr


def test_usage_errors_name_the_flag():
    done = subprocess.run([sys.executable, "-m", "tarash_router.cli", "generate", "--prompt", "x"], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--route, or --provider and --model" in done.stderr
    done = subprocess.run([sys.executable, "-m", "tarash_router.cli", "generate", "--provider", "fal", "--model",
                           "fal-ai/flux/dev", "--prompt", "x", "--duration", "8"], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--duration do not apply to image generation" in done.stderr
    done = subprocess.run([sys.executable, "-m", "tarash_router.cli", "generate", "--route", "video-default",
                           "--base-url", "http://127.0.0.1:9", "--prompt", "x"], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "a route's targets set their own" in done.stderr


def test_models_lists_capabilities_and_allowed_values(capsys):
    from tarash_router.cli import main

    assert main(["models", "--provider", "fal", "--capability", "t2v", "--format", "json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert all("text_to_video" in r["capabilities"] for r in rows.values())
    assert rows["fal-ai/veo3/fast"]["accepts"]["resolution"] == "720p, 1080p"
    assert main(["models", "--provider", "fal", "--capability", "i2v"]) == 0
    text = capsys.readouterr().out
    assert "image_to_video" in text and "fal-ai/veo3/fast" not in text  # text to video only


def test_version():
    done = subprocess.run([sys.executable, "-m", "tarash_router.cli", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("tarash-router ")


# ---------------------------------------------------------------- the download itself


def test_a_result_url_on_a_private_address_is_not_fetched(tmp_path, setting):
    setting("TARASH_ALLOW_PRIVATE_URLS", "0")

    async def go() -> None:
        await download("http://127.0.0.2:9/internal", tmp_path / "x", max_bytes=10, timeout=5)

    with pytest.raises(UnsafeURLError, match="private, loopback or link-local"):
        asyncio.run(go())
    assert not (tmp_path / "x").exists()


def test_a_result_over_the_byte_limit_leaves_no_file(tmp_path):
    from tarash_router.engine.url_safety import origin_of

    with FakeFal() as fal:
        url = fal.host_file("big.mp4", VIDEO)

        async def go() -> None:
            await download(url, tmp_path / "big.mp4", max_bytes=1000, timeout=5,
                           trusted=frozenset({origin_of(fal.base_url)}))

        with pytest.raises(HTTPError, match="over the download limit of 1000"):
            asyncio.run(go())
    assert list(tmp_path.iterdir()) == []
