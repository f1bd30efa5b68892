"""Routes files and routing behaviour, through the public API against the fake Fal server."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from pathlib import Path

import pytest

from fake_helpers import acme_spec_dir
from conftest import API_KEY, video_config
from tarash_router import (
    ConfigError, ContentModerationError, RateLimitError, Router, ValidationError, generate_video,
    generate_video_async,
)
from tarash_router.cli import main
from tarash_router.models import VideoGenerationRequest
from tarash_router.routing import InMemoryCooldowns, parse_duration
from tarash_router.testing import Failure, FalJob

VEO = "fal-ai/veo3/fast"
KLING = "fal-ai/kling-video/v2.6/pro/text-to-video"


def routes_file(tmp_path: Path, fal, body: str, name: str = "routes.yaml") -> Path:
    text = textwrap.dedent(body).replace("BASE", fal.base_url)
    path = tmp_path / name
    path.write_text(text)
    return path


ROUTES = """\
spec_version: 1
routes:
  video-main:
    modality: video
    targets:
      - {provider: fal, model: fal-ai/veo3/fast, base_url: BASE, api_key_env: TEST_FAL_KEY, poll_interval: 5ms}
      - {provider: fal, model: fal-ai/kling-video/v2.6/pro/text-to-video, base_url: BASE, api_key_env: TEST_FAL_KEY,
         poll_interval: 5ms}
    retry: {attempts: 3, backoff: {initial: 10ms, max: 50ms}}
    cooldown: {failures: 2, window: 60s, duration: 400ms}
    deadline: 30s
"""


@pytest.fixture
def router(tmp_path, fal, monkeypatch):
    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    return Router.from_dir(routes_file(tmp_path, fal, ROUTES), cooldowns=InMemoryCooldowns())


def run(router: Router, request: VideoGenerationRequest, route: str = "video-main"):
    return asyncio.run(router.run(route, request, None, "video"))


def test_rate_limited_twice_then_accepted_retries_the_same_target(router, fal):
    fal.queue(FalJob(submit_failures=[Failure.rate_limited(1), Failure.rate_limited(1)]))
    started = time.monotonic()
    response = run(router, VideoGenerationRequest(prompt="x"))
    assert time.monotonic() - started >= 2  # Retry-After: 1, twice
    meta = response.execution_metadata
    assert [(a.model, a.status, a.retry_number) for a in meta.attempts] == [
        (VEO, "failed", 0), (VEO, "failed", 1), (VEO, "success", 2)]
    assert meta.attempts[0].error_type == "RateLimitError" and meta.route == "video-main"
    assert not meta.fallback_triggered
    assert fal.submit_attempts == 3 and fal.submit_count() == 1


def test_503_on_every_submit_falls_back_after_retries(router, fal):
    fal.queue(FalJob(submit_failures=[Failure.server_error(503)] * 3))
    response = run(router, VideoGenerationRequest(prompt="x"))
    meta = response.execution_metadata
    assert [(a.model, a.status) for a in meta.attempts] == [(VEO, "failed")] * 3 + [(KLING, "success")]
    assert meta.fallback_triggered and meta.successful_attempt == 4
    assert [s.endpoint for s in fal.submits] == [KLING]


def test_unsupported_duration_skips_the_target_with_the_reason(router, fal):
    response = run(router, VideoGenerationRequest(prompt="x", duration_seconds=5))
    first, second = response.execution_metadata.attempts
    assert first.status == "skipped" and "allowed: 4, 6, 8" in first.reason
    assert second.model == KLING and second.status == "success"
    assert json.loads(fal.submits[0].body)["duration"] == "5"
    assert fal.submit_attempts == 1


def test_moderation_stops_the_chain_with_every_attempt_recorded(router, fal):
    fal.queue(FalJob.moderated())
    with pytest.raises(ContentModerationError) as info:
        run(router, VideoGenerationRequest(prompt="x"))
    meta = info.value.execution_metadata
    assert [(a.model, a.status, a.error_type) for a in meta.attempts] == [(VEO, "failed", "ContentModerationError")]
    assert fal.submit_count() == 1


def test_moderation_falls_back_when_the_route_opts_in(tmp_path, fal, monkeypatch):
    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    text = ROUTES.replace("    deadline: 30s", "    deadline: 30s\n    fallback_on: [moderation]")
    router = Router.from_dir(routes_file(tmp_path, fal, text), cooldowns=InMemoryCooldowns())
    fal.queue(FalJob.moderated())
    response = run(router, VideoGenerationRequest(prompt="x"))
    assert response.execution_metadata.attempts[-1].model == KLING


def test_cooldown_skips_a_failing_target_then_tries_it_again(router, fal):
    # Two generation failures on veo open its breaker (failures: 2); kling serves meanwhile.
    for _ in range(2):
        fal.queue(FalJob.completed_with_error(), FalJob())
        run(router, VideoGenerationRequest(prompt="x"))
    response = run(router, VideoGenerationRequest(prompt="x"))
    skipped = response.execution_metadata.attempts[0]
    assert skipped.model == VEO and skipped.status == "skipped" and "cooling down" in skipped.reason
    time.sleep(0.45)
    response = run(router, VideoGenerationRequest(prompt="x"))  # half-open trial succeeds and closes it
    assert [(a.model, a.status) for a in response.execution_metadata.attempts] == [(VEO, "success")]
    assert run(router, VideoGenerationRequest(prompt="y")).execution_metadata.attempts[0].status == "success"


def test_weighted_strategy_balances_by_weight(tmp_path, fal, monkeypatch):
    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    text = ROUTES.replace("    targets:", "    strategy: weighted\n    targets:").replace(
        "poll_interval: 5ms}", "poll_interval: 5ms, weight: 3}", 1)
    router = Router.from_dir(routes_file(tmp_path, fal, text), cooldowns=InMemoryCooldowns())
    fal.default_job = FalJob(submit_status="COMPLETED", statuses=["COMPLETED"])
    try:
        async def many():
            return await asyncio.gather(*(router.run("video-main", VideoGenerationRequest(prompt="x"), None, "video")
                                          for _ in range(400)))
        asyncio.run(many())
    finally:
        fal.default_job = FalJob()
    to_first = fal.submit_count(VEO)
    assert 260 <= to_first <= 340 and fal.submit_count() == 400


def test_route_name_through_the_public_api(tmp_path, fal, monkeypatch):
    from tarash_router.routing import reset_router

    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    monkeypatch.setenv("TARASH_ROUTE_DIRS", str(routes_file(tmp_path, fal, ROUTES)))
    from tarash_router.settings import get_settings

    get_settings.cache_clear()
    reset_router()
    try:
        assert generate_video("video-main", VideoGenerationRequest(prompt="x")).execution_metadata.route == "video-main"
        assert asyncio.run(generate_video_async("video-main", VideoGenerationRequest(prompt="x"))).video
        with pytest.raises(ValidationError, match="unknown route 'nope'.*video-main"):
            generate_video("nope", VideoGenerationRequest(prompt="x"))
    finally:
        monkeypatch.delenv("TARASH_ROUTE_DIRS")
        get_settings.cache_clear()
        reset_router()


def test_explain_names_targets_skips_and_policies(router, tmp_path, fal, capsys, monkeypatch):
    plan = router.explain("video-main", VideoGenerationRequest(prompt="x", duration_seconds=5))
    assert [(s.model, s.action) for s in plan.steps] == [(VEO, "skip"), (KLING, "try")]
    assert "allowed: 4, 6, 8" in plan.steps[0].reason
    request = tmp_path / "r.json"
    request.write_text('{"prompt": "x", "duration_seconds": 5}')
    assert main(["explain", "--route", "video-main", "--request", str(request), "--routes",
                 str(tmp_path / "routes.yaml")]) == 0
    out = capsys.readouterr().out
    assert f"skip fal/{VEO}: unsupported" in out and f"try  fal/{KLING}" in out
    assert "retry: 3 tries per target" in out and "cooldown: 2 failures in 60s" in out


def test_missing_key_skips_a_fallback_target(tmp_path, fal, monkeypatch):
    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    text = ROUTES.replace("api_key_env: TEST_FAL_KEY, poll_interval", "api_key_env: UNSET_KEY_VAR, poll_interval", 1)
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    router = Router.from_dir(routes_file(tmp_path, fal, text), cooldowns=InMemoryCooldowns())
    response = run(router, VideoGenerationRequest(prompt="x"))
    assert "no API key" in response.execution_metadata.attempts[0].reason


def test_explain_can_assume_keys_and_lists_the_missing_ones_once(tmp_path, fal, monkeypatch, capsys):
    for name in ("TEST_FAL_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    routes = routes_file(tmp_path, fal, ROUTES)
    router = Router.from_dir(routes, cooldowns=InMemoryCooldowns())
    without = router.explain("video-main", VideoGenerationRequest(prompt="x"))
    assert [s.action for s in without.steps] == ["skip", "skip"] and "no API key" in without.steps[0].reason
    plan = router.explain("video-main", VideoGenerationRequest(prompt="x"), assume_keys=True)
    assert [s.action for s in plan.steps] == ["try", "try"] and len(plan.missing_keys) == 1
    request = tmp_path / "r.json"
    request.write_text('{"prompt": "x"}')
    assert main(["explain", "--route", "video-main", "--request", str(request), "--routes", str(routes),
                 "--assume-keys"]) == 0
    out = capsys.readouterr().out
    assert out.count("no API key for fal") == 1 and "keys assumed, not set here" in out


def test_all_targets_unsupported_is_a_validation_error_listing_reasons(router, fal):
    with pytest.raises(ValidationError, match="no target can serve") as info:
        run(router, VideoGenerationRequest(prompt="x", duration_seconds=7))
    assert len(info.value.execution_metadata.attempts) == 2 and fal.requests == []


def test_deadline_and_max_attempts_bound_the_route(tmp_path, fal, monkeypatch):
    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    text = ROUTES.replace("    deadline: 30s", "    deadline: 30s\n    max_attempts: 2")
    router = Router.from_dir(routes_file(tmp_path, fal, text), cooldowns=InMemoryCooldowns())
    fal.queue(FalJob(submit_failures=[Failure.rate_limited(0.01)] * 5))
    with pytest.raises(RateLimitError) as info:
        run(router, VideoGenerationRequest(prompt="x"))
    assert info.value.execution_metadata.total_attempts == 2 and fal.submit_attempts == 2


def test_seed_fallback_configs_skip_an_unsupported_fallback(fal):
    config = video_config(fal, model=KLING, fallback_configs=[video_config(fal, model="fal-ai/veo3")])
    fal.queue(FalJob.completed_with_error())
    with pytest.raises(Exception) as info:
        generate_video(config, VideoGenerationRequest(prompt="x", duration_seconds=10))
    attempts = info.value.execution_metadata.attempts
    assert attempts[0].status == "failed" and attempts[1].status == "skipped"


# ---------------------------------------------------------------- strict loading


def load_error(tmp_path, fal, text) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Router.from_dir(routes_file(tmp_path, fal, text), cooldowns=InMemoryCooldowns())
    return info.value


def test_unknown_key_in_routes_file(tmp_path, fal):
    err = load_error(tmp_path, fal, ROUTES.replace("    deadline: 30s", "    deadlien: 30s"))
    assert err.line == 11 and "unknown key 'deadlien'" in err.message and "did you mean 'deadline'" in err.message


def test_bad_duration(tmp_path, fal):
    err = load_error(tmp_path, fal, ROUTES.replace("deadline: 30s", "deadline: 30x"))
    assert err.line == 11 and err.key == "routes.video-main.deadline" and "30x" in err.message


def test_unknown_provider_and_model(tmp_path, fal):
    err = load_error(tmp_path, fal, ROUTES.replace("{provider: fal, model: fal-ai/veo3/fast",
                                                   "{provider: fol, model: fal-ai/veo3/fast"))
    assert err.line == 6 and "unknown provider 'fol'" in err.message
    err = load_error(tmp_path, fal, ROUTES.replace("modality: video", "modality: image").replace(
        "{provider: fal, model: fal-ai/veo3/fast", "{provider: runway, model: gen4.5"))
    assert err.line == 6 and "video model" in err.message


def test_duplicate_route_names_across_files(tmp_path, fal):
    routes_file(tmp_path, fal, ROUTES, "a.yaml")
    routes_file(tmp_path, fal, ROUTES, "b.yaml")
    with pytest.raises(ConfigError) as info:
        Router.from_dir(tmp_path)
    assert info.value.file.endswith("b.yaml") and "duplicate route name 'video-main'" in info.value.message
    assert "a.yaml:3" in info.value.message


def test_reload_keeps_old_routes_when_the_new_file_is_invalid(router, tmp_path, fal):
    path = tmp_path / "routes.yaml"
    path.write_text(path.read_text().replace("deadline: 30s", "deadline: soon"))
    errors = router.reload()
    assert errors and errors[0].line == 11
    assert router.get("video-main").policy.deadline == 30
    path.write_text(path.read_text().replace("deadline: soon", "deadline: 1m"))
    assert router.reload() == [] and router.get("video-main").policy.deadline == 60


def test_parse_duration():
    assert parse_duration("500ms") == 0.5 and parse_duration("15m") == 900 and parse_duration(2) == 2.0
    with pytest.raises(ValueError):
        parse_duration("30x")


def test_cooldown_state_shared_through_redis(tmp_path, fal, monkeypatch):
    from journal_helpers import redis_server
    from tarash_router.routing import open_cooldowns

    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    with redis_server() as url:
        first = Router.from_dir(routes_file(tmp_path, fal, ROUTES), cooldowns=open_cooldowns(url))
        second = Router.from_dir(tmp_path / "routes.yaml", cooldowns=open_cooldowns(url))
        for _ in range(2):  # two failures through the first process open veo's breaker
            fal.queue(FalJob.completed_with_error(), FalJob())
            run(first, VideoGenerationRequest(prompt="x"))
        response = run(second, VideoGenerationRequest(prompt="x"))  # the second process agrees
        assert response.execution_metadata.attempts[0].status == "skipped"
        assert "cooling down" in second.explain("video-main", VideoGenerationRequest(prompt="x")).steps[0].reason
        time.sleep(0.45)
        assert run(second, VideoGenerationRequest(prompt="x")).execution_metadata.attempts[0].status == "success"


def test_abandoned_half_open_trial_expires():
    from tarash_router.routing.policy import CooldownPolicy

    store, policy = InMemoryCooldowns(), CooldownPolicy(failures=1, window=60, duration=10)

    def check(now: float) -> float | None:
        return asyncio.run(store.check("t", policy, now=now))

    asyncio.run(store.record_failure("t", policy, now=0))
    assert check(5) == pytest.approx(5)
    assert check(11) is None          # this caller gets the half-open trial...
    assert check(12) is not None      # ...others wait for it
    assert check(22) is None          # the trial never reported back: a new one


def test_a_router_runs_its_routes_against_its_own_registry(tmp_path, fal, monkeypatch):
    """Routes are checked *and run* against the registry the router was given, not the global one."""
    from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir, get_registry

    acme_spec_dir(tmp_path / "specs")
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir(), tmp_path / "specs"])
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""\
        spec_version: 1
        routes:
          acme-only:
            modality: video
            targets:
              - {{provider: acme, model: acme/clip, base_url: "{fal.base_url}", poll_interval: 5ms}}
    """))
    monkeypatch.setenv("ACME_KEY", API_KEY)
    router = Router.from_dir(routes, registry=registry, cooldowns=InMemoryCooldowns())
    with pytest.raises(Exception):  # noqa: B017 - the process-wide registry has never heard of acme
        get_registry().resolve("acme", "acme/clip", "video")
    response = run(router, VideoGenerationRequest(prompt="a cat"), route="acme-only")
    assert response.video and fal.submits[0].endpoint == "acme/clip"
    assert router.explain("acme-only", VideoGenerationRequest(prompt="a cat")).steps[0].action == "try"
