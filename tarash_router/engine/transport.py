"""What a provider transport implements, and what the one job lifecycle hands it.

A transport speaks one provider's protocol in four verbs; the lifecycle (`engine/lifecycle.py`)
owns everything around them: the deadline, poll pacing and backoff, the error budget, remote
cancel on giving up, journal writes and progress updates. So a transport never sleeps, never loops
and never journals; it sends one request per verb and says what it learned.

    prepare(call)        validate and render; fetch or upload media. No job exists yet (or, when
                         resuming, one does: `call.job_id`/`call.handle` come from the journal)
    submit(call)         send the job once -> Status (accepted with a job id, or the final answer)
    poll(call)           one status request -> Status
    fetch(call, status)  the response of a completed job (download, extract)
    cancel(call)         ask the provider to stop the job -> True if it agreed
    render(call)         the first request as printable JSON, secrets masked; no network
    watch(call)          optional: the job's status stream, an async iterator of Status (what
                         successive polls would say), or None when there is none for this call; the
                         lifecycle follows it instead of polling and polls from where it stopped if it
                         ends before the job finishes or raises

Errors are `tarash_router.errors` exceptions with `retryable` and `job_may_exist` set: the
lifecycle retries retryable poll and fetch failures within its budget, and routing decides from
`job_may_exist` whether a failed submit may be sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..errors import TarashException
    from ..models import Cost, GenerationConfig, GenerationRequest
    from ..settings import TarashSettings
    from ..specs.compiled import FamilySpec
    from .client import ClientPool, PooledClient

JOB_STATES = ("queued", "processing", "completed", "failed")


@dataclass
class Call:
    """One generation as a transport sees it. `handle` is the transport's own record of the job
    (URLs, operation name...): journaled at submit, given back on resume, so a transport keeps
    nothing else it needs to poll, fetch or cancel."""

    family: FamilySpec
    config: GenerationConfig
    request: GenerationRequest
    modality: str
    settings: TarashSettings
    pool: ClientPool
    on_progress: Any = None
    job_id: str | None = None
    handle: dict[str, Any] = field(default_factory=dict)
    deadline: float = 0.0  # event-loop time by which the whole job must be done
    state: Any = None  # the transport's per-call working state (rendered requests, SDK client...)
    # Set when routing already checked the request against the family and found the key (once per
    # attempt): a transport passes both to prepare_job instead of doing them again.
    checked: bool = False
    api_key: str | None = None
    # Where the provider should report the finished job (submit_video/submit_image with webhook_url);
    # the transport puts it on the submit where the provider file's `webhook:` says.
    webhook_url: str | None = None
    # The family's estimate for this request (None when unpriced); the response carries it unless the
    # provider reports what the job cost.
    estimated_cost: Cost | None = None
    loop: asyncio.AbstractEventLoop | None = None  # the loop the job runs on (set with the deadline)
    _client: PooledClient | None = field(default=None, repr=False)  # the provider's pooled client, once looked up

    @property
    def provider(self) -> str:
        return self.family.provider.name

    @property
    def model(self) -> str:
        return self.config.model

    def time_left(self) -> float:
        """Seconds to the deadline (what one request may take at most)."""
        return max(0.0, self.deadline - (self.loop or asyncio.get_running_loop()).time())

    def client(self) -> PooledClient:
        """The pooled client for the provider's requests: looked up once per job (again if it was closed)."""
        pooled = self._client
        if pooled is None or pooled.wire.is_closed:
            pooled = self._client = self.pool.get(self.provider)
        return pooled

    def request_timeout(self) -> float:
        """One request's timeout: settings.request_timeout, cut to what is left of the deadline (the
        builtin TimeoutError when nothing is, which the lifecycle reports as the deadline)."""
        remaining = self.time_left()
        if remaining <= 0:
            raise TimeoutError
        return min(self.settings.request_timeout, remaining)


@dataclass
class Status:
    """What one submit or poll learned. `state` is one of JOB_STATES; a submit that returns the
    final answer (a synchronous API) says `completed` with no `job_id`."""

    state: str
    data: Any = None  # the provider's answer, shown as the progress update and raw response
    job_id: str | None = None  # submit only: the provider's id of the accepted job
    handle: dict[str, Any] | None = None  # submit only: what poll/fetch/cancel need (journaled)
    percent: int | None = None
    queue_position: int | None = None
    logs: list[Any] | None = None
    error: TarashException | None = None  # state failed: the error to raise
    retry_after: float | None = None  # the provider's hint for the next poll, in seconds
    native: Any = None  # the transport's own object for fetch (e.g. an SDK operation)


@runtime_checkable
class Transport(Protocol):
    """The four verbs (plus prepare and render) of one provider protocol; async, stateless across calls."""

    async def prepare(self, call: Call) -> None: ...

    async def submit(self, call: Call) -> Status: ...

    async def poll(self, call: Call) -> Status: ...

    async def fetch(self, call: Call, status: Status) -> Any: ...

    async def cancel(self, call: Call) -> bool: ...


class BaseTransport:
    """Defaults for a transport: nothing to prepare, no polling (the submit answers in full), no
    remote cancel, results journaled. Subclass and override what the provider has."""

    # Whether the completed response may be stored in the journal (False when it holds media bytes).
    journal_results = True

    async def prepare(self, call: Call) -> None:
        return None

    async def poll(self, call: Call) -> Status:
        raise NotImplementedError(f"{type(self).__name__} cannot poll: its submit must answer in full")

    async def fetch(self, call: Call, status: Status) -> Any:
        return status.native

    async def cancel(self, call: Call) -> bool:
        return False

    def watch(self, call: Call) -> AsyncIterator[Status] | None:
        return None  # no status stream: the lifecycle polls

    def render(self, call: Call) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} has no dry run")


__all__ = ["Call", "Status", "Transport", "BaseTransport", "JOB_STATES"]
