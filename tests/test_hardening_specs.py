"""A spec file cannot exhaust CPU or memory, and `validate` never crashes: every hostile file becomes
a finding at file:line while the other files are still checked. Each case runs the real CLI in a
subprocess with a memory limit, so a regression fails the test instead of taking the machine down."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tarash_router import render_request
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest

MEMORY_LIMIT = 1536 * 1024 * 1024

GOOD_FAMILY = """\
spec_version: 1
provider: fal
models: [fal-ai/hardening-good]
modality: video
body:
  prompt: "{{ request.prompt }}"
examples:
  - request: {prompt: "a cat"}
    body: {prompt: "a cat"}
"""


def _family(body_value: str, model: str = "fal-ai/hardening-bad") -> str:
    return f"""\
spec_version: 1
provider: fal
models: [{model}]
modality: video
body:
  prompt: "{{{{ request.prompt }}}}"
  extra: {body_value}
examples:
  - request: {{prompt: "a cat"}}
"""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _validate(folder: Path) -> tuple[int, str, float]:
    cli = Path(sys.executable).with_name("tarash-router")
    started = time.monotonic()
    done = subprocess.run([str(cli), "validate", str(folder)], capture_output=True, text=True, timeout=30,
                          preexec_fn=_limit_memory)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


ATTACKS = {
    "huge-power": (_family("\"{{ 10**(10**10) }}\""), "too large"),
    "string-repetition": (_family("\"{{ 'a'*10**9 }}\""), "sequence"),
    "list-repetition": (_family("\"{{ [0]*10**9 }}\""), "sequence"),
    "nested-range": (_family("\"{% for i in range(10**5) %}{% for j in range(10**5) %}x{% endfor %}{% endfor %}\""),
                     "range()"),
    "triple-loop": (_family("\"{% for i in [1] %}{% for j in [1] %}{% for k in [1] %}{% endfor %}{% endfor %}"
                            "{% endfor %}\""), "nested more than"),
    "padding": (_family("\"{{ 'a'.ljust(10**9) }}\""), "a width or count of 1,000,000,000"),
    "format-width": (_family("\"{{ '%999999999s' % 'a' }}\""), "a width or count of 999,999,999"),
    "center-filter": (_family("\"{{ 'a'|center(10**9) }}\""), "a width or count of 1,000,000,000"),
    "output-size": (_family("\"{% for i in range(999) %}{% for j in range(999) %}{{ 'x'*999 }}{% endfor %}"
                            "{% endfor %}x\""), "characters in one render"),
    "namespace-growth": (_family("\"{% set ns = namespace(s='a') %}{% for i in range(60) %}{% set ns.s = ns.s ~ "
                                 "ns.s %}{% endfor %}{{ ns.s }}\""), "joining with ~ would build more than"),
    "huge-int-literal-in-template": (_family("\"{{ " + "9" * 100_000 + " }}\""), "cannot be compiled"),
    "huge-int-in-yaml": (_family("9" * 100_000), "cannot be loaded"),
    "sandbox-escape": (_family("\"{{ request.__class__.__mro__ }}\""), "private"),
    "recursive-alias": ("a: &a [*a]\n", "recursive alias"),
    "alias-bomb": ("a: &a [" + ",".join(["x"] * 9) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)),
        "aliases expand"),
    "submit-url-fails": ("""\
spec_version: 1
provider: fal
models: [fal-ai/hardening-bad]
modality: video
protocol:
  submit: {method: POST, url: "{{ 'no-scheme/' ~ model }}"}
body:
  prompt: "{{ request.prompt }}"
examples:
  - request: {prompt: "a cat"}
    body: {prompt: "a cat"}
""", "submit URL"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_hostile_spec_becomes_a_finding_and_the_rest_is_still_checked(tmp_path, name):
    text, phrase = ATTACKS[name]
    (tmp_path / "bad.yaml").write_text(text)
    (tmp_path / "good.yaml").write_text(GOOD_FAMILY.replace("body: {prompt: \"a cat\"}", "body: {prompt: \"a dog\"}"))
    code, output, seconds = _validate(tmp_path)
    assert code == 1, output
    assert seconds < 5, f"validate took {seconds:.1f}s"
    bad = [line for line in output.splitlines() if "bad.yaml" in line]
    assert bad and any(phrase in line for line in bad), output[-2000:]
    # The good family was checked too: its (deliberately wrong) example is reported.
    assert any("good.yaml" in line and "body mismatch" in line for line in output.splitlines()), output[-2000:]


def test_an_oversized_spec_file_is_refused_at_once(tmp_path):
    (tmp_path / "big.yaml").write_text("notes: |\n" + ("  " + "x" * 1000 + "\n") * 50_000)
    code, output, seconds = _validate(tmp_path)
    assert code == 1 and "may be at most" in output and seconds < 5


def test_a_finding_names_the_line(tmp_path):
    text, _ = ATTACKS["alias-bomb"]
    (tmp_path / "bad.yaml").write_text(text)
    code, output, _ = _validate(tmp_path)
    assert code == 1 and any(line.startswith(f"{tmp_path / 'bad.yaml'}:") and ":4:" in line
                             for line in output.splitlines()), output


def test_a_long_prompt_still_renders_byte_exact():
    prompt = ('She said "hi" \\ back\nline two\t🐱 {{ 7*7 }} ' * 1200)[:50_000]
    rendered = render_request(VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key="k"),
                              VideoGenerationRequest(prompt=prompt))
    assert rendered["json"]["prompt"] == prompt
