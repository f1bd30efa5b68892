"""Celery tasks that submit generation jobs and see them finish without holding a worker while the
provider works (extra `celery`).

    # myapp/tasks.py: the app your workers run (`celery -A myapp.tasks worker`)
    from celery import Celery
    from tarash_router.integrations.celery import register_tasks

    app = Celery("myapp", broker="redis://redis:6379/1")
    tarash = register_tasks(app)

    # anywhere that enqueues
    tarash.submit.delay("video-default", {"prompt": "a cat", "duration_seconds": 8}, on_done=save_video.s())

`tarash.submit` submits the job once and schedules `tarash.check`; a check makes one status request
and, while the job runs, schedules the next check with a countdown. A job over its account's cap
makes the submit task retry itself later instead of waiting in the worker. Workers share jobs and
caps through TARASH_JOURNAL and TARASH_LIMITS_STORE (Redis) and read provider keys from their
environment. docs/scaling.md tells the whole story.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..client import Client
from ..engine.lifecycle import poll_pause, poll_retry_wait
from ..engine.sync import run_sync
from ..errors import AccountAtLimitError, ConfigError, JournalUnavailableError, TarashException, ValidationError
from ..errors import TimeoutError as GenerationTimeoutError
from ..extras import require_sdk
from ..lazy import Lazy
from ..models import (
    GenerationConfig, ImageGenerationConfig, ImageGenerationRequest, Job, VideoGenerationConfig,
    VideoGenerationRequest,
)
from ..routing import collect_fallback_chain
from ..settings import TarashSettings

celery = require_sdk("celery", "celery", "the Celery integration")
celery_signals = require_sdk("celery.signals", "celery", "the Celery integration")

logger = logging.getLogger("tarash_router.celery")
KINDS = ("video", "image")


def worker_client() -> Client:
    """The client a worker process builds by default: TARASH_* settings from its environment, and a
    job over its account's cap raises (the submit task retries) instead of waiting in the worker."""
    settings = TarashSettings(at_limit="raise")
    if settings.journal == "memory":
        raise ConfigError("the Celery tasks need a journal every worker shares (a check may run in another "
                          "process than its submit): set TARASH_JOURNAL=redis://host:6379/0")
    if settings.limits_store == "memory":
        logger.warning("TARASH_LIMITS_STORE is memory: account caps hold per worker process, not across "
                       "workers; set TARASH_LIMITS_STORE=redis://... to share them")
    return Client(settings=settings)


class WorkerClient:
    """One `Client` per worker process, built on first use: its HTTP pool and journal connections live
    on the process's one event loop (the sync API's), shared by every task the process runs."""

    def __init__(self, factory: Callable[[], Client]) -> None:
        self._factory = factory
        self._client: Lazy[Client] = Lazy(self._build)
        if hasattr(os, "register_at_fork"):  # a prefork child builds its own
            os.register_at_fork(after_in_child=self._forget)

    def _build(self) -> Client:
        client = self._factory()
        if client.settings.at_limit != "raise":
            logger.warning("the worker's client waits at account caps (TARASH_AT_LIMIT=wait): a job over a cap "
                           "holds a worker until a slot frees; build it with TarashSettings(at_limit='raise') to "
                           "retry the task instead")
        return client

    def get(self) -> Client:
        return self._client.get()

    def close(self, **_: Any) -> None:
        """Close the client's connections (a worker shutting down); nothing if none was built."""
        client = self._client.peek()
        self._client.set(None)
        if client is not None:
            run_sync(client.aclose())

    def _forget(self) -> None:
        self._client = Lazy(self._build)  # new, lock included: the parent's may have been held at the fork


@dataclass(frozen=True)
class Pacing:
    """How the tasks space their work. `slot_retry`: first and longest countdown of a submit that found
    its account at a cap (doubling, with jitter); `slot_wait`: how long a job keeps trying for a slot
    before its task fails; `webhook_check_after`: with a webhook, when a check looks at a job anyway
    (a delivery that never came), and how often after that."""

    slot_retry: tuple[float, float] = (1.0, 30.0)
    slot_wait: float = 3600.0
    webhook_check_after: float = 300.0

    def slot_countdown(self, exc: TarashException, retries: int) -> float:
        """The countdown of a submit's next try: the backoff, never before the limiter's hint; both
        spread at random so that the jobs waiting on one account do not all come back at once."""
        first, longest = self.slot_retry
        backoff: float = min(first * 2 ** retries, longest) * random.uniform(0.5, 1.0)
        hint: float = (getattr(exc, "retry_after", None) or 0.0) * random.uniform(1.0, 1.2)
        return max(hint, backoff)


@dataclass(frozen=True)
class Tasks:
    """The tasks `register_tasks` added to an app: `submit` (returns the job id) and `check`."""

    submit: Any
    check: Any


def register_tasks(app: Any, *, client_factory: Callable[[], Client] | None = None, name_prefix: str = "tarash",
                   pacing: Pacing | None = None) -> Tasks:
    """Add `<prefix>.submit` and `<prefix>.check` to your Celery `app` and return them.

    submit(target, request, kind="video", webhook_url=None, on_done=None) -> job id
      target: a route name or a config dict (provider, model, base_url, timeout, poll_interval...;
      no api_key: the broker keeps messages in clear, so keys live in the workers' environment);
      request: the request as a dict. Submits once, even when Celery delivers the task twice (the
      task id is the request's idempotency key unless it has its own); over an account cap it retries
      itself with a countdown. Then schedules `check`: soon, or with `webhook_url` (the provider reports
      the finished job there: hand deliveries to `Client.handle_webhook`) only as a late safety check.
    check(job_id, base_url=None, every=None, on_done=None, errors=0) -> the job as a dict
      One status request; while the job runs, schedules itself again (countdown: the poll interval,
      growing with the job's age; every `every` seconds if given), never past the job's deadline,
      where the job is cancelled. A finished job (completed, failed or cancelled) is returned and
      handed to `on_done` (a Celery signature, e.g. `save.s()`), which gets the job dict first.

    client_factory builds each worker process's Client (default `worker_client`: TARASH_* settings).
    """
    worker = WorkerClient(client_factory or worker_client)
    pace = pacing or Pacing()
    celery_signals.worker_process_shutdown.connect(worker.close, weak=False)  # a prefork child
    celery_signals.worker_shutdown.connect(worker.close, weak=False)  # a threads or solo pool

    # acks_late + reject_on_worker_lost: a task whose worker died is delivered again, not lost. That is
    # safe for submit (keyed on its task id) and for check (one more status request).
    # Celery has no type stubs: its task decorator is untyped.
    @app.task(name=f"{name_prefix}.submit", bind=True, shared=False, acks_late=True,  # type: ignore[untyped-decorator]
              reject_on_worker_lost=True, max_retries=None)
    def submit(task: Any, target: str | dict[str, Any], request: dict[str, Any], kind: str = "video",
               webhook_url: str | None = None, on_done: dict[str, Any] | None = None,
               give_up_at: float | None = None) -> str:
        give_up_at = give_up_at or time.time() + pace.slot_wait
        config = _target(target, kind)
        job_request = _request(request, kind, task.request.id)
        try:
            job, countdown = run_sync(_submit(worker.get(), config, job_request, kind, webhook_url, pace))
        except (AccountAtLimitError, JournalUnavailableError) as exc:
            not_sent = exc
        else:
            every = pace.webhook_check_after if webhook_url else None
            check.apply_async((job.id,), {"base_url": _base_url_of(config, job), "every": every,
                                          "on_done": on_done}, countdown=countdown)
            return job.id
        # Nothing was sent: try again later. Retried outside the except block, so that Celery does not
        # format the whole chained traceback of every retry (most of a busy worker's time).
        countdown = pace.slot_countdown(not_sent, task.request.retries)
        if time.time() + countdown > give_up_at:
            raise not_sent
        raise task.retry(args=task.request.args, kwargs={**task.request.kwargs, "give_up_at": give_up_at},
                         countdown=countdown, exc=not_sent)

    @app.task(name=f"{name_prefix}.check", bind=True, shared=False, acks_late=True,  # type: ignore[untyped-decorator]
              reject_on_worker_lost=True, max_retries=None)
    def check(task: Any, job_id: str, base_url: str | None = None, every: float | None = None,
              on_done: dict[str, Any] | None = None, errors: int = 0) -> dict[str, Any] | None:
        outcome = run_sync(_check(worker.get(), job_id, base_url, every, errors))
        if isinstance(outcome, CheckAgain):
            check.apply_async((job_id,), {"base_url": base_url, "every": every, "on_done": on_done,
                                          "errors": outcome.errors}, countdown=outcome.after)
            return outcome.job.model_dump(mode="json") if outcome.job is not None else None  # not the end yet
        finished = outcome.model_dump(mode="json")
        if on_done is not None:
            celery.signature(on_done, app=task.app).delay(finished)
        return finished

    return Tasks(submit=submit, check=check)


# ------------------------------------------------------------------ what the tasks run (on the loop)

@dataclass(frozen=True)
class CheckAgain:
    """A job to look at again in `after` seconds: where it stands (None when the status request
    failed), and how many status requests in a row failed."""

    after: float
    job: Job | None = None
    errors: int = 0


async def _submit(client: Client, config: str | GenerationConfig, request: Any, kind: str, webhook_url: str | None,
                  pace: Pacing) -> tuple[Job, float]:
    """Submit once; returns the job and the countdown of its first check."""
    send = client.submit_video_async if kind == "video" else client.submit_image_async
    job = await send(config, request, webhook_url=webhook_url)  # type: ignore[arg-type]
    if job.done:
        return job, 0.0
    if webhook_url:
        return job, pace.webhook_check_after
    record = await client.journal.get(job.id)  # the first poll comes one poll interval after the submit
    return job, min(record.poll_interval, record.timeout) if record is not None else 5.0


async def _check(client: Client, job_id: str, base_url: str | None, every: float | None,
                 errors: int) -> Job | CheckAgain:
    """One look at a job: the job once it has finished, else when to look again."""
    record = await client.journal.get(job_id)
    try:
        job = await client.get_job_async(job_id, base_url=base_url)
    except TarashException as exc:
        if record is None or not exc.retryable or errors >= client.settings.max_poll_errors:
            raise
        wait = poll_retry_wait(exc, errors + 1, record.poll_interval, client.settings.max_retry_wait)
        logger.info("%s job %s: status request failed (%s); checking again in %.1fs", record.provider, job_id,
                    type(exc).__name__, wait)
        return CheckAgain(wait, errors=errors + 1)
    if job.done or record is None:
        return job
    now = time.time()
    deadline = record.created_at + record.timeout
    if now >= deadline:  # as the lifecycle does at its deadline: stop the job so it is not billed further
        await client.cancel_job_async(job_id, base_url=base_url)
        stopped = await client.journal.get(job_id)
        if stopped is not None and stopped.state in ("completed", "failed", "cancelled"):
            return stopped.to_job()
        raise GenerationTimeoutError(f"job {job_id} did not finish within {record.timeout:g}s and its cancel was "
                                     "not accepted", provider=record.provider, model=record.model,
                                     request_id=job_id, timeout_seconds=record.timeout, job_may_exist=True)
    pause = every if every is not None else poll_pause(record.poll_interval, now - record.created_at, client.settings)
    return CheckAgain(min(pause, deadline - now), job)


# ------------------------------------------------------------------ task arguments

def _target(target: str | dict[str, Any], kind: str) -> str | GenerationConfig:
    """A route name, or the config dict as a config."""
    if kind not in KINDS:
        raise ValidationError(f"kind must be video or image, not {kind!r}")
    if isinstance(target, str):
        return target
    config_cls = VideoGenerationConfig if kind == "video" else ImageGenerationConfig
    config = config_cls.model_validate(target)
    if any(c.api_key for c in collect_fallback_chain(config)):
        raise ValidationError("a task's config must not carry api_key: the broker stores task messages in clear; "
                              "give the workers the key in their environment (FAL_KEY, ...)",
                              provider=config.provider, model=config.model)
    return config


def _request(request: dict[str, Any], kind: str, task_id: str | None) -> Any:
    """The request, keyed on the task id (unless it has a key of its own) so a redelivery submits nothing."""
    request_cls = VideoGenerationRequest if kind == "video" else ImageGenerationRequest
    parsed = request_cls.model_validate(request)
    if parsed.idempotency_key or task_id is None:
        return parsed
    return parsed.model_copy(update={"idempotency_key": f"celery-task:{task_id}"})


def _base_url_of(config: str | GenerationConfig, job: Job) -> str | None:
    """The base URL the job went to, which its checks must name again (the journal alone never decides
    where a key is sent): the serving config's own when the chain fell back. A route's checks need
    none: the client finds the route's target."""
    if isinstance(config, str):
        return None
    served = next((c for c in collect_fallback_chain(config) if (c.provider, c.model) == (job.provider, job.model)),
                  config)
    return served.base_url


__all__ = ["register_tasks", "worker_client", "Tasks", "Pacing", "WorkerClient"]
