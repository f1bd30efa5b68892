"""Parse YAML into plain data, strictly, and find the line and column of any key path on demand.

Values come from libyaml (the C loader) with three rules PyYAML does not apply by itself: a duplicate
key is an error (PyYAML lets the last one win), merge keys (`<<`) are refused, and booleans are
YAML 1.2's `true`/`false` only (so `on:` or `no` stay strings). Positions are computed only when
something asks for one, which is on an error path: loading a valid spec does not pay for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from ..errors import SpecError

KeyPath = tuple[Any, ...]

try:  # The C parser is several times faster; fall back when libyaml is missing.
    _BaseLoader: Any = yaml.CSafeLoader  # PyYAML has no type stubs here
except AttributeError:  # pragma: no cover - depends on the build
    _BaseLoader = yaml.SafeLoader

_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"


class _StrictError(yaml.MarkedYAMLError):  # type: ignore[misc]  # PyYAML has no type stubs here
    """A duplicate or merge key, raised while constructing values."""

    def __init__(self, problem: str, mark: yaml.Mark, key: KeyPath | None = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.key = key


class _StrictLoader(_BaseLoader):  # type: ignore[misc]  # PyYAML has no type stubs here
    """Safe loading with duplicate keys and merge keys refused and YAML 1.2 booleans."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                raise _StrictError("YAML merge keys (<<) are not supported in specs", key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise _StrictError(f"duplicate key {key!r} (first defined on line {first})", key_node.start_mark)
            seen[key] = key_node
        return cast("dict[Any, Any]", super().construct_mapping(node, deep=deep))


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


@dataclass
class SourceDoc:
    """A parsed YAML document; `position(path)` gives the (line, column) of a key path, 1-based."""

    file: str
    data: Any
    text: str | None = None
    _positions: dict[KeyPath, tuple[int, int]] | None = field(default=None, repr=False)

    @property
    def positions(self) -> dict[KeyPath, tuple[int, int]]:
        if self._positions is None:
            self._positions = _positions(self.text) if self.text else {}
        return self._positions

    def position(self, path: KeyPath) -> tuple[int | None, int | None]:
        """The closest known position for a key path (walks up to the parent when needed)."""
        positions = self.positions
        path = tuple(path)
        while path:
            if path in positions:
                return positions[path]
            path = path[:-1]
        return positions.get((), (None, None))

    def error(self, message: str, path: KeyPath = (), cls: type[SpecError] = SpecError) -> SpecError:
        line, column = self.position(path)
        key = format_key_path(path) if path else None
        return cls(message, file=self.file, line=line, column=column, key=key)


@dataclass
class MergedDoc(SourceDoc):
    """A family merged with the family it `extends`: `data` is the merged mapping, and a key path is
    placed in the file that wrote it (the child's own keys in the child, inherited ones in the parent).

    `merged` names the mappings merged key by key (params, body): below them the second key decides.
    """

    child: SourceDoc | None = None
    parent: SourceDoc | None = None
    merged: tuple[str, ...] = ()

    def origin(self, path: KeyPath) -> SourceDoc:
        """The document that wrote the value at `path`."""
        assert self.child is not None and self.parent is not None
        if not path:
            return self.child
        own = self.child.data if isinstance(self.child.data, dict) else {}
        inherited = self.parent.data if isinstance(self.parent.data, dict) else {}
        key = path[0]
        if key in own:
            if key in self.merged and len(path) > 1 and isinstance(own[key], dict) and path[1] not in own[key]:
                return self.parent
            return self.child
        return self.parent if key in inherited else self.child

    def position(self, path: KeyPath) -> tuple[int | None, int | None]:
        return self.origin(tuple(path)).position(path)

    def error(self, message: str, path: KeyPath = (), cls: type[SpecError] = SpecError) -> SpecError:
        source = self.origin(tuple(path))
        if source is self.parent:
            message = f"{message} (inherited by {self.file} through `extends`)"
        return source.error(message, path, cls)


def format_key_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# A spec or routes file is untrusted input: bounded in size and in what its aliases expand to.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_EXPANDED_NODES = 20_000  # nodes that aliases may stand for, in all


_PARSED: dict[tuple[str, str], Any] = {}  # (file, text) -> data: a file read twice is parsed once
_PARSED_MAX_CHARS = 8 * 1024 * 1024
_parsed_chars = 0


def load_yaml_file(path: Path | str, cls: type[SpecError] = SpecError) -> SourceDoc:
    """Read and parse one YAML file; syntax errors become `SpecError` with file:line.

    A file whose text is unchanged since it was last parsed reuses that parse (a parent family is
    read once as itself and once per child that `extends` it). The parsed data is read-only."""
    path = Path(path)
    try:
        with path.open("rb") as stream:  # never more than the limit: the file may be a pipe or endless
            data = stream.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                size = path.stat().st_size if path.is_file() else 0
                actual = f"{size:,} bytes" if size > MAX_FILE_BYTES else f"more than {MAX_FILE_BYTES:,} bytes"
                raise cls(f"file is {actual}; spec and routes files may be at most {MAX_FILE_BYTES:,} bytes "
                          "(2 MiB)", file=str(path))
        text = data.decode("utf-8")
    except OSError as exc:
        raise cls(f"cannot read file: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise cls("file is not valid UTF-8", file=str(path)) from None
    key = (str(path), text)
    if key in _PARSED:
        return SourceDoc(file=str(path), data=_PARSED[key], text=text)
    doc = parse_yaml(text, str(path), cls)
    _remember(key, doc.data)
    return doc


def _remember(key: tuple[str, str], data: Any) -> None:
    global _parsed_chars
    if _parsed_chars + len(key[1]) > _PARSED_MAX_CHARS:
        _PARSED.clear()
        _parsed_chars = 0
    _PARSED[key] = data
    _parsed_chars += len(key[1])


def parse_yaml(text: str, file: str, cls: type[SpecError] = SpecError) -> SourceDoc:
    """Parse YAML text (one document)."""
    if len(text) > MAX_FILE_BYTES:
        raise cls(f"text is {len(text):,} characters; spec and routes files may be at most {MAX_FILE_BYTES:,}",
                  file=file)
    if "&" in text and "*" in text:  # aliases may expand exponentially ("billion laughs"): check first
        _check_aliases(text, file, cls)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a safe loader (SafeConstructor)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if isinstance(exc, _StrictError):
            raise cls(problem, file=file, line=mark.line + 1 if mark else None,
                      column=mark.column + 1 if mark else None) from None
        if "tab" in problem.lower() or (mark and _is_tab_at(text, mark)):
            problem = "tab character used for indentation (YAML allows only spaces)"
        raise cls(f"YAML syntax error: {problem}", file=file, line=mark.line + 1 if mark else None,
                  column=mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise cls(f"YAML syntax error: {exc}", file=file) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. an integer of 100,000 digits
        line, column = _long_number_at(text)
        raise cls(f"YAML value cannot be loaded: {type(exc).__name__}: {str(exc)[:160]}", file=file,
                  line=line, column=column) from None
    return SourceDoc(file=file, data=data, text=text)


def _long_number_at(text: str) -> tuple[int | None, int | None]:
    """Where the first number too long to convert is (Python converts at most 4,300 digits)."""
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, yaml.ScalarEvent) and not event.style and len(event.value) > 4300 \
                    and event.value.lstrip("+-").replace("_", "").isdigit():
                return event.start_mark.line + 1, event.start_mark.column + 1
    except yaml.YAMLError:
        pass
    return None, None


def _check_aliases(text: str, file: str, cls: type[SpecError]) -> None:
    """Refuse an alias that takes the nodes aliases add past MAX_EXPANDED_NODES, or that sits inside
    the node it names (a recursive value), at the alias's line. One pass over parser events."""
    expands_to: dict[str, int] = {}  # anchor -> nodes its value has, aliases expanded
    open_nodes: list[list[Any]] = []  # [anchor, nodes so far] of each collection being read
    added = 0  # nodes the aliases read so far stand for
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, count = open_nodes.pop()
                if anchor is not None:
                    expands_to[anchor] = count
                if open_nodes:
                    open_nodes[-1][1] += count
                continue
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                open_nodes.append([event.anchor, 1])
                continue
            if isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_nodes):
                    raise _alias_error(cls, file, event, f"alias *{event.anchor} is inside the node it names "
                                                         "(a recursive alias)")
                count = expands_to.get(event.anchor, 1)  # an undefined alias: the full load reports it
                added += count
                if added > MAX_EXPANDED_NODES:
                    raise _alias_error(cls, file, event, f"YAML aliases in this document expand to more than "
                                                         f"{MAX_EXPANDED_NODES:,} nodes")
            elif isinstance(event, yaml.ScalarEvent):
                count = 1
                if event.anchor is not None:
                    expands_to[event.anchor] = 1
            else:
                continue
            if open_nodes:
                open_nodes[-1][1] += count
    except yaml.YAMLError:
        return  # the full load reports the syntax error with its position


def _alias_error(cls: type[SpecError], file: str, event: yaml.Event, problem: str) -> SpecError:
    mark = event.start_mark
    return cls(problem, file=file, line=mark.line + 1, column=mark.column + 1)


def _is_tab_at(text: str, mark: yaml.Mark) -> bool:
    lines = text.splitlines()
    return 0 <= mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]


def _positions(text: str) -> dict[KeyPath, tuple[int, int]]:
    """Key path -> (line, column) for every key and list item (the text already parsed once)."""
    node = yaml.compose(text, Loader=_StrictLoader)
    positions: dict[KeyPath, tuple[int, int]] = {}
    if node is None:
        return positions
    positions[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
    constructor = _StrictLoader("")
    stack: list[tuple[yaml.Node, KeyPath]] = [(node, ())]
    while stack:
        current, path = stack.pop()
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                child = (*path, constructor.construct_object(key_node, deep=True))
                positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                stack.append((value_node, child))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                child = (*path, index)
                positions[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
                stack.append((item, child))
    return positions
