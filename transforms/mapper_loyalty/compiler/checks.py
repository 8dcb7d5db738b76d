"""Checks of compiled rules against a source schema: the tap's catalog at start, and each
SCHEMA message the tap sends at run time. A typo or an impossible cast fails here, with
``file:line``, instead of rejecting every record."""

from __future__ import annotations

import typing as t

from mapper_loyalty.compiler.schema_types import ref_schema, resolve_schema
from mapper_loyalty.loader import MappingError
from mapper_loyalty.rules import CASTS_FROM, literal_type
from singer_kit.jsonschema import declared_types, types_text

if t.TYPE_CHECKING:
    from mapper_loyalty.compiler.model import CompiledStream, FieldRule, PathRef

Schema = dict[str, t.Any]

# Python compares 1 == 1.0 == True, so a map key of one of these types can match the others.
_MATCH_GROUP = {"integer": "number", "boolean": "number"}


def check_catalog(
    streams: t.Iterable[CompiledStream], catalog: t.Mapping[str, t.Any], origin: str
) -> dict[str, Schema]:
    """Check every stream against a Singer catalog; return its schemas by stream name."""
    schemas: dict[str, Schema] = {}
    for entry in catalog.get("streams") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("schema"), dict):
            continue
        for name in (entry.get("tap_stream_id"), entry.get("stream")):
            if isinstance(name, str):
                schemas.setdefault(name, entry["schema"])
    for stream in streams:
        if stream.input not in schemas:
            known = ", ".join(sorted(schemas)) or "none"
            raise MappingError(f"{stream.where()}: stream not in {origin} (it has: {known})")
        check_stream(stream, schemas[stream.input], origin)
    return schemas


def check_stream(stream: CompiledStream, source: Schema, origin: str) -> None:
    """Raise MappingError for an unknown input path or a cast the source type rules out."""
    element = None
    if stream.explode is not None:
        element = _check_explode(stream, stream.explode, source, origin)
    for rule_name, ref in stream.all_refs():
        if rule_name != "explode" and ref_schema(ref, source, element) is None:
            _unknown(stream, rule_name, ref, origin)
    for rule in stream.fields:
        _check_rule_types(stream, rule, source, element, origin)


def _check_explode(stream: CompiledStream, explode: PathRef, source: Schema, origin: str) -> Schema:
    """The exploded path must exist, be an array and not be hidden by the alias; returns the
    element's schema."""
    if stream.alias in (source.get("properties") or {}):
        msg = (
            f"{stream.where(explode.line)} explode: as: '{stream.alias}' hides the "
            f"input field of that name in {origin}; pick another name"
        )
        raise MappingError(msg)
    found = resolve_schema(source, explode.segments)
    if found is None:
        _unknown(stream, "explode", explode, origin)
    types = declared_types(found)
    if types is not None and "array" not in types:
        msg = (
            f"{stream.where(explode.line)} explode: path '{explode.text}' is "
            f"{'/'.join(sorted(types))} in {origin}, not an array"
        )
        raise MappingError(msg)
    return found.get("items", {})


def _unknown(stream: CompiledStream, rule: str, ref: PathRef, origin: str) -> t.NoReturn:
    label = rule if rule in ("filter", "explode") else f"field '{rule}'"
    msg = f"{stream.where(ref.line)} {label}: unknown input path '{ref.text}' (not in {origin})"
    raise MappingError(msg)


def _source_types(rule: FieldRule, source: Schema, element: Schema | None) -> set[str] | None:
    """The non-null types a path or coalesce rule reads; None when a schema is open."""
    types: set[str] = set()
    for ref in rule.refs:
        ref_types = declared_types(ref_schema(ref, source, element) or {})
        if ref_types is None:
            return None
        types |= ref_types
    types.discard("null")
    return types


def _check_rule_types(
    stream: CompiledStream,
    rule: FieldRule,
    source: Schema,
    element: Schema | None,
    origin: str,
) -> None:
    if rule.kind not in ("path", "coalesce"):
        return
    types = _source_types(rule, source, element)
    if types is None:
        return  # an open schema: nothing to check against
    where = f"{stream.where(rule.line)} field '{rule.name}'"
    if (rule.lower or rule.trim) and types - {"string"}:
        op = "lower" if rule.lower else "trim"
        msg = f"{where}: {op} applies to strings, but the source is {types_text(types)}"
        raise MappingError(msg + f" in {origin}")
    if rule.vmap is not None:
        # The cast applies to the map's values (checked at compile time); here the keys
        # must be able to match the source at all, or every record would be rejected.
        _check_map_keys(rule.vmap, types, where, origin)
    elif rule.cast is not None:
        _check_cast(rule, rule.cast, types, where, origin)


def _check_map_keys(vmap: dict[t.Any, t.Any], types: set[str], where: str, origin: str) -> None:
    groups = {_MATCH_GROUP.get(tp, tp) for tp in types}
    key_types = {literal_type(k) for k in vmap}
    if groups and not groups & {_MATCH_GROUP.get(tp, tp) for tp in key_types}:
        msg = (
            f"{where}: map keys are {types_text(key_types)} "
            f"but the source is {types_text(types)} in {origin} (quote the keys?)"
        )
        raise MappingError(msg)


def _check_cast(rule: FieldRule, cast: str, types: set[str], where: str, origin: str) -> None:
    bad = sorted(tp for tp in types if cast not in CASTS_FROM.get(tp, frozenset()))
    if bad:
        msg = (
            f"{where}: cast to {cast} cannot apply to source type "
            f"{types_text(bad)} (path '{rule.refs[0].text}' in {origin})"
        )
        raise MappingError(msg)
    if rule.fmt is not None and types - {"string"}:
        msg = (
            f"{where}: format {rule.fmt!r} parses text, but the source is "
            f"{types_text(types)} in {origin}"
        )
        raise MappingError(msg)
