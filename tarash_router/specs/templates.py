"""Sandboxed Jinja templates that render to native Python values, compiled once at load.

A string that is exactly one `{{ expression }}` compiles to an expression and yields the value
itself (str, int, bool, list, dict, None), so a prompt with quotes, newlines or `{{ }}` passes
through byte-exact; nothing is re-parsed as JSON. Any other string with `{{`/`{%` renders as text.
Plain strings, numbers and booleans are literals. `None` or an undefined result drops the key.
"""

from __future__ import annotations

import re
from functools import lru_cache
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# A spec file is untrusted: no template may take more than these, at load or at render time.
MAX_SEQUENCE = 1_000_000  # characters or items one operation may build
MAX_INT_BITS = 4096  # about 1,200 decimal digits
MAX_RANGE = 1_000  # items of range()
MAX_LOOP_DEPTH = 2  # nested {% for %} loops
MAX_OUTPUT = 1 << 20  # characters a text template may render

_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


class SpecTemplateError(Exception):
    """A template does not compile or uses a name it may not use."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _suffix(value: Any, suffix: str) -> Any:
    """`duration | suffix('s')`: append a unit, keeping None as None."""
    return None if value is None or isinstance(value, Undefined) else f"{value}{suffix}"


def _to_str(value: Any) -> Any:
    """`x | string_or_none`: str(x), keeping None as None (Jinja's `string` turns None into 'None')."""
    return None if value is None or isinstance(value, Undefined) else str(value)


_MISSING_MARK = "\x00tarash-missing\x00"


def _finalize(value: Any) -> Any:
    # In a text template ("{{ x }}s"), a missing value must not print as "None" or "": mark it so
    # the whole key is dropped, like a bare expression that yields None.
    return _MISSING_MARK if value is None or isinstance(value, Undefined) else value


def _data_uri(value: Any, mime: str = "image/png") -> Any:
    """`b64 | data_uri('image/jpeg')`: base64 text -> a data: URI (None stays None)."""
    if value is None or isinstance(value, Undefined):
        return None
    return value if str(value).startswith("data:") else f"data:{mime};base64,{value}"


def _data_uri_parts(value: Any) -> Any:
    """`uri | data_uri_parts`: a base64 data: URI -> {mime_type, data}; anything else -> None."""
    if not isinstance(value, str) or not value.startswith("data:") or ";base64," not in value:
        return None
    header, _, data = value.partition(",")
    return {"mime_type": header[5:].split(";")[0] or "application/octet-stream", "data": data}


def _rename(value: Any, mapping: dict[str, str]) -> Any:
    """`d | rename({'data': 'bytesBase64Encoded'})`: rename keys of a mapping (None stays None)."""
    if not isinstance(value, dict):
        return None if value is None or isinstance(value, Undefined) else value
    return {mapping.get(k, k): v for k, v in value.items()}


def _wrap(value: Any, key: str) -> Any:
    """`x | wrap('uri')` -> {'uri': x}; with `map('wrap', 'uri')` over a list, a list of objects."""
    return None if value is None or isinstance(value, Undefined) else {key: value}


_DIMS = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def _dims(value: Any) -> Any:
    """`"1024x768" | dims` -> {width: 1024, height: 768}; not a WxH string -> None."""
    match = _DIMS.match(value) if isinstance(value, str) else None
    return {"width": int(match.group(1)), "height": int(match.group(2))} if match else None


class _SpecEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with `a.b` on a mapping reading its key first: provider JSON has keys like
    `get`, `items` or `keys` (Replicate's `urls.get`) that must not resolve to dict methods.

    Arithmetic that can explode (`**`, `*`, `+`, `%`) goes through `call_binop` (which also stops
    Jinja folding it at compile time) and is refused past the size limits; so are calls with a
    width or count beyond MAX_SEQUENCE (`'a'.ljust(10**9)`, `'{:>999999999}'.format(x)`).
    """

    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        _check_sizes(args, kwargs)
        if isinstance(__obj, str) or getattr(__obj, "__self__", None).__class__ is str:
            _check_format_widths(args)
        return super().call(__context, __obj, *args, **kwargs)


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, list, tuple, bytes)) else None


def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse arithmetic whose result would pass the limits, before computing it."""
    if operator == "**" and isinstance(left, int) and isinstance(right, int):
        if right > 0 and abs(left) > 1 and _int_bits(left) * right > MAX_INT_BITS:
            raise SecurityError(f"{left!r} ** {right!r} is too large for a template")
    elif operator == "*":
        for seq, count in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(count, int) and size * count > MAX_SEQUENCE:
                raise SecurityError(f"repeating a sequence {count} times would pass {MAX_SEQUENCE} items")
        if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
            raise SecurityError("integer product too large for a template")
    elif operator == "+":
        left_size, right_size = _size(left), _size(right)
        if left_size is not None and right_size is not None and left_size + right_size > MAX_SEQUENCE:
            raise SecurityError(f"concatenation would pass {MAX_SEQUENCE} items")
    elif operator == "%" and isinstance(left, str):
        _check_format_widths((left,))


_WIDTH = re.compile(r"(\d{7,})")


def _check_sizes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SEQUENCE:
            raise SecurityError(f"a call with {value} as a size or count is beyond the template limit")


def _check_format_widths(args: tuple[Any, ...]) -> None:
    for value in args:
        if isinstance(value, str) and any(int(w) > MAX_SEQUENCE for w in _WIDTH.findall(value)):
            raise SecurityError("a format width beyond the template limit")


def _bounded(filter_fn: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter that pads or repeats (center, indent, ...), refused past MAX_SEQUENCE."""
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_sizes(args[1:], kwargs)
        return filter_fn(*args, **kwargs)
    return bounded


def _safe_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise SecurityError(f"range() of {len(items)} items (templates may use at most {MAX_RANGE})")
    return items


def _build_env(undefined: type[Undefined]) -> ImmutableSandboxedEnvironment:
    env = _SpecEnvironment(undefined=undefined, autoescape=False, keep_trailing_newline=True,
                           finalize=_finalize)
    env.filters["suffix"] = _suffix
    env.filters["string_or_none"] = _to_str
    env.filters["data_uri"] = _data_uri
    env.filters["data_uri_parts"] = _data_uri_parts
    env.filters["dims"] = _dims
    env.filters["rename"] = _rename
    env.filters["wrap"] = _wrap
    for name in ("center", "indent", "wordwrap", "truncate", "format"):
        env.filters[name] = _bounded(env.filters[name])
    env.globals["range"] = _safe_range
    # A namespace lets a loop grow a value across iterations (doubling a string 40 times is 1 TB).
    env.globals.pop("namespace", None)
    return env


# Undefined (not Strict) so an optional field that is unset simply drops its key.
ENV = _build_env(Undefined)
JINJA_GLOBALS = frozenset(ENV.globals)  # dict, range, namespace, ...: always readable


@dataclass(frozen=True)
class Compiled:
    """One compiled template leaf."""

    source: str
    render: Callable[[dict[str, Any]], Any]
    names: frozenset[str]
    attributes: frozenset[tuple[str, str]]


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


_DOTTED = re.compile(r"^\s*\{\{\s*([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\s*\}\}\s*$")


@lru_cache(maxsize=None)
def compile_leaf(source: str) -> Compiled:
    """Compile one template string (expression or text template); shared by every spec using it.

    `{{ a.b.c }}` (a third of all leaves) is read by a plain attribute/key walk, with no Jinja at
    all. Anything else is parsed and checked now, and turned into Python code on first render, so
    loading specs costs a parse per distinct template, not a code generation.
    """
    dotted = _DOTTED.match(source)
    if dotted:
        parts = tuple(dotted.group(1).split("."))
        attrs = frozenset({(parts[0], parts[1])}) if len(parts) > 1 else frozenset()
        return Compiled(source=source, render=lambda ctx, _p=parts: _walk(ctx, _p),
                        names=frozenset({parts[0]}), attributes=attrs)
    match = _EXPRESSION.match(source)
    is_expr = bool(match) and "{{" not in match.group("expr") and "}}" not in match.group("expr")
    try:
        ast = ENV.parse("{{" + match.group("expr") + "}}" if is_expr else source)  # type: ignore[union-attr]
    except TemplateSyntaxError as exc:
        raise SpecTemplateError(f"template syntax error: {exc.message}", exc.lineno) from None
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:  # e.g. a 100,000-digit literal
        raise SpecTemplateError(f"template cannot be compiled: {type(exc).__name__}: {str(exc)[:120]}") from None
    _check_loop_depth(ast)
    names, attrs = _references(ast)
    build = (lambda: _expression_renderer(match.group("expr"))) if is_expr else (  # type: ignore[union-attr]
        lambda: _text_renderer(source))
    return Compiled(source=source, render=_LazyRender(build), names=names, attributes=attrs)


def _check_loop_depth(ast: nodes.Template) -> None:
    """Nested loops multiply: two levels of range() are a million iterations, three a billion."""
    def depth(node: nodes.Node) -> int:
        inner = max((depth(child) for child in node.iter_child_nodes()), default=0)
        return inner + 1 if isinstance(node, nodes.For) else inner

    if depth(ast) > MAX_LOOP_DEPTH:
        raise SpecTemplateError(f"loops nested more than {MAX_LOOP_DEPTH} deep (a template is a value, not a program)")


def _walk(ctx: dict[str, Any], parts: tuple[str, ...]) -> Any:
    """What `{{ a.b.c }}` yields: keys of mappings, attributes of objects, None when missing."""
    value: Any = ctx.get(parts[0])
    for part in parts[1:]:
        if value is None:
            return None
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


def _expression_renderer(expression: str) -> Callable[[dict[str, Any]], Any]:
    fn = ENV.compile_expression(expression, undefined_to_none=True)
    return lambda ctx: fn(**ctx)


def _text_renderer(source: str) -> Callable[[dict[str, Any]], Any]:
    template = ENV.from_string(source)

    def render(ctx: dict[str, Any]) -> Any:
        parts, size = [], 0
        for chunk in template.generate(ctx):  # streamed, so an oversized output stops early
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SecurityError(f"template output passes {MAX_OUTPUT} characters")
            parts.append(chunk)
        return _text_or_none("".join(parts))

    return render


class _LazyRender:
    """Generates the template's code on first render (thread-safe enough: a race builds it twice)."""

    __slots__ = ("_build", "_render")

    def __init__(self, build: Callable[[], Callable[[dict[str, Any]], Any]]) -> None:
        self._build = build
        self._render: Callable[[dict[str, Any]], Any] | None = None

    def __call__(self, ctx: dict[str, Any]) -> Any:
        render = self._render
        if render is None:
            render = self._render = self._build()
        return render(ctx)


def _text_or_none(text: str) -> str | None:
    return None if _MISSING_MARK in text else text


def _references(ast: nodes.Template) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """Top-level names a template reads, and `name.attr` pairs (to check e.g. `request.<field>`)."""
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    names = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"} - assigned
    attrs = set()
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.ctx == "load":
            attrs.add((node.node.name, node.attr))
    for node in ast.find_all(nodes.Getitem):
        if isinstance(node.node, nodes.Name) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attrs.add((node.node.name, node.arg.value))
    return frozenset(names), frozenset(attrs)


class DROP:
    """Marker: the key is left out of the rendered output."""


class ValueTree:
    """A YAML value (dict/list/scalar) whose string leaves may be templates; renders to native data."""

    def __init__(self, value: Any, path: tuple[Any, ...] = ()) -> None:
        self.leaves: list[tuple[tuple[Any, ...], Compiled]] = []
        self._root = self._compile(value, path)

    def _compile(self, value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, dict):
            return {k: self._compile(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._compile(v, (*path, i)) for i, v in enumerate(value)]
        if is_template(value):
            try:
                leaf = compile_leaf(value)
            except SpecTemplateError as exc:
                exc.args = (exc.args[0],)
                raise _LeafError(path, exc) from None
            self.leaves.append((path, leaf))
            return leaf
        return value

    def render(self, ctx: dict[str, Any]) -> Any:
        out = _render_node(self._root, ctx)
        return None if out is DROP else out

    def check_names(self, allowed: Iterable[str], attribute_rules: dict[str, Iterable[str]] | None = None) -> None:
        """Raise `_LeafError` for a name (or `name.attr`) outside what the field may read."""
        allowed_set = set(allowed) | JINJA_GLOBALS
        rules = {k: set(v) for k, v in (attribute_rules or {}).items()}
        for path, leaf in self.leaves:
            unknown = sorted(leaf.names - allowed_set)
            if unknown:
                raise _LeafError(path, SpecTemplateError(
                    f"undefined template variable {unknown[0]!r}; available here: {', '.join(sorted(allowed_set))}"))
            for name, attr in sorted(leaf.attributes):
                if attr.startswith("_"):
                    raise _LeafError(path, SpecTemplateError(
                        f"'{name}.{attr}': templates may not reach private or internal attributes"))
                if name in rules and attr not in rules[name]:
                    known = ", ".join(sorted(rules[name])) or "none declared"
                    raise _LeafError(path, SpecTemplateError(f"'{name}.{attr}' is not a field of {name}; known: {known}"))

    def attributes_of(self, name: str) -> set[str]:
        return {attr for _, leaf in self.leaves for n, attr in leaf.attributes if n == name}

    def names(self) -> set[str]:
        return {n for _, leaf in self.leaves for n in leaf.names}


class _LeafError(Exception):
    def __init__(self, path: tuple[Any, ...], error: SpecTemplateError) -> None:
        super().__init__(str(error))
        self.path = path
        self.error = error


LeafError = _LeafError


def _render_node(node: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(node, Compiled):
        value = node.render(ctx)
        return DROP if value is None or isinstance(value, Undefined) else value
    if isinstance(node, dict):
        out = {}
        for key, child in node.items():
            value = _render_node(child, ctx)
            if value is not DROP:
                out[key] = value
        return out
    if isinstance(node, list):
        return [v for v in (_render_node(c, ctx) for c in node) if v is not DROP]
    return node


__all__ = ["ValueTree", "Compiled", "compile_leaf", "is_template", "SpecTemplateError", "LeafError", "StrictUndefined"]
