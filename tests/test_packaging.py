"""The wheel users install: typed, carrying the built-in specs, with the extras the docs name, and no
extra that installs an SDK the code never imports."""

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each vendor SDK an extra may install, and the module the code imports it as.
SDK_MODULES = {"openai": "openai", "google-genai": "google.genai"}
DOCUMENTED_EXTRAS = {"fal", "openai", "replicate", "veo3", "runway", "google", "redis", "server", "all"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True, timeout=120)
    return zipfile.ZipFile(next(out.glob("tarash_router-*.whl")))


def _metadata(wheel: zipfile.ZipFile):
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return Parser().parsestr(wheel.read(name).decode())


def _requirements(metadata, extra: str) -> set[str]:
    marker = f"extra == '{extra}'"
    return {r.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip()
            for r in metadata.get_all("Requires-Dist") or [] if marker in r}


def test_the_wheel_is_typed_and_carries_the_built_in_specs(wheel):
    names = set(wheel.namelist())
    assert "tarash_router/py.typed" in names
    assert "tarash_router/_builtin_specs/fal/provider.yaml" in names
    assert "Typing :: Typed" in _metadata(wheel).get_all("Classifier")


def test_the_documented_extras_exist_and_veo3_installs_the_google_sdk(wheel):
    metadata = _metadata(wheel)
    assert DOCUMENTED_EXTRAS <= set(metadata.get_all("Provides-Extra"))
    assert _requirements(metadata, "veo3") == {"google-genai"} == _requirements(metadata, "google")
    assert _requirements(metadata, "fal") == _requirements(metadata, "replicate") == set()  # YAML engine only


def test_no_extra_installs_an_sdk_the_code_never_imports(wheel):
    metadata = _metadata(wheel)
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tarash_router").rglob("*.py")
                       if "testing" not in p.parts)
    for extra in metadata.get_all("Provides-Extra"):
        for requirement in _requirements(metadata, extra):
            module = SDK_MODULES.get(requirement)
            if module is not None:
                assert f'"{module}"' in source, f"extra {extra!r} installs {requirement}, which no module imports"
    for sdk in ("fal-client", "replicate", "runwayml"):
        assert all(sdk not in _requirements(metadata, e) for e in metadata.get_all("Provides-Extra"))


def test_all_lists_exactly_the_lazy_exports():
    import tarash_router

    assert set(tarash_router.__all__) == set(tarash_router._EXPORTS) | {"__version__"}


def test_a_users_script_type_checks_strictly(tmp_path):
    """What users import from the package is typed and explicitly exported (mypy --strict)."""
    script = tmp_path / "app.py"
    script.write_text(
        "from tarash_router import Client, VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse\n"
        "from tarash_router import generate_video, submit_video, Job, ValidationError\n\n\n"
        "def run(client: Client) -> VideoGenerationResponse:\n"
        "    config = VideoGenerationConfig(provider='fal', model='fal-ai/veo3/fast')\n"
        "    request = VideoGenerationRequest(prompt='a fox', duration_seconds=8)\n"
        "    job: Job = submit_video(config, request)\n"
        "    client.wait_video(job.id)\n"
        "    try:\n"
        "        return generate_video(config, request)\n"
        "    except ValidationError as exc:\n"
        "        raise RuntimeError(exc.message) from None\n")
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent",
                           "--config-file=/dev/null", "--python-version=3.11", str(script)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert "does not explicitly export" not in done.stdout
    assert done.returncode == 1 and "wait_video" in done.stdout  # the one real mistake in the script is found
    assert done.stdout.count("error:") == 1, done.stdout
