"""The broken-spec corpus: each case is reported by `validate` at the exact file and line it names.

Each case folder holds small invalid files; the file that must be blamed starts with
`# expect: line N: <phrase>`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tarash_router.validate import validate_paths

CORPUS = Path(__file__).parent / "broken_specs"
EXPECT = re.compile(r"^# expect: line (\d+): (.+)$")


def _expectation(case: Path) -> tuple[Path, int, str]:
    for path in sorted(case.glob("*.yaml")):
        match = EXPECT.match(path.read_text().splitlines()[0])
        if match:
            return path, int(match.group(1)), match.group(2)
    raise AssertionError(f"{case} has no '# expect:' line")


CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir())


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_case_is_reported_at_its_line(case):
    path, line, phrase = _expectation(case)
    findings = [f for f in validate_paths([case]) if f.severity == "error"]
    assert findings, f"{case.name}: no error reported"
    blamed = [f for f in findings if Path(f.file).resolve() == path.resolve()]
    assert blamed, f"{case.name}: errors name {[f.file for f in findings]}, not {path.name}"
    assert any(f.line == line and phrase in f.message for f in blamed), \
        f"{case.name}: expected line {line} with {phrase!r}, got {[(f.line, f.message) for f in blamed]}"
