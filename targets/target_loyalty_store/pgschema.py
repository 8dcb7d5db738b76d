"""The store's schema on PostgreSQL, derived from schema.sql and segments.sql: one description.

schema.sql (DuckDB dialect) stays the single source of the tables: it is applied to an empty
in-memory DuckDB and every table's columns are read back and re-typed for PostgreSQL. The
keys the loader deletes and upserts by get indexes here (DuckDB's store needs none). Text
columns are ``COLLATE "C"``: they sort and compare byte-wise, as DuckDB's do, so ORDER BY,
min/max and the models' ordered lists give the same answers on both stores (one difference
is left: ``lower``/``upper`` change ASCII letters only under "C").

The views (schema.sql after ``-- views --``) and the segments (segments.sql) are translated
mechanically (singer_kit.pgsql, target_loyalty_store.pgsegments) and replaced only
when that translation changed (a digest in ``_store_meta``), so an opener of an up-to-date
store takes no DDL lock: loads and readers never wait for each other's start.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import typing as t
from pathlib import Path

from singer_kit import pgsql
from target_loyalty_store import pgsegments, segments
from target_loyalty_store.store import declared_columns, ident, schema_parts, schema_sql

if t.TYPE_CHECKING:
    import psycopg

# DuckDB type -> PostgreSQL type. JSON stays `json` (text as received, key order kept) rather
# than `jsonb`: `_rejects.record` must be the record exactly as it arrived.
_TYPES = {
    "VARCHAR": 'text COLLATE "C"',
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP": "timestamp",
    "JSON": "json",
    "HUGEINT": "numeric(39, 0)",
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
# The columns each table is looked up by: unique where the loader keeps one row per key.
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "_store_meta": ("key",),
    "contacts": ("contact_id",),
    "contact_ids": ("source", "source_id"),
    "order_lines": ("line_id",),
    "_rejects": ("reject_id",),
    "_runs": ("run_id",),
    "_streams": ("stream",),
    "ticket_cancellations": ("cancellation_id",),
    "tracking_events": ("tracking_event_id",),
    "loyalty_members": ("source", "source_id"),
    "loyalty_transactions": ("source", "transaction_id"),
}
LOOKUP_KEYS: dict[str, tuple[str, ...]] = {"contact_consents": ("contact_id",)}
# pg_advisory_xact_lock key held by every transaction that changes the store's tables: two
# loads starting at once on a new store would otherwise both CREATE the same table and one
# fail (CREATE TABLE IF NOT EXISTS is not safe against a concurrent CREATE).
SCHEMA_LOCK = 0x10A1_5C4E_AA


def pg_type(duckdb_type: str) -> str:
    """The PostgreSQL type for a DuckDB column type (anything unknown is kept as json)."""
    decimal = _DECIMAL.fullmatch(duckdb_type)
    if decimal:
        return f"numeric({decimal.group(1)}, {decimal.group(2)})"
    return _TYPES.get(duckdb_type, "json")


DIGEST_KEY = "postgres_schema_digest"
# PostgreSQL's own spelling of a column type (format_type) -> the DuckDB type it came from,
# so the loader's DuckDB working set can mirror a table PostgreSQL already has.
_DUCKDB_TYPES = {
    **{pg: duck for duck, pg in _TYPES.items() if not pg.startswith("numeric")},
    "text": "VARCHAR",  # format_type leaves out the COLLATE "C" of _TYPES
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "timestamp without time zone": "TIMESTAMP",
    "numeric(39,0)": "HUGEINT",
    "character varying": "VARCHAR",
    "jsonb": "JSON",
}
_NUMERIC = re.compile(r"numeric\((\d+),\s*(\d+)\)")


def duckdb_type_of(pg_column_type: str) -> str:
    """The DuckDB type for a PostgreSQL column type as ``format_type`` spells it."""
    known = _DUCKDB_TYPES.get(pg_column_type)
    if known:
        return known
    numeric = _NUMERIC.fullmatch(pg_column_type)
    if numeric and int(numeric.group(1)) <= 38:
        return f"DECIMAL({numeric.group(1)}, {numeric.group(2)})"
    return "JSON"


def key_index_ddl(table: str, keys: t.Sequence[str], *, unique: bool) -> tuple[str, str]:
    """(index name, CREATE INDEX statement) for the columns a table is looked up by."""
    name = table + "_" + "_".join(keys)
    return name, (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {ident(name)} "
        f"ON {ident(table)} ({', '.join(ident(k) for k in keys)})"
    )


@functools.cache
def table_columns() -> dict[str, list[tuple[str, str, bool]]]:
    """table -> [(column, PostgreSQL type, NOT NULL)] as schema.sql declares them (read once
    per process: install reads it for the CREATEs and again for the missing columns)."""
    tables: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, dtype, not_null in declared_columns(schema_parts()[0]):
        tables.setdefault(table, []).append((column, pg_type(dtype), not_null))
    return tables


def tables_ddl() -> list[str]:
    """CREATE TABLE / INDEX IF NOT EXISTS statements for every table of schema.sql."""
    statements: list[str] = []
    for table, columns in table_columns().items():
        cols = ", ".join(
            f"{ident(name)} {ty}{' NOT NULL' if not_null else ''}" for name, ty, not_null in columns
        )
        statements.append(f"CREATE TABLE IF NOT EXISTS {ident(table)} ({cols})")
        for keys, unique in ((UNIQUE_KEYS.get(table), True), (LOOKUP_KEYS.get(table), False)):
            if keys:
                statements.append(key_index_ddl(table, keys, unique=unique)[1])
    return statements


def create_tables(con: psycopg.Connection) -> None:
    """Create the store's tables (and add columns a newer schema.sql has) in one transaction.

    Only a missing column is ALTERed: ALTER TABLE locks its table exclusively even when the
    column exists, and a load starting next to a running one would stall that table's readers.
    """
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in tables_ddl():
            con.execute(statement)
        for table, columns in table_columns().items():
            have = set(existing_columns(con, table))
            for name, ty, _ in columns:
                if name not in have:
                    con.execute(
                        f"ALTER TABLE {ident(table)} ADD COLUMN IF NOT EXISTS {ident(name)} {ty}"
                    )


def existing_columns(con: psycopg.Connection, table: str) -> dict[str, str]:
    """Column -> type (``format_type`` spelling) of a table in the search path (empty: none)."""
    rows = con.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (ident(table),),
    ).fetchall()
    return {str(name): str(ty) for name, ty in rows}


def views_sql() -> str:
    """schema.sql's views in PostgreSQL's dialect (CREATE OR REPLACE VIEW ..., in order)."""
    return pgsql.to_postgres(schema_parts()[1])


def view_names() -> list[str]:
    """The store's views, in the order schema.sql creates them (each may read the earlier)."""
    views = pgsql.parse(schema_parts()[1])
    return [tree.this.name for tree in views]


def digest() -> str:
    """What install would create, in one hash of its sources (schema.sql, segments.sql, the
    code that translates them, sqlglot's version): unchanged means nothing to do. Cheap, so
    an up-to-date store costs a load's start no translation."""
    import sqlglot

    sources = [schema_sql(), segments.segments_sql(), sqlglot.__version__]
    sources += [
        Path(m.__file__ or "").read_text() for m in (pgsql, pgsegments, sys.modules[__name__])
    ]
    return hashlib.sha256("\n;\n".join(sources).encode()).hexdigest()


def install(con: psycopg.Connection) -> None:
    """Bring a PostgreSQL store's schema up to date: tables, views, segments, in one
    transaction. The one call every opener that writes to the store makes (readers do not:
    they need no schema change and must never take DDL locks)."""
    wanted = digest()
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        installed = None
        if con.execute("SELECT to_regclass('_store_meta')").fetchone() != (None,):
            row = con.execute(
                "SELECT value FROM _store_meta WHERE key = %s", (DIGEST_KEY,)
            ).fetchone()
            installed = row[0] if row else None
        if installed == wanted:
            return
        create_tables(con)
        for name in reversed(view_names()):
            con.execute(f"DROP VIEW IF EXISTS {ident(name)}")  # a dependent of the user's: fails
        con.execute(views_sql())
        for statement in pgsegments.postgres_ddl(con):
            con.execute(statement)
        con.execute(
            "INSERT INTO _store_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (DIGEST_KEY, wanted),
        )
