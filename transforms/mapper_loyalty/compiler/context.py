"""What compiling one stream needs to know and report: where its errors point, how its paths
are split and which of them read the exploded element."""

from __future__ import annotations

import typing as t
from datetime import tzinfo

from mapper_loyalty.compiler.model import PathRef
from mapper_loyalty.loader import MappingError
from mapper_loyalty.rules import _show, make_getter, parse_path
from singer_kit.yamlio import LineDict


class StreamContext:
    """The mapping file, stream, separator, timezone and explode alias of one stream."""

    def __init__(self, filename: str, stream: str, separator: str, tz: tzinfo) -> None:
        self.filename = filename
        self.stream = stream
        self.separator = separator
        self.tz = tz
        self.alias: str | None = None

    def fail(self, line: int, what: str, message: str) -> t.NoReturn:
        """Stop compiling with ``file:line: stream 'x' <what>: <message>``."""
        raise MappingError(f"{self.filename}:{line}: stream '{self.stream}' {what}: {message}")

    def ref(self, path: t.Any, line: int, what: str) -> PathRef:
        """A path as written in the mapping, split and bound to the record or the element."""
        if not isinstance(path, str) or not path.strip():
            self.fail(line, what, f"a path must be text, got {_show(path)}")
        try:
            segments = parse_path(path, self.separator)
        except ValueError as exc:
            self.fail(line, what, str(exc))
        on_element = self.alias is not None and segments[0].key == self.alias
        if on_element:
            segments = segments[1:]
            if not segments:
                self.fail(line, what, f"path '{path}' names the element itself; add a field")
        return PathRef(path, line, segments, on_element, make_getter(segments))

    def check_keys(self, node: LineDict, allowed: tuple[str, ...], what: str) -> None:
        """Every key of a YAML mapping is one the rule knows."""
        for key in node:
            if key not in allowed:
                self.fail(
                    node.line_of(key), what, f"unknown key {key!r} (allowed: {', '.join(allowed)})"
                )

    def bool_option(self, node: LineDict, key: str, what: str) -> bool:
        """An optional ``true``/``false`` option (default false)."""
        value = node.get(key, False)
        if not isinstance(value, bool):
            self.fail(node.line_of(key), what, f"{key} must be true or false, got {_show(value)}")
        return value
