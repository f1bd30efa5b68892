"""A spec file cannot exhaust CPU or memory, and `validate` never crashes: every hostile file becomes
a finding at its file and line, in well under 5 s, while the other files are still checked.

Each attack is a tiny spec folder (a provider file, the hostile family, and a second family whose
example is wrong, so it must be reported too) run through the real CLI in a subprocess with a memory
limit and a timeout, so a regression fails the test instead of taking the machine down.
"""

from __future__ import annotations

import base64
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tarash_router import generate_video, render_request
from tarash_router.models import VideoGenerationConfig, VideoGenerationRequest
from tarash_router.testing.google import FakeGoogle, GoogleJob
from tarash_router.validate import validate_paths

MEMORY_LIMIT = 1536 * 1024 * 1024
CLI_TIMEOUT = 20

PROVIDER = """\
spec_version: 1
provider: hardening
base_url: https://api.hardening.example
auth: {header: Authorization, scheme: Bearer, env: [HARDENING_KEY]}
protocol:
  submit: {method: POST, url: "{{ base_url }}/v1/jobs"}
  job: {id: $.id}
  poll: {method: GET, url: "{{ base_url }}/v1/jobs/{{ job.id }}", status: $.status}
  status_map: {queued: queued, running: processing, done: completed, failed: failed}
response:
  video: $.output.url
"""

# A second family in the same folder whose example is wrong: it must still be checked and reported.
OTHER = """\
spec_version: 1
provider: hardening
models: [hardening/other]
modality: video
body:
  prompt: "{{ request.prompt }}"
examples:
  - request: {prompt: "a cat"}
    body: {prompt: "a dog"}
"""

VALUE_LINE = 7  # where _family puts the hostile value
EXAMPLE_LINE = 9  # where a failure while rendering the example is reported


def _family(value: str) -> str:
    return f"""\
spec_version: 1
provider: hardening
models: [hardening/bad]
modality: video
body:
  prompt: "{{{{ request.prompt }}}}"
  extra: {value}
examples:
  - request: {{prompt: "a cat"}}
"""


def _template(source: str) -> str:
    return _family('"' + source + '"')


ALIAS_BOMB = _family("&a [x, x, x, x, x, x, x, x, x]").replace("examples:", "".join(
    f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcd", "bcde")) + "examples:")

# name -> (bad.yaml, line of the finding, phrase in it)
ATTACKS: dict[str, tuple[str, int, str]] = {
    "huge-power": (_template("{{ 10**(10**10) }}"), EXAMPLE_LINE, "too large"),
    "string-repetition": (_template("{{ 'a'*10**9 }}"), EXAMPLE_LINE, "repeating a sequence"),
    "list-repetition": (_template("{{ [0]*10**9 }}"), EXAMPLE_LINE, "repeating a sequence"),
    "nested-range": (_template("{% for i in range(10**5) %}{% for j in range(10**5) %}x{% endfor %}{% endfor %}"),
                     EXAMPLE_LINE, "range()"),
    "nested-loops": (_template("{% for i in range(999) %}{% for j in range(999) %}{{ i }}{% endfor %}{% endfor %}"),
                     EXAMPLE_LINE, "steps"),
    "doubling-with-tilde": (_template("{% set a = 'x'*999999 %}" + "{% set a = a ~ a %}" * 8 + "{{ a|length }}"),
                            EXAMPLE_LINE, "characters"),
    "doubling-in-a-namespace": (_template("{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
                                          "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"),
                                EXAMPLE_LINE, "characters"),
    "padding": (_template("{{ 'a'.ljust(10**9) }}"), EXAMPLE_LINE, "width or count"),
    "expandtabs": (_template("{{ ('\\t'*999999).expandtabs(999) }}"), EXAMPLE_LINE, "characters"),
    "replace-growth": (_template("{{ ('a'*999999).replace('a', 'b'*999) }}"), EXAMPLE_LINE, "characters"),
    "output-size": (_template("{% for i in range(999) %}{% for j in range(999) %}{{ 'x'*999 }}{% endfor %}"
                              "{% endfor %}"), EXAMPLE_LINE, "characters"),
    "recursive-macro": (_template("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}"),
                        VALUE_LINE, "macro"),
    "recursive-loop": (_template("{% for x in [1, 1] recursive %}{{ loop([1, 1]) }}{% endfor %}"),
                       VALUE_LINE, "recursive loops"),
    "security-error": (_template("{{ ''.__class__.__mro__ }}"), EXAMPLE_LINE, "SecurityError"),
    "overflow-error": (_template("{{ 10.0 ** 400 }}"), EXAMPLE_LINE, "OverflowError"),
    "recursion-error": (_template("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"), VALUE_LINE, "RecursionError"),
    "huge-int-in-template": (_template("{{ " + "9" * 100_000 + " }}"), VALUE_LINE, "cannot be compiled"),
    "huge-int-in-yaml": (_family("9" * 100_000), VALUE_LINE, "cannot be loaded"),
    "recursive-alias": (_family("&a [*a]"), VALUE_LINE, "recursive alias"),
    "alias-bomb": (ALIAS_BOMB, 11, "aliases in this document expand"),
    "submit-url-never-renders": (_family('"x"').replace("body:", 'protocol:\n  submit: {method: POST, url: "{{ '
                                                        'base_url }}/{{ 1 // 0 }}"}\nbody:'), EXAMPLE_LINE + 2,
                                 "submit URL does not render"),
    "poll-url-not-absolute": (_family('"x"').replace("body:", "protocol:\n  poll: {method: GET, url: \"{{ 'jobs/' "
                                                      "~ job.id }}\", status: $.status}\nbody:"),
                              EXAMPLE_LINE + 2, "poll URL"),
}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _validate(folder: Path) -> tuple[int, list[str]]:
    cli = Path(sys.executable).with_name("tarash-router")
    done = subprocess.run([str(cli), "validate", str(folder)], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT, preexec_fn=_limit_memory)
    return done.returncode, (done.stdout + done.stderr).splitlines()


def _spec_folder(root: Path, bad: str) -> Path:
    (root / "provider.yaml").write_text(PROVIDER)
    (root / "bad.yaml").write_text(bad)
    (root / "other.yaml").write_text(OTHER)
    return root


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_hostile_spec_is_a_finding_at_its_line_and_the_rest_is_still_checked(tmp_path, name):
    text, line, phrase = ATTACKS[name]
    code, output = _validate(_spec_folder(tmp_path, text))  # a hang is caught by the process timeout
    assert code == 1, output
    blamed = [o for o in output if o.startswith(f"{tmp_path / 'bad.yaml'}:{line}:")]
    assert any(phrase in o for o in blamed), output
    assert any(o.startswith(f"{tmp_path / 'other.yaml'}:") and "body mismatch" in o for o in output), output


def test_an_oversized_spec_file_is_refused_at_once_with_its_size(tmp_path):
    big = "notes: |\n" + ("  " + "x" * 1000 + "\n") * 50_000
    _spec_folder(tmp_path, big)
    code, output = _validate(tmp_path)
    size = len(big.encode())
    assert code == 1
    assert any(o.startswith(str(tmp_path / "bad.yaml")) and f"{size:,} bytes" in o and "at most" in o for o in output)
    assert any(o.startswith(f"{tmp_path / 'other.yaml'}:") and "body mismatch" in o for o in output), output


def test_ordinary_templates_are_not_limited(tmp_path):
    (tmp_path / "provider.yaml").write_text(PROVIDER)
    (tmp_path / "ordinary.yaml").write_text("""\
spec_version: 1
provider: hardening
models: [hardening/ordinary]
modality: video
body:
  prompt: "{{ 'Prompt: ' + request.prompt }}"
  seed: "{{ '%d' | format(request.seed) }}"
  label: "{{ '{}-{}'.format(model, request.seed) }}"
  rule: "{{ '=' * 40 }}"
  shots: "{% for i in range(3) %}{{ i }}{{ ',' if not loop.last else '' }}{% endfor %}"
examples:
  - request: {prompt: "a cat", seed: 4000000000}
    body: {prompt: "Prompt: a cat", seed: "4000000000", label: "hardening/ordinary-4000000000",
           rule: "========================================", shots: "0,1,2"}
""")
    assert validate_paths([tmp_path]) == []


def test_a_long_prompt_still_renders_byte_exact():
    prompt = ('She said "hi" \\ back\nline two\t🐱 {{ 7*7 }} {% raw %} ' * 1200)[:50_000]
    rendered = render_request(VideoGenerationConfig(provider="fal", model="fal-ai/veo3", api_key="k"),
                              VideoGenerationRequest(prompt=prompt))
    assert rendered["json"]["prompt"] == prompt


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(api_key="gemini-key") as fake:
        yield fake


def test_an_inline_video_larger_than_a_mebibyte_still_arrives_whole(google):
    video = base64.b64encode(b"\x00\x00\x00\x18ftypmp42" * 400_000).decode()  # about 6 MB of base64
    google.queue(GoogleJob(statuses=["done"], video={"encodedVideo": video, "encoding": "video/mp4"}))
    config = VideoGenerationConfig(provider="google", model="veo-3.0-generate-001", api_key="gemini-key",
                                   base_url=google.base_url, poll_interval=0.005, timeout=20)
    response = generate_video(config, VideoGenerationRequest(prompt="x"))
    assert response.video == "data:video/mp4;base64," + video
