"""`Runtime`: what running one target needs, in one object: settings, the spec registry, the journal,
the transports and the HTTP pool. Routing runs targets through it; `Client` owns one.

Any part left as None is the process-wide one, looked up at use (so the seed API's module functions,
`set_journal`, `load_specs` and `register_provider` keep working on the default client).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from collections.abc import Awaitable
from typing import Any

from ..errors import ValidationError
from ..journal import get_journal
from ..lazy import Lazy
from ..journal.idempotency import HeldClaim
from ..journal.records import JobRecord
from ..journal.store import JobStore
from ..models import Cost, GenerationConfig, GenerationRequest
from ..settings import TarashSettings, get_settings, resolve_api_key
from ..specs.compiled import FamilySpec
from ..specs.model_ids import check_listed
from ..specs.params import check_request, ignored_fields, retirement, unhonoured_fields
from ..specs.registry import SpecRegistry, get_registry
from . import cost
from .client import POOL, ClientPool
from .lifecycle import Lifecycle
from .limits import AccountLimiter, LimitStore, account_of, limits_for, open_limits
from .mock import MockTransport
from .transport import Call, Transport
from .transports import TransportTable
from .transports.spec import empty_request
from .webhooks import ProviderWebhookUrl, webhook_url_for

logger = logging.getLogger("tarash_router.engine")

# Providers served by a registered Python handler, and transports registered by name, process-wide.
PROCESS_TRANSPORTS = TransportTable()
_PROCESS_LIMITS: Lazy[LimitStore] = Lazy(lambda: open_limits(get_settings().limits_store,
                                                              get_settings().journal_timeout))
_MOCK = MockTransport()


@dataclass
class Attempt:
    """Who serves one target, decided once (and reused by its retries): the transport, the family,
    and, when checked, whether the request passed the family's checks and a key was found."""

    transport: Transport
    family: FamilySpec | None
    unsupported: str | None = None  # why this target cannot serve the request (checked only)
    checked: bool = False  # the request passed check_request: the transport need not check it again
    api_key: str | None = None
    warnings: list[str] = field(default_factory=list)  # logged when the attempt runs
    dropped: list[str] = field(default_factory=list)  # request fields the config's `adapt` drops
    notes: list[str] = field(default_factory=list)  # for the attempt's metadata (e.g. a generic family)
    cost: Cost | None = None  # the estimate, once routing made it

    @property
    def family_name(self) -> str | None:
        return f"{self.family.provider.name}/{self.family.name}" if self.family is not None else None


class Runtime:
    """Runs one target (one provider/model config) through the one job lifecycle."""

    def __init__(self, *, settings: TarashSettings | None = None, registry: SpecRegistry | None = None,
                 journal: JobStore | None = None, transports: TransportTable | None = None,
                 pool: ClientPool | None = None, limits: LimitStore | None = None, on_event: Any = None) -> None:
        self._limits = limits
        self.on_event = on_event  # telemetry callback for calls run here (None: the process-wide one)
        self._settings = settings
        self._registry = registry
        self._journal = journal
        self.transports = transports if transports is not None else PROCESS_TRANSPORTS
        self.pool = pool if pool is not None else POOL

    @property
    def settings(self) -> TarashSettings:
        return self._settings if self._settings is not None else get_settings()

    @property
    def registry(self) -> SpecRegistry:
        return self._registry if self._registry is not None else get_registry()

    @property
    def journal(self) -> JobStore:
        return self._journal if self._journal is not None else get_journal()

    @property
    def limits(self) -> LimitStore:
        if self._limits is None:
            self._limits = _PROCESS_LIMITS.get() if self._settings is None else open_limits(
                self.settings.limits_store, self.settings.journal_timeout)
        return self._limits

    def limiter(self, family: FamilySpec | None, config: GenerationConfig,
                api_key: str | None = None) -> AccountLimiter | None:
        """The account caps that apply to a job on `family` with this key (None when there are none)."""
        if family is None:
            return None
        declared = family.provider.file.limits
        overrides = self.settings.limits
        if declared is None and not overrides:
            return None  # the usual case: no caps declared or set
        limits = limits_for(family.provider.name, declared.model_dump(exclude_none=True) if declared else None,
                            overrides)
        if not limits.any:
            return None
        if api_key is None and family.provider.file.auth is not None:  # the account is the key in use
            auth = family.provider.file.auth
            try:
                api_key = resolve_api_key(config.api_key, auth.env, auth.join_env)
            except ValueError:
                api_key = None  # a malformed key: the transport refuses it, naming the variable
        account = account_of(family.provider.name, api_key or config.api_key)
        return AccountLimiter(self.limits, account, limits, self.settings.journal_timeout,
                              wait=self.settings.at_limit == "wait")

    # ------------------------------------------------------------ choosing the transport

    def _family_or_none(self, config: GenerationConfig, modality: str) -> FamilySpec | None:
        try:
            return self.registry.resolve(config.provider, config.model, modality)
        except ValidationError:
            return None  # a made-up provider or model: the mock checks nothing

    def plan(self, config: GenerationConfig, request: GenerationRequest, modality: str,
             check: bool = False) -> Attempt:
        """Decide once, offline, who serves `config` and whether it can: resolve the family, refuse a
        retired model, validate the request (noting the fields `adapt` drops) and find the key. With
        `check`, why it cannot is recorded (`unsupported`) instead of raised."""
        if config.mock is not None and config.mock.enabled:
            return Attempt(_MOCK, self._family_or_none(config, modality))
        handler = self.transports.for_provider(config.provider)
        if handler is not None:
            return Attempt(handler, None)
        try:
            family = self.registry.resolve(config.provider, config.model, modality)
            retired = retirement(family, config.model)
            if retired is not None:
                raise ValidationError(retired, provider=family.provider.name, model=config.model)
            unlisted = check_listed(self.registry, family, config.model, config.allow_unknown_model)
            warnings = check_request(family, config.model, request, drop=config.adapt)
        except ValidationError as exc:
            if not check:
                raise
            return Attempt(self.transports.spec, None, unsupported=exc.message)
        attempt = Attempt(self.transports.for_family(family), family, checked=True, warnings=warnings,
                          dropped=[f for f in unhonoured_fields(family, request) if f in config.adapt]
                          if config.adapt else [])
        if unlisted is not None:  # logged when the attempt runs, and kept in its metadata
            attempt.warnings.append(unlisted)
            attempt.notes.append(unlisted)
        auth = family.provider.file.auth
        if auth is not None:
            try:
                attempt.api_key = resolve_api_key(config.api_key, auth.env, auth.join_env)
            except ValueError as exc:  # a malformed key: the transport reports it, naming the variable
                logger.debug("key check deferred to the transport: %s", type(exc).__name__)
                return attempt
            if attempt.api_key is None and check:
                names = " or ".join(auth.env) or "config.api_key"
                attempt.unsupported = f"no API key for {family.provider.name} (set {names} or config.api_key)"
        return attempt

    def unsupported_reason(self, config: GenerationConfig, request: GenerationRequest, modality: str) -> str | None:
        """Why this target cannot serve the request (checked offline, before any HTTP), or None."""
        return self.plan(config, request, modality, check=True).unsupported

    # ------------------------------------------------------------ running

    def _call(self, family: FamilySpec | None, config: GenerationConfig, request: GenerationRequest,
              modality: str, on_progress: Any) -> Call:
        return Call(family=family, config=config, request=request, modality=modality,  # type: ignore[arg-type]
                    settings=self.settings, pool=self.pool, on_progress=on_progress)

    def dispatch(self, config: GenerationConfig, request: GenerationRequest, on_progress: Any, modality: str,
                 claim: HeldClaim | None = None, attempt: Attempt | None = None,
                 submit_only: bool = False, webhook_url: str | ProviderWebhookUrl | None = None) -> Awaitable[Any]:
        """Run one target once (to await; no coroutine of its own, as every frame is walked again each
        time a job resumes), through the lifecycle (submit once, wait, fetch), or with
        `submit_only` submit it and return its `Job` at once; `attempt` is what `plan` decided for
        it, if it was asked already. `webhook_url` (submit only) goes on the submit as the provider's
        file declares (`webhook:`); a provider without one refuses it before anything is sent, unless
        it is a `ProviderWebhookUrl`, which gives such a target none (it is polled)."""
        attempt = attempt if attempt is not None else self.plan(config, request, modality)
        call = self._call(attempt.family, config, request, modality, on_progress)
        call.webhook_url = webhook_url_for(attempt.family, config, webhook_url)
        call.estimated_cost = attempt.cost
        if attempt.checked:
            call.checked, call.api_key = True, attempt.api_key
            for warning in attempt.warnings:
                logger.warning("%s", warning)
        journal = None if attempt.family is None or attempt.transport is _MOCK else self.journal
        limiter = None if journal is None else self.limiter(attempt.family, config, attempt.api_key)
        lifecycle = Lifecycle(attempt.transport, call, journal, claim, limiter=limiter)
        if submit_only:
            if journal is None:
                raise ValidationError(f"{config.provider}/{config.model} is served by a Python handler or the mock: "
                                      "its jobs are not journaled, so they cannot be submitted and waited on later; "
                                      "use generate_*", provider=config.provider, model=config.model)
            return lifecycle.start()
        return lifecycle.run()

    async def resume(self, record: JobRecord, config: GenerationConfig, on_progress: Any) -> Any:
        """Follow a journaled job to its result without submitting anything."""
        return await self._following(record, config, on_progress).follow(record.state)

    async def check(self, record: JobRecord, config: GenerationConfig) -> Any:
        """One status request for a journaled job; its `Job`, the journal brought up to date."""
        return await self._following(record, config).check()

    async def cancel(self, record: JobRecord, config: GenerationConfig) -> bool:
        """Ask the provider to cancel a journaled job; True (and journaled as cancelled) if it agreed."""
        return await self._following(record, config).cancel()

    def _following(self, record: JobRecord, config: GenerationConfig, on_progress: Any = None) -> Lifecycle:
        """The lifecycle of a job the journal already holds (nothing is validated or submitted again)."""
        family = self.registry.resolve(record.provider, record.model, record.modality)
        call = self._call(family, config, empty_request(record.modality), record.modality, on_progress)
        call.estimated_cost = record.estimated_cost
        return Lifecycle(self.transports.for_family(family), call, self.journal, record=record,
                         limiter=self.limiter(family, config))

    def render(self, config: GenerationConfig, request: GenerationRequest, modality: str) -> dict[str, Any]:
        """The first request a generation would send, secrets masked, with its estimated `cost`; no network."""
        family = self.registry.resolve(config.provider, config.model, modality)
        retired = retirement(family, config.model)
        if retired is not None:
            raise ValidationError(retired, provider=family.provider.name, model=config.model)
        unlisted = check_listed(self.registry, family, config.model, config.allow_unknown_model)
        if unlisted is not None:
            logger.warning("%s", unlisted)
        transport = self.transports.for_family(family)
        rendered: dict[str, Any] = transport.render(  # type: ignore[attr-defined]
            self._call(family, config, request, modality, None))
        ignored = ignored_fields(family, config.model, request, drop=config.adapt)
        if ignored:  # set by the caller, absent from the request above
            rendered["ignored_fields"] = ignored
        if unlisted is not None:
            rendered["warnings"] = [unlisted]
        rendered["cost"] = cost.as_json(cost.estimate(family, config.model, request))
        return rendered


__all__ = ["Runtime", "Attempt", "PROCESS_TRANSPORTS"]
