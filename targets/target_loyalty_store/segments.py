"""The store's segments: parameterised DuckDB table macros defined once, in segments.sql.

The target installs them at start (so SQL users have them); `loyalty segment` reads their
names, questions and parameters from the same file's comment headers and calls the macros,
so the CLI and an analyst's `FROM seg_x(...)` can never disagree.

On a PostgreSQL store the same macros become SQL functions (pgsegments.py).
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb

PARAM_TYPES = ("integer", "number", "text", "date", "timestamp")
_HEADER = re.compile(r"^-- segment: (\w+)$", re.M)
_PARAM = re.compile(r"^-- param (\w+) (\w+): (.+)$")
_MACRO = re.compile(r"CREATE OR REPLACE MACRO seg_(\w+)\((.*?)\) AS TABLE", re.S)


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
