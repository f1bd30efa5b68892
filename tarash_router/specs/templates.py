"""Sandboxed Jinja templates that render to native Python values, compiled once at load.

A string that is exactly one `{{ expression }}` compiles to an expression and yields the value
itself (str, int, bool, list, dict, None), so a prompt with quotes, newlines or `{{ }}` passes
through byte-exact; nothing is re-parsed as JSON. Any other string with `{{`/`{%` renders as text.
Plain strings, numbers and booleans are literals. `None` or an undefined result drops the key.
"""

from __future__ import annotations

import ast

import functools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

from ..errors import SpecError

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


def _data_uri(value: Any, mime: str = "image/png") -> Any:
    """`b64 | data_uri('image/jpeg')`: base64 text -> a data: URI (None stays None)."""
    if value is None or isinstance(value, Undefined):
        return None
    return value if str(value).startswith("data:") else f"data:{mime};base64,{value}"


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


def _image_size(value: Any) -> Any:
    """`request.size | image_size`: "1024x768" -> {width: 1024, height: 768}; any other value (a preset
    name such as fal's `square_hd`) passes through unchanged, and None stays None."""
    return _dims(value) or value


def _frame_count(seconds: Any, fps: Any = 16) -> Any:
    """`request.duration_seconds | frame_count(24)`: seconds x fps + 1 frames (a clip of N seconds spans
    N x fps intervals); None, 0 or a value that is not a number gives None."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (seconds, fps))
    return seconds * fps + 1 if numbers and seconds else None


class TemplateLimitError(SpecError):
    """A template went past a sandbox limit: what one render may build, copy or loop over."""


# A spec file is untrusted: no template may take more than these, at load or at render time.
MAX_SEQUENCE = 1_000_000  # items or characters one repetition, width or count may produce
MAX_INT_BITS = 4096  # about 1,200 decimal digits
MAX_RANGE = 1_000  # items of range()
MAX_LOOP_DEPTH = 2  # nested {% for %} loops
MAX_BUILT = 64 * 1024 * 1024  # characters one render may build or copy: room for an inline video
MAX_STEPS = 1_000_000  # loop iterations (weighted by the body's size) and scans, about a second
_SCAN_PER_STEP = 1024  # characters a comparison or filter reads per step
_ITEMS_PER_STEP = 16  # list or mapping items a filter reads (or a measurement visits) per step


class _Budget:
    """What one render may still spend: characters built or copied (memory) and steps (CPU)."""

    __slots__ = ("chars", "steps")

    def __init__(self) -> None:
        self.chars = MAX_BUILT
        self.steps = MAX_STEPS

    def build(self, size: int, what: str) -> None:
        if size > self.chars:
            raise TemplateLimitError(
                f"template limit: {what} would build more than {MAX_BUILT:,} characters in one render")
        self.chars -= size

    def step(self, count: int, what: str) -> None:
        if count > self.steps:
            raise TemplateLimitError(
                f"template limit: {what} takes more than {MAX_STEPS:,} steps in one render (loops, scans)")
        self.steps -= count


_BUDGET: ContextVar[_Budget | None] = ContextVar("tarash_template_budget", default=None)


def _budget() -> _Budget:
    # Outside a render (a filter called on its own) each operation is still bounded by itself.
    return _BUDGET.get() or _Budget()


def _within_budget(render: Callable[[dict[str, Any]], Any], ctx: dict[str, Any]) -> Any:
    """Run one render against a budget: the running render's, or a fresh one."""
    if _BUDGET.get() is not None:
        return render(ctx)
    token = _BUDGET.set(_Budget())
    try:
        return render(ctx)
    finally:
        _BUDGET.reset(token)


def _scan(value: Any) -> int:
    """Steps a linear pass over `value` costs."""
    if isinstance(value, (str, bytes)):
        return len(value) // _SCAN_PER_STEP
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return len(value) // _ITEMS_PER_STEP
    return 0


class _Close:
    __slots__ = ("key", "start")

    def __init__(self, key: int, start: int) -> None:
        self.key, self.start = key, start


def _sizes(value: Any) -> tuple[int, int]:
    """(text, held): characters `value` takes written out (str(), JSON; a part shared N times counts
    N times) and characters or slots it really holds (each object once). Linear in distinct objects."""
    text = held = visited = 0
    seen: set[int] = set()
    text_of: dict[int, int] = {}  # a container shared many times is walked once
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if item.__class__ is _Close:
            text_of[item.key] = text - item.start
            continue
        visited += 1
        key = id(item)
        if isinstance(item, (str, bytes)):
            text += len(item)
            if key not in seen:
                seen.add(key)
                held += len(item)
            continue
        if key in text_of:
            text += text_of[key]
            continue
        if isinstance(item, dict):
            children: Iterable[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = item
        elif isinstance(item, BaseModel):
            children = list(item.__dict__.values())
        else:
            text += abs(item).bit_length() // 3 + 2 if isinstance(item, int) else 24
            continue
        if key in seen:  # a value that contains itself
            continue
        seen.add(key)
        stack.append(_Close(key, text))
        count = len(children)  # type: ignore[arg-type]
        text += 2 + 2 * count
        held += count
        stack.extend(children)
    _budget().step(visited // _ITEMS_PER_STEP, "measuring a value")
    return text, held


def _text(value: Any) -> int:
    if isinstance(value, (str, bytes)):
        return len(value)
    if value is None or isinstance(value, (bool, float)) or (isinstance(value, int) and value.bit_length() < 64):
        return 24
    return _sizes(value)[0]


def _fresh(result: Any, inputs: Iterable[Any]) -> int:
    """What an operation allocated for `result`, shallowly: a new string's characters or a new
    container's slots (nested values are counted where they were built)."""
    if result is None or any(result is item for item in inputs):
        return 0
    if isinstance(result, (str, bytes, list, tuple, dict, set, frozenset)):
        return len(result)
    return 0


def _width(value: Any) -> int:
    """A width or count an operation will fill: refused past MAX_SEQUENCE."""
    if not isinstance(value, int):
        return 0
    if value > MAX_SEQUENCE:
        raise TemplateLimitError(f"template limit: a width or count of {value:,} (at most {MAX_SEQUENCE:,})")
    return max(value, 0)


def _replace_size(text: Any, old: Any, new: Any, count: Any = None) -> int:
    if not (isinstance(text, (str, bytes)) and type(old) is type(text) and type(new) is type(text)):
        return _text(text)
    grow = len(new) - len(old)
    if grow <= 0:
        return len(text)
    hits = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]  # old is text's type (checked above)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * grow


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")
_FORMAT_SPEC = re.compile(r"\{[^{}]*\}")


def _formatted_size(template: str, fields: int, widths: list[int], star: bool, values: Iterable[Any]) -> int:
    values = list(values)
    if star:  # `%*s`, `{:{}}`: a width comes from the arguments
        widths += [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    widest = max((_width(w) for w in widths), default=0)
    largest = max((_text(v) for v in values), default=0)
    return len(template) + fields * (widest + largest)


def _percent_size(template: Any, values: Any) -> int:
    """An upper bound for `template % values` (and the `format` filter)."""
    if not isinstance(template, str):
        return 0
    specs = _PERCENT_SPEC.findall(template)
    widths = [int(part) for spec in specs for part in spec if part.isdigit()]
    star = any("*" in spec for spec in specs)
    items = values.values() if isinstance(values, dict) else values if isinstance(values, tuple) else (values,)
    return _formatted_size(template, len(specs), widths, star, items)


def _format_size(template: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """An upper bound for `template.format(...)`: every field as wide as its widest spec and value."""
    widths = [int(d) for field in _FORMAT_SPEC.findall(template) if ":" in field
              for d in re.findall(r"\d+", field.split(":", 1)[1])]
    star = re.search(r"\{[^{}]*\{", template) is not None
    return _formatted_size(template, template.count("{"), widths, star, (*args, *kwargs.values()))


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _str_method_size(owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """An upper bound for the methods of str that can return far more than they are given."""
    if name in ("ljust", "rjust", "center", "zfill"):
        return max(len(owner), _width(_arg(args, kwargs, 0, "width", 0)))
    if name == "expandtabs":
        tab = "\t" if isinstance(owner, str) else b"\t"
        return len(owner) + owner.count(tab) * _width(_arg(args, kwargs, 0, "tabsize", 8))  # type: ignore[arg-type]
    if name == "replace":
        return _replace_size(owner, _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", ""),
                             _arg(args, kwargs, 2, "count", -1))
    if name == "join" and args:
        return sum(_text(item) for item in args[0]) + len(owner) * max(len(args[0]) - 1, 0)
    if name == "format" and isinstance(owner, str):
        return _format_size(owner, args, kwargs)
    if name == "format_map" and isinstance(owner, str) and args and isinstance(args[0], dict):
        return _format_size(owner, (), args[0])
    if name == "translate" and args:
        table = args[0]
        values = table.values() if isinstance(table, dict) else table if isinstance(table, (list, tuple)) else ()
        return len(owner) * max([1, *(_text(v) for v in values)])
    return None


def _str_method(obj: Any) -> tuple[str | bytes, str] | tuple[None, None]:
    """(the string, the method name) when `obj` is a bound method of a str or bytes (`str.format`
    reaches us wrapped by the sandbox)."""
    target = getattr(obj, "__wrapped__", obj)
    owner = getattr(target, "__self__", None)
    if isinstance(owner, (str, bytes)):
        return owner, getattr(target, "__name__", "")
    return None, None


def _check_binop(operator: str, left: Any, right: Any) -> int:
    """Refuse arithmetic past the limits before computing it; the characters or slots it builds."""
    if operator == "**" and isinstance(left, int) and isinstance(right, int):
        if right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateLimitError(f"template limit: {left!r} ** {right!r} is too large (at most {MAX_INT_BITS} bits)")
    elif operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int):
                size = len(seq) * count
                if size > MAX_SEQUENCE:
                    raise TemplateLimitError(
                        f"template limit: repeating a sequence of {len(seq):,} {count:,} times (at most {MAX_SEQUENCE:,})")
                return max(size, 0)
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(f"template limit: an integer product past {MAX_INT_BITS} bits")
    elif operator == "+":
        if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, (str, bytes, list, tuple)):
            return len(left) + len(right)
    elif operator == "%" and isinstance(left, str):
        return _percent_size(left, right)
    return 0


def _safe_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise TemplateLimitError(f"template limit: range() of {len(items):,} items (at most {MAX_RANGE:,})")
    return items


def _loop_steps(items: Any, cost: int) -> Iterator[Any]:
    """Every `{% for %}` iterates through this: each iteration costs its body's size in steps."""
    budget = _budget()
    for item in items:
        budget.step(cost, "a loop")
        yield item


# Filters that can return far more than they are given: an upper bound of the result's size from
# their (bound) arguments, checked before they run.
# Each gets the filtered value and the filter's other arguments, as called.
Args = tuple[Any, ...]


def _join_size(items: Any, args: Args, kwargs: dict[str, Any]) -> int:
    separator = _arg(args, kwargs, 0, "d", "")
    return sum(_text(item) for item in items) + _text(separator) * max(len(items) - 1, 0)


def _indent_size(value: Any, args: Args, kwargs: dict[str, Any]) -> int:
    text, width = str(value), _arg(args, kwargs, 0, "width", 4)
    return len(text) + (text.count("\n") + 1) * (len(width) if isinstance(width, str) else _width(width))


def _tojson_size(value: Any, args: Args, kwargs: dict[str, Any]) -> int:
    indent = _arg(args, kwargs, 0, "indent", None)
    per_level = len(indent) if isinstance(indent, str) else _width(indent)
    return (6 + per_level) * _text(value)  # \uXXXX escapes; an indent per line


_FILTER_SIZES: dict[str, Callable[[Any, Args, dict[str, Any]], int]] = {
    "string": lambda v, a, k: _text(v),
    "string_or_none": lambda v, a, k: _text(v),
    "pprint": lambda v, a, k: 2 * _text(v),
    "tojson": _tojson_size,
    "xmlattr": lambda v, a, k: 6 * _text(v),
    "urlencode": lambda v, a, k: 9 * _text(v),
    "escape": lambda v, a, k: 6 * _text(v),
    "e": lambda v, a, k: 6 * _text(v),
    "forceescape": lambda v, a, k: 6 * _text(v),
    "suffix": lambda v, a, k: _text(v) + _text(_arg(a, k, 0, "suffix", "")),
    "data_uri": lambda v, a, k: _text(v) + _text(_arg(a, k, 0, "mime", "")) + 13,
    "join": _join_size,
    "format": lambda v, a, k: _percent_size(v, k or a),
    "center": lambda v, a, k: max(_text(v), _width(_arg(a, k, 0, "width", 80))),
    "indent": _indent_size,
    "replace": lambda v, a, k: _replace_size(str(v), _arg(a, k, 0, "old", ""), _arg(a, k, 1, "new", ""),
                                             _arg(a, k, 2, "count", None)),
    "wordwrap": lambda v, a, k: _text(v) * (1 + _text(_arg(a, k, 2, "wrapstring", None) or "\n")),
    "truncate": lambda v, a, k: min(_text(v), _width(_arg(a, k, 0, "length", 255))) + _text(_arg(a, k, 2, "end", "...")),
    "batch": lambda v, a, k: _width(_arg(a, k, 0, "linecount", 0)),
    "slice": lambda v, a, k: _width(_arg(a, k, 0, "slices", 0)),
}


def _guard_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Charge a filter to the render's budget: before it runs when it may grow, after it otherwise."""
    estimate = _FILTER_SIZES.get(name)
    passes_state = getattr(fn, "jinja_pass_arg", None) is not None

    @functools.wraps(fn)  # keeps Jinja's pass_context / pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        inputs = args[1:] if passes_state else args
        if name in ("join", "sum") and inputs and not isinstance(inputs[0], (str, list, tuple, dict)):
            inputs = (list(inputs[0]), *inputs[1:])  # measured and then joined: an iterator runs once
            args = (*args[:len(args) - len(inputs)], *inputs)
        budget.step(1 + sum(_scan(v) for v in inputs), f"the {name} filter")
        if name == "sum" and inputs and not isinstance(kwargs.get("start", 0), (int, float)):
            # Adding sequences copies the running total each time: n additions of up to `total` items.
            total = sum(len(item) for item in inputs[0] if isinstance(item, (str, bytes, list, tuple)))
            budget.step(len(inputs[0]) * total // 512, "the sum filter")
        measured = estimate is not None and bool(inputs)
        if measured:
            budget.build(estimate(inputs[0], inputs[1:], kwargs), f"the {name} filter")  # type: ignore[misc]
        result = fn(*args, **kwargs)
        if not measured:
            budget.build(_fresh(result, inputs), f"the {name} filter")
        return result

    return guarded


def _guard_test(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _budget().step(1 + sum(_scan(v) for v in args), f"the {name} test")
        return fn(*args, **kwargs)

    return guarded


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gteq": operator.ge,
    "lt": operator.lt, "lteq": operator.le,
    "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
}


class _SpecCodeGenerator(CodeGenerator):
    """Routes `~`, comparisons and slices through the environment, so they are measured too."""

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            return super().visit_Getitem(node, frame)
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
            self.write(", ")
        self.write("))")
        return None

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("environment.compare(")
        self.visit(node.expr, frame)
        self.write(", (")
        for operand in node.ops:
            self.write(f"({operand.op!r}, ")
            self.visit(operand.expr, frame)
            self.write("), ")
        self.write("))")


_FORBIDDEN: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro", nodes.CallBlock: "call", nodes.AssignBlock: "set ... endset",
    nodes.FilterBlock: "filter", nodes.Include: "include", nodes.Import: "import",
    nodes.FromImport: "from ... import", nodes.Extends: "extends", nodes.Block: "block",
}


def _limit_template(ast: nodes.Template) -> None:
    """Refuse what lets a template recurse or capture unmeasured output; meter every loop."""
    loops: list[nodes.For] = []
    stack: list[tuple[nodes.Node, int]] = [(ast, 0)]  # (node, loops around it)
    while stack:
        node, depth = stack.pop()
        tag = _FORBIDDEN.get(type(node))
        if tag is not None:
            raise SpecTemplateError(f"{{% {tag} %}} is not available in spec templates "
                                    "(a template is a value, not a program)", node.lineno)
        if isinstance(node, nodes.For):
            depth += 1
            if depth > MAX_LOOP_DEPTH:  # nested loops multiply: two levels of range() are a million
                raise SpecTemplateError(f"loops nested more than {MAX_LOOP_DEPTH} deep "
                                        "(a template is a value, not a program)", node.lineno)
            if node.recursive:
                raise SpecTemplateError("recursive loops are not available in spec templates", node.lineno)
            loops.append(node)
        stack.extend((child, depth) for child in node.iter_child_nodes())
    for loop in loops:
        cost = 1 + sum(1 + sum(1 for _ in child.find_all(nodes.Node)) for child in loop.body)
        loop.iter = nodes.Filter(loop.iter, "_loop_steps", [nodes.Const(cost)], [], None, None, lineno=loop.lineno)


class _SpecEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with `a.b` on a mapping reading its key first: provider JSON has keys like
    `get`, `items` or `keys` (Replicate's `urls.get`) that must not resolve to dict methods.

    Everything a template can build with (operators, `~`, calls, filters, slices, output) and every
    loop is charged to the render's budget, and refused before it allocates past it. The optimizer
    is off: it would run filters and operators at compile time, outside any budget.
    """

    intercepted_binops = frozenset({"**", "*", "+", "%"})
    code_generator_class = _SpecCodeGenerator

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        ast = super()._parse(source, name, filename)
        if "{%" in source:  # loops, macros and blocks are statements; an expression has none
            _limit_template(ast)
        return ast

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        if isinstance(argument, slice):
            _budget().build(_fresh(value, (obj,)), "a slice")
        return value

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step(1, "an operator")
        budget.build(_check_binop(operator, left, right), f"the {operator} operator")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        budget = _budget()
        owner, name = _str_method(__obj)
        if owner is not None and name == "join" and args and not isinstance(args[0], (list, tuple)):
            args = (list(args[0]), *args[1:])  # measured and then joined: an iterator runs once
        budget.step(1 + _scan(owner) + sum(_scan(v) for v in args), "a call")
        size = _str_method_size(owner, name, args, kwargs) if owner is not None else None  # type: ignore[arg-type]
        if size is not None:
            budget.build(size, f"{type(owner).__name__}.{name}()")
        result = super().call(__context, __obj, *args, **kwargs)
        if size is None:
            fresh = _fresh(result, (owner, __obj, *args, *kwargs.values()))
            if owner is not None and isinstance(result, (list, tuple)):  # split(), partition(): new strings
                fresh += sum(len(part) for part in result if isinstance(part, (str, bytes)))
            budget.build(fresh, f"calling {getattr(__obj, '__name__', 'a function')}")
        return result

    # Only `~` calls it (`_SpecCodeGenerator.visit_Concat`), with a tuple: it reads `parts` twice, so it
    # would not do for `Template.render`'s generator (templates are rendered with `generate`).
    def concat(self, parts: tuple[Any, ...]) -> str:  # type: ignore[override]
        """`a ~ b`: measured (a list written out counts its text) before it is built."""
        budget = _budget()
        budget.build(sum(_text(part) for part in parts), "joining with ~")
        return "".join([str(part) for part in parts])

    def compare(self, left: Any, operands: tuple[tuple[str, Any], ...]) -> Any:
        """`a == b`, `a in b`, `a < b < c`: a comparison reads its operands, so it costs steps."""
        budget = _budget()
        result: Any = True
        for op, right in operands:
            budget.step(1 + _scan(left) + _scan(right), "a comparison")
            result = _COMPARE[op](left, right)
            if not result:
                return result
            left = right
        return result


def _finalize(value: Any) -> Any:
    # In a text template ("{{ x }}s"), a missing value must not print as "None" or "": mark it so
    # the whole key is dropped, like a bare expression that yields None.
    if value is None or isinstance(value, Undefined):
        return _MISSING_MARK
    if not isinstance(value, (str, int, float)):  # written out with str(): a list of a shared part counts each
        _budget().build(_text(value), "writing a value out")
    return value


def _data_uri_parts(value: Any) -> Any:
    """`uri | data_uri_parts`: a base64 data: URI -> {mime_type, data}; anything else -> None."""
    if not isinstance(value, str) or not value.startswith("data:") or ";base64," not in value:
        return None
    header, _, data = value.partition(",")
    _budget().build(len(data), "the data_uri_parts filter")  # a copy of the payload
    return {"mime_type": header[5:].split(";")[0] or "application/octet-stream", "data": data}


def _inline_image(value: Any) -> Any:
    """`images.first_frame | inline_image`: a base64 data: URI -> Google's inline image object
    {bytesBase64Encoded, mimeType}; a URL (or None) passes through unchanged."""
    parts = _data_uri_parts(value)
    return {"bytesBase64Encoded": parts["data"], "mimeType": parts["mime_type"]} if parts else value


def _inline_data(value: Any) -> Any:
    """`image | inline_data`: the Gemini API's inline part {inlineData: {mime_type, data}} for a base64
    data: URI ({inlineData: value} for anything else); None stays None."""
    if value is None or isinstance(value, Undefined):
        return None
    return {"inlineData": _data_uri_parts(value) or value}


def _as_references(items: Any, kind: str, key: str = "referenceType") -> list[dict[str, Any]]:
    """`images.asset | as_references('ASSET')`: each image as {image: item, <key>: kind}, the shape of
    Veo's reference images; None or no images -> []."""
    return [{"image": item, key: kind} for item in (items or []) if item is not None]


def _build_env(undefined: type[Undefined]) -> ImmutableSandboxedEnvironment:
    env = _SpecEnvironment(undefined=undefined, autoescape=False, keep_trailing_newline=True,
                           finalize=_finalize, optimized=False)
    env.filters["suffix"] = _suffix
    env.filters["string_or_none"] = _to_str
    env.filters["data_uri"] = _data_uri
    env.filters["data_uri_parts"] = _data_uri_parts
    env.filters["dims"] = _dims
    env.filters["image_size"] = _image_size
    env.filters["frame_count"] = _frame_count
    env.filters["rename"] = _rename
    env.filters["wrap"] = _wrap
    env.filters["inline_image"] = _inline_image
    env.filters["as_references"] = _as_references
    env.filters["inline_data"] = _inline_data
    env.filters.pop("urlize", None)  # HTML links: output grows with every URL in the text
    env.filters = {name: _guard_filter(name, fn) for name, fn in env.filters.items()}
    env.filters["_loop_steps"] = _loop_steps
    # jinja2's tests are typed as the bare "function", which is not a Callable to mypy.
    env.tests = {name: _guard_test(name, fn) for name, fn in env.tests.items()}  # type: ignore[arg-type]
    env.globals["range"] = _safe_range
    env.globals.pop("lipsum", None)  # random text of any length, and no use in a request
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
    path: tuple[str, ...] | None = None  # `{{ a.b.c }}`: walked in place by a tree's render (no call)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


_PATH = r"([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)"  # a.b.c
_DOTTED = re.compile(r"^\s*\{\{\s*" + _PATH + r"\s*\}\}\s*$")
# `{{ a.b | suffix('s') }}`: a dotted path through one of this module's own filters, literal arguments.
_FILTERED = re.compile(r"^\s*\{\{\s*" + _PATH + r"\s*\|\s*([a-z_]+)\s*(?:\(([^()]*)\))?\s*\}\}\s*$")
_PLAIN_FILTERS = frozenset({"suffix", "string_or_none", "data_uri", "wrap"})  # plain functions of scalars
# `{{ base_url }}/{{ model }}`: text and dotted paths only.
_TEXT_PATH = re.compile(r"\{\{\s*" + _PATH + r"\s*\}\}")


@functools.cache
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
        return Compiled(source=source, render=lambda ctx: _walk(ctx, parts),
                        names=frozenset({parts[0]}), attributes=attrs, path=parts)
    match = _EXPRESSION.match(source)
    is_expr = match is not None and "{{" not in match.group("expr") and "}}" not in match.group("expr")
    try:
        ast = ENV.parse("{{" + match.group("expr") + "}}" if is_expr else source)  # type: ignore[union-attr]
    except TemplateSyntaxError as exc:
        raise SpecTemplateError(f"template syntax error: {exc.message}", exc.lineno) from None
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:  # e.g. a 100,000-digit literal
        raise SpecTemplateError(f"template cannot be compiled: {type(exc).__name__}: {str(exc)[:120]}") from None
    names, attrs = _references(ast)
    plain = _filtered_renderer(source) if is_expr else _paths_text_renderer(source)
    if plain is not None:
        return Compiled(source=source, render=plain, names=names, attributes=attrs)
    build = (lambda: _expression_renderer(match.group("expr"))) if is_expr else (  # type: ignore[union-attr]
        lambda: _text_renderer(source))
    return Compiled(source=source, render=_LazyRender(build), names=names, attributes=attrs)


def _paths_text_renderer(source: str) -> Callable[[dict[str, Any]], Any] | None:
    """`{{ base_url }}/{{ model }}` rendered without Jinja: each path walked as `{{ a.b }}` is and
    written with str() as Jinja writes it; a missing or None value makes the whole text None, as the
    Jinja renderer's finalize does. None when the source holds anything but text and paths."""
    if "{%" in source or "{#" in source or "\r" in source:  # Jinja turns \r\n into \n
        return None
    pieces: list[str | tuple[str, ...]] = []
    position = 0
    for found in _TEXT_PATH.finditer(source):
        pieces += [source[position:found.start()], tuple(found.group(1).split("."))]
        position = found.end()
    pieces.append(source[position:])
    if any(isinstance(p, str) and ("{{" in p or "}}" in p) for p in pieces):
        return None  # an expression other than a path (or a stray brace Jinja would judge)
    parts = tuple(p for p in pieces if p != "")

    def render(ctx: dict[str, Any], text_only: bool = False) -> Any:
        """The text, or None when a value is missing. `text_only`: every value is expected to be text
        (the usual URL), whose one charge, the join, needs no shared budget; anything else is then
        written out by the budgeted render."""
        written: list[str] = []
        for part in parts:
            if isinstance(part, str):
                written.append(part)
                continue
            value = _walk(ctx, part)
            if value.__class__ is not str:
                if text_only:
                    return _within_budget(render, ctx)
                if value is None or isinstance(value, Undefined):
                    return None
                value = str(_finalize(value))  # charges the budget for a value that is not a scalar
            written.append(value)
        text = "".join(written)
        _budget().build(len(text) - max(map(len, written), default=0), "the template's text")
        return text

    return functools.partial(render, text_only=True)


def _filtered_renderer(source: str) -> Callable[[dict[str, Any]], Any] | None:
    """`{{ a.b | suffix('s') }}` rendered without Jinja: the path walked as `{{ a.b }}` is (missing
    gives None, which these filters keep as None, as they keep Jinja's undefined), then the filter
    as Jinja would call it, budget included. None when the source is anything else."""
    found = _FILTERED.match(source)
    if found is None or found.group(2) not in _PLAIN_FILTERS:
        return None
    try:
        args = ast.literal_eval(f"({found.group(3) or ''},)") if found.group(3) else ()
    except (ValueError, SyntaxError):
        return None  # a name, a keyword or an expression among the arguments: Jinja evaluates it
    if not all(isinstance(a, str) for a in args):
        return None
    parts = tuple(found.group(1).split("."))
    apply = ENV.filters[found.group(2)]
    return lambda ctx: _within_budget(lambda c: _charged(apply(_walk(c, parts), *args)), ctx)


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

    def render(ctx: dict[str, Any]) -> Any:
        return _charged(fn(**ctx))

    return render


def _charged(value: Any) -> Any:
    """An expression's value, charged to the budget: sent as JSON, a part it shares N times is
    written N times."""
    if isinstance(value, (list, tuple, dict)):
        text, held = _sizes(value)
        _budget().build(max(text - held, 0), "the value's repeated parts")
    return value


def _text_renderer(source: str) -> Callable[[dict[str, Any]], Any]:
    template = ENV.from_string(source)

    def render(ctx: dict[str, Any]) -> Any:
        budget = _budget()
        parts, largest = [], 0
        for chunk in template.generate(ctx):  # streamed, so an oversized output stops early
            # Joining copies everything but the largest part (a value passed through is free).
            budget.build(min(len(chunk), largest), "the template's text")
            largest = max(largest, len(chunk))
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
        return _within_budget(render, ctx)


def _text_or_none(text: str) -> str | None:
    return None if _MISSING_MARK in text else text


def _references(ast: nodes.Template) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """Top-level names a template reads, and `name.attr` pairs (to check e.g. `request.<field>`)."""
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    if any(True for _ in ast.find_all(nodes.For)):
        assigned.add("loop")  # Jinja's loop variable (loop.index, loop.last) inside a for
    names = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"} - assigned
    attrs = set()
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.ctx == "load":
            attrs.add((node.node.name, node.attr))
    for item in ast.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            attrs.add((item.node.name, item.arg.value))
    return frozenset(names), frozenset(attrs)


class DROP:
    """Marker: the key is left out of the rendered output."""


class ValueTree:
    """A YAML value (dict/list/scalar) whose string leaves may be templates; renders to native data."""

    def __init__(self, value: Any, path: tuple[Any, ...] = ()) -> None:
        self.leaves: list[tuple[tuple[Any, ...], Compiled]] = []
        self._root = self._compile(value, path)
        self.empty = not self.leaves and not self._root  # renders to nothing: `headers: {}`

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
        if len(self.leaves) < 2:  # constants (copied), or one leaf, which budgets its own render
            out = _render_node(self._root, ctx)
        else:
            out = _within_budget(lambda c: _render_node(self._root, c), ctx)  # one budget for the whole tree
        return None if out is DROP else out

    def check_names(self, allowed: Iterable[str],
                    attribute_rules: Mapping[str, Iterable[str]] | None = None) -> None:
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
        value = node.render(ctx) if node.path is None else _walk(ctx, node.path)
        return DROP if value is None or isinstance(value, Undefined) else value
    if isinstance(node, dict):
        out = {}
        for key, child in node.items():
            if child.__class__ is Compiled and child.path is not None:  # the usual leaf, without a call
                value = _walk(ctx, child.path)
                if value is not None and not isinstance(value, Undefined):
                    out[key] = value
                continue
            value = _render_node(child, ctx)
            if value is not DROP:
                out[key] = value
        return out
    if isinstance(node, list):
        return [v for v in (_render_node(c, ctx) for c in node) if v is not DROP]
    return node


__all__ = ["ValueTree", "Compiled", "compile_leaf", "is_template", "SpecTemplateError", "LeafError", "StrictUndefined",
           "TemplateLimitError"]
