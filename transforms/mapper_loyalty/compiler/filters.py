"""Filters: a condition tree (``all``/``any``/``not`` over ``{path: P, <op>: value}``) compiled
into one predicate over the input record."""

from __future__ import annotations

import operator
import typing as t

from mapper_loyalty.compiler.context import StreamContext
from mapper_loyalty.compiler.model import PathRef, Record
from mapper_loyalty.rules import RuleFailure, _show
from singer_kit.yamlio import LineDict

Predicate = t.Callable[[Record], bool]

COMPARISONS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "null", "not_null")
_ORDERED = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def compile_filter(ctx: StreamContext, node: t.Any, line: int, refs: list[PathRef]) -> Predicate:
    """Compile a condition tree into a predicate; every path it reads is added to ``refs``."""
    if isinstance(node, list):
        return _all(_compile_each(ctx, node, line, refs))
    if not isinstance(node, LineDict):
        ctx.fail(line, "filter", f"a condition must be a mapping, got {_show(node)}")
    for combinator in ("all", "any"):
        if combinator in node:
            if len(node) != 1 or not isinstance(node[combinator], list):
                ctx.fail(node.line, "filter", f"{combinator}: takes a list of conditions, alone")
            preds = _compile_each(ctx, node[combinator], node.line, refs)
            return _all(preds) if combinator == "all" else _any(preds)
    if "not" in node:
        if len(node) != 1:
            ctx.fail(node.line, "filter", "not: takes one condition, alone")
        inner = compile_filter(ctx, node["not"], node.line, refs)
        return lambda r: not inner(r)
    return _condition(ctx, _null_key_as_op(node), refs)


def _compile_each(
    ctx: StreamContext, nodes: list[t.Any], line: int, refs: list[PathRef]
) -> list[Predicate]:
    return [compile_filter(ctx, n, getattr(n, "line", line), refs) for n in nodes]


def _all(preds: list[Predicate]) -> Predicate:
    return lambda r: all(p(r) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    return lambda r: any(p(r) for p in preds)


def _null_key_as_op(node: LineDict) -> LineDict:
    """YAML reads a bare ``null:`` key as None; the user meant the op."""
    if None not in node:
        return node
    fixed = LineDict({("null" if k is None else k): v for k, v in node.items()})
    fixed.line = node.line
    fixed.key_lines = {("null" if k is None else k): n for k, n in node.key_lines.items()}
    return fixed


def _condition(ctx: StreamContext, node: LineDict, refs: list[PathRef]) -> Predicate:
    """``{path: P, <op>: value}``: one comparison on a path of the input record."""
    ctx.check_keys(node, ("path", *COMPARISONS), "filter")
    ops = [k for k in COMPARISONS if k in node]
    if "path" not in node or len(ops) != 1:
        ctx.fail(
            node.line,
            "filter",
            "a condition is {path: P, <op>: value} with one op of " + ", ".join(COMPARISONS),
        )
    ref = ctx.ref(node["path"], node.line_of("path"), "filter")
    if ref.on_element:
        ctx.fail(node.line, "filter", "filters apply to the input record, not to exploded elements")
    refs.append(ref)
    return _comparison(ctx, ref, ops[0], node[ops[0]], node.line_of(ops[0]))


def _comparison(ctx: StreamContext, ref: PathRef, op: str, value: t.Any, line: int) -> Predicate:
    get = ref.getter
    if op in ("null", "not_null"):
        if value is not True:
            ctx.fail(line, "filter", f"write {op}: true")
        if op == "null":
            return lambda r: get(r) is None
        return lambda r: get(r) is not None
    if op == "eq":
        return lambda r: get(r) == value
    if op == "ne":
        return lambda r: get(r) != value
    if op in ("in", "not_in"):
        return _membership(ctx, get, op, value, line)
    if value is None:
        ctx.fail(line, "filter", f"{op} needs a value to compare with")
    return _ordered(ref, op, value, line)


def _membership(
    ctx: StreamContext, get: t.Callable[[t.Any], t.Any], op: str, value: t.Any, line: int
) -> Predicate:
    if not isinstance(value, list):
        ctx.fail(line, "filter", f"{op} takes a list of values")
    try:
        values: t.Collection[t.Any] = frozenset(value)
    except TypeError:
        values = list(value)
    if op == "in":
        return lambda r: _member(get(r), values)
    return lambda r: not _member(get(r), values)


def _member(v: t.Any, values: t.Collection[t.Any]) -> bool:
    try:
        return v in values
    except TypeError:
        return False


def _ordered(ref: PathRef, op: str, value: t.Any, line: int) -> Predicate:
    """gt/gte/lt/lte: null never matches; values that cannot be ordered reject the record."""
    get = ref.getter
    compare = _ORDERED[op]

    def ordered(r: Record) -> bool:
        v = get(r)
        if v is None:
            return False
        try:
            return bool(compare(v, value))
        except TypeError:
            reason = f"cannot compare {_show(v)} with {_show(value)} ({op} on '{ref.text}')"
            raise RuleFailure("filter", line, reason) from None

    return ordered
