"""MkDocs hook: one page per built-in provider, generated from the spec files at build time.

The specs are loaded with tarash_router's own registry (the built-in `provider_specs/` of this
checkout only, never `TARASH_SPEC_DIRS`), so the pages show exactly what the library checks:
models, modality, capabilities, the values each request field accepts (with per-model overrides),
retirement, and prices where a family file has them. Nothing is written to the source tree; the
pages exist only in the build.

The pages are added to the navigation section that holds `providers.md`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.providers")  # a warning fails `mkdocs build --strict`

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # document this checkout, not another installed copy
    sys.path.insert(0, str(ROOT))

from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir  # noqa: E402

OVERVIEW = "providers.md"
FOLDER = "providers"
# The extra that installs a handler's SDK (`pip install 'tarash-router[<extra>]'`).
HANDLER_EXTRAS = {"openai": "openai", "azure_openai": "openai", "google": "google"}

_pages: dict[str, str] = {}


def _registry() -> SpecRegistry:
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    return registry


# ------------------------------------------------------------------ mkdocs events


def on_config(config: Any) -> Any:
    registry = _registry()
    _pages.clear()
    for name in sorted(registry.providers):
        _pages[name] = provider_page(registry, name)
    if not _add_to_nav(config.nav or [], [{name: f"{FOLDER}/{name}.md"} for name in _pages]):
        log.warning("providers hook: no nav section lists %s, so the provider pages are not in the navigation",
                    OVERVIEW)
    return config


def on_files(files: Any, config: Any) -> Any:
    for name, content in _pages.items():
        files.append(File.generated(config, f"{FOLDER}/{name}.md", content=content))
    return files


def _add_to_nav(nav: list[Any], entries: list[dict[str, str]]) -> bool:
    """Append `entries` to the nav section that lists the providers overview page."""
    for item in nav:
        children = next(iter(item.values())) if isinstance(item, dict) else None
        if isinstance(children, list):
            if any(child == OVERVIEW or (isinstance(child, dict) and OVERVIEW in child.values())
                   for child in children):
                children.extend(entries)
                return True
            if _add_to_nav(children, entries):
                return True
    return False


# ------------------------------------------------------------------ page content


def provider_page(registry: SpecRegistry, name: str) -> str:
    spec = registry.providers[name]
    file = spec.file
    families = sorted((f for f in registry.families(name) if not f.file.abstract), key=lambda f: f.name)
    # Wide tables: the page keeps the navigation but not the table of contents.
    lines = ["---", "hide: [toc]", "---", "", f"# {name}", ""]
    if file.description:
        lines += [_sentence(file.description), ""]
    aliases = ", ".join(f"`{a}`" for a in file.aliases)
    lines.append(f"- **`config.provider`**: `{name}`" + (f" (or {aliases})" if aliases else ""))
    lines.append(f"- **API key**: {_auth(file)}")
    if file.base_url or file.base_url_env:
        where = f"`{file.base_url}`" if file.base_url else "set by your configuration"
        if file.base_url_env:
            where += f"; `{'`, `'.join(file.base_url_env)}` overrides it"
        lines.append(f"- **Base URL**: {where}")
    lines.append(f"- **Served by**: {_served_by(file.handler)}")
    if file.docs:
        lines.append(f"- **Provider's documentation**: <{file.docs}>")
    if file.webhook is not None:
        lines.append("- **Webhooks**: yes, `submit_video(..., webhook_url=...)`; see [Webhooks](../webhooks.md)")
    if file.limits is not None:
        caps = [f"{v} {k.replace('_', ' ')}" for k, v in file.limits.model_dump(exclude_none=True).items()]
        if caps:
            lines.append(f"- **Account limits**: {', '.join(caps)}; see [Scaling](../scaling.md)")
    lines.append("- **More**: API keys, settings, errors and this provider's quirks in "
                 "[Providers](../providers.md#provider-notes)")
    lines.append("")

    priced = [f for f in families if _pricing(f) is not None]
    models = sum(len(f.models) for f in families)
    lines += [
        "## Models", "",
        f"{models} model id{'s' if models != 1 else ''} in {len(families)} "
        f"famil{'ies' if len(families) != 1 else 'y'}. "
        "**Accepts** lists the values each request field may take; tarash-router checks them before "
        "anything is sent, and a field not listed is passed on unchecked. **Images** are the roles "
        "of `image_list` entries a model takes. The model id links to the provider's page for it.",
        "",
    ]
    header = ["Model", "Modality", "Capabilities", "Accepts", "Notes"]
    if priced:
        header.insert(4, "Price")
    lines += ['<div class="provider-models" markdown>', "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    today = dt.date.today()
    rows = []
    for family in families:
        retired = family.file.shutdown is not None and family.file.shutdown <= today
        for model in family.models:
            rows.append((family.modality != "video", model == "*", retired, model, family))
    # Video before image; the generic family last; retired models after the ones still served.
    for _, _, _, model, family in sorted(rows, key=lambda r: r[:4]):
        cells = [_model_cell(family, model), family.modality, _capabilities(family), _accepts(family, model),
                 _notes(family, model)]
        if priced:
            cells.insert(4, _price_cell(family, model))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "</div>", ""]

    if priced:
        lines += ["## Prices", "",
                  "Prices as the provider publishes them, from the page and on the date shown for each family. "
                  "tarash-router uses them to estimate what a job will cost; the provider's invoice is what "
                  "you pay. A model with no price here has none in its spec.", ""]
        for family in priced:
            lines += _price_section(family)

    lines += ["## Spec files", "",
              f"`provider_specs/{name}/provider.yaml` and one family file per model family beside it. "
              "To add a model, see [Writing specs](../writing-specs.md).", ""]
    return "\n".join(lines)


def _sentence(text: str) -> str:
    text = text.strip()
    return text + ("" if text.endswith(".") else ".")


def _auth(file: Any) -> str:
    auth = file.auth
    if auth is None or not auth.env:
        if file.handler and file.handler.startswith("google"):
            return ("Google Cloud credentials (`provider_config`, else Application Default Credentials); "
                    "see the [provider notes](../providers.md#provider-notes)")
        return "`config.api_key`"
    names = " then ".join(f"`{v}`" for v in auth.env)
    text = f"`config.api_key`, else {names}"
    if auth.join_env:
        text += f", else {' + '.join(f'`{v}`' for v in auth.join_env)} joined with `:`"
    return text


def _served_by(handler: str | None) -> str:
    if handler is None:
        return "the YAML engine over plain HTTP (no SDK needed)"
    extra = next((e for prefix, e in HANDLER_EXTRAS.items() if handler.startswith(prefix)), None)
    text = f"the `{handler}` SDK handler"
    if extra:
        text += f": `pip install 'tarash-router[{extra}]'`"
    return text


def _esc(text: Any) -> str:
    """Text safe inside a table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    """A value as a code span in a table cell (a pipe inside a code span does not end the cell)."""
    text = str(value).replace("\n", " ")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


# `(?i)a|b|c` or `(a|b|c)`: a choice of literal words, shown as the words.
_CHOICE = re.compile(r"(\(\?i\))?\(?([\w.:-]+(?:\|[\w.:-]+)+)\)?")


def _pattern_text(pattern: str) -> str:
    found = _CHOICE.fullmatch(pattern)
    if found:
        words = ", ".join(_code(w) for w in found.group(2).split("|"))
        return words + (" (any case)" if found.group(1) else "")
    return f"matching {_code(pattern)}"


def _model_cell(family: Any, model: str) -> str:
    if model == "*":
        shown = f"any other {family.modality} model id"
    else:
        shown = f"`{model}`"
    if family.file.docs:
        shown = f"[{shown}]({family.file.docs})"
    if model in family.exact_models:
        shown += " (this id only)"
    elif "*" in model and model != "*":
        shown += " (pattern)"
    return shown


def _capabilities(family: Any) -> str:
    return ", ".join(family.file.capabilities) or "–"


def _rule(rule: Any) -> str | None:
    if rule.forbidden:
        return "not taken"
    parts = []
    if rule.allowed is not None:
        parts.append(", ".join(_code(v) for v in rule.allowed))
    if rule.min is not None and rule.max is not None:
        parts.append(f"{_num(rule.min)} to {_num(rule.max)}")
    elif rule.min is not None:
        parts.append(f"at least {_num(rule.min)}")
    elif rule.max is not None:
        parts.append(f"at most {_num(rule.max)}")
    if rule.pattern:
        parts.append(_esc(rule.message) if rule.message else _pattern_text(rule.pattern))
    if rule.required:
        parts.insert(0, "required")
    return "; ".join(parts) or None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _accepts(family: Any, model: str) -> str:
    out = []
    for name, rule in sorted(family.fields_for(model).items()):
        text = _rule(rule)
        if text:
            out.append(f"`{name}`: {text}")
    for name, rule in sorted(family.params.extra.items()):
        text = _rule(rule)
        if text:
            out.append(f"`extra_params.{name}`: {text}")
    slots = []
    for slot, role in family.params.roles.items():
        roles = " or ".join(f"`{r}`" for r in (role.from_ or [slot]))
        count = "any number" if role.max is None else (f"up to {role.max}" if role.max != 1 else "")
        flags = ", ".join(x for x in ("required" if role.required else "", count) if x)
        slots.append(roles + (f" ({flags})" if flags else ""))
    out.append("images: " + ("; ".join(slots) if slots else "none"))
    if family.params.video:
        out.append(f"video input: {family.params.video}")
    return "<br>".join(out)


def _notes(family: Any, model: str) -> str:
    file = family.file
    notes = []
    if file.shutdown is not None:
        past = file.shutdown <= dt.date.today()
        notes.append(f"{'retired' if past else 'shuts down'} {file.shutdown.isoformat()}")
    if file.successor:
        notes.append(f"successor: `{file.successor}`")
    if file.deprecated and file.shutdown is None:
        notes.append("deprecated")
    if family.handler_name and family.handler_name != family.provider.file.handler:
        notes.append(f"handler `{family.handler_name}`")
    return "; ".join(notes) or ""


# ------------------------------------------------------------------ prices (optional `pricing:` key)
#
# A family file may carry `pricing:` (currency, one unit such as per_second with a price or a list of
# rows {match, when, label, price}, multipliers, defaults, minimum, credits, source, checked, notes).
# The format is read defensively: a file without it has no price column, and a shape this page does
# not know is listed as it is rather than failing the build.

UNITS = {"per_second": "/s", "per_image": "/image", "per_megapixel": "/MP", "per_video": "/video",
         "per_request": "/job"}


def _pricing(family: Any) -> Any:
    """The family's `pricing:` data if its file has any (spec files without the key have none)."""
    return getattr(family.file, "pricing", None) or None


def _price_id(family: Any) -> str:
    return "price-" + re.sub(r"[^a-z0-9]+", "-", family.name.lower()).strip("-")


def _money(amount: Any, currency: str) -> str:
    text = f"{float(amount):.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    text = f"{whole}.{decimals.ljust(2, '0')}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def _number(value: Any) -> str:
    return f"{float(value):g}"


def _applies_to(condition: Any, model: str) -> bool:
    models = (getattr(condition, "match", None) or {}).get("model")
    if models is None:
        return True
    return model.split(":", 1)[0] in (models if isinstance(models, (list, tuple)) else [models])


def _condition_text(condition: Any) -> str:
    label = getattr(condition, "label", None)
    if label:
        return _esc(label)
    match = {k: v for k, v in (getattr(condition, "match", None) or {}).items() if k != "model"}
    text = ", ".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in match.items())
    if getattr(condition, "when", None):
        text = (text + ", " if text else "") + "under a condition"
    return _esc(text)


def _price_lines(pricing: Any, model: str) -> list[str]:
    """The price table's rows that can apply to `model`, in words; raises on a shape not known here."""
    unit = next(name for name in UNITS if getattr(pricing, name, None) is not None)
    currency = getattr(pricing, "currency", None) or "USD"
    credits = getattr(pricing, "credits", None)
    value = getattr(pricing, unit)
    rows = [value] if isinstance(value, (int, float)) else list(value)
    lines = []
    for row in rows:
        price = row if isinstance(row, (int, float)) else row.price
        if not isinstance(row, (int, float)) and not _applies_to(row, model):
            continue
        amount = f"{_number(price)} credits" if credits else _money(price, currency)
        condition = "" if isinstance(row, (int, float)) else _condition_text(row)
        lines.append(f"{amount}{UNITS[unit]}" + (f" ({condition})" if condition else ""))
        if not condition:  # an unconditional row always matches: later rows never apply
            break
    if not lines:
        return []
    for factor in getattr(pricing, "multipliers", None) or []:
        if _applies_to(factor, model):
            lines.append(f"× {_number(factor.times)} ({_condition_text(factor) or 'always'})")
    if credits:
        lines.append(f"1 credit = {_money(credits, currency)}")
    if getattr(pricing, "minimum", None) is not None:
        lines.append(f"at least {_money(pricing.minimum, currency)} a job")
    return lines


def _price_cell(family: Any, model: str) -> str:
    pricing = _pricing(family)
    if pricing is None:
        return ""
    try:
        lines = _price_lines(pricing, model)
    except Exception:  # noqa: BLE001 - an unknown shape is shown as it is, in the section below
        lines = ["see below"]
    text = "<br>".join(lines) if lines else "not priced"
    return f"{text}<br>[source](#{_price_id(family)})"


def _price_section(family: Any) -> list[str]:
    pricing = _pricing(family)
    lines = [f"### {family.name} {{#{_price_id(family)}}}", "",
             f"Models: {', '.join(_code(m) for m in family.models)}", ""]
    source, checked = getattr(pricing, "source", None), getattr(pricing, "checked", None)
    if source:
        lines += [f"Read from <{source}>" + (f" on {_plain(checked)}." if checked else "."), ""]
    try:
        for model in family.models:
            rows = _price_lines(pricing, model)
            lines.append(f"- `{model}`: " + ("; ".join(rows) if rows else "not priced"))
        lines.append("")
        defaults = getattr(pricing, "defaults", None)
        if defaults:
            shown = ", ".join(f"`{k}={_yaml(v)}`" for k, v in defaults.items())
            lines += [f"A request that leaves a field unset is priced at the provider's default: {shown}.", ""]
        notes = getattr(pricing, "notes", None)
        if notes:
            lines += [" ".join(str(notes).split()), ""]
    except Exception:  # noqa: BLE001 - a shape this page does not know: list it as it is
        data = _plain(pricing)
        lines += _listing(data if isinstance(data, dict) else {"pricing": data}) + [""]
    return lines


def _yaml(value: Any) -> str:
    """A scalar as a spec file writes it (true, null, 8, 720p)."""
    value = _plain(value)
    return value if isinstance(value, str) else json.dumps(value)


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_none=True, mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _listing(data: dict[str, Any], depth: int = 0) -> list[str]:
    """Any mapping as a nested Markdown list."""
    pad = "    " * depth
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"{pad}- {key}:")
            out += _listing(value, depth + 1)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            out.append(f"{pad}- {key}:")
            out += _listing({str(i + 1): v for i, v in enumerate(value)}, depth + 1)
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            out.append(f"{pad}- {key}: " + (f"<{shown}>" if shown.startswith("https://") else f"`{shown}`"))
    return out
