"""Compile a mapping YAML into per-stream record functions, once, before any data flows.

The compiled form is what makes the mapper fast and its errors early: every rule becomes an
object with its options resolved (:mod:`.model`), each stream's record function is generated
Python (:mod:`.codegen`), and every path, cast and output field is checked here (:mod:`.checks`)
— against the tap's catalog when one is given — so a typo fails at start with ``file:line``
instead of after a million records. By concern:

| module | what it compiles or decides |
|---|---|
| ``__init__`` | the file and its top-level settings; streams sharing an output |
| ``streams`` | one stream: ``to``, ``key``, ``explode``, ``fields``, ``unmapped`` |
| ``fields`` | one field rule: source, modifiers, casts |
| ``filters`` | a ``filter:`` condition tree into one predicate |
| ``schema_types`` | the output SCHEMA each rule gives |
| ``checks`` | rules against the tap's catalog or SCHEMA |
| ``codegen`` | the one place that emits Python source |
"""

from __future__ import annotations

import typing as t
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from mapper_loyalty.compiler import codegen
from mapper_loyalty.compiler.model import (
    CompiledMapping,
    CompiledStream,
    FieldRule,
    PathRef,
    Record,
    Schema,
)
from mapper_loyalty.compiler.schema_types import field_names
from mapper_loyalty.compiler.streams import StreamDefaults, compile_stream
from mapper_loyalty.loader import MappingError, load_yaml
from mapper_loyalty.rules import _show
from singer_kit.yamlio import LineDict

__all__ = [
    "CompiledMapping",
    "CompiledStream",
    "FieldRule",
    "PathRef",
    "Record",
    "Schema",
    "compile_mapping",
]

TOP_KEYS = ("version", "separator", "timezone", "on_error", "unmapped", "other_streams")
TOP_KEYS += ("catalog", "streams")

Catalog = str | Path | t.Mapping[str, t.Any]


def compile_mapping(path: str | Path, catalog: Catalog | None = None) -> CompiledMapping:
    """Compile a mapping file once; check it against the tap's catalog when known.

    ``catalog`` may be a catalog dict or a path to its JSON; when None, the mapping's own
    ``catalog:`` key (relative to the mapping file) is used if present. Raises MappingError
    whose message names ``file:line`` and the stream and field at fault.
    """
    path = Path(path)
    doc = _read_document(path)
    top = _TopLevel(doc, str(path))
    mapping = CompiledMapping(
        path=path, filename=str(path), on_error=top.on_error, other_streams=top.other_streams
    )
    streams, defaults = top.streams(), top.defaults()
    for name, node in streams.items():
        mapping.streams[name] = compile_stream(mapping, name, node, streams.line_of(name), defaults)
    _join_shared_outputs(mapping)
    for stream in mapping.streams.values():
        stream.map_record = codegen.generate(stream)
    catalog = catalog if catalog is not None else top.catalog(path)
    if catalog is not None:
        if isinstance(catalog, (str, Path)):
            origin = str(catalog)
            catalog = _load_catalog(Path(catalog), str(path))
        else:
            origin = "the catalog"
        mapping.check_catalog(catalog, origin)
    return mapping


def _read_document(path: Path) -> LineDict:
    filename = str(path)
    try:
        text = path.read_bytes()  # the loader names the line of bad UTF-8
    except FileNotFoundError:
        raise MappingError(f"{filename}: mapping file not found") from None
    except OSError as exc:
        raise MappingError(f"{filename}: cannot read mapping file: {exc}") from None
    doc = load_yaml(text, filename)
    if not isinstance(doc, LineDict):
        raise MappingError(f"{filename}:1: a mapping file is a YAML mapping with a streams: key")
    for key in doc:
        if key not in TOP_KEYS:
            allowed = ", ".join(TOP_KEYS)
            raise MappingError(
                f"{filename}:{doc.line_of(key)}: unknown key {key!r} (allowed: {allowed})"
            )
    return doc


class _TopLevel:
    """The mapping's top-level settings, each checked as it is read."""

    def __init__(self, doc: LineDict, filename: str) -> None:
        self.doc = doc
        self.filename = filename
        if doc.get("version", 1) != 1:
            self.bad("version", "only version 1 is known")
        self.separator = doc.get("separator", ".")
        if not isinstance(self.separator, str) or not self.separator:
            self.bad("separator", "must be non-empty text such as . or /")
        self.tz = self._timezone()
        self.on_error = self._choice("on_error", "reject", ("reject", "fail"))
        self.other_streams = self._choice("other_streams", "drop", ("drop", "pass"))
        self.unmapped = self._choice("unmapped", "drop", ("drop", "extra"))

    def bad(self, key: str, message: str) -> t.NoReturn:
        raise MappingError(f"{self.filename}:{self.doc.line_of(key)}: {key}: {message}")

    def _timezone(self) -> ZoneInfo:
        name = self.doc.get("timezone", "UTC")
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            self.bad("timezone", f"unknown timezone {_show(name)} (e.g. Europe/Copenhagen)")

    def _choice(self, key: str, default: str, allowed: tuple[str, str]) -> str:
        value = self.doc.get(key, default)
        if value not in allowed:
            self.bad(key, f"must be {allowed[0]} or {allowed[1]}")
        return t.cast("str", value)

    def defaults(self) -> StreamDefaults:
        return StreamDefaults(self.separator, self.tz, self.unmapped)

    def streams(self) -> LineDict:
        streams = self.doc.get("streams")
        # Only a pass-through mapping (a store model already in the target's shape) may be empty.
        if isinstance(streams, LineDict) and not streams and self.other_streams == "pass":
            return streams
        if not isinstance(streams, LineDict) or not streams:
            raise MappingError(
                f"{self.filename}:{self.doc.line_of('streams')}: streams: needs at least one stream"
            )
        return streams

    def catalog(self, path: Path) -> Path | None:
        """The mapping's own ``catalog:``, relative to the mapping file."""
        if "catalog" not in self.doc:
            return None
        ref = self.doc["catalog"]
        if not isinstance(ref, str):
            self.bad("catalog", "must be a path to the tap's catalog JSON")
        return path.parent / ref


def _join_shared_outputs(mapping: CompiledMapping) -> None:
    """Streams mapped into one output stream must agree on its key, and each writes the
    others' fields as null, so every record of an output stream has the same fields."""
    for output, members in mapping.outputs().items():
        first = members[0]
        for m in members[1:]:
            if m.key != first.key:
                raise MappingError(
                    f"{m.where()}: output stream '{output}' has key {m.key} here but "
                    f"{first.key} in stream '{first.input}' (line {first.line})"
                )
        if len(members) > 1:
            names = field_names(members)
            for m in members:
                own = m.output_properties(None)
                m.pad = [n for n in names if n not in own]


def _load_catalog(path: Path, filename: str) -> dict[str, t.Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise MappingError(f"{filename}: catalog file not found: {path}") from None
    except orjson.JSONDecodeError as exc:
        raise MappingError(f"{path}: invalid catalog JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("streams"), list):
        raise MappingError(f'{path}: not a Singer catalog (expected {{"streams": [...]}})')
    return data
