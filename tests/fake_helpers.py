"""Helpers shared by the tests of the loopback fake provider servers (tests/test_fake_*.py)."""

from __future__ import annotations

import copy
import select
import textwrap
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tarash_router.testing._server import ScriptedFake

FakeT = TypeVar("FakeT", bound=ScriptedFake[Any])

_ROOT = Path(__file__).resolve().parents[1]


def shared_fake(factory: Callable[[], FakeT], name: str) -> tuple[Any, Any]:
    """Two fixtures: ``server``, one running fake per test module, and ``name``, that fake made fresh for a test.

    Use as ``server, xai = shared_fake(FakeXAI, "xai")``. Each test gets the fake cleared and with
    the ``default_job`` it started with, whatever an earlier test did.
    """

    started_with: dict[str, Any] = {}

    @pytest.fixture(scope="module", name="server")
    def server() -> Iterator[FakeT]:
        with factory() as fake:
            started_with["default_job"] = copy.deepcopy(fake.default_job)
            yield fake

    @pytest.fixture(name=name)
    def fresh(server: FakeT) -> FakeT:
        server.clear()
        server.default_job = copy.deepcopy(started_with["default_job"])
        return server

    return server, fresh


@contextmanager
def run_module(module: str, *args: str) -> Iterator[str]:
    """Run ``python -m tarash_router.testing.<module> --port 0 <args>``; yield the base URL it prints."""
    with subprocess.Popen([sys.executable, "-m", f"tarash_router.testing.{module}", "--port", "0", *args], cwd=_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready, "fake did not print its URL"
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def acme_spec_dir(root: Path) -> Path:
    """`root/acme/`: a provider `acme` that speaks fal's queue protocol (key from ACME_KEY) with one
    family, `acme/clip`, for tests of who sees which specs. Returns `root`."""
    from tarash_router.specs.registry import builtin_spec_dir

    specs = root / "acme"
    specs.mkdir(parents=True)
    fal_provider = (builtin_spec_dir() / "fal" / "provider.yaml").read_text()
    (specs / "provider.yaml").write_text(fal_provider.replace("provider: fal", "provider: acme")
                                         .replace("env: FAL_KEY", "env: ACME_KEY"))
    (specs / "clip.yaml").write_text(textwrap.dedent("""\
        spec_version: 1
        provider: acme
        models: [acme/clip]
        modality: video
        body:
          prompt: "{{ request.prompt }}"
        examples:
          - request: {prompt: "a cat"}
            body: {prompt: "a cat"}
    """))
    return root
