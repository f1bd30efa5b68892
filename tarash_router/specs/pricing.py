"""A family's `pricing:` compiled once at load, and the estimate it gives a request.

An estimate multiplies what the request asks for (seconds, images, megapixels) by the first price
row whose conditions hold and by every multiplier whose conditions hold. A field the request leaves
unset is priced at the provider's default (`defaults:`), and the basis says so. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..models import Cost
from .pricing_schema import PricingSpec
from .templates import LeafError, ValueTree

CONDITION_NAMES = ("request", "model", "extra")
_SIZE = re.compile(r"^\s*(\d+)\s*[x*×:]\s*(\d+)\s*$")
_UNIT_TEXT = {"per_second": "/s", "per_image": "/image", "per_megapixel": "/MP", "per_video": "/video",
              "per_request": "/job"}


class Unpriced(Exception):
    """This request has no price in the family's table; the message says why."""


class PricingError(Exception):
    """A `pricing:` section that cannot work, with the key path inside it."""

    def __init__(self, message: str, path: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


@dataclass
class Condition:
    """`match` (field -> accepted values) and `when` (a template) of one row or multiplier."""

    match: dict[str, tuple[Any, ...]]
    when: ValueTree | None
    label: str

    def holds(self, view: dict[str, Any], model: str, extra: dict[str, Any]) -> bool:
        for name, accepted in self.match.items():
            value = model.split(":", 1)[0] if name == "model" else view.get(name)
            if value not in accepted:
                return False
        if self.when is None:
            return True
        try:
            return bool(self.when.render({"request": view, "model": model, "extra": extra}))
        except Exception as exc:  # noqa: BLE001 - a spec's template may fail in any way
            raise Unpriced(f"a pricing condition could not be evaluated ({type(exc).__name__})") from None


@dataclass
class CompiledPricing:
    spec: PricingSpec
    rows: list[tuple[Condition, float]]
    multipliers: list[tuple[Condition, float]] = field(default_factory=list)

    @property
    def unit(self) -> str:
        return self.spec.unit

    def estimate(self, model: str, request: Any) -> Cost:
        """The estimated cost of `request` on `model`; `Unpriced` when the table has no price for it."""
        spec = self.spec
        extra = dict(getattr(request, "extra_params", None) or {})
        view, assumed = _view(request, spec.defaults)
        price, label = self._unit_price(view, model, extra)
        factors = [(times, cond.label) for cond, times in self.multipliers if cond.holds(view, model, extra)]
        quantity, quantity_text = self._quantity(view)
        amount = quantity * price * (spec.credits or 1.0)
        for times, _ in factors:
            amount *= times
        parts = [quantity_text, f"{_price(price, spec)}{_UNIT_TEXT[self.unit]}" + (f" ({label})" if label else "")]
        if spec.credits:
            parts.append(f"{format_money(spec.credits, spec.currency)}/credit")
        parts += [f"{_number(times)} ({text})" for times, text in factors]
        basis = " × ".join(p for p in parts if p)
        if spec.minimum is not None and amount < spec.minimum:
            amount = spec.minimum
            basis += f", raised to the minimum of {format_money(spec.minimum, spec.currency)} a job"
        amount = round(amount, 6)
        basis += f" = {format_money(amount, spec.currency)}"
        if assumed:
            basis += "; unset, priced at the provider's default: " + ", ".join(
                f"{name}={_text(value)}" for name, value in assumed.items())
        return Cost(currency=spec.currency, amount=amount, basis=basis)

    def _unit_price(self, view: dict[str, Any], model: str, extra: dict[str, Any]) -> tuple[float, str]:
        for condition, price in self.rows:
            if condition.holds(view, model, extra):
                return price, condition.label
        raise Unpriced(f"no listed price matches {model} with this request")

    def _quantity(self, view: dict[str, Any]) -> tuple[float, str]:
        unit = self.unit
        if unit == "per_request":
            return 1.0, "1 job"
        if unit in ("per_second", "per_video"):
            videos = int(view.get("number_of_videos") or 1)
            count = f"{videos} videos" if videos != 1 else ""
            if unit == "per_video":
                return float(videos), count or "1 video"
            seconds = view.get("duration_seconds")
            if not isinstance(seconds, (int, float)) or seconds <= 0:
                raise Unpriced("the request sets no duration and the pricing declares no default")
            return videos * float(seconds), " × ".join(p for p in (count, f"{_number(seconds)} s") if p)
        images = int(view.get("n") or 1)
        count = f"{images} image{'s' if images != 1 else ''}"
        if unit == "per_image":
            return float(images), count
        width, height = self._dimensions(view.get("size"))
        megapixels = width * height / 1_000_000
        if self.spec.round_megapixels == "up":
            billed = float(max(1, math.ceil(round(megapixels, 6))))
            shown = f"{_number(billed)} MP ({width}x{height}, rounded up)"
        else:
            billed = megapixels
            shown = f"{_number(round(megapixels, 3))} MP ({width}x{height})"
        return images * billed, f"{count} × {shown}"

    def _dimensions(self, size: Any) -> tuple[int, int]:
        if size is None:
            raise Unpriced("the request sets no size and the pricing declares no default")
        text = self.spec.sizes.get(size, size) if isinstance(size, str) else size
        parsed = parse_size(text)
        if parsed is None:
            raise Unpriced(f"size {size!r} is not WIDTHxHEIGHT nor a size the pricing names")
        return parsed


def parse_size(text: Any) -> tuple[int, int] | None:
    """'1024x768' (or 1024*768) -> (1024, 768); anything else -> None."""
    found = _SIZE.match(text) if isinstance(text, str) else None
    return (int(found.group(1)), int(found.group(2))) if found else None


_NOT_PRICED = frozenset({"image_list", "extra_params"})


def _view(request: Any, defaults: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request's fields with the provider's defaults in place of unset ones, and those defaults."""
    if hasattr(type(request), "model_fields"):  # a model keeps its fields' values in its __dict__
        view = {name: value for name, value in request.__dict__.items() if name not in _NOT_PRICED}
    else:
        view = {}
    assumed = {name: value for name, value in defaults.items() if view.get(name) is None}
    view.update(assumed)
    return view, assumed


def compile_pricing(spec: PricingSpec, request_fields: frozenset[str]) -> CompiledPricing:
    """Check and compile a pricing section; `PricingError` names the key that is wrong."""
    fields = set(request_fields) - {"image_list", "extra_params"}
    unit = spec.unit
    for name in spec.defaults:
        if name not in fields:
            raise PricingError(f"`defaults` names {name!r}, which is not a request field (known: "
                               f"{', '.join(sorted(fields))})", ("defaults", name))
    for name, text in spec.sizes.items():
        if parse_size(text) is None:
            raise PricingError(f"expected WIDTHxHEIGHT, found {text!r}", ("sizes", name))
    size = spec.defaults.get("size")
    if size is not None and parse_size(spec.sizes.get(size, size) if isinstance(size, str) else size) is None:
        raise PricingError(f"expected WIDTHxHEIGHT or a name in `sizes`, found {size!r}", ("defaults", "size"))
    raw = getattr(spec, unit)
    rows = [(_condition(row, fields, (unit, i) if isinstance(raw, list) else (unit,)), row.price)
            for i, row in enumerate(spec.rows)]
    multipliers = [(_condition(m, fields, ("multipliers", i)), m.times) for i, m in enumerate(spec.multipliers)]
    return CompiledPricing(spec=spec, rows=rows, multipliers=multipliers)


def _condition(entry: Any, fields: set[str], path: tuple[Any, ...]) -> Condition:
    match: dict[str, tuple[Any, ...]] = {}
    for name, value in entry.match.items():
        if name != "model" and name not in fields:
            raise PricingError(f"`match` names {name!r}, which is neither `model` nor a request field (known: "
                               f"{', '.join(sorted(fields))})", (*path, "match", name))
        match[name] = tuple(value) if isinstance(value, list) else (value,)
    when = None
    if entry.when is not None:
        try:
            when = ValueTree(entry.when, (*path, "when"))
            when.check_names(CONDITION_NAMES, {"request": fields})
        except LeafError as exc:
            raise PricingError(str(exc.error), exc.path) from None
    label = entry.label or ", ".join(f"{name} {_text(v[0]) if len(v) == 1 else ' or '.join(map(_text, v))}"
                                     for name, v in match.items())
    return Condition(match=match, when=when, label=label)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "unset" if value is None else str(value)


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def format_money(amount: float, currency: str) -> str:
    text = f"{amount:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    text = f"{whole}.{decimals.ljust(2, '0')}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def _price(price: float, spec: PricingSpec) -> str:
    return f"{_number(float(price))} credits" if spec.credits else format_money(price, spec.currency)


__all__ = ["CompiledPricing", "compile_pricing", "Unpriced", "PricingError", "parse_size", "format_money"]
