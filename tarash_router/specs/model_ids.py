"""Model ids no family lists: a new model, or a typo that the provider's generic family would send.

A generic family (`models: ["*"]`) serves any id and checks only what it declares, so
`fal-ai/veo3/fsat` would be sent, and billed or refused late. An id served only that way is worth a
warning with the ids the catalogue does list; an id one keystroke from a listed one is almost surely a
typo, and is an error unless the caller says the model is meant (`allow_unknown_model: true`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ValidationError
from ..spelling import did_you_mean, one_edit_apart
from .compiled import FamilySpec
from .params import check_model_id
from .registry import EXACT, PATTERN, WILDCARD, SpecRegistry, key_matches


def _base(model: str) -> str:
    return model.split(":", 1)[0]  # a pinned version (`owner/name:hash`) is the model `owner/name`


def _owner(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _version_bump(a: str, b: str) -> bool:
    """One digit for another (`veo3` -> `veo4`): a model version the catalogue lacks, not a typo."""
    diffs = [i for i in range(len(a)) if a[i] != b[i]] if len(a) == len(b) else []
    return len(diffs) == 1 and a[diffs[0]].isdigit() and b[diffs[0]].isdigit()


def is_typo_of(model: str, listed: str) -> bool:
    """`model` is one keystroke from `listed` (same owner prefix, not a version bump), or differs in case."""
    model, listed = _base(model), _base(listed)
    if model == listed or _owner(model) != _owner(listed):
        return False
    return model.lower() == listed.lower() or (one_edit_apart(model, listed) and not _version_bump(model, listed))


@dataclass(frozen=True)
class UnlistedModel:
    """A model id that only the provider's generic family serves."""

    provider: str
    model: str
    modality: str
    typo_of: list[str]  # listed ids it is one keystroke from
    closest: list[str]  # listed ids most like it
    listed_as: str | None = None  # the family that lists it for the other modality, if one does

    @property
    def refused(self) -> bool:
        """Whether a call is refused unless the caller opts in: a likely typo, or a model of the other modality."""
        return bool(self.typo_of) or self.listed_as is not None

    def warning(self) -> str:
        if self.listed_as is not None:
            return (f"{self.model!r} is listed as {self.listed_as}; the generic {self.modality} family serves it "
                    f"for {self.modality}, checking only what it declares")
        return (f"no {self.provider} family lists {self.model!r}{did_you_mean(self.closest)} (served by the generic "
                f"{self.modality} family, which checks only what it declares)")

    def error(self) -> str:
        opt_in = "If the id is right, set allow_unknown_model: true on the config or route target"
        if self.listed_as is not None:
            return (f"{self.model!r} is listed as {self.listed_as}, not as {_article(self.modality)} {self.modality} "
                    f"model; only the generic {self.modality} family would send it, unchecked. {opt_in}")
        others = [m for m in self.closest if m not in self.typo_of]
        also = f"; also close: {', '.join(others)}" if others else ""
        return (f"unknown model {self.model!r}{did_you_mean(self.typo_of)} (no {self.provider} family lists it, and "
                f"it is one keystroke from one that does{also}). {opt_in}")


def _lists(family: FamilySpec, model: str) -> bool:
    """Whether `family` serves `model` by an entry of its own, not only as the generic family (a
    family may list ids and be its provider's generic family too)."""
    return any(key_matches((PATTERN if "*" in entry else EXACT) + entry, model, _base(model))
               for entry in family.models if entry != WILDCARD)


def unlisted_model(registry: SpecRegistry, family: FamilySpec, model: str) -> UnlistedModel | None:
    """What to say about `model`, which `family` serves: None when a family lists it (or a version pattern
    matches it), else its typo candidates, the closest listed ids, and the family listing it for the
    other modality (`fal-ai/flux/dev` asked for video)."""
    if WILDCARD not in family.models or _lists(family, model):
        return None
    provider = family.provider.name
    listed = registry.listed_models(provider)
    listed_as = None
    other = "image" if family.modality == "video" else "video"
    if _base(model) in registry.listed_models(provider, other):
        owner = registry.resolve(provider, model, other)
        listed_as = f"{_article(other)} {other} model ({owner.provider.name}/{owner.name})"
    typo_of = sorted((m for m in listed if is_typo_of(model, m)), key=lambda m: (m.lower() != _base(model).lower(), m))
    return UnlistedModel(provider, model, family.modality, typo_of,
                         registry.closest_models(provider, model, family.modality) or typo_of[:3], listed_as)


def check_listed(registry: SpecRegistry, family: FamilySpec, model: str, allow_unknown: bool) -> str | None:
    """A warning for a model only the generic family serves, or None; ValidationError (before any
    HTTP) for one that looks like a typo of a listed id, or that a family lists for the other
    modality, unless `allow_unknown`."""
    check_model_id(model, family.provider.name)  # an id that cannot be one (`fal-ai//veo3`) is refused as such
    unlisted = unlisted_model(registry, family, model)
    if unlisted is None:
        return None
    if unlisted.refused and not allow_unknown:
        raise ValidationError(unlisted.error(), provider=unlisted.provider, model=model)
    return unlisted.warning()


__all__ = ["UnlistedModel", "unlisted_model", "check_listed", "is_typo_of"]
