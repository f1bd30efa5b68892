"""The heap alive once the built-in specs are loaded is frozen out of the collector's view, once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import gc
from tarash_router.specs.registry import get_registry, reset_registry
get_registry()
first = gc.get_freeze_count()
reset_registry(); get_registry()  # a reload does not freeze again: dropped specs stay collectable
print(first, gc.get_freeze_count())
"""


def _frozen_counts(**env: str) -> tuple[int, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TARASH_")} | env
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=environ, timeout=120,
                         check=True)
    first, second = out.stdout.split()
    return int(first), int(second)


def test_the_loaded_specs_are_frozen_once():
    first, second = _frozen_counts()
    assert first > 10_000  # modules and every compiled family
    # Not frozen again: the old specs, freed by reference counting, left the frozen set and the
    # reloaded ones stay collectable.
    assert second < first


@pytest.mark.parametrize("value", ["0", "false"])
def test_freezing_can_be_turned_off(value):
    assert _frozen_counts(TARASH_GC_FREEZE=value) == (0, 0)
