"""YAML loading that remembers line numbers and refuses duplicate keys.

Plain ``yaml.safe_load`` forgets where a value came from and silently keeps the last of two
equal keys — a duplicate output field would vanish without a word. Every error a user sees
must name ``file:line``, so mappings load into :class:`LineDict`, which keeps the line of each key.
"""

from __future__ import annotations

import typing as t

import yaml


class MappingError(ValueError):
    """A mapping cannot be compiled or applied; the message names file:line and the field."""


class LineDict(dict):  # type: ignore[type-arg]
    """A dict from YAML that knows its own line and the line of each key (1-based)."""

    line: int
    key_lines: dict[t.Any, int]

    def line_of(self, key: t.Any) -> int:
        """Line of ``key``, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    """SafeLoader producing LineDicts; raises on duplicate keys."""

    filename: str = "<mapping>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            msg = f"{loader.filename}:{line}: a mapping key must be a plain value"
            raise MappingError(msg) from None
        if key in result:
            first = result.key_lines[key]
            msg = f"{loader.filename}:{line}: duplicate key {key!r} (first defined on line {first})"
            raise MappingError(msg)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, filename: str) -> t.Any:
    """Parse YAML text; syntax errors become a one-line MappingError with file:line."""
    loader = _Loader(text)
    loader.filename = filename
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise MappingError(f"{filename}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{filename}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
