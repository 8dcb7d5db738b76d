"""YAML for hand-edited files (pipelines.yaml, mappings): line numbers, duplicate keys refused.

Plain ``yaml.safe_load`` forgets where a value came from and silently keeps the last of two
equal keys, so a duplicate setting would vanish without a word. Every error a user sees must be
one line naming ``FILE:LINE``, so mappings load into :class:`LineDict`, which keeps the line of
each key, and every way a file can be unreadable (bad UTF-8, a control character, a syntax
error, a key that is a list, nesting a parser would recurse on, an empty file) becomes one
:class:`YamlError` line instead of a traceback.

PyYAML, not ruamel.yaml: ruamel's round-trip loader keeps lines too, but in a second structure
(``.lc``) on its own comment-preserving container types, as one more dependency, and it would
still need the checks for non-scalar keys, depth and UTF-8 lines; the line-keeping constructor
here is a dozen lines (docs/kit/foundations.md).
"""

from __future__ import annotations

import typing as t

import yaml
from yaml.reader import ReaderError

# Far beyond any hand-written file, far below the parser's recursion limit (PyYAML composes
# and constructs nodes recursively: [[[[...]]]] thousands deep would be a RecursionError).
MAX_DEPTH = 100


class YamlError(ValueError):
    """A file that is not the YAML it should be; the message is one ``FILE:LINE: ...`` line."""


class LineDict(dict):  # type: ignore[type-arg]
    """A dict from YAML that knows its own line and the line of each key (1-based)."""

    line: int = 0

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines: dict[t.Any, int] = {}

    def line_of(self, key: t.Any) -> int:
        """Line of ``key``, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


def kind(value: object) -> str:
    """How a YAML value is named in a message ("a list", "a mapping", "true/false", ...)."""
    if isinstance(value, bool):
        return "true/false"
    for types, name in (
        (dict, "a mapping"),
        (list, "a list"),
        (set, "a set"),
        (str, "a string"),
        ((int, float), "a number"),
        (type(None), "empty"),
    ):
        if isinstance(value, types):
            return name
    return type(value).__name__


class _Loader(yaml.SafeLoader):
    """SafeLoader producing LineDicts, refusing duplicate and non-scalar keys and deep nesting."""

    def __init__(self, text: str, filename: str) -> None:
        super().__init__(text)  # the reader refuses control characters already here
        self.filename = filename
        self.depth = 0

    def compose_node(self, parent: t.Any, index: t.Any) -> t.Any:
        """Count nesting while composing; the constructor recurses as deep, so one check holds."""
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise YamlError(f"{self.filename}:{line}: invalid YAML: nested too deeply")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _key(loader: _Loader, node: yaml.Node) -> t.Any:
    """A mapping key; a plain number written with ``_`` (``10_2``) stays its text.

    YAML 1.1 reads ``10_2`` as the integer 102 (digit separators), YAML 1.2 as the string
    ``10_2``. In these files such a key is always a name, e.g. Billetten's permission field
    ``10_2``, never a number: silently turning it into 102 would lose it.
    """
    key = loader.construct_object(node, deep=True)
    if (
        isinstance(key, int | float)
        and isinstance(node, yaml.ScalarNode)
        and not node.style
        and "_" in node.value
    ):
        return node.value
    return key


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = _key(loader, key_node)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:  # `? [a, b]: 1` is valid YAML but names no setting
            msg = f"{loader.filename}:{line}: a key must be a plain name, got {kind(key)}"
            raise YamlError(msg) from None
        if key in result:
            first = result.key_lines[key]
            msg = f"{loader.filename}:{line}: duplicate key {key!r} (first defined on line {first})"
            raise YamlError(msg)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _decode(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YamlError(
            f"{filename}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from None


def load_yaml(data: bytes | str, filename: str) -> t.Any:
    """Parse one YAML document (bytes must be UTF-8); mappings come back as LineDicts.

    Raises YamlError with one ``FILE:LINE: ...`` line; ``filename`` is what the message shows.
    """
    text = _decode(data, filename) if isinstance(data, bytes) else data
    loader: _Loader | None = None
    try:
        loader = _Loader(text, filename)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}" if mark else filename
        raise YamlError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise YamlError(
            f"{filename}:{line}: invalid YAML: character #x{exc.character:04x} is not allowed"
        ) from None
    except yaml.YAMLError as exc:  # unmarked: PyYAML's own message has no line to offer
        raise YamlError(f"{filename}: invalid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_mapping(data: bytes | str, filename: str) -> LineDict:
    """Parse a file whose top level must be a mapping (a settings file): refuse empty ones."""
    doc = load_yaml(data, filename)
    if doc is None:
        raise YamlError(f"{filename}:1: the file is empty")
    if not isinstance(doc, LineDict):
        raise YamlError(f"{filename}:1: the top level must be a mapping, got {kind(doc)}")
    return doc
