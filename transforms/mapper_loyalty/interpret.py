"""A plain interpreter of compiled rules: maps a record by walking the rule objects.

The runner never uses this; it is slow on purpose and obvious on purpose. It is the oracle
the property tests hold the generated record functions (:mod:`.compiler.codegen`) to: for any
record both give the same output, or both reject it with the same rule and reason. It shares
the rule objects' leaves (path getters, casts, map lookups) with the generated code and
nothing of its shape, so a mistake in how code is generated (an order, a guard, an inlined
path, a padded field) shows up as a difference.
"""

from __future__ import annotations

import typing as t

from mapper_loyalty.compiler.model import CompiledStream, FieldRule, PathRef, Record
from mapper_loyalty.rules import EXTRA_FIELD, RuleFailure, template_text


def map_record(stream: CompiledStream, record: Record) -> Record | list[Record]:
    """What ``stream.map_record(record)`` returns: one output record, or a list of them when
    the stream explodes; RuleFailure for a record a rule cannot convert."""
    if stream.explode is None:
        return _output(stream, record, _values(stream.fields, record, None))
    items = stream.explode.getter(record)
    if not items:
        return []
    if not isinstance(items, list):
        raise RuleFailure("explode", stream.explode.line, "explode path is not a list")
    parent = [rule for rule in stream.fields if not rule.uses_element]
    per_element = [rule for rule in stream.fields if rule.uses_element]
    parent_values = _values(parent, record, None)
    return [
        _output(stream, record, {**parent_values, **_values(per_element, record, item)})
        for item in items
    ]


def _values(rules: list[FieldRule], record: Record, element: t.Any) -> dict[str, t.Any]:
    return {rule.name: field_value(rule, record, element) for rule in rules}


def _output(stream: CompiledStream, record: Record, values: dict[str, t.Any]) -> Record:
    """The output record: fields in the mapping's order, then ``extra``, then the padding."""
    out = {rule.name: values[rule.name] for rule in stream.fields}
    if stream.unmapped == "extra":
        read = stream.read_fields()
        out[EXTRA_FIELD] = {k: v for k, v in record.items() if k not in read}
    for name in stream.pad:
        out[name] = None
    lines = {rule.name: rule.line for rule in stream.fields}
    for key in stream.key:
        if out[key] is None:
            raise RuleFailure(key, lines[key], f"key property {key} is null")
    return out


def field_value(rule: FieldRule, record: Record, element: t.Any) -> t.Any:
    """One field: read its source, apply the modifiers in order, then default / required."""
    if rule.kind == "const":
        return rule.const
    try:
        value = _convert(rule, _read(rule, record, element))
    except (ValueError, TypeError) as exc:
        raise RuleFailure(rule.name, rule.line, str(exc)) from None
    if value is None and rule.default is not None:
        return rule.default
    if value is None and rule.required:
        raise RuleFailure(rule.name, rule.line, "required value is missing or null")
    return value


def _read(rule: FieldRule, record: Record, element: t.Any) -> t.Any:
    if rule.kind == "path":
        return _at(rule.refs[0], record, element)
    if rule.kind == "coalesce":
        for ref in rule.refs:
            value = _at(ref, record, element)
            if value is not None and value != "":
                return value
        return None
    texts = []
    for part in rule.template:
        if isinstance(part, str):
            texts.append(part)
            continue
        value = _at(part, record, element)
        if value is None:
            return None
        texts.append(template_text(value))
    return "".join(texts)


def _at(ref: PathRef, record: Record, element: t.Any) -> t.Any:
    return ref.getter(element if ref.on_element else record)


def _convert(rule: FieldRule, value: t.Any) -> t.Any:
    """trim/lower -> map -> cast, each on a value that is not null; a wildcard's list is
    converted element by element, leaving out those that become null."""
    if value is None:
        return None
    if rule.is_list:
        converted = [_convert_one(rule, v) for v in value]
        return [v for v in converted if v is not None]
    return _convert_one(rule, value)


def _convert_one(rule: FieldRule, value: t.Any) -> t.Any:
    if isinstance(value, str):
        if rule.trim:
            value = value.strip()
        if rule.lower:
            value = value.lower()
    if rule.map_fn is not None:
        value = rule.map_fn(value)
    if rule.cast_fn is not None and value is not None:
        value = rule.cast_fn(value)
    return value
