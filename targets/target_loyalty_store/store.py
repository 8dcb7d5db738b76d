"""The DuckDB file: connection, the store's own schema, column types from Singer SCHEMAs.

Kept apart from the loading code so the orchestrator and tests can open and inspect a store
with the same rules (time zone, schema) without pulling in the Singer machinery.
"""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import duckdb

from singer_kit.commit import InputError
from singer_kit.duckstore import connect_waiting, lock_holder
from singer_kit.jsonschema import json_types, string_formats
from target_loyalty_store import segments

# Streams with a table of their own shape (schema.sql); everything else is a plain table.
KNOWN_STREAMS = ("contacts", "order_lines", "_rejects")
# Store objects an unknown stream may not overwrite.
RESERVED_NAMES = frozenset(
    {
        "contact_ids",
        "contact_consents",
        "orders",
        "order_lines_by_contact",
        "tracking_events_by_contact",
        "_runs",
        "_streams",
        "_store_meta",
        "loyalty_tiers",
        "loyalty_accounts",
    }
)
KEYS_OF_KNOWN = {
    "contacts": ("source", "source_id"),
    "order_lines": ("line_id",),
    "_rejects": ("reject_id",),
    "loyalty_members": ("source", "source_id"),
}
# Fields of the `contacts` input stream (docs/store-streams.md) and how they are staged.
CONTACT_FIELDS: dict[str, str] = {
    "source": "VARCHAR",
    "source_id": "VARCHAR",
    "email": "VARCHAR",
    "mobile": "VARCHAR",
    "first_name": "VARCHAR",
    "last_name": "VARCHAR",
    "birthday": "DATE",
    "address": "VARCHAR",
    "zip_code": "VARCHAR",
    "city": "VARCHAR",
    "country_code": "VARCHAR",
    "is_active": "BOOLEAN",
    "is_club_member": "BOOLEAN",
    "newsletter": "BOOLEAN",
    "consent_related": "BOOLEAN",
    "card_number": "VARCHAR",
    "card_name": "VARCHAR",
    "created_at": "TIMESTAMPTZ",
    "updated_at": "TIMESTAMPTZ",
    "member_number": "VARCHAR",
}


_VIEWS_MARKER = "-- views --"
log = logging.getLogger("target-loyalty-store")


class StoreError(InputError):
    """A problem the user must fix; printed as one line, never with a traceback."""


class StoreLocked(StoreError):
    """Another process kept the DuckDB file locked past lock_timeout_seconds: try later."""

    exit_code = 75  # EX_TEMPFAIL, so cron and `loyalty run` retry rather than alarm


def ident(name: str) -> str:
    """Quote an identifier for DuckDB (stream and property names may hold any character)."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """Quote a string literal for DuckDB."""
    return "'" + value.replace("'", "''") + "'"


def duckdb_type(prop: t.Any) -> str:
    """Column type for a JSON-schema property; anything ambiguous is kept as JSON."""
    if not isinstance(prop, dict):
        return "JSON"
    types = json_types(prop)
    formats = string_formats(prop)
    if types == {"string"}:
        if formats == {"date-time"}:
            return "TIMESTAMPTZ"
        if formats == {"date"}:
            return "DATE"
        return "VARCHAR"
    if types == {"integer"}:
        return "BIGINT"
    if types and types <= {"integer", "number"}:
        return "DOUBLE"
    if types == {"boolean"}:
        return "BOOLEAN"
    return "JSON"


def schema_sql() -> str:
    """The DDL shipped with the package."""
    return Path(__file__).with_name("schema.sql").read_text(encoding="utf-8")


def schema_parts() -> tuple[str, str]:
    """schema.sql split at its views marker: (the tables' DDL, the views' DDL)."""
    tables, _, views = schema_sql().partition(_VIEWS_MARKER)
    return tables, views


def declared_columns(ddl: str) -> list[tuple[str, str, str, bool]]:
    """(table, column, DuckDB type, NOT NULL) of every table the DDL creates, in order.

    Read from the DDL applied to an empty in-memory database, so schema.sql stays the single
    description of the store (the DuckDB migration and the PostgreSQL tables both read it).
    """
    ref = duckdb.connect(":memory:")
    try:
        ref.execute(ddl)
        rows = ref.execute(
            "SELECT table_name, column_name, data_type, is_nullable = 'NO' "
            "FROM information_schema.columns WHERE table_schema = 'main' AND table_name IN "
            "(SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE') "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        ref.close()
    return [(table, column, dtype, bool(not_null)) for table, column, dtype, not_null in rows]


def connect(
    database: str,
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    lock_timeout: float = 0,
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the store and bring its schema up to date.

    Another process holding the file (a load, or an analyst, even read-only) is waited for
    up to lock_timeout seconds; then StoreLocked (exit 75: cron tries again later).
    """
    path = Path(database)
    try:
        if database != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        con = connect_waiting(
            database,
            lock_timeout,
            label="loyalty store",
            error=StoreError,
            locked=StoreLocked,
            logger=log,
        )
    except OSError as exc:
        raise StoreError(f"cannot create loyalty store {database}: {exc.strerror}") from None
    # Naive timestamps are read as UTC, and results never depend on the host's zone.
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        con.execute(f"SET memory_limit = {lit(memory_limit)}")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    tables, views = schema_parts()
    con.execute(tables)
    migrate(con, tables)
    con.execute(views)  # after the migration: views may use columns it just added
    segments.install(con)  # after the views they read; SQL users get them from any load
    return con


def open_read_only(database: str) -> duckdb.DuckDBPyConnection:
    """A brief read-only look at an existing store (segments, reports): never creates or
    migrates it, and a load holding it is StoreLocked at once (exit 75), not waited for."""
    if database != ":memory:" and not Path(database).is_file():
        raise StoreError(f"no loyalty store at {database}: run a load first")
    try:
        con = duckdb.connect(database, read_only=True)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        if "Could not set lock" in first:
            raise StoreLocked(
                f"loyalty store {database} is locked by {lock_holder(first)}; "
                "try again when the load has finished (exit 75)"
            ) from None
        raise StoreError(f"cannot open loyalty store {database}: {first}") from None
    con.execute("SET TimeZone = 'UTC'")
    return con


def migrate(con: duckdb.DuckDBPyConnection, ddl: str) -> list[str]:
    """Add the columns a newer schema.sql has and an older store lacks; returns them
    (no hand-written migration steps to forget: see declared_columns)."""
    added: list[str] = []
    have: dict[str, set[str]] = {}
    for table, column, dtype, _ in declared_columns(ddl):
        if table not in have:
            have[table] = {c.lower() for c in table_columns(con, table)}
        if column.lower() not in have[table]:
            con.execute(f"ALTER TABLE {ident(table)} ADD COLUMN {ident(column)} {dtype}")
            added.append(f"{table}.{column}")
    return added


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> type of a table in the main schema (empty if it does not exist)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {name: dtype for name, dtype in rows}


def check_match_field(con: duckdb.DuckDBPyConnection, match_field: str) -> None:
    """A store is built on one match field; switching later would split every person in two."""
    row = con.execute("SELECT value FROM _store_meta WHERE key = 'match_field'").fetchone()
    if row is None:
        con.execute("INSERT INTO _store_meta VALUES ('match_field', ?)", [match_field])
    elif row[0] != match_field:
        raise StoreError(
            f"this store matches contacts on {row[0]!r} but config match_field is "
            f"{match_field!r}; use a new database file to change the match field"
        )
