"""A route's cost guard: a budget per request and a spend limit per period, both decided from the
estimate before anything is sent.

- `budget: {max_per_request: 2.00}`: a target whose estimate is over it is skipped with the reason;
  when no target is left, the call fails with `BudgetExceededError`.
- `spend_limit: {amount: 100, per: day}`: the estimate is reserved in the period's count (memory, or
  Redis through TARASH_LIMITS_STORE) just before the submit, in one atomic step that fails when it
  would pass the limit; a cost the provider reports replaces the reservation, and a job that was
  never created gives it back. A store that does not answer refuses the request: the limit holds.
- A target with no estimate (no prices, or none for this request) is refused by either guard, unless
  it says `unpriced: allow`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ..engine import cost as costs
from ..models import Cost
from ..specs.pricing import format_money
from .spend import SpendStore, period_of, spend_store, to_micros

logger = logging.getLogger("tarash_router.routing")


@dataclass(frozen=True)
class Budget:
    """The most one request may cost, estimated before it is sent."""

    max_per_request: float
    currency: str = "USD"
    unpriced: str = "refuse"  # refuse | allow: a target with no estimate

    def describe(self) -> str:
        return f"{format_money(self.max_per_request, self.currency)} a request{_unpriced_note(self.unpriced)}"


@dataclass(frozen=True)
class SpendLimit:
    """The most a route may spend in one period (UTC hour, day, ISO week or month)."""

    amount: float
    per: str = "day"
    currency: str = "USD"
    unpriced: str = "refuse"

    def describe(self) -> str:
        return f"{format_money(self.amount, self.currency)} a {self.per} (UTC){_unpriced_note(self.unpriced)}"


def _unpriced_note(unpriced: str) -> str:
    return "; targets without an estimate allowed" if unpriced == "allow" else ""


@dataclass(frozen=True)
class Reservation:
    """Money set aside in a period's count for one submitted job."""

    key: str
    micros: int


def budget_refusal(budget: Budget | None, cost: Cost | None, why: str | None) -> str | None:
    """Why `budget` refuses a request with this estimate, or None when it fits."""
    if budget is None:
        return None
    if cost is None:
        if budget.unpriced == "allow":
            return None
        return f"no estimate to hold to the budget of {budget.describe()}: {why}"
    if cost.currency != budget.currency:
        return f"priced in {cost.currency}, but the budget is in {budget.currency}"
    if cost.amount > budget.max_per_request + 1e-9:
        return (f"over budget: the estimate {format_money(cost.amount, cost.currency)} ({cost.basis}) is more "
                f"than the budget of {budget.describe()}")
    return None


class CostGuard:
    """The cost side of one routed call: estimates, the budget check and the spend reservation."""

    def __init__(self, budget: Budget | None, spend_limit: SpendLimit | None, route: str | None,
                 settings: Any) -> None:
        self.budget = budget
        self.spend_limit = spend_limit
        self.route = route or "-"
        self.settings = settings
        self.refusals = 0  # targets this guard turned away (all of them: BudgetExceededError)

    def active(self, target_budget: Budget | None = None) -> bool:
        return (target_budget or self.budget) is not None or self.spend_limit is not None

    @staticmethod
    def estimate(family: Any, model: str, request: Any) -> tuple[Cost | None, str | None]:
        return costs.estimate_or_reason(family, model, request)

    def _store(self) -> SpendStore:
        return spend_store(self.settings.limits_store, self.settings.journal_timeout)

    async def admit(self, target_budget: Budget | None, cost: Cost | None,
                    why: str | None) -> tuple[Reservation | None, str | None]:
        """Check the budget, then reserve the estimate under the spend limit: (reservation, refusal)."""
        refusal = budget_refusal(target_budget or self.budget, cost, why)
        if refusal is None:
            reservation, refusal = await self._reserve(cost, why)
            if refusal is None:
                return reservation, None
        self.refusals += 1
        return None, refusal

    async def _reserve(self, cost: Cost | None, why: str | None) -> tuple[Reservation | None, str | None]:
        limit = self.spend_limit
        if limit is None:
            return None, None
        if cost is None:
            if limit.unpriced == "allow":
                return None, None
            return None, f"no estimate to count against the spend limit of {limit.describe()}: {why}"
        if cost.currency != limit.currency:
            return None, f"priced in {cost.currency}, but the spend limit counts {limit.currency}"
        period, ttl = period_of(limit.per)
        key = f"{self.route}:{limit.currency}:{period}"
        amount = to_micros(cost.amount)
        try:
            added, count = await asyncio.wait_for(self._store().reserve(key, amount, to_micros(limit.amount), ttl),
                                                  self.settings.journal_timeout)
        except Exception as exc:  # noqa: BLE001 - redis errors, timeouts: the limit cannot be checked
            logger.warning("route %s: spend store unavailable (%s); refusing rather than overspending",
                           self.route, type(exc).__name__)
            return None, (f"the spend limit of {limit.describe()} cannot be checked (its store did not answer: "
                          f"{type(exc).__name__}); nothing is sent")
        if not added:
            spent = format_money(count / 1_000_000, limit.currency)
            return None, (f"spend limit: {spent} of {limit.describe()} spent in {period}; this request's "
                          f"{format_money(cost.amount, cost.currency)} would pass it")
        return Reservation(key, amount), None

    async def settle(self, reservation: Reservation | None, final: Cost | None) -> None:
        """A finished job: its reported cost replaces the estimate reserved for it."""
        if reservation is None or final is None or final.estimated:
            return
        await self._adjust(reservation.key, to_micros(final.amount) - reservation.micros)

    async def release(self, reservation: Reservation | None) -> None:
        """A job that was never created gives its reservation back."""
        if reservation is not None:
            await self._adjust(reservation.key, -reservation.micros)

    async def _adjust(self, key: str, delta: int) -> None:
        if not delta:
            return
        try:
            await asyncio.wait_for(self._store().adjust(key, delta), self.settings.journal_timeout)
        except Exception as exc:  # noqa: BLE001 - the count stays as reserved: on the safe side
            logger.warning("route %s: spend adjustment not recorded (%s)", self.route, type(exc).__name__)


__all__ = ["Budget", "SpendLimit", "Reservation", "CostGuard", "budget_refusal"]
