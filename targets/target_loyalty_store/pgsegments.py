"""The store's segments on PostgreSQL: segments.sql's macros as SQL functions, translated.

One source: the helper macros (``_seg_now``, ``_seg_lines``, ...) are expanded into each
segment's body, the parameters become the function's own (``seg_x.days``: in a PostgreSQL SQL
function a column name would win over a parameter of the same name), the body goes through
the kit's DuckDB -> PostgreSQL translation (singer_kit.pgsql), and each function returns a
composite type ``seg_x_result`` whose columns PostgreSQL itself types from the body (a
RETURNS TABLE could not: its column names may not repeat a parameter's, e.g. ``currency``).
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

from sqlglot import exp

from singer_kit import pgsql
from target_loyalty_store.segments import Segment, catalog, segments_sql

if t.TYPE_CHECKING:
    import psycopg

_DEFINITION = re.compile(
    r"^CREATE OR REPLACE MACRO (\w+)\(([^)]*)\)\s+AS\s+(TABLE\b)?(.*?);[ \t]*$", re.S | re.M
)
PG_TYPES = {
    "integer": "integer",
    "number": "numeric",
    "text": "text",
    "date": "date",
    "timestamp": "timestamptz",
}


def query_postgres(
    con: psycopg.Connection, segment: Segment, values: dict[str, t.Any]
) -> tuple[list[str], list[tuple[str | None, ...]]]:
    """:func:`query` on a PostgreSQL store: the function seg_<name>, rows as PostgreSQL's
    text (the session is in UTC, like the DuckDB store's)."""
    types = {p.name: PG_TYPES[p.type] for p in segment.params}
    columns = [
        str(row[0])
        for row in con.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (f"{segment.macro}_result",),
        )
    ]
    args = ", ".join(f"{name} => %s::{types[name]}" for name in values)
    texts = ", ".join(f"CAST(s.{_ident(c)} AS text)" for c in columns)
    cur = con.execute(f"SELECT {texts} FROM {segment.macro}({args}) AS s", list(values.values()))
    return columns, cur.fetchall()


@dataclass(frozen=True)
class _Macro:
    """One CREATE MACRO of segments.sql: its parameters (name, default SQL) and body."""

    name: str
    params: tuple[tuple[str, str | None], ...]
    body: exp.Expression
    is_table: bool


def _macros(sql: str) -> dict[str, _Macro]:
    found: dict[str, _Macro] = {}
    for m in _DEFINITION.finditer(sql):
        params = []
        for item in filter(None, (p.strip() for p in m.group(2).split(","))):
            pname, _, default = (s.strip() for s in item.partition(":="))
            params.append((pname, default or None))
        (body,) = pgsql.parse(m.group(4))
        found[m.group(1)] = _Macro(m.group(1), tuple(params), body, bool(m.group(3)))
    return found


def _bind(body: exp.Expression, values: dict[str, exp.Expression]) -> exp.Expression:
    """The body with its unqualified parameter names replaced (columns are always qualified
    in segments.sql, so an unqualified name is a parameter)."""

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in values:
            return values[node.name].copy()
        return node

    return body.copy().transform(swap)


def _expand(tree: exp.Expression, helpers: dict[str, _Macro]) -> exp.Expression:
    """Every call of a helper macro replaced by its body, until none is left."""

    def inline(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous):
            helper = helpers.get(node.this.name)
            if helper and helper.is_table:
                return exp.Subquery(this=helper.body.copy(), alias=node.args.get("alias"))
        if isinstance(node, exp.Anonymous) and node.name in helpers:
            helper = helpers[node.name]
            args = dict(zip((p for p, _ in helper.params), node.expressions, strict=True))
            return exp.Paren(this=_bind(helper.body, args))
        return node

    while True:
        expanded = tree.transform(inline)
        if expanded == tree:
            return expanded
        tree = expanded


@dataclass(frozen=True)
class Function:
    """One segment as PostgreSQL SQL: its parameter list, its body, and the body with NULLs
    of the parameters' types in their place (what PostgreSQL types the result from)."""

    segment: Segment
    params: str
    body: str
    probe: str

    @property
    def result(self) -> str:
        return f"{self.segment.macro}_result"


def functions(sql: str | None = None) -> list[Function]:
    """Every segment of segments.sql translated (no database needed)."""
    sql = segments_sql() if sql is None else sql
    macros = _macros(sql)
    helpers = {n: m for n, m in macros.items() if not n.startswith("seg_")}
    found: list[Function] = []
    for segment in catalog(sql).values():
        body = _expand(macros[segment.macro].body, helpers)
        types = {p.name: PG_TYPES[p.type] for p in segment.params}
        nulls = {n: exp.cast(exp.Null(), ty) for n, ty in types.items()}
        own = {n: exp.column(n, table=segment.macro) for n in types}
        params = ", ".join(
            f"{p.name} {types[p.name]}"
            + (f" DEFAULT {pgsql.to_postgres(p.default)}" if p.default else "")
            for p in segment.params
        )
        found.append(
            Function(
                segment,
                params,
                body=pgsql.render(pgsql.rewrite(_bind(body, own))),
                probe=pgsql.render(pgsql.rewrite(_bind(body, nulls))),
            )
        )
    return found


def postgres_ddl(con: psycopg.Connection, sql: str | None = None) -> list[str]:
    """Statements that (re)create every segment as a PostgreSQL function over the views
    (which must exist: PostgreSQL types each result column from them, through ``con``)."""
    statements: list[str] = []
    for f in functions(sql):
        con.execute(f"CREATE TEMP VIEW _seg_probe AS {f.probe}")
        columns = con.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'pg_temp._seg_probe'::regclass AND attnum > 0 ORDER BY attnum"
        ).fetchall()
        con.execute("DROP VIEW pg_temp._seg_probe")
        statements += [
            f"DROP TYPE IF EXISTS {f.result} CASCADE",
            f"CREATE TYPE {f.result} AS ({', '.join(f'{_ident(c)} {ty}' for c, ty in columns)})",
            f"CREATE FUNCTION {f.segment.macro}({f.params}) RETURNS SETOF {f.result} "
            f"LANGUAGE sql STABLE AS $segment$\n{f.body}\n$segment$",
            f"COMMENT ON FUNCTION {f.segment.macro} IS {_literal(f.segment.question)}",
        ]
    return statements


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
