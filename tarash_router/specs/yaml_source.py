"""Parse YAML into plain data while remembering the line and column of every key and value.

PyYAML's safe loader drops positions and silently lets a duplicate key win; spec errors must
point at file:line and a duplicate key is almost always a mistake, so we build values from the
node graph ourselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError

KeyPath = tuple[Any, ...]

try:  # The C loader is several times faster; fall back when libyaml is missing.
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the build
    _Loader = yaml.SafeLoader


@dataclass
class SourceDoc:
    """A parsed YAML document plus the (line, column) of each key path, 1-based."""

    file: str
    data: Any
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: KeyPath) -> tuple[int | None, int | None]:
        """The closest known position for a key path (walks up to the parent when needed)."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (None, None))

    def error(self, message: str, path: KeyPath = (), cls: type[SpecError] = SpecError) -> SpecError:
        line, column = self.position(path)
        key = format_key_path(path) if path else None
        return cls(message, file=self.file, line=line, column=column, key=key)


def format_key_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml_file(path: Path | str, cls: type[SpecError] = SpecError) -> SourceDoc:
    """Read and parse one YAML file; syntax errors become `SpecError` with file:line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise cls(f"cannot read file: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise cls("file is not valid UTF-8", file=str(path)) from None
    return parse_yaml(text, str(path), cls)


def parse_yaml(text: str, file: str, cls: type[SpecError] = SpecError) -> SourceDoc:
    """Parse YAML text (one document) keeping positions."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if "\t" in text and "tab" in problem.lower() or (mark and _is_tab_at(text, mark)):
            problem = "tab character used for indentation (YAML allows only spaces)"
        raise cls(
            f"YAML syntax error: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise cls(f"YAML syntax error: {exc}", file=file) from None
    doc = SourceDoc(file=file, data=None)
    if node is None:
        return doc
    doc.positions[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
    doc.data = _build(node, (), doc, cls)
    return doc


def _is_tab_at(text: str, mark: yaml.Mark) -> bool:
    lines = text.splitlines()
    return 0 <= mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]


def _build(node: yaml.Node, path: KeyPath, doc: SourceDoc, cls: type[SpecError]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise cls("YAML merge keys (<<) are not supported in specs", file=doc.file,
                          line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1)
            key = _scalar(key_node)
            child = (*path, key)
            if key in out:
                first = doc.positions.get(child, (None, None))[0]
                raise cls(f"duplicate key {key!r} (first defined on line {first})", file=doc.file,
                          line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1,
                          key=format_key_path(child))
            doc.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _build(value_node, child, doc, cls)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.positions[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
            items.append(_build(item, child, doc, cls))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise SpecError("mapping keys must be plain scalars")
    # YAML 1.2 booleans: only true/false. YAML 1.1 would read `on:` (as in `retry: {on: [...]}`),
    # `no` or `off` as booleans, which is never what a spec author means.
    if node.tag == "tag:yaml.org,2002:bool" and node.value.lower() not in ("true", "false"):
        return node.value
    return _SCALAR_CONSTRUCTOR.construct_object(node, deep=True)


_SCALAR_CONSTRUCTOR = yaml.constructor.SafeConstructor()
