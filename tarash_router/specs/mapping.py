"""The seed API's field-mapping registry, backed by specs: a mapping *is* a family body.

`register_provider_field_mapping("fal", {"fal-ai/my-model": {"prompt": "{{ request.prompt }}"}})`
adds an in-memory family to the provider, so the engine uses it for that model like any family file.
"""

from __future__ import annotations

from typing import Any

from ..errors import ValidationError
from .loader import load_family
from .registry import WILDCARD, get_registry
from .yaml_source import SourceDoc


def register_provider_field_mapping(provider: str, model_mappings: dict[str, dict[str, Any]],
                                    modality: str = "video") -> None:
    """Map each model prefix's request fields to provider fields (Jinja templates or literals).

    Each prefix gets a family with no param constraints, its extra_params merged into the body.
    Registered mappings override spec families for the same prefix.
    """
    registry = get_registry()
    name = registry.provider_name(provider)
    if name not in registry.providers:
        raise ValidationError(f"unknown provider {provider!r}: load its provider.yaml first", provider=provider)
    for prefix, body in model_mappings.items():
        data = {
            "spec_version": 1, "provider": name, "family": f"mapping:{prefix}", "models": [prefix],
            "modality": modality, "body": dict(body),
            "params": {"images": {role: "optional" for role in _image_slots(body)}, **_video_param(body)},
        }
        doc = SourceDoc(file=f"<register_provider_field_mapping {name} {prefix}>", data=data)
        family = load_family(doc, registry.providers[name])
        registry.add_family(family, layer=10_000)  # a runtime mapping always wins over files


def _image_slots(body: dict[str, Any]) -> list[str]:
    text = " ".join(str(v) for v in body.values())
    return [r for r in ("reference", "first_frame", "last_frame", "asset", "style") if f"images.{r}" in text]


def _video_param(body: dict[str, Any]) -> dict[str, str]:
    return {"video": "optional"} if any("video" in str(v) for v in body.values()) else {}


def get_provider_field_mapping(provider: str) -> dict[str, dict[str, Any]] | None:
    """Model prefix -> {provider field: template source} for every family of `provider`, or None."""
    registry = get_registry()
    if not registry.has_provider(provider):
        return None
    out: dict[str, dict[str, Any]] = {}
    for family in registry.families(provider):
        for prefix in family.models:
            out[prefix if prefix != WILDCARD else f"*:{family.modality}"] = dict(family.file.body)
    return out


__all__ = ["register_provider_field_mapping", "get_provider_field_mapping"]
