"""`tarash-router models`: every model the loaded specs serve, with the values each accepts."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TypedDict

# Short names people type for the capabilities the specs declare.
CAPABILITY_ALIASES = {
    "t2v": "text_to_video", "i2v": "image_to_video", "v2v": "video_to_video", "r2v": "reference_to_video",
    "t2i": "text_to_image", "i2i": "image_to_image", "flf": "first_last_frame",
}


class _Row(TypedDict):
    """One model in the listing (the JSON format prints these as they are)."""

    provider: str
    model: str
    modality: str
    capabilities: list[str]
    accepts: dict[str, str]
    images: list[str]
    shutdown: str | None
    successor: str | None


def add_models_command(sub: Any) -> None:
    models = sub.add_parser("models", help="list models with their capabilities and allowed values")
    models.add_argument("--provider", help="only this provider's models")
    models.add_argument("--capability", help="only models with this capability (e.g. image_to_video, or i2v, t2v, "
                                             "t2i, i2i, v2v, r2v)")
    models.add_argument("--modality", choices=["video", "image"])
    models.add_argument("--retired", action="store_true", help="include models past their shutdown date")
    models.add_argument("--format", choices=["text", "json"], default="text")
    models.add_argument("--spec-dir", action="append", default=[], help="extra spec directory (repeatable)")
    models.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    import datetime as dt

    from ..specs.registry import get_registry

    registry = get_registry()
    if args.spec_dir:
        registry.load_paths(args.spec_dir)
    wanted = CAPABILITY_ALIASES.get(args.capability, args.capability) if args.capability else None
    today = dt.date.today()
    rows: list[_Row] = []
    for family in sorted(registry.families(args.provider), key=lambda f: (f.provider.name, f.name)):
        spec = family.file
        retired = spec.shutdown is not None and spec.shutdown <= today
        if (wanted and wanted not in spec.capabilities) or (args.modality and family.modality != args.modality) \
                or (retired and not args.retired) or spec.abstract:
            continue
        for model in family.models:
            rows.append({"provider": family.provider.name, "model": model, "modality": family.modality,
                         "capabilities": spec.capabilities, "accepts": _accepts(family, model),
                         "images": sorted(family.params.roles), "shutdown": spec.shutdown.isoformat() if retired
                         and spec.shutdown else None, "successor": spec.successor if retired else None})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        gone = f"  (shut down {row['shutdown']}; use {row['successor']})" if row["shutdown"] else ""
        model = "* (any other model id, checked only by the provider)" if row["model"] == "*" else row["model"]
        print(f"{row['provider']:<12} {row['modality']:<6} {model}{gone}")
        print(f"{'':20}{', '.join(row['capabilities']) or 'no capabilities declared'}")
        for name, rule in row["accepts"].items():
            print(f"{'':20}{name}: {rule}")
    if not rows:
        print("no model matches", file=sys.stderr)
    return 0


def _accepts(family: Any, model: str) -> dict[str, str]:
    """Each constrained request field and what it takes, in words."""
    out: dict[str, str] = {}
    for name, rule in sorted(family.fields_for(model).items()):
        if rule.forbidden:
            out[name] = "not taken"
        elif rule.allowed is not None:
            out[name] = ", ".join(map(str, rule.allowed))
        elif rule.min is not None or rule.max is not None:
            out[name] = f"{rule.min if rule.min is not None else '…'} to {rule.max if rule.max is not None else '…'}"
        elif rule.pattern:
            out[name] = f"matching {rule.pattern}"
        elif rule.required:
            out[name] = "required"
    return out


__all__ = ["add_models_command", "cmd_models"]
