"""The estimate on the command line: `render` prints it under `cost`, `explain` under each target,
`generate` after the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tarash_router.cli import main
from tarash_router.testing.fal import COMPLETED, FakeFal, FalJob


def test_render_prints_the_estimate_under_cost(tmp_path, capsys):
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"prompt": "a cat", "duration_seconds": 6, "resolution": "4k"}))
    assert main(["render", "--provider", "fal", "--model", "fal-ai/veo3.1", "--request", str(request)]) == 0
    rendered = json.loads(capsys.readouterr().out)
    assert rendered["cost"] == {"currency": "USD", "amount": 3.6, "estimated": True,
                                "basis": "6 s × $0.60/s (4k, audio) = $3.60; unset, priced at the provider's "
                                         "default: generate_audio=true"}


def test_explain_prints_each_targets_estimate_and_the_budget(tmp_path, capsys):
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent("""\
        spec_version: 1
        routes:
          main:
            modality: video
            targets:
              - {provider: fal, model: fal-ai/veo3.1}
              - {provider: fal, model: fal-ai/veo3.1/fast}
            budget: {max_per_request: 5, unpriced: allow}
            spend_limit: {amount: 100, per: month}
        """))
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"prompt": "a cat"}))
    assert main(["explain", "--route", "main", "--request", str(request), "--routes", str(routes),
                 "--assume-keys"]) == 0
    text = capsys.readouterr().out
    assert "  1. try  fal/fal-ai/veo3.1\n       cost: ~$3.20 (8 s × $0.40/s (720p or 1080p, audio) = $3.20;" in text
    assert ("  2. try  fal/fal-ai/veo3.1/fast\n       cost: no estimate (no listed price matches "
            "fal-ai/veo3.1/fast with this request)") in text
    assert "budget: $5.00 a request; targets without an estimate allowed" in text
    assert "spend_limit: $100.00 a month (UTC), counted in memory" in text


def test_generate_prints_the_cost_after_the_job(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARASH_", "FAL_"))}
    with FakeFal() as fal:
        url = fal.host_file("cat.mp4", b"\x00\x00\x00\x18ftypmp42")
        fal.queue(FalJob(statuses=[COMPLETED], result={"video": {"url": url, "content_type": "video/mp4"}}))
        done = subprocess.run(
            [sys.executable, "-m", "tarash_router.cli", "generate", "--provider", "fal", "--model", "fal-ai/veo3",
             "--prompt", "a cat", "--duration", "4", "--base-url", fal.base_url, "--poll-interval", "0.05",
             "--out", str(tmp_path / "cat.mp4")],
            env={**env, "FAL_KEY": "k", "TARASH_ALLOW_PRIVATE_URLS": "1"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ("cost: ~$1.60, estimated: 4 s × $0.40/s (audio) = $1.60; unset, priced at the provider's default: "
            "generate_audio=true") in done.stdout
