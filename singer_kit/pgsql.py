"""DuckDB SQL as PostgreSQL SQL: the store's views, segments and models keep one source.

The store's SQL is written for DuckDB (the embedded default). On a PostgreSQL store the same
text is translated mechanically with sqlglot (``duckdb`` -> ``postgres``: QUALIFY, ``::``
casts, ``epoch``, FILTER, ORDER BY's NULLS placement) plus the few rewrites below for what
sqlglot leaves in DuckDB's dialect, so nobody keeps a second copy by hand:

- ``arg_min(v, k)`` / ``arg_max(v, k)``: the first ``v`` by ``k`` from an ordered
  ``array_agg``, skipping rows where either is NULL (DuckDB's rule);
- ``any_value`` ignores NULLs in both (PostgreSQL 16's own), so sqlglot's IGNORE NULLS goes;
- structs (``{'k': v}``, ``struct_pack``) become ``json_build_object`` (key order kept); a
  list of them (``list(...)``, ``[...]``) is a ``json[]`` the client reads as a list of objects;
- ``to_days(n)`` is ``n * interval '1 day'``; ``get_current_timestamp()`` is
  CURRENT_TIMESTAMP (the transaction's start in both).

Text sorts like DuckDB's (byte order) because the store's text columns are ``COLLATE "C"``
(targets/target_loyalty_store/pgschema.py).
"""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp

READ = "duckdb"
WRITE = "postgres"


class TranslationError(ValueError):
    """SQL that cannot be read as DuckDB SQL (the message names the problem)."""


def parse(sql: str) -> list[exp.Expression]:
    """DuckDB statements as sqlglot trees (comments kept)."""
    try:
        return [e for e in sqlglot.parse(sql, read=READ) if e is not None]
    except sqlglot.errors.ParseError as exc:
        raise TranslationError(str(exc).splitlines()[0]) from None


def rewrite(tree: exp.Expression) -> exp.Expression:
    """The DuckDB-only constructs of a tree replaced by PostgreSQL ones (see the module doc)."""
    return tree.transform(_rewrite_node)


def render(tree: exp.Expression) -> str:
    """A rewritten tree as PostgreSQL SQL text."""
    return tree.sql(dialect=WRITE, pretty=True, unsupported_level=sqlglot.ErrorLevel.RAISE)


@functools.lru_cache(maxsize=64)
def to_postgres(sql: str) -> str:
    """DuckDB SQL (one or more statements) as PostgreSQL SQL, statements joined by ';'."""
    return ";\n".join(render(rewrite(tree)) for tree in parse(sql))


def _rewrite_node(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):
        return node.this
    if isinstance(node, (exp.ArgMin, exp.ArgMax)):
        return _first_by(node.this, node.expression, descending=isinstance(node, exp.ArgMax))
    if isinstance(node, exp.Struct):
        return exp.Anonymous(this="json_build_object", expressions=_struct_pairs(node))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "get_current_timestamp":
        return exp.CurrentTimestamp()
    if isinstance(node, exp.ToDays):
        days = exp.Paren(this=node.this)
        return exp.Mul(this=days, expression=exp.Interval(this=exp.Literal.string("1 day")))
    return node


def _first_by(value: exp.Expression, key: exp.Expression, *, descending: bool) -> exp.Expression:
    """``(array_agg(value ORDER BY key) FILTER (WHERE both not null))[1]``."""
    order = exp.Order(expressions=[exp.Ordered(this=key.copy(), desc=descending)])
    order.set("this", value.copy())
    both = exp.and_(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())))
    both = exp.and_(both, exp.Not(this=exp.Is(this=key.copy(), expression=exp.Null())))
    aggregate = exp.Filter(this=exp.ArrayAgg(this=order), expression=exp.Where(this=both))
    return exp.Bracket(
        this=exp.Paren(this=aggregate), expressions=[exp.Literal.number(1)], offset=1
    )


def _struct_pairs(node: exp.Struct) -> list[exp.Expression]:
    """'key', value, ... for json_build_object, from ``{'k': v}`` or ``struct_pack(k := v)``."""
    pairs: list[exp.Expression] = []
    for field in node.expressions:
        if isinstance(field, (exp.PropertyEQ, exp.Slice)):
            key, value = field.this, field.expression
        elif isinstance(field, exp.Alias):
            key, value = field.args["alias"], field.this
        else:
            raise TranslationError(f"a struct field needs a name: {field.sql(READ)}")
        pairs += [exp.Literal.string(key.name), value]
    return pairs
