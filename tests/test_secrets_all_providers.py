"""A recognisable API key never leaks, for every provider, on success and failure paths.

Every provider runs against its loopback fake with a distinctive key (`SECRET-<provider>-9f3c1e`),
passed as `config.api_key` or through the provider's environment variable (Vertex: the OAuth token
in `provider_config`, or an express-mode key). After each run the key must appear in none of:
log records of every logger at DEBUG and above (httpx, httpcore, openai, google-genai included),
the exception's str/repr/traceback/raw_response/execution_metadata, the response's JSON and repr,
progress updates, the SQLite journal (records, claims and the raw database files), the dry run
`render_request`, the CLI's `render` and `jobs list`/`jobs show` output, anything printed and
any warning. Each case also proves the key really reached the fake, so it cannot pass vacuously.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tarash_router import (
    AuthenticationError, TarashException, TimeoutError, generate_image, generate_video, render_request,
)
from tarash_router.cli import main as cli_main
from tarash_router.journal import open_journal, set_journal
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
)
from tarash_router.testing._server import Failure, FakeServer
from tarash_router.testing.fal import FakeFal, FalJob
from tarash_router.testing.google import FakeGoogle, GoogleJob, google_error
from tarash_router.testing.openai import FakeAzureOpenAI, FakeOpenAI, SoraJob, server_error
from tarash_router.testing.replicate import FakeReplicate, ReplicateJob
from tarash_router.testing.runway import FakeRunway, RunwayJob, overloaded
from tarash_router.testing.stability import FakeStability, StabilityScript, stability_error
from tarash_router.settings import get_settings
from tarash_router.testing.xai import FakeXAI, XAIJob, xai_error

pytestmark = [
    pytest.mark.usefixtures("retired_still_served"),
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The generate_images method is deprecated"),
]

# The key a fake wants in the auth-rejection cases: ours is then refused (401/403, or 400 for
# xAI and the Gemini API, as those providers answer).
OTHER_KEY = "someone-elses-key-0000"
# Loggers that may carry their own level or handlers; forced to DEBUG as well as the root.
LOGGERS = ["tarash_router", "httpx", "httpcore", "aiohttp", "httpx2", "httpcore2", "openai", "google_genai", "google", "google.auth", "urllib3",
           "asyncio", "aiohttp"]
CAT = "https://example.com/cat.jpg"


def secret_for(provider: str) -> str:
    return f"SECRET-{provider}-9f3c1e"


# ---------------------------------------------------------------------------- providers


@dataclass(frozen=True)
class Scenario:
    """One run: what the fake is scripted to do and how the run must end."""

    name: str
    script: Callable[[Any], None]
    raises: type[BaseException] | None = None  # None: success
    modality: str | None = None  # None: the provider's main modality
    reject_key: bool = False  # the fake wants another key
    via_env: bool = False  # the key comes from the environment, not the config
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A provider, its fake and how to configure a generation against it."""

    name: str
    make_fake: Callable[[str], FakeServer]
    modality: str
    video_model: str | None
    image_model: str | None
    env: list[str]  # the provider's key variables (the first one is set in the env scenario)
    sent_headers: Callable[[str], dict[str, str]]  # header -> exact value the fake must receive
    base_url: Callable[[Any], str] = lambda fake: fake.base_url
    auth_attr: str = "api_key"  # the fake's attribute holding the key it accepts
    provider_config: Callable[[str], dict[str, Any]] = lambda secret: {}
    key_in_config: bool = True  # False: the secret lives in provider_config (Vertex token)
    video_request: Callable[[], VideoGenerationRequest] = lambda: VideoGenerationRequest(prompt="a cat on a piano")
    scenarios: tuple[Scenario, ...] = ()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def queue(*jobs: Any) -> Callable[[Any], None]:
    return lambda fake: fake.queue(*jobs)


def nothing(fake: Any) -> None:
    return None


def common(success: Callable, image: Callable | None, failed: Callable, server: Callable, reset: Callable,
           never_done: Callable | None) -> tuple[Scenario, ...]:
    """The scenarios every provider runs, scripted for its fake."""
    out = [
        Scenario("success", success),
        Scenario("success-env", success, via_env=True),
        Scenario("auth-rejected", nothing, raises=AuthenticationError, reject_key=True),
        Scenario("job-failed", failed, raises=TarashException),
        Scenario("server-error", server, raises=TarashException),
        Scenario("connection-reset", reset, raises=TarashException),
    ]
    if image is not None:
        out.append(Scenario("image-success", image, modality="image"))
    if never_done is not None:
        out.append(Scenario("deadline", never_done, raises=TimeoutError,
                            overrides={"timeout": 0.3, "poll_interval": 0.02}))
    return tuple(out)


TARGETS = [
    Target(
        "fal", lambda s: FakeFal(api_key=s), "video", "fal-ai/veo3/fast", "fal-ai/flux/dev", ["FAL_KEY"],
        lambda s: {"Authorization": f"Key {s}"},
        scenarios=common(
            success=queue(FalJob(statuses=["IN_QUEUE", "IN_PROGRESS", "COMPLETED"])),
            image=queue(FalJob.images()),
            failed=queue(FalJob.moderated()),
            server=queue(FalJob(submit_failures=[Failure.server_error(500)])),
            # aiohttp's connection layer retries a GET once on a reset keep-alive connection (RFC 9112):
            # enough resets that every retry fails too; the status stream is reset first.
            reset=queue(FalJob(poll_failures={n: Failure.connection_reset() for n in range(1, 13)},
                               stream_failure=Failure.connection_reset())),
            never_done=queue(FalJob(statuses=["IN_QUEUE"])),
        ) + (Scenario("job-error", queue(FalJob.completed_with_error()), raises=TarashException),),
    ),
    Target(
        "replicate", lambda s: FakeReplicate(api_key=s), "video", "google/veo-3.1", "black-forest-labs/flux-2-pro",
        ["REPLICATE_API_TOKEN"], bearer,
        scenarios=common(
            success=queue(ReplicateJob(statuses=["starting", "processing", "succeeded"])),
            image=queue(ReplicateJob.images()),
            failed=queue(ReplicateJob.moderated()),
            server=queue(ReplicateJob(submit_failures=[Failure.server_error(500)])),
            reset=queue(ReplicateJob(submit_failures=[Failure.connection_reset()])),
            never_done=queue(ReplicateJob(statuses=["processing"])),
        ) + (Scenario("job-error", queue(ReplicateJob.failed()), raises=TarashException),),
    ),
    Target(
        "runway", lambda s: FakeRunway(api_key=s), "video", "gen4_turbo", "gen4_image", ["RUNWAYML_API_SECRET"],
        bearer,
        video_request=lambda: VideoGenerationRequest(prompt="the cat jumps",
                                                     image_list=[{"image": CAT, "type": "first_frame"}]),
        scenarios=common(
            success=queue(RunwayJob()),
            image=queue(RunwayJob()),
            failed=queue(RunwayJob.moderated()),
            server=queue(RunwayJob(create_failures=[overloaded(502)])),
            reset=queue(RunwayJob(create_failures=[Failure.connection_reset()])),
            never_done=queue(RunwayJob.never_finishing()),
        ) + (Scenario("job-error", queue(RunwayJob.failed()), raises=TarashException),),
    ),
    Target(
        "stability", lambda s: FakeStability(api_key=s), "image", None, "stable-image-core", ["STABILITY_API_KEY"],
        bearer,
        scenarios=common(
            success=queue(StabilityScript()),
            image=None,
            failed=queue(StabilityScript.content_filtered()),
            server=queue(StabilityScript(failures=[stability_error(500, "internal_error", "boom")])),
            reset=queue(StabilityScript(failures=[Failure.connection_reset()])),
            never_done=None,  # synchronous API: nothing to poll or cancel
        ) + (Scenario("refused", queue(StabilityScript.flagged()), raises=TarashException),),
    ),
    Target(
        "xai", lambda s: FakeXAI(api_key=s), "video", "grok-imagine-video", "grok-imagine-image", ["XAI_API_KEY"],
        bearer,
        scenarios=common(
            success=queue(XAIJob(statuses=["pending", "pending", "done"])),
            image=queue(XAIJob()),
            failed=queue(XAIJob.failed("GPU fell over")),
            server=queue(XAIJob(submit_failures=[xai_error(500, "internal")])),
            reset=queue(XAIJob(submit_failures=[Failure.connection_reset()])),
            never_done=queue(XAIJob(statuses=["pending"])),
        ) + (Scenario("moderated", queue(XAIJob.moderated()), raises=TarashException),),
    ),
    Target(
        "google", lambda s: FakeGoogle(api_key=s), "video", "veo-3.1-generate-preview", "imagen-4.0-generate-001",
        ["GOOGLE_API_KEY", "GEMINI_API_KEY"], lambda s: {"x-goog-api-key": s},
        scenarios=common(
            success=queue(GoogleJob(statuses=["running", "done"])),
            image=queue(GoogleJob()),
            failed=queue(GoogleJob.moderated()),
            server=queue(GoogleJob(submit_failures=[google_error(500, "internal")])),
            reset=queue(GoogleJob(submit_failures=[Failure.connection_reset()])),
            never_done=queue(GoogleJob(statuses=["running"])),
        ) + (Scenario("job-error", queue(GoogleJob.failed()), raises=TarashException),),
    ),
    Target(
        # The secret is the OAuth access token in provider_config. Vertex reads no key variable
        # (its handler takes the express-mode key from config.api_key only), so its "env"
        # scenario runs express mode with the secret as config.api_key instead.
        "google-vertex", lambda s: FakeGoogle(api_key=s, access_token=s), "video", "veo-3.1-generate-preview",
        "imagen-4.0-generate-001", [], lambda s: {"authorization": f"Bearer {s}"}, auth_attr="access_token",
        provider_config=lambda s: {"project": "proj-7", "location": "us-central1", "access_token": s},
        key_in_config=False,
        scenarios=common(
            success=queue(GoogleJob(statuses=["running", "done"])),
            image=queue(GoogleJob()),
            failed=queue(GoogleJob.moderated()),
            server=queue(GoogleJob(submit_failures=[google_error(500, "internal")])),
            reset=queue(GoogleJob(submit_failures=[Failure.connection_reset()])),
            never_done=queue(GoogleJob(statuses=["running"])),
        ) + (Scenario("job-error", queue(GoogleJob.failed()), raises=TarashException),),
    ),
    Target(
        "openai", lambda s: FakeOpenAI(api_key=s), "video", "sora-2", "gpt-image-1.5", ["OPENAI_API_KEY"], bearer,
        base_url=lambda fake: f"{fake.base_url}/v1",
        scenarios=common(
            success=queue(SoraJob(statuses=["queued", "in_progress", "completed"])),
            image=nothing,
            failed=queue(SoraJob.moderated()),
            server=queue(SoraJob(create_failures=[server_error(500)])),
            reset=queue(SoraJob(create_failures=[Failure.connection_reset()])),
            never_done=queue(SoraJob(statuses=["in_progress"])),
        ) + (Scenario("job-error", queue(SoraJob.failed("internal_error", "the renderer crashed")),
                      raises=TarashException),),
    ),
    Target(
        "azure-openai",
        lambda s: FakeAzureOpenAI(api_key=s, deployments={"my-sora": "sora-2", "images-prod": "gpt-image-1"}),
        "video", "my-sora", "images-prod", ["AZURE_OPENAI_API_KEY"], lambda s: {"api-key": s},
        scenarios=common(
            success=queue(SoraJob(statuses=["queued", "in_progress", "completed"])),
            image=nothing,
            failed=queue(SoraJob.moderated()),
            server=queue(SoraJob(create_failures=[server_error(500)])),
            reset=queue(SoraJob(create_failures=[Failure.connection_reset()])),
            never_done=queue(SoraJob(statuses=["in_progress"])),
        ) + (Scenario("job-error", queue(SoraJob.failed("internal_error", "the renderer crashed")),
                      raises=TarashException),),
    ),
]
BY_NAME = {t.name: t for t in TARGETS}
CASES = [pytest.param(t.name, s, id=f"{t.name}-{s.name}") for t in TARGETS for s in t.scenarios]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeServer]]:
    """One running fake per provider (started on first use), each accepting only its secret."""
    started: dict[str, FakeServer] = {}
    try:
        yield started
    finally:
        for fake in started.values():
            fake.stop()


def fake_for(fakes: dict[str, FakeServer], target: Target) -> FakeServer:
    fake = fakes.get(target.name)
    if fake is None:
        fake = fakes[target.name] = target.make_fake(secret_for(target.name)).start()
    fake.clear()
    setattr(fake, target.auth_attr, secret_for(target.name))
    return fake


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Any]:
    store = open_journal(f"sqlite:///{tmp_path / 'jobs.db'}")
    set_journal(store)
    try:
        yield store
    finally:
        set_journal(None)
        asyncio.run(store.close())


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of every logger at DEBUG and above, non-propagating loggers included."""
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    isolated = [logging.getLogger(n) for n, lg in logging.root.manager.loggerDict.items()
                if isinstance(lg, logging.Logger) and not lg.propagate]
    for logger in isolated:
        logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        for logger in isolated:
            logger.removeHandler(caplog.handler)


# ---------------------------------------------------------------------------- the test


class Evidence:
    """Labelled texts the secret must not appear in."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, label: str, value: Any) -> None:
        self.items.append((label, value if isinstance(value, str) else repr(value)))

    def leaks(self, secret: str) -> list[str]:
        return [label for label, text in self.items if secret in text]


def build_config(target: Target, modality: str, fake: FakeServer, secret: str, scenario: Scenario,
                 api_key: str | None) -> VideoGenerationConfig | ImageGenerationConfig:
    provider_config = target.provider_config(secret)
    if scenario.via_env and not target.env:  # Vertex express mode: the key instead of the token
        provider_config = {}
    values: dict[str, Any] = {
        "provider": target.name, "model": target.video_model if modality == "video" else target.image_model,
        "api_key": api_key, "base_url": target.base_url(fake), "provider_config": provider_config,
        "poll_interval": 0.005, "timeout": 10, **scenario.overrides,
    }
    cls = VideoGenerationConfig if modality == "video" else ImageGenerationConfig
    return cls(**values)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli_main(args)
    out = capsys.readouterr()
    return f"exit={code}\n{out.out}\n{out.err}"


@pytest.mark.parametrize(("provider", "scenario"), CASES)
def test_secret_never_leaks(provider: str, scenario: Scenario, fakes, journal, all_logs, capsys, monkeypatch,
                            tmp_path: Path):
    target = BY_NAME[provider]
    secret = secret_for(provider)
    fake = fake_for(fakes, target)
    for name in target.env + ["GOOGLE_API_KEY", "GEMINI_API_KEY"]:
        monkeypatch.delenv(name, raising=False)
    if scenario.reject_key:
        setattr(fake, target.auth_attr, OTHER_KEY)
    api_key: str | None = secret if target.key_in_config else None
    if scenario.via_env:
        if target.env:
            monkeypatch.setenv(target.env[0], secret)
            api_key = None
        else:
            api_key = secret  # Vertex express mode
    modality = scenario.modality or target.modality
    config = build_config(target, modality, fake, secret, scenario, api_key)
    request: VideoGenerationRequest | ImageGenerationRequest
    if modality == "video":
        request = target.video_request()
    else:
        request = ImageGenerationRequest(prompt="a lighthouse at dusk")
    if scenario.via_env:  # also through the idempotency layer, whose claims live in the journal
        request = request.model_copy(update={"idempotency_key": f"secrets-{provider}-{scenario.name}"})
    scenario.script(fake)
    capsys.readouterr()

    evidence = Evidence()
    updates: list[str] = []
    response = error = None
    generate = generate_video if modality == "video" else generate_image
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            response = generate(config, request, on_progress=lambda u: updates.append(u.model_dump_json()))
        except TarashException as exc:
            error = exc
    printed = capsys.readouterr()

    # How the run ended.
    if scenario.raises is None:
        assert error is None, f"expected success, got {error!r}"
    else:
        assert isinstance(error, scenario.raises), f"expected {scenario.raises.__name__}, got {error!r}"

    # The key really reached the fake (so the checks below are not vacuous).
    sent = [v for r in fake.requests for v in r.headers.values() if secret in v]
    assert sent, f"the secret never reached the fake: {[dict(r.headers) for r in fake.requests]}"
    if scenario.raises is None:
        expected = ({"x-goog-api-key": secret} if scenario.via_env and not target.env
                    else target.sent_headers(secret))
        for header, value in expected.items():
            assert any(r.headers.get(header) == value for r in fake.requests), (header, fake.requests[:1])

    # Everything a caller, a log pipeline or an operator can see.
    evidence.add("stdout during generation", printed.out)
    evidence.add("stderr during generation", printed.err)
    for w in caught:
        evidence.add(f"warning {w.category.__name__}", str(w.message))
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    for record in all_logs.records:
        label = f"log record {record.name}:{record.levelname} {record.msg!r:.80}"
        evidence.add(label, record.getMessage())
        evidence.add(f"{label} (formatted)", formatter.format(record))
        evidence.add(f"{label} (args)", record.args)
        evidence.add(f"{label} (attributes)", {k: v for k, v in vars(record).items() if k != "exc_info"})
    evidence.add("caplog.text", all_logs.text)
    # The HTTP stack's own DEBUG records were captured (httpcore's trace under httpx's own connection
    # layer, which `make test` runs this file on too; httpx2/httpcore2 under the openai SDK).
    if get_settings().transport == "httpx" or provider in ("openai", "azure-openai"):
        assert any(r.name.startswith(("httpcore", "httpx")) and r.levelno == logging.DEBUG for r in all_logs.records)
    for i, update in enumerate(updates):
        evidence.add(f"progress update {i}", update)
    if response is not None:
        evidence.add("response.model_dump_json()", response.model_dump_json())
        evidence.add("repr(response)", repr(response))
    if error is not None:
        evidence.add("str(exception)", str(error))
        evidence.add("repr(exception)", repr(error))
        evidence.add("exception.message", error.message)
        evidence.add("exception attributes", {k: v for k, v in vars(error).items() if k != "execution_metadata"})
        evidence.add("exception.raw_response", json.dumps(error.raw_response, default=repr))
        metadata = error.execution_metadata
        evidence.add("exception.execution_metadata",
                     metadata.model_dump_json() if hasattr(metadata, "model_dump_json") else repr(metadata))
        evidence.add("exception traceback", "".join(traceback.format_exception(error)))

    # The journal: every record and claim, and the raw database files.
    records = asyncio.run(journal.list(1000))
    for record in records:
        evidence.add(f"journal record {record.job_id}", record.model_dump_json())
    if request.idempotency_key:
        claim = asyncio.run(journal.get_claim(request.idempotency_key))
        evidence.add("idempotency claim", claim.model_dump_json() if claim else "")
    for path in sorted(tmp_path.glob("jobs.db*")):
        evidence.add(f"journal file {path.name}", path.read_bytes().decode("latin-1"))

    # Dry runs: the API and the CLI (the CLI reads the key from the environment).
    try:
        evidence.add("render_request(config, request)", json.dumps(render_request(config, request), default=repr))
    except TarashException as exc:
        evidence.add("render_request error", f"{exc!s} {exc!r}")
    request_file = tmp_path / "request.json"
    request_file.write_text(request.model_dump_json(exclude={"idempotency_key"}))
    model = config.model
    with monkeypatch.context() as env:
        for name in target.env:
            env.setenv(name, secret)
        evidence.add("cli render", cli(["render", "--provider", provider, "--model", model, "--modality", modality,
                                        "--request", str(request_file), "--base-url", target.base_url(fake)],
                                       capsys))
    evidence.add("cli jobs list", cli(["jobs", "list"], capsys))
    job_ids = {r.job_id for r in records}
    job_ids |= {i for i in (getattr(response, "request_id", None), getattr(error, "request_id", None)) if i}
    for job_id in sorted(job_ids):
        evidence.add(f"cli jobs show {job_id}", cli(["jobs", "show", job_id], capsys))

    assert len(evidence.items) > 5
    leaks = evidence.leaks(secret)
    assert not leaks, f"{secret} leaked into: {leaks}"


# ---------------------------------------------------------------------------- config reprs


@pytest.mark.parametrize("provider", [t.name for t in TARGETS])
def test_config_repr_hides_the_credential(provider: str, fakes):
    target = BY_NAME[provider]
    secret = secret_for(provider)
    fake = fake_for(fakes, target)
    modality = target.modality
    config = build_config(target, modality, fake, secret, Scenario("repr", nothing),
                          secret if target.key_in_config else None)
    assert secret not in repr(config) and secret not in str(config)
