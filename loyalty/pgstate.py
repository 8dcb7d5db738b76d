"""State, run records, finished backfill windows and the run lock in a PostgreSQL database.

Several machines (cron boxes, CI runners, Airflow workers) run the same pipelines against one
PostgreSQL store; a bookmark in one machine's `.loyalty/` would be invisible to the others, and
a file lock would not stop two of them running one pipeline at once. So when a pipeline's
state database is PostgreSQL (``Project.state_database``) the same `StateStore` interface keeps:

- the bookmark in ``_loyalty_state`` under ``<env>/<pipeline>`` (the kit's ``load_state`` /
  ``save_state``, the table target-loyalty-store writes in its data transaction);
- run records in ``_loyalty_runs`` and finished backfill windows in ``_loyalty_backfill_windows``;
- the run lock as a session advisory lock (``pg_try_advisory_lock``) held on a connection of
  its own for the run's life: the server drops it when that connection goes, so a killed
  runner (or a lost machine, once its TCP connection times out) never leaves it behind.

Run logs and a run's private temporary files stay in the local state directory: they are
only needed while the run lasts (a CI runner's disk may vanish afterwards).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import typing as t

from loyalty.state import LockedError, StateBackendError, StateStore, checked_state
from singer_kit.pgstore import (
    STATE_TABLE_DDL,
    PgStoreError,
    connect,
    load_state,
    safe_url,
    save_state,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import psycopg

RUNS_DDL = (
    "CREATE TABLE IF NOT EXISTS _loyalty_runs (run_id text PRIMARY KEY, env text NOT NULL, "
    "pipeline text NOT NULL, outcome text NOT NULL, record json NOT NULL, "
    "updated_at timestamptz NOT NULL DEFAULT now())"
)
WINDOWS_DDL = (
    "CREATE TABLE IF NOT EXISTS _loyalty_backfill_windows (state_key text NOT NULL, "
    "window_key text NOT NULL, finished_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (state_key, window_key))"
)
# Two processes creating the same table at once can fail on the catalog's unique index: the
# tables are created under one transaction-level advisory lock (an arbitrary constant key).
_DDL_LOCK = 0x6C6F79616C7479  # "loyalty"
_HOLDER = (
    "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a "
    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database())"
)


def state_key(env: str, pipeline: str) -> str:
    """The key of one environment's pipeline, for its bookmark and its finished windows."""
    return f"{env}/{pipeline}"


def lock_key(schema: str, env: str, pipeline: str) -> int:
    """The advisory lock's 64-bit key: stable across machines and versions of Python.

    Advisory locks are per database; the schema is part of the key, so stores of several
    brands in schemas of one database (search_path in the URL) never block each other."""
    name = f"loyalty run lock {schema}/{state_key(env, pipeline)}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _lock_ids(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint advisory key: (classid, objid), the high and low halves."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class PgStateStore(StateStore):
    """`StateStore` with state, records, windows and the lock in the database at ``url``."""

    def __init__(self, root: Path, url: str) -> None:
        super().__init__(root)
        self.url = url
        self._con: psycopg.Connection | None = None
        self._con_lock = threading.Lock()  # the runner saves state from a reader thread

    def describe(self) -> str:
        """The database, password masked."""
        return f"the state database {safe_url(self.url)}"

    def state_where(self, env: str, pipeline: str) -> str:
        """The table row of the bookmark."""
        return f"{safe_url(self.url)} _loyalty_state {state_key(env, pipeline)!r}"

    def run_where(self, run_id: str) -> str:
        """The table row of a run record."""
        return f"{safe_url(self.url)} _loyalty_runs {run_id!r}"

    def target_state_key(self, env: str, pipeline: str, database: t.Any) -> str | None:
        """A target writing this very database saves the bookmark in its data transaction."""
        return state_key(env, pipeline) if database == self.url else None

    def close(self) -> None:
        """Close the connection for state and records (the lock has its own)."""
        with self._con_lock:
            if self._con is not None:
                with contextlib.suppress(Exception):
                    self._con.close()
                self._con = None

    # -- connections -------------------------------------------------------------------------

    def _open(self, application_name: str) -> psycopg.Connection:
        try:
            con = connect(self.url, application_name=application_name[:63], autocommit=True)
        except PgStoreError as exc:
            raise StateBackendError(f"state database: {exc}", exc.exit_code) from None
        try:
            with self._failures(), con.transaction():
                con.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                for ddl in (STATE_TABLE_DDL, RUNS_DDL, WINDOWS_DDL):
                    con.execute(ddl)
        except BaseException:
            con.close()
            raise
        return con

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """psycopg errors as StateBackendError: a lost server is temporary (75), the rest 1."""
        import psycopg

        try:
            yield
        except psycopg.OperationalError as exc:
            self._drop()
            raise StateBackendError(self._line(exc), 75) from None
        except psycopg.Error as exc:
            raise StateBackendError(self._line(exc)) from None

    def _line(self, exc: BaseException) -> str:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"{self.describe()}: {safe_url(first)}"

    def _drop(self) -> None:
        """Forget a broken connection: the next call opens a new one."""
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
            self._con = None

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection]:
        """The shared connection, one caller at a time, errors as StateBackendError."""
        with self._con_lock:
            if self._con is None or self._con.closed:
                self._con = self._open(f"loyalty state {socket.gethostname()} pid {os.getpid()}")
            with self._failures():
                yield self._con

    # -- bookmark ----------------------------------------------------------------------------

    def read_state(self, env: str, pipeline: str) -> dict[str, t.Any] | None:
        """The saved Singer state value, or None before the first committed run."""
        with self._session() as con:
            raw = load_state(con, state_key(env, pipeline))
        if raw is None:
            return None
        return checked_state(json.loads(raw), self.state_where(env, pipeline))

    def may_have_state(self, env: str, pipeline: str) -> bool:
        """A dry run connects to nothing: the run looks the bookmark up when it starts."""
        return True

    def write_state(self, env: str, pipeline: str, value: dict[str, t.Any]) -> None:
        """Replace the bookmark (one statement: atomic)."""
        with self._session() as con:
            save_state(con, state_key(env, pipeline), json.dumps(value), None)

    def clear_state(self, env: str, pipeline: str) -> bool:
        """Forget the bookmark (the next run starts from the tap's start_date)."""
        with self._session() as con:
            cur = con.execute(
                "DELETE FROM _loyalty_state WHERE state_key = %s", (state_key(env, pipeline),)
            )
            return cur.rowcount > 0

    # -- lock --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, env: str, pipeline: str) -> Iterator[None]:
        """Hold the pipeline's advisory lock on a connection of its own, or raise LockedError
        naming the holder (its host and pid, from its connection's application_name)."""
        host = socket.gethostname()
        con = self._open(f"loyalty {state_key(env, pipeline)} on {host} pid {os.getpid()}")
        try:
            with self._failures():
                key = self._lock_key(con, env, pipeline)
                got = con.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                holder = None if got and got[0] else con.execute(_HOLDER, _lock_ids(key)).fetchone()
            if not (got and got[0]):
                detail = (
                    f" ({holder[0]}, since {holder[1]:%Y-%m-%dT%H:%M:%SZ})"
                    if holder and holder[0]
                    else ""
                )
                raise LockedError(
                    f"pipeline {pipeline!r} (env {env}) is already running elsewhere{detail}, "
                    f"locked in {safe_url(self.url)}; not starting a second run"
                )
            yield
        finally:
            with contextlib.suppress(Exception):
                con.close()  # the server drops the session's advisory lock with it

    def is_locked(self, env: str, pipeline: str) -> bool:
        """Whether any session holds the pipeline's lock (looked up, never taken)."""
        with self._session() as con:
            key = self._lock_key(con, env, pipeline)
            return con.execute(_HOLDER, _lock_ids(key)).fetchone() is not None

    @staticmethod
    def _lock_key(con: psycopg.Connection, env: str, pipeline: str) -> int:
        row = con.execute("SELECT current_schema()").fetchone()
        return lock_key(str(row[0] if row else ""), env, pipeline)

    # -- finished backfill windows -----------------------------------------------------------

    def backfill_done(self, env: str, pipeline: str) -> set[str]:
        """Windows backfills finished (on any machine)."""
        with self._session() as con:
            rows = con.execute(
                "SELECT window_key FROM _loyalty_backfill_windows WHERE state_key = %s",
                (state_key(env, pipeline),),
            ).fetchall()
        return {str(r[0]) for r in rows}

    def add_backfill_done(self, env: str, pipeline: str, window: str) -> None:
        """Record one more finished window."""
        with self._session() as con:
            con.execute(
                "INSERT INTO _loyalty_backfill_windows (state_key, window_key) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                (state_key(env, pipeline), window),
            )

    # -- run records -------------------------------------------------------------------------

    def write_run(self, record: dict[str, t.Any]) -> Path:
        """Save (or update) one run's record; returns where its log is."""
        with self._session() as con:
            con.execute(
                "INSERT INTO _loyalty_runs (run_id, env, pipeline, outcome, record, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (run_id) DO UPDATE SET "
                "outcome = EXCLUDED.outcome, record = EXCLUDED.record, "
                "updated_at = EXCLUDED.updated_at",
                (
                    record["run_id"],
                    record["env"],
                    record["pipeline"],
                    record["outcome"],
                    json.dumps(record),
                ),
            )
        return self.runs_dir / f"{record['run_id']}.log"

    def runs(self, limit: int | None = None) -> list[dict[str, t.Any]]:
        """Run records of every machine, newest first; 'running' without a lock holder is
        'interrupted' (its runner died)."""
        with self._session() as con:
            rows = con.execute(
                "SELECT record::text FROM _loyalty_runs ORDER BY run_id DESC LIMIT %s", (limit,)
            ).fetchall()
        records = [json.loads(r[0]) for r in rows]
        for rec in records:
            if rec.get("outcome") == "running" and not self.is_locked(rec["env"], rec["pipeline"]):
                rec["outcome"] = "interrupted"
        return records
