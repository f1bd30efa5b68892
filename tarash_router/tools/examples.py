"""Run a family's golden `examples` offline: request -> rendered body (or error) and estimated cost,
response -> fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic

from ..engine.cost import estimate_or_reason
from ..engine.render import prepare_job
from ..engine.url_safety import origin_of
from ..errors import TarashException
from ..models import ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest
from ..specs.compiled import FamilySpec
from ..specs.schema import ExampleCost, ExampleSpec


@dataclass
class ExampleFailure:
    """Why an example did not hold, with the key path of the example in its file."""

    family: FamilySpec
    index: int
    message: str

    @property
    def key(self) -> tuple[Any, ...]:
        return ("examples", self.index)

    def __str__(self) -> str:
        line, _ = self.family.source.position(self.key)
        where = f"{self.family.source.file}:{line}" if line else self.family.source.file
        return f"{where}: example {self.index}: {self.message}"


def example_model(family: FamilySpec, example: ExampleSpec) -> str:
    if example.model:
        return example.model
    concrete = [m for m in family.models if m != "*"]
    return concrete[0] if concrete else "example/model"


def run_example(family: FamilySpec, index: int) -> ExampleFailure | None:
    """Check one example; None when it holds."""
    example = family.file.examples[index]
    config_cls, request_cls = ((VideoGenerationConfig, VideoGenerationRequest) if family.modality == "video"
                               else (ImageGenerationConfig, ImageGenerationRequest))

    def failure(message: str) -> ExampleFailure:
        return ExampleFailure(family, index, message)

    try:
        request = request_cls.model_validate(example.request)
    except pydantic.ValidationError as exc:
        return failure(f"request is not a valid {request_cls.__name__}: {exc.errors()[0]['msg']}")
    config = config_cls(provider=family.provider.name, model=example_model(family, example))
    try:
        job = prepare_job(family, config, request, dry_run=True)
    except TarashException as exc:
        if example.raises is None:
            return failure(f"raised {type(exc).__name__}: {exc.message}")
        if type(exc).__name__ != example.raises:
            return failure(f"expected {example.raises}, got {type(exc).__name__}: {exc.message}")
        if example.message_contains and example.message_contains not in exc.message:
            return failure(f"error message {exc.message!r} lacks {example.message_contains!r}")
        return None
    except Exception as exc:  # noqa: BLE001 - a spec's template may fail in any way (a sandbox refusal...)
        return failure(f"rendering failed: {_describe(exc)}")
    if example.raises is not None:
        return failure(f"expected {example.raises}, but the request rendered: {job.payload}")
    if example.body is not None and job.payload != example.body:
        return failure(f"body mismatch:\n  expected {example.body}\n  rendered {job.payload}")
    problem = _url_problem(job, family) or _cost_problem(family, example, config.model, request)
    if problem is not None:
        return failure(problem)
    if example.response is not None:
        try:
            extracted = family.response.extract(example.response, {"request": request, "model": config.model})
        except Exception as exc:  # noqa: BLE001 - a response template may fail in any way
            return failure(f"response extraction failed: {_describe(exc)}")
        expected = example.result or {}
        for key, value in expected.items():
            if extracted.get(key) != value:
                return failure(f"response field {key!r}: expected {value!r}, extracted {extracted.get(key)!r}")
    return None


def _cost_problem(family: FamilySpec, example: ExampleSpec, model: str, request: Any) -> str | None:
    """An example's `cost:` is the estimate it must price to: an amount (null: unpriced), or
    {amount, basis} to pin the basis text too."""
    if "cost" not in example.model_fields_set:
        return None
    expected = example.cost
    amount, basis = (expected.amount, expected.basis) if isinstance(expected, ExampleCost) else (expected, None)
    found, why = estimate_or_reason(family, model, request)
    if amount is None:
        return None if found is None else f"expected no price, estimated {found.amount:g} ({found.basis})"
    if found is None:
        return f"expected a cost of {amount:g}, but there is no estimate: {why}"
    if abs(found.amount - amount) > 1e-9:
        return f"cost: expected {amount:g}, estimated {found.amount:g} ({found.basis})"
    if basis is not None and found.basis != basis:
        return f"cost basis:\n  expected {basis}\n  estimated {found.basis}"
    return None


def _describe(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, TarashException) else str(exc)
    return f"{type(exc).__name__}: {message[:200]}"


def _url_problem(job: Any, family: FamilySpec) -> str | None:
    """Every request of the lifecycle must render to an absolute http(s) URL: a URL template that
    always fails would otherwise pass every example. Poll, result and cancel URLs read the job the
    submit response describes; a stand-in job has a URL for each `*_url` field and a text otherwise."""
    stand_in = {name: f"{job.base_url}/example-job/{name}" if name.endswith("url") else f"example-job-{name}"
                for name in family.provider.job_paths}
    for phase in ("submit", "poll", "result", "cancel"):
        template = getattr(family, phase)
        if template is None:
            continue
        try:
            url = job.build(template, stand_in if phase != "submit" else None, dry_run=True).url
        except Exception as exc:  # noqa: BLE001 - a spec's template may fail in any way
            return f"{phase} URL does not render: {_describe(exc)}"
        if origin_of(url) is None:
            return f"{phase} URL {url[:120]!r} is not an absolute http(s) URL"
    return None


def run_examples(family: FamilySpec) -> list[ExampleFailure]:
    return [f for i in range(len(family.file.examples)) if (f := run_example(family, i)) is not None]


__all__ = ["run_example", "run_examples", "ExampleFailure"]
