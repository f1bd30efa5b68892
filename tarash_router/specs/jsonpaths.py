"""JSONPath expressions compiled once and shared by every spec that uses them."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as _parse
from jsonpath_ng.jsonpath import JSONPath


class JsonPathSyntaxError(Exception):
    """A JSONPath expression does not parse."""


@cache
def _compiled(expression: str) -> JSONPath:
    try:
        return _parse(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # jsonpath-ng raises plain Exception too
        raise JsonPathSyntaxError(f"invalid JSONPath {expression!r}: {exc}") from None


class JsonPath:
    """A compiled JSONPath; `first` returns one value (or None), `all` every match."""

    __slots__ = ("expression", "_path", "_simple")

    def __init__(self, expression: str) -> None:
        if not isinstance(expression, str) or not expression.startswith("$"):
            raise JsonPathSyntaxError(f"JSONPath must start with '$', got {expression!r}")
        self.expression = expression
        self._simple = _simple_keys(expression)
        self._path: JSONPath | None = None if self._simple is not None else _compiled(expression)

    def all(self, data: Any) -> list[Any]:
        if self._simple is not None:
            value = _walk(data, self._simple)
            return [] if value is _MISSING else [value]
        assert self._path is not None  # compiled whenever the expression is not simple keys
        return [m.value for m in self._path.find(data)]

    def first(self, data: Any) -> Any:
        if self._simple is not None:
            value = _walk(data, self._simple)
            return None if value is _MISSING else value
        assert self._path is not None  # compiled whenever the expression is not simple keys
        matches = self._path.find(data)
        return matches[0].value if matches else None

    def __repr__(self) -> str:
        return f"JsonPath({self.expression!r})"


_MISSING = object()


def _simple_keys(expression: str) -> tuple[str | int, ...] | None:
    """`$.a.b[0].c` as keys, for a fast dict walk on the hot path; None for anything fancier."""
    if not re.fullmatch(r"\$((\.[A-Za-z_][A-Za-z0-9_]*)|(\[\d+\]))*", expression):
        return None
    return tuple(int(p[1:-1]) if p.startswith("[") else p[1:]
                 for p in re.findall(r"\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]", expression))


def _walk(data: Any, keys: tuple[str | int, ...]) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(data, list) or key >= len(data):
                return _MISSING
            data = data[key]
        else:
            if not isinstance(data, dict) or key not in data:
                return _MISSING
            data = data[key]
    return data


__all__ = ["JsonPath", "JsonPathSyntaxError"]
