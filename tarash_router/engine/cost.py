"""What a job costs: the estimate from its family's prices, and what the provider itself reports.

The estimate is made offline, before anything is sent (render_request, explain, route budgets);
a provider whose result carries a cost (the family's `response.cost` path) replaces it afterwards.
"""

from __future__ import annotations

import logging
from typing import Any

from ..models import Cost
from ..specs.compiled import FamilySpec
from ..specs.pricing import Unpriced

logger = logging.getLogger("tarash_router.cost")


def estimate_or_reason(family: FamilySpec | None, model: str, request: Any) -> tuple[Cost | None, str | None]:
    """The estimate, or None and why there is none (no family, no prices, no matching price)."""
    if family is None:
        return None, "no spec family serves this target, so it has no prices"
    if family.pricing is None:
        return None, f"{family.provider.name}/{family.name} declares no prices"
    try:
        return family.pricing.estimate(model, request), None
    except Unpriced as exc:
        return None, str(exc)


def estimate(family: FamilySpec | None, model: str, request: Any) -> Cost | None:
    """The estimated cost of `request` on `model`, or None when the family prices nothing for it."""
    return estimate_or_reason(family, model, request)[0]


def reported(family: FamilySpec | None, response: Any, request: Any) -> Cost | None:
    """The cost the provider's result states (the family's `response.cost`), if it states one."""
    if family is None or "cost" not in family.response.paths:
        return None
    raw = getattr(response, "raw_response", None)
    try:
        found = family.response.extract(raw, {"request": request, "model": getattr(response, "model", None)},
                                        only=("cost",)).get("cost")
        amount = float(found) if found is not None and not isinstance(found, bool) else None
    except Exception as exc:  # noqa: BLE001 - a provider's odd result must not fail a finished job
        logger.warning("%s/%s: the reported cost could not be read (%s)", family.provider.name, family.name,
                       type(exc).__name__)
        return None
    if amount is None or amount < 0:
        return None
    currency = family.pricing.spec.currency if family.pricing is not None else "USD"
    return Cost(currency=currency, amount=round(amount, 6), basis="reported by the provider", estimated=False)


def as_json(cost: Cost | None) -> dict[str, Any] | None:
    return cost.model_dump(mode="json") if cost is not None else None


__all__ = ["estimate", "estimate_or_reason", "reported", "as_json"]
