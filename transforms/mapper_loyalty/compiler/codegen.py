"""The one place that writes Python source: each stream's record function, generated once.

A record function is statements per rule, then one dict literal. Plain renames are a bare
``r.get(...)`` inside the literal; anything that can fail sits in its own try block (free in
CPython 3.11 until it raises) so a failure names its rule. Names and values reach the source
only through ``repr`` or the function's namespace, never as raw text from the mapping.

:mod:`mapper_loyalty.interpret` maps a record from the same compiled objects without any of
this; the property tests hold the two to the same output.
"""

from __future__ import annotations

import typing as t

from mapper_loyalty.compiler.model import CompiledStream, FieldRule, PathRef, Record
from mapper_loyalty.rules import EXTRA_FIELD, RuleFailure, step_index

RecordFunction = t.Callable[[Record], t.Any]
Namespace = dict[str, t.Any]

# Exceptions a conversion raises for a value it cannot convert: the record is rejected.
CONVERSION_ERRORS = "(ValueError, TypeError)"


def generate(stream: CompiledStream) -> RecordFunction:
    """Compile the stream's record function; its source is kept as ``.source`` for debugging."""
    ns: Namespace = {"RuleFailure": RuleFailure, "step_index": step_index}
    src = "\n".join(_function_lines(stream, ns)) + "\n"
    exec(compile(src, f"<mapping {stream.input}>", "exec"), ns)  # names/values via repr only
    fn = t.cast("RecordFunction", ns["map_record"])
    fn.source = src  # type: ignore[attr-defined]
    return fn


def _function_lines(stream: CompiledStream, ns: Namespace) -> list[str]:
    """``def map_record(r)``: one output dict, or a list of them when exploding."""
    parent: list[str] = []  # computed once per input record
    per_item: list[str] = []  # computed per exploded element
    items: list[str] = []
    for i, rule in enumerate(stream.fields):
        code, expr = _field_code(i, rule, ns)
        (per_item if rule.uses_element else parent).extend(code)
        items.append(f"{rule.name!r}: {expr}")
    items += _extra_items(stream, ns)
    items += [f"{name!r}: None" for name in stream.pad]
    build = [f"o = {{{', '.join(items)}}}", *_key_checks(stream)]
    if stream.explode is None:
        return ["def map_record(r):", "    e = None", *_indent(parent + build), "    return o"]
    ns["_explode"] = stream.explode.getter
    ns["_explode_line"] = stream.explode.line
    return [
        "def map_record(r):",
        "    items = _explode(r)",
        "    if not items: return []",
        "    if type(items) is not list:",
        "        raise RuleFailure('explode', _explode_line, 'explode path is not a list')",
        "    e = None",
        *_indent(parent),
        "    out = []",
        "    for e in items:",
        *_indent(per_item + build, 2),
        "        out.append(o)",
        "    return out",
    ]


def _extra_items(stream: CompiledStream, ns: Namespace) -> list[str]:
    """``unmapped: extra``: every top-level input field no rule reads, under ``extra``."""
    if stream.unmapped != "extra":
        return []
    ns["_used"] = stream.read_fields()
    return [f"{EXTRA_FIELD!r}: {{k: v for k, v in r.items() if k not in _used}}"]


def _key_checks(stream: CompiledStream) -> list[str]:
    """A null key property rejects the record (after defaults applied)."""
    lines = {rule.name: rule.line for rule in stream.fields}
    return [
        f"if o[{k!r}] is None: raise RuleFailure({k!r}, {lines[k]}, 'key property {k} is null')"
        for k in stream.key
    ]


def _field_code(i: int, rule: FieldRule, ns: Namespace) -> tuple[list[str], str]:
    """Statements and the final expression computing one output field."""
    if rule.kind == "const":
        ns[f"_c{i}"] = rule.const
        return [], f"_c{i}"
    v = f"v{i}"
    get = _read_code(i, rule, v, ns)
    plain = rule.convert is None and rule.default is None and not rule.required
    if plain and len(get) == 1 and get[0].startswith(f"{v} = r.get("):
        return [], get[0][len(f"{v} = ") :]  # a plain rename: inline in the dict literal
    out = [
        "try:",
        *_indent(get + _convert_code(i, rule, v, ns)),
        f"except {CONVERSION_ERRORS} as exc:",
        f"    raise RuleFailure({rule.name!r}, {rule.line}, str(exc)) from None",
    ]
    return out + _missing_code(i, rule, v, ns), v


def _read_code(i: int, rule: FieldRule, v: str, ns: Namespace) -> list[str]:
    """Statements that set ``v`` to the raw value the rule's source reads."""
    if rule.source is None:
        return _path_code(rule.refs[0], v)
    ns[f"_s{i}"] = rule.source
    return [f"{v} = _s{i}(r, e)"]


def _path_code(ref: PathRef, var: str) -> list[str]:
    """Statements that set ``var`` to the value at a (wildcard-free) path."""
    root = "e" if ref.on_element else "r"
    out: list[str] = []
    src = root
    for n, seg in enumerate(ref.segments):
        if seg.index is not None:
            out.append(f"{var} = step_index({src}, {seg.key!r}, {seg.index})")
        elif n == 0 and root == "r":
            out.append(f"{var} = r.get({seg.key!r})")
        else:
            out.append(f"{var} = {src}.get({seg.key!r}) if type({src}) is dict else None")
        src = var
    return out


def _convert_code(i: int, rule: FieldRule, v: str, ns: Namespace) -> list[str]:
    """Statements applying trim/lower, map and cast to a value that is not null."""
    if rule.convert is None:
        return []
    if rule.is_list:
        ns[f"_k{i}"] = rule.convert  # each element, nulls left out
        return [f"if {v} is not None:", f"    {v} = _k{i}({v})"]
    steps: list[str] = []
    if rule.lower or rule.trim:
        method = (".strip()" if rule.trim else "") + (".lower()" if rule.lower else "")
        steps.append(f"if type({v}) is str: {v} = {v}{method}")
    if rule.map_fn is not None:
        ns[f"_m{i}"] = rule.map_fn
        steps.append(f"{v} = _m{i}({v})")
    if rule.cast_fn is not None:
        ns[f"_k{i}"] = rule.cast_fn
        guard = f"if {v} is not None: " if rule.map_fn is not None else ""
        steps.append(f"{guard}{v} = _k{i}({v})")
    return [f"if {v} is not None:", *_indent(steps)]


def _missing_code(i: int, rule: FieldRule, v: str, ns: Namespace) -> list[str]:
    """``default:`` fills a null; ``required:`` rejects it."""
    if rule.default is not None:
        ns[f"_d{i}"] = rule.default
        return [f"if {v} is None: {v} = _d{i}"]
    if rule.required:
        return [
            f"if {v} is None: raise RuleFailure({rule.name!r}, {rule.line}, "
            "'required value is missing or null')"
        ]
    return []


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    pad = "    " * levels
    return [pad + line for line in lines]
