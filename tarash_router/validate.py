"""Offline checks of spec and routes files for CI: every problem found, each at file:line:col.

Spec files are loaded one by one (so one broken file does not hide the others), their examples run,
deprecations become warnings; then routes files are checked against the specs that loaded.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from .errors import SpecError
from .models import ImageGenerationRequest, VideoGenerationRequest
from .routing.routes import read_routes_file
from .tools.examples import run_examples
from .specs.compiled import FamilySpec
from .specs.loader import PROVIDER_FILE, load_provider
from .specs.params import retirement
from .specs.model_ids import unlisted_model
from .specs.registry import SpecRegistry, builtin_spec_dir
from .specs.yaml_source import load_yaml_file

# Wall time one file may take to load and check before it is reported and skipped.
FILE_TIME_BUDGET = 3.0


@dataclass
class Finding:
    """One problem (or warning) at a place in a file."""

    file: str
    line: int | None
    column: int | None
    severity: str  # "error" | "warning"
    message: str
    key: str | None = None

    @classmethod
    def from_error(cls, exc: SpecError, severity: str = "error") -> Finding:
        return cls(exc.file or "<unknown>", exc.line, exc.column, severity, exc.message, exc.key)

    def text(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        key = f" [{self.key}]" if self.key else ""
        return f"{where}: {self.severity}: {self.message}{key}"

    def github(self) -> str:
        level = "error" if self.severity == "error" else "warning"
        parts = [f"file={self.file}"] + [f"{k}={v}" for k, v in (("line", self.line), ("col", self.column)) if v]
        message = self.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        key = f" [{self.key}]" if self.key else ""
        return f"::{level} {','.join(parts)}::{message}{key}"


@lru_cache(maxsize=1)
def _builtin_registry() -> SpecRegistry:
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    return registry


def _yaml_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for root in paths:
        files += [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return files


def _is_routes_file(path: Path) -> bool:
    try:
        doc = load_yaml_file(path)
    except Exception:  # noqa: BLE001 - any failure is reported when it is loaded as a spec
        return False
    return isinstance(doc.data, dict) and "routes" in doc.data and "provider" not in doc.data


def validate_paths(paths: list[Path], *, today: date | None = None, notes: list[str] | None = None) -> list[Finding]:
    """Check spec and routes files under `paths` (default: the built-in specs). Never raises SpecError.
    `notes`, when given, receives what is worth saying but is no problem (the families without prices)."""
    today = today or date.today()
    findings: list[Finding] = []
    checked: list[FamilySpec] = []
    registry = SpecRegistry()
    builtin = builtin_spec_dir()
    targets = [Path(p) for p in paths] or [builtin]
    if not any(Path(p).resolve() == builtin.resolve() for p in targets):
        try:
            registry = _builtin_registry().copy()  # user families may extend built-in providers
        except SpecError as exc:
            findings.append(Finding.from_error(exc))
    files = _yaml_files(targets)
    routes_files = [f for f in files if _is_routes_file(f)]
    spec_files = [f for f in files if f not in routes_files]
    registry.begin_layer()  # the checked files form one layer: a prefix claimed twice among them is an error
    for path in sorted(spec_files, key=lambda p: p.name != PROVIDER_FILE):
        findings += _guarded(path, partial(_check_spec_file, path, registry, today, checked))
    seen: dict[str, str] = {}
    for path in routes_files:
        loaded: dict[str, Any] = {}
        problems = _guarded(path, partial(_load_routes_into, loaded, path, registry))
        findings += problems
        for name, route in loaded.items():
            findings += _route_targets(route, registry, today)
            line, column = route.source.position(("routes", name)) if route.source else (None, None)
            if name in seen:
                findings.append(Finding(str(path), line, column, "error",
                                        f"duplicate route name {name!r} (first defined in {seen[name]})",
                                        f"routes.{name}"))
            seen.setdefault(name, str(path))
    if notes is not None:
        note = unpriced_note(checked, today)
        notes += [note] if note else []
    return findings


def unpriced_note(families: list[FamilySpec], today: date, shown: int = 8) -> str | None:
    """One line naming the families without `pricing:` (abstract and shut-down ones aside): no cost
    estimate, so a budget or spend limit refuses them unless it says `unpriced: allow`."""
    names = sorted(f"{family.provider.name}/{family.name}" for family in families
                   if family.pricing is None and not family.file.abstract
                   and not (family.file.shutdown and family.file.shutdown <= today))
    if not names:
        return None
    listed = ", ".join(names[:shown]) + (f", ...(and {len(names) - shown} more)" if len(names) > shown else "")
    count = "1 family has" if len(names) == 1 else f"{len(names)} families have"
    return f"note: {count} no pricing (shut-down ones not counted): {listed}"


_REQUEST_FIELDS = {"video": frozenset(VideoGenerationRequest.model_fields) - {"prompt", "image_list", "extra_params"},
                   "image": frozenset(ImageGenerationRequest.model_fields) - {"prompt", "image_list", "extra_params"}}


def _route_targets(route: Any, registry: SpecRegistry, today: date) -> list[Finding]:
    """A target whose model the provider has retired is an error; one that only the generic family
    serves (no family lists its id: a new model, or a misspelt one) is a warning."""
    out = []
    for index, target in enumerate(route.targets):
        try:
            family = registry.resolve(target.provider, target.model, route.modality)
        except Exception:  # noqa: BLE001 - a handler-served provider, or reported when the file loaded
            continue
        path = ("routes", route.name, "targets", index, "model")
        line, column = route.source.position(path) if route.source else (None, None)
        file = route.source.file if route.source else ""
        retired = retirement(family, target.model, today)
        unlisted = unlisted_model(registry, family, target.model)
        if retired is not None:
            out.append(Finding(file, line, column, "error", f"route {route.name!r}: {retired}",
                               f"routes.{route.name}.targets[{index}].model"))
        elif unlisted is not None and (target.allow_unknown_model or not unlisted.refused):  # else an error, above
            out.append(Finding(file, line, column, "warning", f"route {route.name!r}: {unlisted.warning()}",
                               f"routes.{route.name}.targets[{index}].model"))
        unhonoured = sorted(name for name in target.params if name not in target.adapt and name not in
                            family.used_fields | set(family.params.fields) and name in _REQUEST_FIELDS[route.modality])
        if unhonoured:  # every call through this target would be refused
            where = ("routes", route.name, "targets", index, "params")
            line, column = route.source.position(where) if route.source else (None, None)
            out.append(Finding(file, line, column, "error",
                               f"route {route.name!r}: params set {', '.join(unhonoured)}, which {target.model} cannot "
                               f"honour (the {family.provider.name}/{family.name} family sends no such field); remove "
                               f"it or add adapt: {{{unhonoured[0]}: drop}}",
                               f"routes.{route.name}.targets[{index}].params"))
    return out


def _load_routes_into(out: dict[str, Any], path: Path, registry: SpecRegistry) -> list[Finding]:
    routes, problems = read_routes_file(path, registry)
    out.update(routes)
    return _in_file_order([Finding.from_error(problem) for problem in problems])


def _in_file_order(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.file, f.line or 0, f.column or 0))


def _check_spec_file(path: Path, registry: SpecRegistry, today: date, checked: list[FamilySpec]) -> list[Finding]:
    if path.name == PROVIDER_FILE:
        registry.add_provider(load_provider(load_yaml_file(path)))
        return []
    family = registry.add_family_file(path)
    checked.append(family)
    findings = []
    for failure in run_examples(family):
        line, column = family.source.position(failure.key)
        findings.append(Finding(family.source.file, line, column, "error",
                                f"example {failure.index}: {failure.message}", f"examples[{failure.index}]"))
    return findings + _examples_resolve_here(registry, family) + _deprecations(family, today)


class _OverBudget(BaseException):
    """Raised by the alarm when one file takes too long (a BaseException, so no `except Exception` eats it)."""


@contextmanager
def _time_budget(seconds: float) -> Iterator[None]:
    """Interrupt a runaway check (a template loop, a huge computation) after `seconds` of wall time.
    Only where signals can be used: the main thread of a POSIX process (the CLI)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _OverBudget

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _guarded(path: Path, check: Callable[[], list[Finding]]) -> list[Finding]:
    """Run one file's checks; whatever goes wrong becomes a finding for that file, never a crash."""
    try:
        with _time_budget(FILE_TIME_BUDGET):
            return check()
    except SpecError as exc:
        for error in exc.all:
            error.file = error.file or str(path)  # a template refusal knows the line, not the file
        return _in_file_order([Finding.from_error(error) for error in exc.all])
    except _OverBudget:
        return [Finding(str(path), None, None, "error",
                        f"checking this file took over {FILE_TIME_BUDGET:g}s (a template or value too costly); stopped")]
    except Exception as exc:  # noqa: BLE001 - a hostile file may fail any way (MemoryError, RecursionError...)
        return [Finding(str(path), None, None, "error",
                        f"could not be checked: {type(exc).__name__}: {str(exc)[:200]}")]


def _examples_resolve_here(registry: SpecRegistry, family: FamilySpec) -> list[Finding]:
    """An example naming a model that another family serves tests the wrong spec."""
    out = []
    for index, example in enumerate(family.file.examples):
        if not example.model:
            continue
        try:
            served_by = registry.resolve(family.provider.name, example.model, family.modality)
        except Exception:  # noqa: BLE001 - reported as the finding below
            served_by = None
        if served_by is not family:
            where = served_by.describe() if served_by else "no family"
            line, column = family.source.position(("examples", index, "model"))
            out.append(Finding(family.source.file, line, column, "error",
                               f"example {index}: model {example.model!r} is served by {where}, not this family",
                               f"examples[{index}].model"))
    return out


def _deprecations(family: FamilySpec, today: date) -> list[Finding]:
    out = []
    spec = family.file
    if spec.deprecated:
        line, column = family.source.position(("deprecated",))
        out.append(Finding(family.source.file, line, column, "warning", f"deprecated: {spec.deprecated}",
                           "deprecated"))
    if spec.shutdown and spec.shutdown <= today:
        line, column = family.source.position(("shutdown",))
        out.append(Finding(family.source.file, line, column, "warning",
                           f"the provider shut these models down on {spec.shutdown.isoformat()}", "shutdown"))
    return out


def format_findings(findings: list[Finding], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(f) for f in findings], indent=2)
    if fmt == "github":
        return "\n".join(f.github() for f in findings)
    return "\n".join(f.text() for f in findings)


__all__ = ["Finding", "validate_paths", "format_findings", "unpriced_note"]
