"""`import tarash_router` and a Fal generation work with no vendor SDK importable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import importlib.abc, sys

    BLOCKED = ("fal_client", "openai", "replicate", "google.genai", "google", "runwayml", "xai_sdk")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in BLOCKED or name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked vendor SDK {name}")
            return None

    sys.meta_path.insert(0, Block())

    import tarash_router
    from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
    from tarash_router.testing import FakeFal

    loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
    assert not loaded, loaded
    with FakeFal() as fal:
        config = VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key="k",
                                       base_url=fal.base_url, poll_interval=0.01)
        response = tarash_router.generate_video(config, VideoGenerationRequest(prompt="x", duration_seconds=8))
    print(response.video)
""")


def test_import_and_fal_generation_without_vendor_sdks():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(".mp4")
