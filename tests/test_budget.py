"""Cost at routing, against the loopback fake Fal: every attempt and response carries its estimate (or the
provider's reported cost); a route budget refuses before any HTTP and skips targets over it; a spend limit
per period holds in memory and across processes through a real Redis."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from conftest import API_KEY, video_config
from tarash_router import BudgetExceededError, ValidationError, generate_video
from tarash_router.engine.runtime import Runtime
from tarash_router.models import VideoGenerationRequest
from tarash_router.routing import Router
from tarash_router.routing.spend import RedisSpend, period_of, reset_spend_stores
from tarash_router.settings import TarashSettings
from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir
from tarash_router.testing import Failure, FalJob

VEO = "fal-ai/veo3.1"  # $0.40/s with audio (fal's default): 8 s (fal's default) = $3.20
KLING = "fal-ai/kling-video/v3/turbo/pro/text-to-video"  # $0.14/s: 5 s = $0.70


@pytest.fixture(autouse=True)
def fresh_spend(monkeypatch):
    monkeypatch.setenv("TEST_FAL_KEY", API_KEY)
    reset_spend_stores()
    yield
    reset_spend_stores()


def router_for(tmp_path: Path, fal, routes: str, settings: TarashSettings | None = None,
               spec_dirs: list[Path] | None = None) -> Router:
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(routes).replace("BASE", fal.base_url))
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir(), *(spec_dirs or [])])
    return Router.from_dir(path, runtime=Runtime(settings=settings, registry=registry))


def run(router: Router, request: VideoGenerationRequest, route: str = "main"):
    return asyncio.run(router.run(route, request, None, "video"))


def target(model: str, extra: str = "") -> str:
    return f"{{provider: fal, model: {model}, base_url: BASE, api_key_env: TEST_FAL_KEY, poll_interval: 5ms{extra}}}"


def test_every_response_and_attempt_carries_the_estimate(fal):
    response = generate_video(video_config(fal, model=VEO), VideoGenerationRequest(prompt="a cat", duration_seconds=4))
    attempt = response.execution_metadata.attempts[0]
    assert response.cost == attempt.cost
    assert (response.cost.amount, response.cost.estimated) == (1.6, True)
    assert response.cost.basis.startswith("4 s × $0.40/s (720p or 1080p, audio) = $1.60")
    unpriced = generate_video(video_config(fal, model="fal-ai/veo3.1/fast"), VideoGenerationRequest(prompt="a cat"))
    assert unpriced.cost is None and unpriced.execution_metadata.attempts[0].cost is None


def test_a_route_budget_refuses_before_any_http(tmp_path, fal):
    router = router_for(tmp_path, fal, f"""\
        spec_version: 1
        routes:
          main:
            modality: video
            targets: [{target(VEO)}]
            budget: {{max_per_request: 2.00}}
        """)
    with pytest.raises(BudgetExceededError) as caught:
        run(router, VideoGenerationRequest(prompt="a cat"))
    assert fal.requests == []  # nothing was sent, not even an upload
    assert not caught.value.retryable
    [attempt] = caught.value.execution_metadata.attempts
    assert attempt.status == "skipped" and attempt.cost.amount == 3.2
    assert attempt.reason.startswith("over budget: the estimate $3.20 (8 s × $0.40/s")
    assert attempt.reason.endswith("is more than the budget of $2.00 a request")
    assert run(router, VideoGenerationRequest(prompt="a cat", duration_seconds=4)).cost.amount == 1.6  # $1.60 fits


def test_targets_over_budget_are_skipped_for_cheaper_ones_and_explain_shows_it(tmp_path, fal):
    router = router_for(tmp_path, fal, f"""\
        spec_version: 1
        routes:
          main:
            modality: video
            targets:
              - {target(VEO)}
              - {target(KLING)}
            budget: {{max_per_request: 1.00}}
        """)
    response = run(router, VideoGenerationRequest(prompt="a cat"))
    skipped, tried = response.execution_metadata.attempts
    assert (skipped.model, skipped.status, skipped.cost.amount) == (VEO, "skipped", 3.2)
    assert (tried.model, tried.status, response.cost.amount) == (KLING, "success", 0.7)
    assert [r.path for r in fal.requests if r.method == "POST"] == [f"/{KLING}"]
    text = router.explain("main", VideoGenerationRequest(prompt="a cat"), assume_keys=True).render()
    assert "1. skip fal/fal-ai/veo3.1: over budget: the estimate $3.20" in text
    assert "2. try  fal/fal-ai/kling-video/v3/turbo/pro/text-to-video" in text
    assert "cost: ~$0.70 (5 s × $0.14/s (turbo pro) = $0.70;" in text
    assert "budget: $1.00 a request" in text


def test_a_targets_budget_replaces_the_routes_and_unpriced_targets_are_refused_unless_allowed(tmp_path, fal):
    router = router_for(tmp_path, fal, f"""\
        spec_version: 1
        routes:
          main:
            modality: video
            targets:
              - {target(VEO, ", budget: {max_per_request: 5}")}
            budget: {{max_per_request: 1.00}}
          unpriced:
            modality: video
            targets: [{target("fal-ai/veo3.1/fast")}]
            budget: {{max_per_request: 1.00}}
          unpriced-allowed:
            modality: video
            targets: [{target("fal-ai/veo3.1/fast")}]
            budget: {{max_per_request: 1.00, unpriced: allow}}
        """)
    assert run(router, VideoGenerationRequest(prompt="a cat")).cost.amount == 3.2
    with pytest.raises(BudgetExceededError, match="no estimate to hold to the budget of \\$1.00 a request: "
                                                  "no listed price matches fal-ai/veo3.1/fast"):
        run(router, VideoGenerationRequest(prompt="a cat"), "unpriced")
    assert run(router, VideoGenerationRequest(prompt="a cat"), "unpriced-allowed").cost is None


SPEND = f"""\
    spec_version: 1
    routes:
      main:
        modality: video
        targets: [{target(VEO)}]
        retry: {{attempts: 1}}
        spend_limit: {{amount: 5.00, per: day}}
    """


def test_a_spend_limit_counts_the_day_and_gives_back_what_never_ran(tmp_path, fal):
    router = router_for(tmp_path, fal, SPEND)
    fal.queue(FalJob(submit_failures=[Failure(status=400, json={"detail": "bad input"})]))
    with pytest.raises(ValidationError):  # refused at submit: no job, so its $3.20 goes back
        run(router, VideoGenerationRequest(prompt="a cat"))
    assert run(router, VideoGenerationRequest(prompt="a cat")).cost.amount == 3.2  # $3.20 of $5
    posts = len(fal.requests)
    with pytest.raises(BudgetExceededError, match=r"spend limit: \$3.20 of \$5.00 a day \(UTC\) spent in day:"):
        run(router, VideoGenerationRequest(prompt="a cat"))  # another $3.20 would pass $5
    assert len(fal.requests) == posts
    assert run(router, VideoGenerationRequest(prompt="a cat", duration_seconds=4)).cost.amount == 1.6  # $4.80


def test_the_spend_limit_is_shared_through_redis_and_reserved_atomically(tmp_path, fal):
    from journal_helpers import redis_server

    with redis_server() as url:
        settings = TarashSettings(limits_store=url)
        first, second = (router_for(tmp_path, fal, SPEND, settings) for _ in range(2))
        reset_spend_stores()  # the second "process" opens its own connection to the same Redis
        assert run(first, VideoGenerationRequest(prompt="a cat")).cost.amount == 3.2
        with pytest.raises(BudgetExceededError, match=r"\$3.20 of \$5.00 a day"):
            run(second, VideoGenerationRequest(prompt="a cat"))

        store = RedisSpend(url)
        key, ttl = "race:USD:" + period_of("day")[0], period_of("day")[1]

        async def race() -> list[bool]:
            results = await asyncio.gather(*(store.reserve(key, 1_000_000, 10_000_000, ttl) for _ in range(25)))
            return [added for added, _ in results]

        assert sum(asyncio.run(race())) == 10  # $1 x 25 against $10: exactly ten get through
        assert asyncio.run(store.spent(key)) == 10_000_000


def test_a_provider_reported_cost_replaces_the_estimate_and_the_reservation(tmp_path, fal):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "billed.yaml").write_text(textwrap.dedent("""\
        spec_version: 1
        provider: fal
        family: billed
        models: [acme/billed]
        modality: video
        body: {prompt: "{{ request.prompt }}"}
        response:
          cost: $.billing.amount_usd
        pricing: {per_request: 2.00, source: "https://example.com/pricing", checked: 2026-12-05}
        """))
    router = router_for(tmp_path, fal, SPEND.replace(VEO, "acme/billed"), spec_dirs=[specs])
    fal.queue(FalJob(result={"video": {"url": "https://cdn.example/v.mp4"}, "billing": {"amount_usd": 1.25}}))
    response = run(router, VideoGenerationRequest(prompt="a cat"))
    assert (response.cost.amount, response.cost.estimated, response.cost.basis) == (1.25, False,
                                                                                  "reported by the provider")
    assert response.execution_metadata.attempts[0].cost == response.cost
    fal.queue(FalJob(result={"video": {"url": "https://cdn.example/v.mp4"}, "billing": {"amount_usd": 1.25}}))
    fal.queue(FalJob(result={"video": {"url": "https://cdn.example/v.mp4"}, "billing": {"amount_usd": 1.25}}))
    run(router, VideoGenerationRequest(prompt="a cat"))  # $2.50 counted, not the $4.00 estimated
    run(router, VideoGenerationRequest(prompt="a cat"))  # $2 reserved against $5: fits, then $3.75
    with pytest.raises(BudgetExceededError, match=r"\$3.75 of \$5.00"):
        run(router, VideoGenerationRequest(prompt="a cat"))


def test_budget_and_spend_limit_errors_in_routes_files_name_the_key(tmp_path, fal):
    from tarash_router.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        router_for(tmp_path, fal, f"""\
            spec_version: 1
            routes:
              main:
                modality: video
                targets: [{target(VEO)}]
                spend_limit: {{amount: 100, per: fortnight}}
            """)
    assert caught.value.key == "routes.main.spend_limit.per" and caught.value.line == 6
