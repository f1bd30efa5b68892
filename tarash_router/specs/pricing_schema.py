"""The `pricing:` key of a family file: prices as the provider publishes them, with where and when
they were read.

```yaml
pricing:
  currency: USD
  per_second:                          # one unit: per_second | per_image | per_megapixel | per_video | per_request
    - {match: {resolution: 4k, generate_audio: false}, price: 0.40, label: "4k, no audio"}
    - {match: {resolution: 4k}, price: 0.60, label: "4k, audio"}
    - {match: {generate_audio: false}, price: 0.20, label: "no audio"}
    - {price: 0.40, label: audio}      # the first row that matches wins; a row without conditions always does
  multipliers:
    - {when: "{{ extra.voice_ids }}", times: 1.1, label: voice control}
  defaults: {duration_seconds: 8, resolution: 720p, generate_audio: true}   # the provider's, for unset fields
  source: https://fal.ai/models/fal-ai/veo3.1
  checked: 2026-12-05
```
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

UNITS = ("per_second", "per_image", "per_megapixel", "per_video", "per_request")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Condition(_Strict):
    match: dict[str, Any] = Field(
        default_factory=dict,
        description="Request fields (or `model`) and the value, or list of values, each must have; null matches a "
                    "field left unset with no default. All must hold")
    when: str | None = Field(default=None, description="A template over request, model and extra; the row applies when true")
    label: str | None = Field(default=None, description="Shown in the estimate's basis (default: the match written out)")


class PriceRow(_Condition):
    """One line of a provider's price table."""

    price: float = Field(ge=0, description="The unit price, in `currency` (or in credits when `credits` is set)")


class Multiplier(_Condition):
    """A factor applied to the unit price when its conditions hold (every matching one applies)."""

    times: float = Field(ge=0)


Price = Union[Annotated[float, Field(ge=0)], list[PriceRow]]


class PricingSpec(_Strict):
    """What one job of this family costs, as the provider publishes it: an estimate, not an invoice."""

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the amounts")
    per_second: Price | None = Field(default=None, description="Per second of output video (x number_of_videos)")
    per_image: Price | None = Field(default=None, description="Per output image (x n)")
    per_megapixel: Price | None = Field(default=None, description="Per megapixel of each output image (x n)")
    per_video: Price | None = Field(default=None, description="Flat per output video (x number_of_videos)")
    per_request: Price | None = Field(default=None, description="Flat per job, whatever it produces")
    credits: float | None = Field(
        None, gt=0, description="The prices are in the provider's credits, each worth this much in `currency`")
    multipliers: list[Multiplier] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="The provider's default for request fields a request may leave unset; "
                                          "without one, a request that leaves the quantity unset has no estimate")
    sizes: dict[str, str] = Field(
        default_factory=dict, description="Named sizes the provider takes (square_hd) as WIDTHxHEIGHT, for megapixels")
    round_megapixels: Literal["up", "exact"] = Field(
        "exact", description="up: each image is billed whole megapixels, rounded up (fal)")
    minimum: float | None = Field(default=None, ge=0, description="The least one job is billed, in `currency`")
    source: str = Field(pattern=r"^https://\S+$", description="The provider's own page the prices were read from")
    checked: date = Field(description="When they were read (YYYY-MM-DD)")
    notes: str | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> PricingSpec:
        units = [name for name in UNITS if getattr(self, name) is not None]
        if len(units) != 1:
            found = ", ".join(units) or "none"
            raise ValueError(f"pricing takes exactly one unit of {', '.join(UNITS)}; found {found}")
        return self

    @property
    def unit(self) -> str:
        return next(name for name in UNITS if getattr(self, name) is not None)

    @property
    def rows(self) -> list[PriceRow]:
        value = getattr(self, self.unit)
        return [PriceRow(price=value, when=None, label=None)] if isinstance(value, (int, float)) else list(value)


__all__ = ["PricingSpec", "PriceRow", "Multiplier", "UNITS"]
