"""Every built-in spec's golden examples hold (the same check `tarash-router validate` runs)."""

from __future__ import annotations

import pytest

from tarash_router.tools.examples import run_example
from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir


def _cases() -> list[tuple[object, int]]:
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    return [(family, index) for family in sorted(registry.families(), key=lambda f: f.source.file)
            for index in range(len(family.file.examples))]


CASES = _cases()


def test_every_family_has_examples():
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    assert [f.name for f in registry.families() if not f.file.examples] == []


@pytest.mark.parametrize(("family", "index"), CASES,
                         ids=[f"{f.provider.name}/{f.name}#{i}" for f, i in CASES])  # type: ignore[attr-defined]
def test_spec_example(family, index):
    failure = run_example(family, index)
    assert failure is None, str(failure)


def test_a_wrong_example_is_reported(tmp_path):
    import shutil

    shutil.copy(builtin_spec_dir() / "fal" / "veo3.yaml", tmp_path / "veo3.yaml")
    text = (tmp_path / "veo3.yaml").read_text().replace('duration: "8s"', 'duration: "8"')
    (tmp_path / "veo3.yaml").write_text(text)
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    family = registry.load_paths([tmp_path])[0]
    failure = run_example(family, 0)
    assert failure is not None and "body mismatch" in failure.message
    assert str(failure).startswith(f"{tmp_path / 'veo3.yaml'}:")
