"""``tap-loyalty-store``: the loyalty store as a source; each model file is one stream.

Push pipelines (Ometria, Voyado) read unified contacts and orders from the store rather than
from each source, the way reverse-ETL tools sync warehouse models. The store is a DuckDB file
a load may be writing, so the tap opens it read-only, waits a bounded time for a load to
finish, and holds it only while it copies each selected model's rows to a Parquet file; the
records are then emitted from that copy with the store already released.

A PostgreSQL store (``database: postgresql://...``) is read in place: each model is one
read-only query (its own MVCC snapshot, which takes no lock a load waits for) through a
server-side cursor, fetched in batches, so memory stays bounded and the records, bookmarks and
order are those of the DuckDB store.
"""

from __future__ import annotations

import sys
import tempfile
import typing as t
from functools import cached_property
from pathlib import Path

import click
import duckdb
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from singer_kit import pgstore
from singer_kit.commit import InputError
from singer_kit.duckstore import LOCK_TIMEOUT, DuckFileError, connect_waiting
from singer_kit.singer_io import FastWriter
from tap_loyalty_store.models import (
    Model,
    ModelError,
    describe,
    describe_postgres,
    jsonable,
    load_models,
)

if t.TYPE_CHECKING:
    import psycopg

FETCH_ROWS = 2000  # rows per fetch, from the Parquet copy or the PostgreSQL cursor (bounded memory)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ModelStream(Stream):
    """One model: the whole SELECT, or the rows at or after the bookmark of its change column.

    ``>=`` rather than ``>``: rows sharing the bookmark's instant that arrived after the last
    run are not skipped; the ones already sent are skipped by the push target's ledger.
    ``start_date``/``end_date`` (a ``loyalty backfill`` window) bound only a model's window
    column: a model without one (the contacts receipts need) is read whole in every window.
    """

    is_sorted = True

    def __init__(self, tap: TapLoyaltyStore, model: Model, schema: dict) -> None:
        super().__init__(tap, schema=schema, name=model.name)
        self.open_store = tap.open_store
        self.open_postgres = tap.open_postgres
        self.on_postgres = tap.on_postgres
        self.model = model
        self.primary_keys = list(model.key)
        self.replication_key = model.change_column  # type: ignore[assignment]

    def get_records(self, context: dict | None) -> t.Iterable[dict]:
        if self.on_postgres:
            yield from self._read_postgres(context)
            return
        query, params = self._query(self.model.sql, "?", context)
        with tempfile.TemporaryDirectory(prefix="tap-loyalty-store-") as tmp:
            copy = Path(tmp) / f"{self.name}.parquet"
            con = self.open_store()
            try:
                con.execute(f"COPY ({query}) TO '{copy}' (FORMAT parquet)", params)
            except duckdb.Error as exc:
                first = str(exc).splitlines()[0]
                raise ModelError(f"{self.model.path}: the query failed: {first}") from None
            finally:
                con.close()  # the store is free again before the first record goes out
            reader = duckdb.connect()
            try:
                reader.execute("SET TimeZone = 'UTC'")
                result = reader.execute(f"SELECT * FROM read_parquet('{copy}')")
                names = [d[0] for d in result.description]
                while rows := result.fetchmany(FETCH_ROWS):
                    for row in rows:
                        yield {n: jsonable(v) for n, v in zip(names, row, strict=True)}
            finally:
                reader.close()

    def _read_postgres(self, context: dict | None) -> t.Iterable[dict]:
        """The model's rows through a server-side cursor in one read-only transaction."""
        import psycopg

        # psycopg takes '%' as the start of a placeholder: the model's own are doubled.
        query, params = self._query(self.model.postgres_sql().replace("%", "%%"), "%s", context)
        con = self.open_postgres()
        try:
            with con.transaction():
                con.execute("SET TRANSACTION READ ONLY")
                with con.cursor(name=f"tap_loyalty_store_{self.name}") as cur:
                    cur.execute(query, params)
                    names = [d.name for d in cur.description or ()]
                    while rows := cur.fetchmany(FETCH_ROWS):
                        for row in rows:
                            yield {n: jsonable(v) for n, v in zip(names, row, strict=True)}
        except psycopg.errors.LockNotAvailable:
            raise pgstore.PgStoreUnavailable(
                f"{self.model.path}: a lock on the store was held past lock_timeout_seconds "
                "(a schema change?); exit 75: try again later"
            ) from None
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelError(f"{self.model.path}: the query failed: {first}") from None
        finally:
            con.close()

    def _query(self, sql: str, placeholder: str, context: dict | None) -> tuple[str, list[t.Any]]:
        """The model's SELECT with its backfill window and bookmark, in a fixed order."""
        where, params = self._window(placeholder)
        base = f"SELECT * FROM ({sql}\n) AS model"
        change = self.model.change_column
        keys = ", ".join(_quote(k) for k in self.model.key)
        if not change:
            return f"{base}{_where(where)} ORDER BY {keys}", params
        col = _quote(change)
        start = self._bookmark(context)
        if start is not None:
            kind = "TIMESTAMPTZ" if self.schema["properties"][change].get("format") else None
            value = f"CAST({placeholder} AS {kind})" if kind else placeholder
            # A row without a change value cannot be placed after the bookmark, so it is read
            # on every run (a push target's ledger skips it while its content stays the same).
            where.append(f"({col} >= {value} OR {col} IS NULL)")
            params.append(start)
        # Ties on the change column in key order: the same sequence on every run and store.
        return f"{base}{_where(where)} ORDER BY {col} NULLS FIRST, {keys}", params

    def _window(self, placeholder: str) -> tuple[list[str], list[t.Any]]:
        """The backfill window ``[start_date, end_date)`` on the model's window column."""
        column = self.model.window_column
        where: list[str] = []
        params: list[t.Any] = []
        for setting, op in (("start_date", ">="), ("end_date", "<")):
            if column and self.config.get(setting):
                where.append(f"{_quote(column)} {op} CAST({placeholder} AS TIMESTAMPTZ)")
                params.append(self.config[setting])
        return where, params

    def _bookmark(self, context: dict | None) -> t.Any:
        """The change column's bookmark from the state; singer-sdk would start at start_date
        without one, which here bounds the window column instead."""
        state = self.get_context_state(context)
        if state.get("replication_key") != self.replication_key:
            return None
        return state.get("replication_key_value") or None


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _die(exc: InputError) -> t.NoReturn:
    """One line on stderr; a store held by a load past the timeout exits 75 (try later)."""
    sys.stdout.flush()
    click.echo(f"tap-loyalty-store: error: {exc}", err=True)
    sys.exit(getattr(exc, "exit_code", 1))


class TapLoyaltyStore(Tap):
    """Streams are the models in ``models_dir``; schemas come from DuckDB's column types."""

    name = "tap-loyalty-store"
    package_name = "loyalty-pipelines"
    message_writer_class = FastWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "database",
            th.StringType,
            required=True,
            description="The loyalty store: a DuckDB file's path, or a PostgreSQL URL "
            "(postgresql://user:password@host/db)",
        ),
        th.Property(
            "models_dir",
            th.StringType,
            default="transforms/models",
            description="Folder of <stream>.sql model files (relative to the working folder)",
        ),
        LOCK_TIMEOUT,
        th.Property(
            "start_date",
            th.DateTimeType,
            description="A backfill window's start: rows with the model's window_column at or "
            "after it (models without one are read whole)",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="A backfill window's end: rows with the model's window_column before it",
        ),
    ).to_dict()

    @property
    def on_postgres(self) -> bool:
        return pgstore.is_postgres_url(self.config["database"])

    def open_postgres(self) -> psycopg.Connection:
        """The PostgreSQL store; waits for a lock at most lock_timeout_seconds (0: not at all,
        as on DuckDB; PostgreSQL's own 0 would wait forever) rather than queueing behind a
        schema change without end."""
        con = pgstore.connect(self.config["database"], application_name=self.name, autocommit=True)
        timeout_ms = max(1, int(float(self.config.get("lock_timeout_seconds", 60)) * 1000))
        con.execute(f"SET lock_timeout = {timeout_ms}")
        return con

    def open_store(self) -> duckdb.DuckDBPyConnection:
        """The store, read-only, waited for while a load holds it (bounded)."""
        database = self.config["database"]
        if not Path(database).is_file():
            raise DuckFileError(f"no loyalty store at {database}: run a load first")
        con = connect_waiting(
            database,
            float(self.config.get("lock_timeout_seconds", 60)),
            read_only=True,
            label="loyalty store",
            logger=self.logger,
        )
        con.execute("SET TimeZone = 'UTC'")
        return con

    @cached_property
    def models(self) -> list[Model]:
        return load_models(Path(self.config.get("models_dir") or "transforms/models"))

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the tap; a bad model or an unreadable store is one line (a held store: exit 75)."""
        try:
            super().invoke(*args, **kwargs)
        except InputError as exc:
            _die(exc)
        except ConfigValidationError as exc:
            detail = "; ".join(exc.errors) or str(exc)
            click.echo(f"tap-loyalty-store: config error: {detail}", err=True)
            sys.exit(1)

    def run_discovery(self) -> str:
        """``--discover`` (run by singer-sdk outside ``invoke``): the same one-line errors."""
        try:
            return super().run_discovery()
        except InputError as exc:
            _die(exc)

    def discover_streams(self) -> list[Stream]:
        """One stream per model; a brief read-only look at the store types their columns."""
        streams: list[Stream] = []
        con: t.Any = self.open_postgres() if self.on_postgres else self.open_store()
        typed = describe_postgres if self.on_postgres else describe
        try:
            for model in self.models:
                try:
                    schema = typed(con, model)
                except ModelError:
                    if self._needed(model.name):
                        raise
                    # A model over tables this store does not have yet (another source's
                    # pipeline not run, or not merged) must not stop the selected ones.
                    self.logger.warning("model %s skipped: not selected, cannot run", model.name)
                    continue
                streams.append(ModelStream(self, model, schema))
        finally:
            con.close()
        return streams

    def _needed(self, stream: str) -> bool:
        """Whether a broken model must fail the run: always in --discover, else if selected."""
        catalog = self.input_catalog
        if catalog is None:
            return True
        entry = catalog.get(stream)
        return entry is not None and entry.metadata.root.selected is not False


__all__ = ["ModelStream", "TapLoyaltyStore"]


if __name__ == "__main__":
    TapLoyaltyStore.cli()
