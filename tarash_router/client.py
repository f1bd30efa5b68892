"""`Client`: one object that owns what a generation needs (settings, spec registry, routes, journal,
cooldowns, transports, HTTP pool), so two configurations live side by side in one process.

    async with Client(spec_dirs=["my_specs"], routes=["routes"], journal="sqlite:///jobs.db") as client:
        response = await client.generate_video_async("video-main", VideoGenerationRequest(prompt="a cat"))

The module functions (`tarash_router.generate_video` and the rest) are a default client's methods;
the default client uses the process-wide registry, routes, journal and cooldowns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

from .engine.client import ClientPool
from .engine.runtime import PROCESS_TRANSPORTS, Runtime
from .engine.sync import run_sync
from .engine.transports import TransportTable
from .engine.webhooks import ProviderWebhookUrl, WebhookReceiver
from .errors import GenerationFailedError, JobMayExistError, TarashException, ValidationError
from .journal import JobStore, open_journal
from .journal.idempotency import HeldClaim, run_idempotent, submit_once
from .models import (
    ImageGenerationConfig, ImageGenerationRequest, ImageGenerationResponse, ImageProgressCallback, Job,
    ProgressCallback, VideoGenerationConfig, VideoGenerationRequest, VideoGenerationResponse,
)
from .routing import Plan, Router, collect_fallback_chain, execute
from .routing.cooldown import CooldownStore, open_cooldowns
from .settings import TarashSettings
from .specs.registry import SpecRegistry, builtin_spec_dir
from .telemetry import OnEvent

logger = logging.getLogger("tarash_router.client")
Response = VideoGenerationResponse | ImageGenerationResponse


class Client:
    """Generate through configs or named routes, with this client's specs, routes and journal.

    spec_dirs: provider spec directories loaded after the built-in specs (`builtin_specs=False` to
      leave those out); routes: routes files or directories; journal: a JobStore or a URL
      (`memory`, `sqlite:///path`, `redis://...`); cooldowns: a CooldownStore or a URL; settings:
      a `TarashSettings` (default: read from the environment once, now); on_event: a sync or async
      callable given a `TelemetryEvent` for each attempt, skip, fallback, success and failure
      (docs/telemetry.md; one that raises is logged and the generation goes on).
    """

    def __init__(self, *, spec_dirs: list[Path | str] | None = None, routes: list[Path | str] | None = None,
                 journal: JobStore | str | None = None, cooldowns: CooldownStore | str | None = None,
                 settings: TarashSettings | None = None, builtin_specs: bool = True,
                 on_event: OnEvent | None = None) -> None:
        self.settings = settings if settings is not None else TarashSettings()
        registry = SpecRegistry()
        for layer in ([builtin_spec_dir()] if builtin_specs else [], self.settings.spec_dirs, spec_dirs or []):
            if layer:  # each source a layer: a later one overrides an earlier one's models
                registry.load_paths(layer)
        store = journal if journal is not None else self.settings.journal
        self.journal = open_journal(store, self.settings.journal_timeout) if isinstance(store, str) else store
        breaker = cooldowns if cooldowns is not None else self.settings.cooldowns
        self.cooldowns = open_cooldowns(breaker, self.settings.journal_timeout) if isinstance(breaker, str) else breaker
        self.runtime = Runtime(settings=self.settings, registry=registry, journal=self.journal,
                               transports=TransportTable(parent=PROCESS_TRANSPORTS),
                               pool=ClientPool(self.settings), on_event=on_event)
        route_paths = [*self.settings.route_dirs, *(routes or [])]
        router = Router([Path(p) for p in route_paths], runtime=self.runtime, cooldowns=self.cooldowns)
        self._router: Callable[[], Router] = lambda: router

    @classmethod
    def _process_default(cls, router: Callable[[], Router]) -> Client:
        """The client behind the module functions: process-wide registry, journal, cooldowns and
        handlers, each looked up at use (so `set_journal`, `load_specs`, `register_provider` apply)."""
        client = cls.__new__(cls)
        client._router = router
        client.runtime = router().runtime
        return client

    # ------------------------------------------------------------ parts

    @property
    def router(self) -> Router:
        return self._router()

    @property
    def registry(self) -> SpecRegistry:
        return self.runtime.registry

    def load_specs(self, *paths: Path | str) -> list[Any]:
        """Add spec files or directories (they override built-ins); returns the families loaded."""
        return self.registry.load_paths(paths)

    def load_routes(self, *paths: Path | str) -> list[str]:
        """Add routes files or directories; returns the route names added."""
        return self.router.load(*paths)

    def register_provider(self, provider: str, handler: Any) -> None:
        """Serve `provider` with a Python handler (the four ProviderHandler methods) in this client."""
        self.runtime.transports.serve_provider(provider, handler)

    def register_transport(self, name: str, transport: Any) -> None:
        """Make `handler: <name>` in a spec use `transport` (submit/poll/fetch/cancel, or a `run()` object)."""
        self.runtime.transports.register(name, transport)

    # ------------------------------------------------------------ generating

    async def generate_video_async(self, config: VideoGenerationConfig | str, request: VideoGenerationRequest,
                                   on_progress: ProgressCallback | None = None) -> VideoGenerationResponse:
        """Generate a video with a config (and its fallbacks) or through a named route."""
        return cast(VideoGenerationResponse, await self._generate(config, request, on_progress, "video"))

    def generate_video(self, config: VideoGenerationConfig | str, request: VideoGenerationRequest,
                       on_progress: ProgressCallback | None = None) -> VideoGenerationResponse:
        """Blocking `generate_video_async`; works inside a running event loop too."""
        return run_sync(self.generate_video_async(config, request, on_progress))

    async def generate_image_async(self, config: ImageGenerationConfig | str, request: ImageGenerationRequest,
                                   on_progress: ImageProgressCallback | None = None) -> ImageGenerationResponse:
        """Generate images with a config (and its fallbacks) or through a named route."""
        return cast(ImageGenerationResponse, await self._generate(config, request, on_progress, "image"))

    def generate_image(self, config: ImageGenerationConfig | str, request: ImageGenerationRequest,
                       on_progress: ImageProgressCallback | None = None) -> ImageGenerationResponse:
        """Blocking `generate_image_async`."""
        return run_sync(self.generate_image_async(config, request, on_progress))

    # ------------------------------------------------------------ jobs that outlive the call

    async def submit_video_async(self, config: VideoGenerationConfig | str, request: VideoGenerationRequest,
                                 on_progress: ProgressCallback | None = None, *,
                                 webhook_url: str | ProviderWebhookUrl | None = None) -> Job:
        """Validate, pick a target (routing, skips and fallback apply at submit), submit once, journal
        the job and return it at once. `wait(job.id)` (here or in any process sharing the journal)
        collects the video. With `webhook_url` the provider reports the finished job there (its own
        webhook parameter, as its provider file declares; a provider without one refuses it before
        anything is sent); hand each delivery to `handle_webhook`. A `ProviderWebhookUrl` (a URL with
        `{provider}` in it) gives each target of a route its provider's URL, and none to a target whose
        provider declares no webhook (that job is polled). A request with an `idempotency_key` is
        submitted once per key: submitting it again (a task delivered twice) returns the first
        submit's job, as the journal holds it now, and sends nothing."""
        return await self._submit(config, request, on_progress, "video", webhook_url)

    def submit_video(self, config: VideoGenerationConfig | str, request: VideoGenerationRequest,
                     on_progress: ProgressCallback | None = None, *,
                     webhook_url: str | ProviderWebhookUrl | None = None) -> Job:
        """Blocking `submit_video_async` (it blocks only for the submit)."""
        return run_sync(self.submit_video_async(config, request, on_progress, webhook_url=webhook_url))

    async def submit_image_async(self, config: ImageGenerationConfig | str, request: ImageGenerationRequest,
                                 on_progress: ImageProgressCallback | None = None, *,
                                 webhook_url: str | ProviderWebhookUrl | None = None) -> Job:
        """`submit_video_async` for images."""
        return await self._submit(config, request, on_progress, "image", webhook_url)

    def submit_image(self, config: ImageGenerationConfig | str, request: ImageGenerationRequest,
                     on_progress: ImageProgressCallback | None = None, *,
                     webhook_url: str | ProviderWebhookUrl | None = None) -> Job:
        """Blocking `submit_image_async`."""
        return run_sync(self.submit_image_async(config, request, on_progress, webhook_url=webhook_url))

    async def _submit(self, config: Any, request: Any, on_progress: Any, modality: str,
                      webhook_url: str | ProviderWebhookUrl | None = None) -> Job:
        async def submit(claim: HeldClaim | None = None) -> Job:
            if isinstance(config, str):
                return cast(Job, await self.router.run(config, request, on_progress, modality, claim,
                                                       submit_only=True, webhook_url=webhook_url))
            return cast(Job, await execute(config, request, on_progress, modality, self.runtime, claim,
                                           submit_only=True, webhook_url=webhook_url))

        if not request.idempotency_key:
            return await submit()
        # One job per key: a submit made again (a task queue's redelivery) gets the first one's job.
        target, timeout, allow_resubmit = self._claim_scope(config, modality)
        return cast(Job, await submit_once(self.runtime.journal, request.idempotency_key, target, request, modality,
                                           timeout, submit, allow_resubmit=allow_resubmit,
                                           lease=self.runtime.settings.idempotency_lease))

    def _claim_scope(self, config: Any, modality: str) -> tuple[str, float, bool]:
        """What an idempotency key is claimed for: the target it names (route or chain), how long a
        second caller waits on the first, and whether a submit left unknown may be sent again."""
        if isinstance(config, str):
            policy = self.router.get(config, modality).policy
            return f"route:{config}", policy.deadline or 3600.0, policy.resubmit_if_unknown
        chain = collect_fallback_chain(config)
        return "|".join(f"{c.provider}/{c.model}" for c in chain), sum(c.timeout for c in chain), False

    async def handle_webhook_async(self, provider: str, headers: Mapping[str, str], body: bytes | str, *,
                                   api_key: str | None = None, base_url: str | None = None) -> Job:
        """Take one webhook delivery (the raw body, as received, and its headers): verify the provider's
        signature, refuse stale or replayed deliveries (WebhookError, with `reason`), and complete the
        journaled job once. A second delivery of a finished job changes nothing and returns it.
        A signing secret that is not configured (Replicate's) is fetched from the provider's API once,
        with `api_key` (default: the provider's key variable) at `base_url` (default: its file's)."""
        receiver = getattr(self, "_webhooks", None)
        if receiver is None:
            receiver = self._webhooks = WebhookReceiver(self.runtime.settings)
        return await receiver.handle(self.runtime, provider, headers, body, api_key=api_key, base_url=base_url)

    def handle_webhook(self, provider: str, headers: Mapping[str, str], body: bytes | str, *,
                       api_key: str | None = None, base_url: str | None = None) -> Job:
        """Blocking `handle_webhook_async`."""
        return run_sync(self.handle_webhook_async(provider, headers, body, api_key=api_key, base_url=base_url))

    async def get_job_async(self, job_id: str, *, api_key: str | None = None, base_url: str | None = None,
                            provider_config: dict[str, Any] | None = None) -> Job:
        """Where a job stands: the journal for a finished job, else one status request to its provider
        (the journal is brought up to date; a finished job's result is fetched)."""
        record = await self._record(job_id)
        if record.state in ("completed", "failed", "cancelled"):
            return cast(Job, record.to_job())
        if record.state == "submitting":  # an intent: the submit's outcome was never recorded
            raise JobMayExistError(f"{job_id} is a submit that never recorded its outcome: the provider may have "
                                   "accepted a job whose id is unknown; check with the provider",
                                   provider=record.provider, model=record.model)
        family = self.registry.resolve(record.provider, record.model, record.modality)
        config = self._follow_config(record, family, api_key, None, provider_config, base_url)
        return cast(Job, await self.runtime.check(record, config))

    def get_job(self, job_id: str, **kwargs: Any) -> Job:
        """Blocking `get_job_async`."""
        return run_sync(self.get_job_async(job_id, **kwargs))

    async def wait_async(self, job_id: str, *, timeout: float | None = None, on_progress: Any = None,
                         api_key: str | None = None, base_url: str | None = None,
                         provider_config: dict[str, Any] | None = None) -> Response:
        """The response of a submitted job, polling it to the end (or from the journal when it has
        finished); `timeout` bounds the wait (default: the job's own)."""
        return await self.resume_async(job_id, api_key=api_key, on_progress=on_progress, timeout=timeout,
                                       provider_config=provider_config, base_url=base_url)

    def wait(self, job_id: str, **kwargs: Any) -> Response:
        """Blocking `wait_async`."""
        return run_sync(self.wait_async(job_id, **kwargs))

    async def list_jobs_async(self, *, state: str | None = None, older_than: float | None = None,
                              limit: int = 100) -> list[Job]:
        """Journaled jobs, newest first: all, or those in `state`, or those not updated for `older_than`
        seconds. (`submitting` intents are listed by `tarash-router jobs list --state submitting`.)"""
        records = await self.runtime.journal.list(limit, state=state)
        now = time.time()
        return [r.to_job() for r in records
                if r.state != "submitting" and (older_than is None or now - r.updated_at >= older_than)]

    def list_jobs(self, **kwargs: Any) -> list[Job]:
        """Blocking `list_jobs_async`."""
        return run_sync(self.list_jobs_async(**kwargs))

    async def reconcile_async(self, *, older_than: float = 300.0, limit: int = 500) -> list[Job]:
        """One pass over unfinished jobs nobody has updated for `older_than` seconds (a webhook that never
        came, an owner that died): one status request each, so a finished job is journaled with its
        result. Returns the jobs as they stand now; a provider that does not answer is skipped (logged)
        and tried again on the next pass."""
        checked = []
        for job in await self.list_jobs_async(older_than=older_than, limit=limit):
            if job.done:
                continue
            try:
                checked.append(await self.get_job_async(job.id))
            except TarashException as exc:
                logger.warning("reconcile: %s job %s not checked (%s)", job.provider, job.id, type(exc).__name__)
        return checked

    async def reconcile_forever(self, *, every: float = 60.0, older_than: float = 300.0) -> None:
        """Reconcile every `every` seconds until cancelled (run it as a task beside a webhook receiver)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.reconcile_async(older_than=older_than)
            except Exception:  # noqa: BLE001 - a bad pass (journal down) must not end the loop
                logger.exception("reconcile pass failed; trying again in %.0fs", every)

    def _generate(self, config: Any, request: Any, on_progress: Any, modality: str) -> Awaitable[Any]:
        """The call, to await (no coroutine of its own: every frame is walked each time a job resumes)."""
        if isinstance(config, str):
            logger.info("generate_%s route=%s", modality, config)
        else:
            logger.info("generate_%s provider=%s model=%s", modality, config.provider, config.model)
        if not request.idempotency_key:
            return self._run(config, request, on_progress, modality)
        target, timeout, allow_resubmit = self._claim_scope(config, modality)

        def run(claim: HeldClaim | None = None) -> Awaitable[Any]:
            return self._run(config, request, on_progress, modality, claim)

        async def take_over(job_id: str) -> Any:  # finish the dead owner's job with this call's credentials
            record = await self.runtime.journal.get(job_id)
            source = self._credentials_for(config, record.provider, record.model) if record else None
            return await self.resume_async(job_id, on_progress=on_progress, api_key=getattr(source, "api_key", None),
                                           provider_config=getattr(source, "provider_config", None),
                                           base_url=getattr(source, "base_url", None))

        return run_idempotent(self.runtime.journal, request.idempotency_key, target, request, modality,
                              timeout, run, take_over, allow_resubmit=allow_resubmit,
                              lease=self.runtime.settings.idempotency_lease)

    def _run(self, config: Any, request: Any, on_progress: Any, modality: str,
             claim: HeldClaim | None = None) -> Awaitable[Any]:
        """The routed call (a route by name, else the config and its fallbacks), to await."""
        if isinstance(config, str):
            return self.router.run(config, request, on_progress, modality, claim)
        return execute(config, request, on_progress, modality, self.runtime, claim)

    def _credentials_for(self, config: Any, provider: str, model: str) -> Any:
        """The config (or route target config) of this call that sent the job to provider/model."""
        if isinstance(config, str):
            route = self.router.get(config)
            targets = [t.build_config(route.modality, None) for t in route.targets]
        else:
            targets = collect_fallback_chain(config)
        return next((c for c in targets if c.provider == provider and c.model == model), None)

    # ------------------------------------------------------------ jobs in the journal

    async def resume_async(self, job_id: str, *, api_key: str | None = None, on_progress: Any = None,
                           timeout: float | None = None, provider_config: dict[str, Any] | None = None,
                           base_url: str | None = None) -> Response:
        """Re-attach to a journaled job (e.g. after a crash) and finish it without submitting again.

        Secrets are never journaled: pass `api_key` (or set the provider's env var) and any credential
        that lived in `provider_config` again. The journal is not trusted to say where the key may go:
        a job submitted through a custom `base_url` needs that `base_url` again.
        """
        record = await self._record(job_id)
        response_cls = VideoGenerationResponse if record.modality == "video" else ImageGenerationResponse
        if record.state == "completed" and record.result is not None:
            return response_cls.model_validate(record.result)
        if record.state in ("failed", "cancelled"):
            error = record.error or {}
            raise GenerationFailedError(f"job {job_id} {record.state}: {error.get('message', 'no detail')}",
                                        provider=record.provider, model=record.model, request_id=job_id,
                                        raw_response=error, retryable=False, job_may_exist=True)
        family = self.registry.resolve(record.provider, record.model, record.modality)
        config = self._follow_config(record, family, api_key, timeout, provider_config, base_url)
        return cast(Response, await self.runtime.resume(record, config, on_progress))

    def resume(self, job_id: str, **kwargs: Any) -> Response:
        """Blocking `resume_async`."""
        return run_sync(self.resume_async(job_id, **kwargs))

    async def cancel_job_async(self, job_id: str, *, api_key: str | None = None, base_url: str | None = None) -> bool:
        """Cancel a journaled job at its provider; True if the provider accepted the cancel."""
        record = await self._record(job_id)
        if record.state in ("completed", "failed", "cancelled"):
            return False
        family = self.registry.resolve(record.provider, record.model, record.modality)
        return await self.runtime.cancel(record, self._follow_config(record, family, api_key, None, None, base_url))

    def cancel_job(self, job_id: str, **kwargs: Any) -> bool:
        """Blocking `cancel_job_async`."""
        return run_sync(self.cancel_job_async(job_id, **kwargs))

    def _follow_config(self, record: Any, family: Any, api_key: str | None, timeout: float | None,
                       provider_config: dict[str, Any] | None, base_url: str | None) -> Any:
        """The config to follow a journaled job with. Where the key may go comes from the caller or from
        this client's own routes (a target with the job's provider, model and base URL), never from
        the journal alone."""
        if base_url is None and record.base_url:
            own = self._route_target_for(record)
            if own is not None:
                base_url, api_key = own.base_url, api_key or own.api_key
                provider_config = {**own.provider_config, **(provider_config or {})}
        return _config_for(record, family, api_key, timeout, provider_config, base_url)

    def _route_target_for(self, record: Any) -> Any:
        """This client's route target config that could have submitted `record`'s job, if any."""
        try:
            routes = list(self.router.routes.values())
        except Exception:  # noqa: BLE001 - a router that cannot load has no targets to offer
            return None
        for route in routes:
            for target in route.targets:
                if (target.provider, target.model) == (record.provider, record.model) and target.base_url and \
                        target.base_url.rstrip("/") == record.base_url.rstrip("/"):
                    return target.build_config(record.modality, None)
        return None

    async def _record(self, job_id: str) -> Any:
        record = await self.runtime.journal.get(job_id)
        if record is None:
            raise ValidationError(f"no journaled job {job_id!r} (journal: {self.runtime.settings.journal})")
        return record

    # ------------------------------------------------------------ offline

    def render_request(self, config: VideoGenerationConfig | ImageGenerationConfig,
                       request: VideoGenerationRequest | ImageGenerationRequest) -> dict[str, Any]:
        """The first HTTP request a generation would send, as JSON, with secrets masked. No network.

        Raises ValidationError exactly where a real call would, before anything is sent.
        """
        modality = "image" if isinstance(config, ImageGenerationConfig) else "video"
        return self.runtime.render(config, request, modality)

    def explain(self, route: str, request: VideoGenerationRequest | ImageGenerationRequest) -> Plan:
        """What a call through `route` would do for `request`: order, skips and why, policies. No network."""
        return self.router.explain(route, request)

    # ------------------------------------------------------------ lifetime

    async def aclose(self) -> None:
        """Close this client's connections on the running loop, and its journal."""
        await self.runtime.pool.aclose()
        await self.runtime.journal.close()

    def close(self) -> None:
        run_sync(self.aclose())

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _config_for(record: Any, family: Any, api_key: str | None, timeout: float | None,
                provider_config: dict[str, Any] | None, base_url: str | None) -> Any:
    """The config to follow a journaled job with. What decides where credentials go (the base URL,
    URLs in provider_config) comes from the caller, never from the journal record."""
    default = family.provider.default_base_url
    wanted = (base_url or default).rstrip("/")
    if record.base_url and record.base_url.rstrip("/") != wanted:
        raise ValidationError(
            f"job {record.job_id} was submitted through {record.base_url}; pass base_url={record.base_url!r} "
            "to follow it there (the journal alone cannot send the API key to a new host)",
            provider=record.provider, model=record.model, request_id=record.job_id)
    journaled = {k: v for k, v in record.provider_config.items()
                 if not (isinstance(v, str) and v.startswith(("http://", "https://")))}
    config_cls = VideoGenerationConfig if record.modality == "video" else ImageGenerationConfig
    return config_cls(provider=record.provider, model=record.model, api_key=api_key, base_url=base_url,
                      timeout=timeout or record.timeout, poll_interval=record.poll_interval,
                      max_poll_attempts=record.max_poll_attempts,
                      provider_config={**journaled, **(provider_config or {})})


__all__ = ["Client"]
