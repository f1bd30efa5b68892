"""`tarash-router validate`: every finding at file:line, exit codes, formats, routes files."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from tarash_router.cli import main
from tarash_router.specs.registry import builtin_spec_dir

REPO = builtin_spec_dir().parent

GOOD_FAMILY = """\
spec_version: 1
provider: fal
models: [fal-ai/acme-new-model]
modality: video
params:
  duration_seconds: {allowed: [5, 10]}
body:
  prompt: "{{ request.prompt }}"
  duration: "{{ request.duration_seconds | string_or_none }}"
examples:
  - request: {prompt: "a cat", duration_seconds: 5}
    body: {prompt: "a cat", duration: "5"}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_builtin_specs_and_example_routes_are_clean(capsys):
    assert main(["validate", str(REPO / "provider_specs"), str(REPO / "routes")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("0 error(s)")
    note = next(line for line in err if line.startswith("note: "))  # a note, not a finding: still exit 0
    found = re.fullmatch(r"note: (\d+) families have no pricing \(shut-down ones not counted\): (.*), "
                         r"\.\.\.\(and (\d+) more\)", note)
    assert found, note
    shown = found.group(2).split(", ")
    assert shown == sorted(shown) and int(found.group(1)) == len(shown) + int(found.group(3))


def test_families_without_prices_are_a_note_on_stderr(tmp_path, capsys):
    write(tmp_path / "new.yaml", GOOD_FAMILY)
    write(tmp_path / "priced.yaml", GOOD_FAMILY.replace("acme-new-model", "acme-priced") + (
        "pricing: {per_second: 0.1, source: https://example.com/p, checked: 2026-12-05}\n"))
    write(tmp_path / "old.yaml", GOOD_FAMILY.replace("acme-new-model", "acme-old") + "shutdown: 2020-01-01\n")
    assert main(["validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "note:" not in out
    assert "note: 1 family has no pricing (shut-down ones not counted): fal/new\n" in err
    assert main(["validate", "--format", "json", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["severity"] == "warning" and "fal/new" in err  # stdout stays JSON


def test_every_broken_file_is_reported_not_just_the_first(tmp_path, capsys):
    write(tmp_path / "typo.yaml", GOOD_FAMILY.replace("modality: video", "modalty: video"))
    write(tmp_path / "wrong-example.yaml", GOOD_FAMILY.replace("acme-new-model", "acme-other").replace(
        'duration: "5"}', 'duration: "5s"}'))
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{tmp_path / 'typo.yaml'}:4:1: error: unknown key 'modalty'") for line in out)
    assert any(line.startswith(f"{tmp_path / 'wrong-example.yaml'}:11:5: error: example 0: body mismatch")
               for line in out)


def test_fixed_user_family_loads_and_renders(tmp_path, capsys, monkeypatch):
    path = write(tmp_path / "new.yaml", GOOD_FAMILY.replace("  prompt:", "  promtp:"))
    assert main(["validate", str(path)]) == 1
    capsys.readouterr()
    write(path, GOOD_FAMILY)
    assert main(["validate", str(path)]) == 0
    request = write(tmp_path / "r.json", '{"prompt": "hi", "duration_seconds": 10}')
    assert main(["render", "--provider", "fal", "--model", "fal-ai/acme-new-model", "--request", str(request),
                 "--spec-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["json"] == {"prompt": "hi", "duration": "10"}


def test_github_and_json_formats(tmp_path, capsys):
    write(tmp_path / "bad.yaml", GOOD_FAMILY.replace("{allowed: [5, 10]}", "{allowed: 5}"))
    assert main(["validate", "--format", "github", str(tmp_path)]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"::error file={tmp_path / 'bad.yaml'},line=6,col=")
    assert main(["validate", "--format", "json", str(tmp_path)]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert findings[0]["line"] == 6 and findings[0]["severity"] == "error"


def test_routes_files_are_checked(tmp_path, capsys):
    write(tmp_path / "routes.yaml", """\
        spec_version: 1
        routes:
          r:
            modality: video
            targets:
              - {provider: fal, model: fal-ai/veo3}
            deadline: 30x
        """)
    assert main(["validate", str(tmp_path)]) == 1
    assert "routes.yaml:7:5: error: expected a duration" in capsys.readouterr().out


def test_usage_error_exit_code(capsys):
    assert main(["validate", "/definitely/not/here"]) == 2


def test_deprecation_is_a_warning(tmp_path, capsys):
    write(tmp_path / "old.yaml", GOOD_FAMILY + "deprecated: use fal-ai/acme-v2\nshutdown: 2020-01-01\n")
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "warning: deprecated: use fal-ai/acme-v2" in out and "shut these models down on 2020-01-01" in out
