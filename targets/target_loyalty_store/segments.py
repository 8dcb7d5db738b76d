"""The store's segments: parameterised DuckDB table macros defined once, in segments.sql.

The target installs them at start (so SQL users have them); `loyalty segment` reads their
names, questions and parameters from the same file's comment headers and calls the macros,
so the CLI and an analyst's `FROM seg_x(...)` can never disagree.

On a PostgreSQL store the same macros become SQL functions, translated mechanically
(:func:`postgres_ddl`): the helper macros (``_seg_now``, ``_seg_lines``, ...) are expanded
into each segment's body, the parameters become the function's own (``seg_x.days``: a
PostgreSQL function's column names would otherwise win over its parameters), the body goes
through the kit's DuckDB -> PostgreSQL translation, and each function returns a composite
type ``seg_x_result`` whose columns PostgreSQL itself derives from the body.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb
from sqlglot import exp

from singer_kit import pgsql

if t.TYPE_CHECKING:
    import psycopg

PARAM_TYPES = ("integer", "number", "text", "date", "timestamp")
_HEADER = re.compile(r"^-- segment: (\w+)$", re.M)
_PARAM = re.compile(r"^-- param (\w+) (\w+): (.+)$")
_MACRO = re.compile(r"CREATE OR REPLACE MACRO seg_(\w+)\((.*?)\) AS TABLE", re.S)
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


@dataclass(frozen=True)
class Param:
    """One macro parameter: its type, its default as SQL text (None: required), its help."""

    name: str
    type: str
    default: str | None
    help: str

    def convert(self, text: str) -> t.Any:
        """A --param value as the parameter's type; ValueError says what was expected.

        An empty value is NULL ("any" for the optional filters).
        """
        if text == "":
            return None
        try:
            if self.type == "integer":
                return int(text)
            if self.type == "number":
                return Decimal(text)
            if self.type == "date":
                return dt.date.fromisoformat(text)
            if self.type == "timestamp":
                value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        except (ValueError, InvalidOperation):
            raise ValueError(f"{self.name} must be {_A[self.type]}, got {text!r}") from None
        return text


@dataclass(frozen=True)
class Segment:
    """A named question over the store, answered by the macro seg_<name>."""

    name: str
    question: str
    params: tuple[Param, ...]

    @property
    def macro(self) -> str:
        return f"seg_{self.name}"


def segments_sql() -> str:
    """The macro definitions shipped with the package."""
    return Path(__file__).with_name("segments.sql").read_text(encoding="utf-8")


def install(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create every segment macro; run after the views they read exist."""
    con.execute(segments_sql())


def catalog(sql: str | None = None) -> dict[str, Segment]:
    """Every segment of segments.sql by name, from its comment header and macro signature."""
    sql = segments_sql() if sql is None else sql
    found: dict[str, Segment] = {}
    parts = _HEADER.split(sql)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        question = ""
        helps: dict[str, tuple[str, str]] = {}
        for line in body.splitlines():
            if line.startswith("-- question: "):
                question = line.removeprefix("-- question: ")
            elif m := _PARAM.match(line):
                helps[m.group(1)] = (m.group(2), m.group(3))
        macro = _MACRO.search(body)
        if macro is None or macro.group(1) != name:
            raise ValueError(f"segments.sql: segment {name} has no macro seg_{name}")
        params = []
        for item in filter(None, (p.strip() for p in macro.group(2).split(","))):
            pname, _, default = (s.strip() for s in item.partition(":="))
            if pname not in helps or helps[pname][0] not in PARAM_TYPES:
                raise ValueError(f"segments.sql: seg_{name}({pname}) has no typed param line")
            params.append(Param(pname, helps[pname][0], default or None, helps[pname][1]))
        found[name] = Segment(name, question, tuple(params))
    return found


_A = {
    "integer": "an integer",
    "number": "a number",
    "date": "a date (YYYY-MM-DD)",
    "timestamp": "an ISO 8601 date-time",
    "text": "text",
}


def query(
    con: duckdb.DuckDBPyConnection, segment: Segment, values: dict[str, t.Any]
) -> tuple[list[str], list[tuple[str | None, ...]]]:
    """Run seg_<name> with the given parameters (others keep their defaults): columns, and
    rows as text (DuckDB's own rendering; instants in the session's zone, UTC)."""
    args = ", ".join(f"{name} := ?" for name in values)
    sql = f"SELECT COLUMNS(*)::VARCHAR FROM {segment.macro}({args})"
    cur = con.execute(sql, list(values.values()))
    columns = [d[0] for d in cur.description]
    return columns, cur.fetchall()


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


def postgres_ddl(con: psycopg.Connection, sql: str | None = None) -> list[str]:
    """Statements that (re)create every segment as a PostgreSQL function over the views
    (which must exist: PostgreSQL types each result column from them, through ``con``)."""
    sql = segments_sql() if sql is None else sql
    macros = _macros(sql)
    helpers = {n: m for n, m in macros.items() if not n.startswith("seg_")}
    statements: list[str] = []
    for segment in catalog(sql).values():
        macro = macros[segment.macro]
        body = _expand(macro.body, helpers)
        types = {p.name: PG_TYPES[p.type] for p in segment.params}
        probe = _bind(body, {n: exp.cast(exp.Null(), ty) for n, ty in types.items()})
        result = f"{segment.macro}_result"
        con.execute(f"CREATE TEMP VIEW _seg_probe AS {pgsql.render(pgsql.rewrite(probe))}")
        columns = con.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'pg_temp._seg_probe'::regclass AND attnum > 0 ORDER BY attnum"
        ).fetchall()
        con.execute("DROP VIEW pg_temp._seg_probe")
        own = {n: exp.column(n, table=segment.macro) for n in types}
        text = pgsql.render(pgsql.rewrite(_bind(body, own)))
        params = ", ".join(
            f"{p.name} {types[p.name]}"
            + (f" DEFAULT {pgsql.to_postgres(p.default)}" if p.default else "")
            for p in segment.params
        )
        statements += [
            f"DROP TYPE IF EXISTS {result} CASCADE",
            f"CREATE TYPE {result} AS ({', '.join(f'{_ident(c)} {ty}' for c, ty in columns)})",
            f"CREATE FUNCTION {segment.macro}({params}) RETURNS SETOF {result} "
            f"LANGUAGE sql STABLE AS $segment$\n{text}\n$segment$",
            f"COMMENT ON FUNCTION {segment.macro} IS {_literal(segment.question)}",
        ]
    return statements


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
