"""Dry run: the first request the engine would send, with secrets masked, via API and CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tarash_router import ValidationError, render_request
from tarash_router.cli import main
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest

ACCEPTANCE_REQUEST = {"prompt": "a cat", "duration_seconds": 8, "aspect_ratio": "16:9"}


def test_cli_render_matches_the_fal_wire_format(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(ACCEPTANCE_REQUEST))
    assert main(["render", "--provider", "fal", "--model", "fal-ai/veo3", "--request", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "POST"
    assert printed["url"] == "https://queue.fal.run/fal-ai/veo3"
    assert printed["json"] == {"prompt": "a cat", "duration": "8s", "aspect_ratio": "16:9"}
    assert printed["headers"]["Authorization"] == "Key ***"


def test_cli_render_as_a_subprocess(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(ACCEPTANCE_REQUEST))
    out = subprocess.run([sys.executable, "-m", "tarash_router.cli", "render", "--provider", "fal",
                          "--model", "fal-ai/veo3", "--request", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["url"] == "https://queue.fal.run/fal-ai/veo3"


def test_render_masks_a_real_key():
    config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key="super-secret-key")
    rendered = render_request(config, VideoGenerationRequest(prompt="x"))
    assert rendered["headers"]["Authorization"] == "Key ***"
    assert "super-secret-key" not in json.dumps(rendered)


def test_render_validates_like_a_real_call():
    config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3")
    with pytest.raises(ValidationError, match="allowed: 4, 6, 8"):
        render_request(config, VideoGenerationRequest(prompt="x", duration_seconds=5))


def test_cli_render_reports_bad_input(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text('{"prompt": "x", "duration_seconds": 5}')
    assert main(["render", "--provider", "fal", "--model", "fal-ai/veo3", "--request", str(path)]) == 1
    assert "allowed: 4, 6, 8" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["render", "--provider", "fal", "--model", "fal-ai/veo3", "--request", str(path)]) == 2
    assert "invalid JSON" in capsys.readouterr().err
    path.write_text('{"duration_seconds": 8}')
    assert main(["render", "--provider", "fal", "--model", "fal-ai/veo3", "--request", str(path)]) == 2
    assert "prompt" in capsys.readouterr().err


def test_base_url_override_and_extra_params_merge():
    config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", base_url="http://127.0.0.1:9/")
    rendered = render_request(config, VideoGenerationRequest(prompt="x", auto_fix=True, aspect_ratio="16:9"))
    assert rendered["url"] == "http://127.0.0.1:9/fal-ai/veo3"
    assert rendered["json"] == {"prompt": "x", "aspect_ratio": "16:9", "auto_fix": True}


def test_cli_providers_and_schema(capsys):
    assert main(["providers", "fal", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"provider": "fal", "model": "fal-ai/veo3"}.items() <= rows[[r["model"] for r in rows].index(
        "fal-ai/veo3")].items()
    assert main(["schema", "family"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False and {"required": ["models"]} in schema["allOf"][0]["anyOf"]


def test_providers_json_says_where_each_mapping_comes_from_and_when_it_was_checked(capsys):
    assert main(["providers", "--format", "json"]) == 0
    rows = {(r["provider"], r["model"]): r for r in json.loads(capsys.readouterr().out)}
    assert all(r["source"] and r["source"].startswith("https://") for r in rows.values())
    kling = rows[("replicate", "kwaivgi/kling-v3-video")]
    assert kling["checked"] == "2026-12-05" and "replicate.com" in kling["source"]
    aleph = rows[("runway", "gen4_aleph")]
    assert (aleph["shutdown"], aleph["successor"]) == ("2026-07-30", "aleph2")
