"""Check a request against a family's `params` before anything is sent (money is spent on submit)."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date
from typing import Any, cast

from ..errors import ValidationError
from ..models import GenerationRequest, request_field
from ..spelling import closest, did_you_mean, near_misses
from .compiled import FamilySpec

# Request fields that never need a template to be "used".
_STRUCTURAL = frozenset({"prompt", "image_list", "extra_params", "video", "mask_image", "number_of_videos",
                         "idempotency_key"})


# A model id is placed in URL paths: path segments of letters, digits, '.', '_' and '-' (each starting
# with a letter or digit, so never '.' or '..'), and an optional ':version' (Replicate's pinned hashes).
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*(?::[A-Za-z0-9._-]+)?")


def check_model_id(model: str, provider: str | None = None) -> None:
    """Refuse a model id that could leave its slot in a URL path (`..`, `?`, `#`, `%`, spaces)."""
    if not MODEL_ID.fullmatch(model):
        shown = repr(model) if len(model) <= 100 else f"{model[:80]!r}...({len(model)} chars)"
        raise ValidationError(
            f"model id {shown} is not a valid model id: use path segments of letters, digits, '.', '_' "
            "and '-' separated by '/', optionally ending in ':version' (no '..', '?', '#', '%' or spaces)",
            provider=provider, model=None)


def _fmt(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values)


def check_request(family: FamilySpec, model: str, request: GenerationRequest,
                  drop: Collection[str] = ()) -> list[str]:
    """Raise ValidationError naming the allowed values, or naming a request field the family cannot
    honour (it maps it nowhere) unless the caller accepts its loss (`drop`: the config's `adapt`).
    Returns warnings for the fields dropped that way."""
    provider = family.provider.name
    check_model_id(model, provider)

    def fail(message: str) -> ValidationError:
        return ValidationError(f"{model} {message}", provider=provider, model=model)

    for name, rule in family.fields_for(model).items():
        _check_value(name, request_field(request, name), rule, fail)
    for name, rule in family.params.extra.items():
        _check_value(f"extra_params.{name}", request.extra_params.get(name), rule, fail)

    _check_images(family, request, fail)
    _check_video(family, request, fail)
    _check_extra(family, request, fail)
    _run_checks(family, model, request, fail)
    unhonoured = unhonoured_fields(family, request)
    refused = [name for name in unhonoured if name not in drop]
    if refused:
        raise fail(f"cannot honour {', '.join(refused)}: the {provider}/{family.name} family sends no such "
                   f"field. Leave {'it' if len(refused) == 1 else 'them'} out, pick a model that takes "
                   f"{'it' if len(refused) == 1 else 'them'}, or accept the loss with "
                   f"adapt: {{{refused[0]}: drop}} on the config or route target")
    if not unhonoured:
        return []
    return [f"{provider} model family {family.name!r} drops {', '.join(unhonoured)} (adapt: drop)"]


def retirement(family: FamilySpec, model: str, today: date | None = None) -> str | None:
    """Why `model` can no longer be called (its provider shut the family's models down), or None."""
    shutdown = family.file.shutdown
    if shutdown is None or shutdown > (today or date.today()):
        return None
    successor = family.file.successor
    instead = f"; use {successor} instead" if successor else ""
    return f"{model} was retired by {family.provider.name} on {shutdown.isoformat()}{instead}"


def _shown(value: Any) -> str:
    """A value for an error message: long values (a 5,000-character prompt) are cut."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...({len(text)} chars)"


def _check_value(name: str, value: Any, rule: Any, fail: Any) -> None:
    why = f" ({rule.message})" if rule.message else ""
    if value is None:
        if rule.required:
            raise fail(f"requires {name}{why}")
        return
    if rule.forbidden:
        raise fail(f"does not support {name}{why}")
    if rule.allowed is not None and value not in rule.allowed:
        raise fail(f"does not accept {name}={_shown(value)}; allowed: {_fmt(rule.allowed)}{why}")
    if rule.min is not None and value < rule.min:
        raise fail(f"does not accept {name}={_shown(value)}; minimum is {_num(rule.min)}{why}")
    if rule.max is not None and value > rule.max:
        raise fail(f"does not accept {name}={_shown(value)}; maximum is {_num(rule.max)}{why}")
    if rule.pattern is not None and not re.fullmatch(rule.pattern, str(value)):
        raise fail(f"does not accept {name}={_shown(value)}; expected a value matching {rule.pattern}{why}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _run_checks(family: FamilySpec, model: str, request: GenerationRequest, fail: Any) -> None:
    if not family.params.checks:
        return
    ctx = {"request": request, "model": model, "extra": request.extra_params,
           "images": assign_images(family, request), "image_roles": [i["type"] for i in request.image_list]}
    for when, error in family.params.checks:
        if when.render(ctx):
            raise fail(error)


def assign_images(family: FamilySpec, request: GenerationRequest) -> dict[str, list[Any]]:
    """Group request images into the family's slots (slot -> images, in request order)."""
    source_to_slot = {src: slot for slot, role in family.params.roles.items() for src in role.from_ or [slot]}
    slots: dict[str, list[Any]] = {}
    for item in request.image_list:
        slot = source_to_slot.get(item["type"])
        if slot is not None:
            slots.setdefault(slot, []).append(item["image"])
    return slots


def _check_images(family: FamilySpec, request: GenerationRequest, fail: Any) -> None:
    roles = family.params.roles
    if not request.image_list and not any(role.required for role in roles.values()):
        return  # no image given and none needed
    accepted = sorted({src for slot, role in roles.items() for src in role.from_ or [slot]})
    for item in request.image_list:
        if item["type"] not in accepted:
            what = f"image roles: {', '.join(accepted)}" if accepted else "no image input"
            raise fail(f"does not use an image with role {item['type']!r}; it takes {what}")
    slots = assign_images(family, request)
    for slot, role in roles.items():
        count = len(slots.get(slot, []))
        if role.required and count == 0:
            raise fail(f"requires an image for {slot!r} (roles: {', '.join(role.from_ or [slot])})")
        if role.max is not None and count > role.max:
            raise fail(f"takes at most {role.max} image(s) for {slot!r}, got {count}")


def _check_video(family: FamilySpec, request: GenerationRequest, fail: Any) -> None:
    mode = family.params.video
    has_video = request_field(request, "video") is not None
    if has_video and mode is None:
        raise fail("takes no video input")
    if not has_video and mode == "required":
        raise fail("requires a video input (request.video)")
    if request_field(request, "mask_image") is not None and "mask" not in family.body.names():
        raise fail("takes no mask image")


def _check_extra(family: FamilySpec, request: GenerationRequest, fail: Any) -> None:
    """`merge` passes any key; `reject` and `allow` refuse keys they do not list; `checked` (the
    default) refuses a key that looks like a misspelling of a field the family knows its provider
    takes (`negative_promt` where the body sends `negative_prompt`): sent as written, the provider
    would ignore it. A key unlike any of them passes, since a family need not map every input."""
    policy = family.file.extra_params
    if not request.extra_params or policy == "merge":
        return
    if policy == "checked" or (not isinstance(policy, str) and policy.allow is None):
        known = family.provider_fields
        for key in sorted(request.extra_params):
            meant = near_misses(key, known) if key not in known else []
            if meant:
                raise fail(f"does not take extra_params key {key!r}{did_you_mean(meant)} (the {family.provider.name}/"
                           f"{family.name} family sends or declares {_fmt(meant)}; a family written with "
                           "`extra_params: merge` passes any key unchecked)")
        return
    allowed = [] if policy == "reject" else cast("list[str]", policy.allow)  # a None `allow` returned above
    unknown = sorted(set(request.extra_params) - set(allowed))
    if unknown:
        what = f"allowed: {_fmt(allowed)}" if allowed else "it takes no extra params"
        hint = did_you_mean(near_misses(unknown[0], allowed) or closest(unknown[0], allowed))
        raise fail(f"does not accept extra_params {_fmt(unknown)}{hint} ({what})" if hint else
                   f"does not accept extra_params {_fmt(unknown)}; {what}")


def unhonoured_fields(family: FamilySpec, request: GenerationRequest) -> list[str]:
    """Request fields set on `request` that the family sends nowhere. A field the family does not send
    but pins to one value in `params` (`allowed: [6]`: the model's fixed clip length) is honoured;
    a range or pattern on a field it does not send is not (the value would be dropped)."""
    return sorted(
        name for name in request.model_fields_set - _STRUCTURAL
        if getattr(request, name) is not None and name not in family.used_fields
        and not _pinned(family.params.fields.get(name))
    )


# Request fields that reach the provider another way (images, media, extra params) or never (the key).
_NOT_RENDERED = frozenset({"extra_params", "image_list", "video", "mask_image", "idempotency_key"})


def ignored_fields(family: FamilySpec, model: str, request: GenerationRequest,
                   drop: Collection[str] = ()) -> dict[str, str]:
    """Request fields the caller set that the rendered request does not carry, each with the reason
    (a dry run shows them, so a field that changes nothing is not mistaken for one that was sent)."""
    ignored: dict[str, str] = {}
    rules = family.fields_for(model)
    for name in sorted(request.model_fields_set - _NOT_RENDERED):
        value = request_field(request, name)
        if value is None or name in family.used_fields or value == type(request).model_fields[name].default:
            continue
        if _pinned(rules.get(name)):
            ignored[name] = "the model's only value: accepted, not sent"
        elif name in drop:
            ignored[name] = "dropped (adapt: drop)"
        else:
            ignored[name] = f"the {family.provider.name}/{family.name} family sends no such field"
    return ignored


def _pinned(rule: Any) -> bool:
    return rule is not None and (rule.forbidden or (rule.allowed is not None and len(rule.allowed) == 1))


__all__ = ["check_request", "assign_images", "unhonoured_fields", "ignored_fields", "retirement"]
