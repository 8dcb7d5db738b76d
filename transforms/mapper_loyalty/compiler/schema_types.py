"""Output schema inference: the JSON schema each output field gets from its rule.

Casts give their type, maps the types of their values, constants their literal type, templates
``string``, plain paths the source type (the tap's catalog or SCHEMA, read by
:func:`resolve_schema`). Several input streams into one output stream give the union.
"""

from __future__ import annotations

import copy
import typing as t

from mapper_loyalty.rules import EXTRA_FIELD, Segment, cast_schema, literal_type
from singer_kit.jsonschema import branches, not_null, nullable

if t.TYPE_CHECKING:
    from mapper_loyalty.compiler.model import CompiledStream, FieldRule, PathRef

Schema = dict[str, t.Any]


def resolve_schema(schema: Schema, segments: t.Sequence[Segment]) -> Schema | None:
    """Sub-schema at a path; ``{}`` where the schema is open; None when the path is unknown."""
    for seg in segments:
        found: list[Schema] = []
        for alt in branches(schema):
            tp = alt.get("type")
            if tp is None and "properties" not in alt and "items" not in alt:
                return {}
            types = {tp} if isinstance(tp, str) else set(tp or ())
            if (seg.wildcard or seg.index is not None) and ("array" in types or "items" in alt):
                found.append(alt.get("items", {}))
            if "object" in types or "properties" in alt:
                props = alt.get("properties")
                if props is None:
                    found.append({})
                elif not seg.wildcard and seg.key in props:
                    found.append(props[seg.key])
                elif seg.wildcard or seg.index in (0, -1):
                    # An object read as a one-element list (rules.step_index): itself.
                    found.append(alt)
        if not found:
            return None
        schema = found[0] if len(found) == 1 else {"anyOf": found}
    return schema


def element_schema(explode: PathRef, source: Schema) -> Schema:
    """Schema of one exploded element (``{}``, open, when the source does not say)."""
    return (resolve_schema(source, explode.segments) or {}).get("items", {})


def ref_schema(ref: PathRef, source: Schema | None, element: Schema | None) -> Schema | None:
    """Schema a path reads (in the element for element paths); None without a source."""
    if source is None:
        return None
    root = (element if element is not None else {}) if ref.on_element else source
    return resolve_schema(root, ref.segments)


def merge_schemas(schemas: list[Schema]) -> Schema:
    """Union of field schemas (two mappings into one stream, coalesce over several paths)."""
    if not schemas:
        return {}
    first = copy.deepcopy(schemas[0])
    for other in schemas[1:]:
        if other == first:
            continue
        a, b = first.get("type"), other.get("type")
        if a is None or b is None:
            return {}
        types = [a] if isinstance(a, str) else list(a)
        for tp in [b] if isinstance(b, str) else b:
            if tp not in types:
                types.append(tp)
        first["type"] = types
        if first.get("format") != other.get("format"):
            first.pop("format", None)
    if "null" in first.get("type", ()):
        first["type"] = [tp for tp in first["type"] if tp != "null"] + ["null"]
    return first


def output_properties(stream: CompiledStream, source: Schema | None) -> dict[str, Schema]:
    """Output JSON schema of each field of one stream."""
    element = None
    if source is not None and stream.explode is not None:
        element = element_schema(stream.explode, source)
    props = {rule.name: field_schema(stream, rule, source, element) for rule in stream.fields}
    if stream.unmapped == "extra":
        props[EXTRA_FIELD] = {"type": ["object"]}
    return props


def field_schema(
    stream: CompiledStream, rule: FieldRule, source: Schema | None, element: Schema | None
) -> Schema:
    """One field's schema: its value's type, a list of it for a wildcard, null as it may be."""
    schema = _value_schema(rule, source, element)
    if rule.is_list:
        schema = {"type": ["array"], "items": schema}
    if rule.default is not None and "type" in schema:
        default_type = literal_type(rule.default)
        if default_type not in schema["type"]:
            schema["type"] = [*schema["type"], default_type]
    if rule.kind == "const":
        never_null = rule.const is not None
    else:
        never_null = rule.required or rule.name in stream.key or rule.default is not None
    return not_null(schema) if never_null else nullable(schema)


def _value_schema(rule: FieldRule, source: Schema | None, element: Schema | None) -> Schema:
    if rule.kind == "const":
        return cast_schema(rule.cast) if rule.cast else {"type": [literal_type(rule.const)]}
    if rule.cast is not None:
        return cast_schema(rule.cast)
    if rule.vmap is not None:
        return {"type": sorted({literal_type(v) for v in rule.vmap.values()})}
    if rule.kind == "template" or rule.lower or rule.trim:
        return {"type": ["string"]}
    found = [ref_schema(ref, source, element) for ref in rule.refs]
    schema = merge_schemas([f if f is not None else {} for f in found])
    return {k: v for k, v in schema.items() if k not in ("description", "title")}


def union_schema(per_stream: list[dict[str, Schema]]) -> Schema:
    """One output stream's SCHEMA from the properties of each input stream mapped to it; a
    field some of them do not write is nullable."""
    names: list[str] = []
    for props in per_stream:
        names.extend(n for n in props if n not in names)
    properties: dict[str, Schema] = {}
    for name in names:
        found = [props[name] for props in per_stream if name in props]
        merged = merge_schemas(found)
        properties[name] = merged if len(found) == len(per_stream) else nullable(merged)
    return {"type": "object", "properties": properties}


def field_names(streams: t.Iterable[CompiledStream]) -> list[str]:
    """Every output field name the streams write, in first-seen order."""
    names: list[str] = []
    for stream in streams:
        names.extend(n for n in output_properties(stream, None) if n not in names)
    return names
