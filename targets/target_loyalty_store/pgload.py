"""The store on PostgreSQL: DuckDB stages, checks and merges; PostgreSQL keeps the rows.

One implementation of the load's rules (exact values and their reject reasons, upserts by
key, the contacts merge and the consent log) serves both backends. On PostgreSQL the loader's
DuckDB connection is an in-memory *working set* with the store's schema whose tables are
empty between commits. A commit, in ONE PostgreSQL transaction:

1. (batches with contacts) takes the contacts lock, a transaction-level advisory lock, so
   two loaders never merge the same person from stale rows, and pulls the existing
   `contacts` rows and consent statements of the batch's people into the working set;
2. runs the DuckDB load unchanged on the working set, which then holds exactly the rows the
   batch writes;
3. copies each of those tables to PostgreSQL with ``COPY`` (CSV written by DuckDB, streamed
   in blocks: no per-row Python) and upserts by the table's key (``INSERT .. ON CONFLICT``,
   tables in name order and rows in key order, so concurrent loaders lock rows in one order);
4. saves the STATE that follows the batch (``LOYALTY_STATE_KEY``) and commits.

The working set's transaction is always rolled back, so it is empty again for the next batch.
Readers see a batch all at once, when its transaction commits, and are never blocked.
"""

from __future__ import annotations

import contextlib
import os
import typing as t
from pathlib import Path

import duckdb
import orjson
import psycopg

from singer_kit.commit import NO_STATE
from singer_kit.pgstore import (
    STATE_KEY_ENV,
    STATE_TABLE_DDL,
    PgStoreUnavailable,
    connect,
    safe_url,
    save_state,
)
from target_loyalty_store import pgschema
from target_loyalty_store.sinks import ContactsSink, LoadOptions, LoadResult, StreamSink
from target_loyalty_store.store import StoreError, ident, lit, table_columns

# pg_advisory_xact_lock key of the contacts merge (any fixed 64-bit number; this one spells
# "loyalty contacts" to anyone looking at pg_locks).
CONTACTS_LOCK = 0x10A1_C0_17AC75
_COPY_BLOCK = 1 << 20
# The tables a contacts merge writes, how, and by which key.
_MERGE_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "contacts": ("upsert", ("contact_id",)),
    "contact_ids": ("upsert", ("source", "source_id")),
    "contact_consents": ("append", ()),  # only the statements the batch added
    "_store_meta": ("keep", ("key",)),
}
_PULLED_CONSENTS = "_pg_pulled_consents"
_MAX_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are cut silently


class PgStore:
    """The PostgreSQL connection of one load and the moves between it and the working set."""

    def __init__(self, url: str, work: duckdb.DuckDBPyConnection, staging: Path) -> None:
        self.where = safe_url(url)
        self.work = work
        self._csv = staging / "pg-copy.csv"
        self.state_key = os.environ.get(STATE_KEY_ENV) or None
        self.con = connect(url, application_name="target-loyalty-store", autocommit=True)
        with self.errors("setting up the store's tables"):
            pgschema.install(self.con)
            with self.con.transaction():
                # Created here, under the schema lock: two loads' first commits would race
                # to CREATE it (save_state's own CREATE IF NOT EXISTS is then a no-op).
                self.con.execute("SELECT pg_advisory_xact_lock(%s)", (pgschema.SCHEMA_LOCK,))
                self.con.execute(STATE_TABLE_DDL)
                self._pull("_store_meta", "SELECT {cols} FROM _store_meta")

    # -- errors ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, doing: str) -> t.Iterator[None]:
        """PostgreSQL's errors as one line without the password; a lost server is exit 75."""
        try:
            yield
        except psycopg.Error as exc:
            text = str(exc).strip()
            first = safe_url(text.splitlines()[0] if text else type(exc).__name__)
            if isinstance(exc, psycopg.OperationalError) and self.con.broken:
                raise PgStoreUnavailable(
                    f"the PostgreSQL store {self.where} went away while {doing}: {first}"
                ) from None
            raise StoreError(f"PostgreSQL store {self.where}: {doing} failed: {first}") from None

    # -- tables ------------------------------------------------------------------------------

    def add_stream(self, sink: StreamSink, where: str) -> None:
        """A stream's SCHEMA: its table in the working set as PostgreSQL has it, the columns
        the SCHEMA adds (DuckDB's rules, ``column_types``), then those on PostgreSQL too, with
        the unique index its upsert needs, and its `_streams` row."""
        for name in (sink.table, *sink.properties):
            if len(name.encode()) > _MAX_NAME_BYTES:  # PostgreSQL would cut it: two names
                raise StoreError(
                    f"{where}: SCHEMA for stream {sink.stream!r}: the name {name[:40]!r}... is "
                    f"longer than PostgreSQL's {_MAX_NAME_BYTES} bytes for a table or column; "
                    "rename it (e.g. with a stream map)"
                )
        merges = isinstance(sink, ContactsSink)
        self._mirror(dict.fromkeys([sink.table, *(_MERGE_TABLES if merges else ())]))
        sink.column_types(self.work)
        keyed = sink.stream != "_rejects" and sink.table != "contacts"  # their keys are fixed
        self._publish(sink.table, sink.key_properties if keyed else ())
        self._record_stream(sink.stream, sink.table, sink.key_properties, sink.schema)

    def _mirror(self, tables: t.Iterable[str]) -> None:
        """Give the working set the columns PostgreSQL's tables have (created by earlier
        loads), so the DuckDB load keeps loading into the store's own column types."""
        with self.errors("reading the store's tables"):
            for table in tables:
                pg_columns = pgschema.existing_columns(self.con, table)
                have = {name.lower() for name in table_columns(self.work, table)}
                missing = [(n, ty) for n, ty in pg_columns.items() if n.lower() not in have]
                if not missing:
                    continue
                cols = [f"{ident(n)} {pgschema.duckdb_type_of(ty)}" for n, ty in missing]
                if not have:
                    self.work.execute(f"CREATE TABLE {ident(table)} ({', '.join(cols)})")
                    continue
                for col in cols:
                    self.work.execute(f"ALTER TABLE {ident(table)} ADD COLUMN {col}")

    def _publish(self, table: str, keys: t.Sequence[str]) -> None:
        """Create on PostgreSQL the table and columns the working set has and it lacks, and
        the unique index its upsert by ``keys`` needs. DDL only when something is missing:
        ALTER locks the table exclusively (readers would wait)."""
        wanted = table_columns(self.work, table)
        with self.errors(f"creating table {table!r}"), self.con.transaction():
            self.con.execute("SELECT pg_advisory_xact_lock(%s)", (pgschema.SCHEMA_LOCK,))
            have = {n.lower() for n in pgschema.existing_columns(self.con, table)}
            cols = [
                f"{ident(n)} {pgschema.pg_type(ty)}"
                for n, ty in wanted.items()
                if n.lower() not in have
            ]
            if not have:
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {ident(table)} ({', '.join(cols)})")
            else:
                for col in cols:
                    self.con.execute(f"ALTER TABLE {ident(table)} ADD COLUMN IF NOT EXISTS {col}")
            if keys:
                name, ddl = pgschema.key_index_ddl(table, keys, unique=True)
                row = self.con.execute("SELECT to_regclass(%s)", (ident(name),)).fetchone()
                if row is None or row[0] is None:
                    self.con.execute(ddl)

    def _record_stream(self, stream: str, table: str, keys: list[str], schema: dict) -> None:
        """The stream's `_streams` row (its table, keys and last SCHEMA)."""
        with self.errors("recording the stream"), self.con.transaction():
            self.con.execute(
                "INSERT INTO _streams (stream, table_name, key_properties, schema, updated_at) "
                "VALUES (%s, %s, %s, %s, now()) ON CONFLICT (stream) DO UPDATE SET "
                "table_name = EXCLUDED.table_name, key_properties = EXCLUDED.key_properties, "
                "schema = EXCLUDED.schema, updated_at = EXCLUDED.updated_at",
                (stream, table, orjson.dumps(keys).decode(), orjson.dumps(schema).decode()),
            )

    # -- runs and state ------------------------------------------------------------------------

    def start_run(self, run_id: str) -> None:
        """This load's `_runs` row."""
        with self.errors("recording the run"), self.con.transaction():
            self.con.execute(
                "INSERT INTO _runs (run_id, started_at, outcome) VALUES (%s, now(), 'running')",
                (run_id,),
            )

    def end_run(self, run_id: str, values: list[t.Any]) -> None:
        """Close the run's row: outcome, records, rejects, states_emitted, error (in order)."""
        *counts, error = values
        with self.errors("recording the run"), self.con.transaction():
            self.con.execute(
                "UPDATE _runs SET finished_at = now(), outcome = %s, records = %s, rejects = %s, "
                "states_emitted = %s, error = %s WHERE run_id = %s",
                (*counts, None if error is None else safe_url(error), run_id),
            )

    def save_state(self, line: bytes, run_id: str) -> None:
        """A STATE no commit carried (nothing was staged before it), in its own transaction."""
        if self.state_key is None:
            return
        with self.errors("saving the state"), self.con.transaction():
            save_state(self.con, self.state_key, line.decode(), run_id)

    # -- a commit ------------------------------------------------------------------------------

    def commit(
        self, staged: list[StreamSink], options: LoadOptions, state: t.Any, run_id: str
    ) -> list[tuple[StreamSink, LoadResult]]:
        """Load the prepared batch into PostgreSQL in one transaction, with its STATE."""
        work = self.work
        merges = [s for s in staged if isinstance(s, ContactsSink)]
        with self.errors("loading the batch"), self.con.transaction():
            work.execute("BEGIN TRANSACTION")
            try:
                if merges:
                    self.con.execute("SELECT pg_advisory_xact_lock(%s)", (CONTACTS_LOCK,))
                    self._pull_people(merges, options)
                results = [(s, s.load(work, options)) for s in staged]
                for n, (table, (how, keys, source)) in enumerate(sorted(_writes(staged).items())):
                    self._push(n, table, how, keys, source)
                if self.state_key is not None and state is not NO_STATE:
                    save_state(self.con, self.state_key, orjson.dumps(state).decode(), run_id)
            finally:
                with contextlib.suppress(duckdb.Error):
                    work.execute("ROLLBACK")  # the working set is empty again
                self._csv.unlink(missing_ok=True)
        return results

    def cancel(self) -> None:
        """Stop the statement running on the server (its transaction then rolls back)."""
        with contextlib.suppress(psycopg.Error):
            self.con.cancel_safe(timeout=5)

    def close(self) -> None:
        """Release the connection (an open transaction rolls back)."""
        with contextlib.suppress(psycopg.Error):
            self.con.close()

    # -- the moves -----------------------------------------------------------------------------

    def _pull_people(self, merges: list[ContactsSink], options: LoadOptions) -> None:
        """The batch's people as the store has them: their contacts rows and consent log."""
        people = " UNION ".join(s.people_sql(options) for s in merges)
        self._to_csv(f"SELECT DISTINCT contact_id FROM ({people})")
        self.con.execute(
            "CREATE TEMP TABLE _pg_people (contact_id text PRIMARY KEY) ON COMMIT DROP"
        )
        self._copy_in("_pg_people", ["contact_id"])
        self.con.execute("ANALYZE _pg_people")
        among = "WHERE contact_id IN (SELECT contact_id FROM _pg_people)"
        self._pull("contacts", f"SELECT {{cols}} FROM contacts {among}")
        self.work.execute(
            f"CREATE TEMP TABLE {_PULLED_CONSENTS} AS SELECT * FROM contact_consents LIMIT 0"
        )
        self._pull(
            "contact_consents", f"SELECT {{cols}} FROM contact_consents {among}", _PULLED_CONSENTS
        )
        self.work.execute(f"INSERT INTO contact_consents SELECT * FROM {_PULLED_CONSENTS}")

    def _pull(self, table: str, query: str, into: str | None = None) -> None:
        """Rows of a PostgreSQL query (``{cols}``: the working set's columns of ``table``, in
        order) into the working set's ``table`` (or ``into``, a table of its shape)."""
        types = table_columns(self.work, table)
        cols = ", ".join(ident(n) for n in types)
        sql = query.replace("{cols}", cols)
        with (
            self._csv.open("wb") as out,
            self.con.cursor().copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy,
        ):
            for block in copy:
                out.write(block)
        spec = "{" + ", ".join(f"{lit(n)}: {lit(ty)}" for n, ty in types.items()) + "}"
        self.work.execute(
            f"INSERT INTO {ident(into or table)} SELECT * FROM read_csv({lit(str(self._csv))}, "
            f"columns = {spec}, header = false, auto_detect = false, delim = ',', quote = '\"', "
            "escape = '\"', allow_quoted_nulls = false)"
        )

    def _push(self, n: int, table: str, how: str, keys: tuple[str, ...], source: str) -> None:
        """Write the working set's rows of one table to PostgreSQL: COPY, then upsert."""
        count = self.work.execute(f"SELECT count(*) FROM {source}").fetchone()
        if not count or not count[0]:
            return
        cols = list(table_columns(self.work, table))
        self._to_csv(f"SELECT {', '.join(ident(c) for c in cols)} FROM {source}")
        incoming = f"_pg_in_{n}"
        self.con.execute(
            f"CREATE TEMP TABLE {incoming} (LIKE {ident(table)} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        self._copy_in(incoming, cols)
        insert = f"INSERT INTO {ident(table)} SELECT * FROM {incoming}"
        if how == "append":
            self.con.execute(insert)
            return
        # Rows in key order: concurrent loaders then lock the rows they share in one order
        # (the merge's tables are written under the contacts lock: no need to sort those).
        order = "" if table in _MERGE_TABLES else f" ORDER BY {', '.join(ident(k) for k in keys)}"
        conflict = f" ON CONFLICT ({', '.join(ident(k) for k in keys)}) DO "
        others = [c for c in pgschema.existing_columns(self.con, table) if c not in keys]
        if how == "keep" or not others:
            self.con.execute(insert + order + conflict + "NOTHING")
            return
        # Every column, also one this batch does not have (NULL): the row is replaced whole,
        # as DuckDB's delete + insert replaces it.
        sets = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in others)
        self.con.execute(insert + order + conflict + "UPDATE SET " + sets)

    def _to_csv(self, select: str) -> None:
        """A working-set query's rows as CSV in the staging folder (DuckDB writes it)."""
        self.work.execute(f"COPY ({select}) TO {lit(str(self._csv))} (FORMAT csv, HEADER false)")

    def _copy_in(self, table: str, cols: list[str]) -> None:
        """Stream the CSV file into a PostgreSQL table with COPY, a block at a time."""
        names = ", ".join(ident(c) for c in cols)
        with (
            self._csv.open("rb") as data,
            self.con.cursor().copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy,
        ):
            while block := data.read(_COPY_BLOCK):
                copy.write(block)


def _writes(staged: list[StreamSink]) -> dict[str, tuple[str, tuple[str, ...], str]]:
    """table -> (how, key, working-set rows) for every table a batch writes.

    how: ``upsert`` (replace the row with the key), ``keep`` (insert unless the key exists:
    rejects are immutable) or ``append`` (no key).
    """
    writes: dict[str, tuple[str, tuple[str, ...], str]] = {
        "_rejects": ("keep", ("reject_id",), "_rejects")
    }
    for sink in staged:
        if isinstance(sink, ContactsSink):
            for table, (how, keys) in _MERGE_TABLES.items():
                writes[table] = (how, keys, ident(table))
            writes["contact_consents"] = (
                "append",
                (),
                f"(SELECT * FROM contact_consents EXCEPT ALL SELECT * FROM {_PULLED_CONSENTS})",
            )
            if sink.table == "contacts":
                continue
        if sink.stream == "_rejects":
            continue
        keys = tuple(sink.key_properties)
        writes[sink.table] = ("upsert" if keys else "append", keys, ident(sink.table))
    return writes
