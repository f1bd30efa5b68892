"""The set of loaded specs, and model-id -> family resolution (segment-aware, longest prefix wins)."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from ..errors import SpecError, ValidationError
from ..lazy import Lazy
from ..settings import get_settings
from ..spelling import closest, did_you_mean, near_misses
from .compiled import FamilySpec, ProviderSpec
from .loader import discover, load_family, load_provider, validate_model
from .schema import FamilyFile
from .yaml_source import load_yaml_file

WILDCARD = "*"
EXACT = "="  # index-key prefix of ids a family serves exactly (no sub-paths)
PATTERN = "~"  # index-key prefix of a version pattern (`*` within a path segment, `**` across segments)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def builtin_spec_dir() -> Path:
    """Built-in specs: inside the wheel, or `provider_specs/` of a source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "_builtin_specs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "provider_specs"


_RESOLVED_MAX = 4096


def model_matches(model: str, prefix: str) -> bool:
    """`fal-ai/veo3` matches `fal-ai/veo3` and `fal-ai/veo3/fast`, never `fal-ai/veo3.1`."""
    return model == prefix or model.startswith(prefix.rstrip("/") + "/")


@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str) -> re.Pattern[str]:
    parts = (re.escape(p).replace(r"\*", "[^/]*") for p in pattern.split("**"))
    return re.compile(".*".join(parts))


def _specificity(key: str) -> tuple[int, int]:
    """How specific an index key is: an exact id beats any pattern; a longer pattern beats a shorter one."""
    return (1 if key.startswith(EXACT) else 0, len(key))


def key_matches(key: str, model: str, base_model: str) -> bool:
    """Whether an index key (an exact id or a pattern) serves `model` (or its unpinned `base_model`)."""
    if key.startswith(EXACT):
        return key[1:] in (model, base_model)
    if key.startswith(PATTERN):
        pattern = _pattern(key[1:])
        return bool(pattern.fullmatch(model) or pattern.fullmatch(base_model))
    return model_matches(model, key) or model_matches(base_model, key)


class SpecRegistry:
    """Providers and families by name; later layers (user dirs) override earlier ones (built-ins)."""

    def __init__(self) -> None:
        self.providers: dict[str, ProviderSpec] = {}
        self.aliases: dict[str, str] = {}
        # provider -> prefix -> (family, layer)
        self._prefixes: dict[str, dict[str, tuple[FamilySpec, int]]] = {}
        self._generic: dict[tuple[str, str], FamilySpec] = {}
        self._layer = 0
        self._lock = threading.Lock()
        # (provider, model, modality) -> family: resolve scans every prefix, a job asks once
        self._resolved: dict[tuple[str, str, str], FamilySpec] = {}

    # ------------------------------------------------------------ loading

    def load_paths(self, paths: Iterable[Path | str]) -> list[FamilySpec]:
        """Load every provider and family file under `paths` as one layer; raise on the first error."""
        provider_files, family_files = discover([Path(p) for p in paths])
        with self._lock:
            self.begin_layer()
            for path in provider_files:
                self.add_provider(load_provider(load_yaml_file(path)))
            return [self.add_family_file(path) for path in family_files]

    def copy(self) -> SpecRegistry:
        """An independent registry with the same specs (compiled specs are shared, indexes copied)."""
        clone = SpecRegistry()
        clone.providers = dict(self.providers)
        clone.aliases = dict(self.aliases)
        clone._prefixes = {name: dict(table) for name, table in self._prefixes.items()}
        clone._generic = dict(self._generic)
        clone._layer = self._layer
        return clone

    def begin_layer(self) -> None:
        """Files added from now on override earlier ones; a prefix claimed twice within a layer is an error."""
        self._layer += 1

    def add_family_file(self, path: Path) -> FamilySpec:
        doc = load_yaml_file(path)
        if not isinstance(doc.data, dict):
            raise doc.error("expected a mapping at the top of the file")
        name = doc.data.get("provider")
        provider = self.providers.get(self.aliases.get(name, name)) if isinstance(name, str) else None
        if provider is None:
            validate_model(doc, FamilyFile)  # report schema problems first when there are any
            known = ", ".join(sorted(self.providers)) or "none loaded"
            raise doc.error(f"unknown provider {name!r}: no provider.yaml defines it (known: {known})", ("provider",))
        family = load_family(doc, provider)
        self.add_family(family)
        return family

    def add_provider(self, spec: ProviderSpec) -> None:
        self._resolved.clear()
        self.providers[spec.name] = spec
        for alias in spec.file.aliases:
            self.aliases[alias] = spec.name

    def add_family(self, family: FamilySpec, layer: int | None = None) -> None:
        """Index a family's model prefixes; a prefix claimed twice in one layer is an error."""
        layer = self._layer if layer is None else layer
        self._resolved.clear()
        table = self._prefixes.setdefault(family.provider.name, {})
        for index, prefix in enumerate(family.models):
            if prefix == WILDCARD:
                self._generic[(family.provider.name, family.modality)] = family
                continue
            prefix = (PATTERN if "*" in prefix else EXACT) + prefix
            existing = table.get(prefix)
            if existing and existing[1] == layer and existing[0] is not family:
                raise family.source.error(
                    f"model prefix {prefix!r} is already claimed by {existing[0].describe()}", ("models", index))
            if existing is None or existing[1] <= layer:  # a lower layer never displaces a higher one
                table[prefix] = (family, layer)

    # ------------------------------------------------------------ lookup

    def provider_name(self, name: str) -> str:
        return self.aliases.get(name, name)

    def unknown_provider(self, name: str) -> str:
        """The message for a provider name no spec defines, with the closest names."""
        names = [*self.providers, *self.aliases]
        hint = did_you_mean(near_misses(name, names) or closest(name, names, n=2))
        return f"unknown provider {name!r}{hint} (known: {', '.join(sorted(self.providers)) or 'none loaded'})"

    def has_provider(self, name: str) -> bool:
        return self.provider_name(name) in self.providers

    def families(self, provider: str | None = None) -> list[FamilySpec]:
        seen: dict[int, FamilySpec] = {}
        for pname, table in self._prefixes.items():
            if provider is None or pname == self.provider_name(provider):
                for family, _ in table.values():
                    seen[id(family)] = family
        for (pname, _), family in self._generic.items():
            if provider is None or pname == self.provider_name(provider):
                seen[id(family)] = family
        return list(seen.values())

    def listed_models(self, provider: str, modality: str | None = None) -> list[str]:
        """The model ids the families of `provider` list exactly (not patterns, not the generic family)."""
        table = self._prefixes.get(self.provider_name(provider), {})
        return sorted(key[1:] for key, (family, _) in table.items()
                      if key.startswith(EXACT) and (modality is None or family.modality == modality))

    def closest_models(self, provider: str, model: str, modality: str | None = None, n: int = 3) -> list[str]:
        """The listed model ids most like `model` (a pinned `:version` aside): of `modality` first, then any."""
        base = model.split(":", 1)[0]
        found = closest(base, self.listed_models(provider, modality), n=n)
        if len(found) < n and modality is not None:
            found += [m for m in closest(base, self.listed_models(provider), n=n) if m not in found]
        return found[:n]

    def modality_of(self, provider: str, model: str) -> str:
        """The modality of the family whose prefix serves `model` ("video" when only generics match)."""
        table = self._prefixes.get(self.provider_name(provider), {})
        base_model = model.split(":", 1)[0]
        matches = [(_specificity(p), f) for p, (f, _) in table.items() if key_matches(p, model, base_model)]
        if matches:
            return max(matches, key=lambda m: m[0])[1].modality
        return "video" if (self.provider_name(provider), "video") in self._generic else "image"

    def resolve(self, provider: str, model: str, modality: str) -> FamilySpec:
        """The family serving `model`; ValidationError when none does (or it has the other modality)."""
        pname = self.provider_name(provider)
        key = (pname, model, modality)
        family = self._resolved.get(key)
        if family is None:
            family = self._resolve(pname, provider, model, modality)
            if len(self._resolved) >= _RESOLVED_MAX:  # model ids come from callers: keep the memo bounded
                self._resolved.clear()
            self._resolved[key] = family
        return family

    def _resolve(self, pname: str, provider: str, model: str, modality: str) -> FamilySpec:
        if pname not in self.providers:
            raise ValidationError(self.unknown_provider(provider), provider=provider, model=model)
        # A pinned version (`owner/name:hash`, Replicate) is served by the family of `owner/name`.
        base_model = model.split(":", 1)[0]
        # Longest prefix among families of the requested modality, else that modality's generic family.
        best: dict[str, tuple[tuple[int, int], FamilySpec]] = {}
        for prefix, (family, _) in self._prefixes.get(pname, {}).items():
            if key_matches(prefix, model, base_model):
                if _specificity(prefix) > best.get(family.modality, ((-1, -1), None))[0]:
                    best[family.modality] = (_specificity(prefix), family)
        if modality in best:
            return best[modality][1]
        generic = self._generic.get((pname, modality))
        if generic is not None:
            return generic
        other = next(iter(best.values()), None)
        if other is not None:
            raise ValidationError(
                f"{model!r} is {_article(other[1].modality)} {other[1].modality} model ({other[1].describe()}); "
                f"it cannot generate {modality}",
                provider=pname, model=model)
        nearest = self.closest_models(pname, model, modality)
        available = f"; closest available: {', '.join(nearest)}" if nearest else ""
        raise ValidationError(f"no {modality} spec of provider {pname!r} serves model {model!r}{available}",
                              provider=pname, model=model)


def _load_default() -> SpecRegistry:
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    extra = get_settings().spec_dirs
    if extra:
        registry.load_paths(extra)
    return registry


_DEFAULT = Lazy(_load_default)


def get_registry() -> SpecRegistry:
    """The process-wide registry: built-in specs, then `TARASH_SPEC_DIRS`, loaded on first use."""
    return _DEFAULT.get()


def load_specs(*paths: Path | str) -> list[FamilySpec]:
    """Add spec files or directories to the process-wide registry (they override built-ins)."""
    return get_registry().load_paths(paths)


def reset_registry() -> None:
    """Forget loaded specs; the next lookup reloads built-ins and configured directories."""
    _DEFAULT.set(None)


__all__ = ["SpecRegistry", "get_registry", "load_specs", "reset_registry", "builtin_spec_dir", "model_matches",
           "SpecError"]
