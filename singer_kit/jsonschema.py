"""JSON-Schema type helpers: what a property's schema says about the JSON types it allows.

Singer schemas say "this or null" three ways (a type list, ``anyOf`` and ``oneOf`` branches,
nested), and the mapper (checks, output schemas) and the store (column types) both need to
read them the same way; this is the one walker both use.
"""

from __future__ import annotations

import typing as t

Schema = dict[str, t.Any]


def branches(schema: Schema) -> list[Schema]:
    """The leaf schemas of nested ``anyOf``/``oneOf`` lists; the schema itself without them."""
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if not isinstance(alternatives, list):
        return [schema]
    leaves: list[Schema] = []
    for branch in alternatives:
        if isinstance(branch, dict):
            leaves.extend(branches(branch))
    return leaves


def type_names(schema: Schema) -> set[str]:
    """The names in one schema's own ``type`` (a string or a list); empty when it has none."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {name for name in declared if isinstance(name, str)}
    return set()


def declared_types(schema: Schema) -> set[str] | None:
    """Every JSON type the schema allows, null included; None when a branch does not say
    (an open schema allows anything, so there is nothing to check a value against)."""
    types: set[str] = set()
    for branch in branches(schema):
        if branch.get("type") is None:
            return None
        types |= type_names(branch)
    return types


def json_types(prop: t.Any) -> set[str]:
    """The JSON types a property allows besides null, from the branches that say
    (empty: nothing said, so any)."""
    if not isinstance(prop, dict):
        return set()
    types: set[str] = set()
    for branch in branches(prop):
        types |= type_names(branch)
    types.discard("null")
    return types


def string_formats(prop: t.Any) -> set[str]:
    """The ``format`` of each branch that allows a string (``""`` for a plain string)."""
    if not isinstance(prop, dict):
        return set()
    return {
        branch.get("format") or "" for branch in branches(prop) if "string" in type_names(branch)
    }


def nullable(schema: Schema) -> Schema:
    """The schema with null allowed (a schema without ``type`` already allows it)."""
    declared = schema.get("type")
    if declared is None:
        return schema
    types = [declared] if isinstance(declared, str) else list(declared)
    if "null" in types:
        return schema
    return {**schema, "type": [*types, "null"]}


def not_null(schema: Schema) -> Schema:
    """The schema without null: for keys, required fields and fields with a default."""
    declared = schema.get("type")
    if not isinstance(declared, list) or "null" not in declared:
        return schema
    return {**schema, "type": [name for name in declared if name != "null"]}


def types_text(types: t.Iterable[str]) -> str:
    """Types for a message: ``integer/string``; ``null`` when there are none."""
    return "/".join(sorted(types)) or "null"
