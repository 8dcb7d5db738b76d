"""Helpers for the store's tests: build Singer input, run the real executable, read the store.

A ``Store`` is a DuckDB file or a PostgreSQL database (``url``); its ``query`` answers the
same way on both (``?`` parameters, JSON columns as text, UTC), so one test runs on both.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing as t
from pathlib import Path

import duckdb
import orjson
import psycopg
from psycopg.types.string import TextLoader

TARGET = str(Path(sys.executable).with_name("target-loyalty-store"))

CONTACT_SCHEMA = {
    "type": "object",
    "properties": {
        "source": {"type": "string"},
        "source_id": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "mobile": {"type": ["string", "null"]},
        "first_name": {"type": ["string", "null"]},
        "last_name": {"type": ["string", "null"]},
        "birthday": {"type": ["string", "null"], "format": "date"},
        "city": {"type": ["string", "null"]},
        "newsletter": {"type": ["boolean", "null"]},
        "is_club_member": {"type": ["boolean", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
LINE_SCHEMA = {
    "type": "object",
    "properties": {
        "line_id": {"type": "string"},
        "order_id": {"type": "string"},
        "source": {"type": "string"},
        "source_customer_id": {"type": ["string", "null"]},
        "line_type": {"type": "string"},
        "product_name": {"type": ["string", "null"]},
        "quantity": {"type": "number"},
        "amount": {"type": "number"},
        "currency": {"type": "string"},
        "channel": {"type": ["string", "null"]},
        "occurred_at": {"type": "string", "format": "date-time"},
        "event_name": {"type": ["string", "null"]},
        "zone": {"type": ["string", "null"]},
        "row": {"type": ["string", "null"]},
        "seat": {"type": ["string", "null"]},
        "cancelled_at": {"type": ["string", "null"], "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}


def schema(stream: str, props: dict, keys: list[str]) -> dict:
    """A SCHEMA message."""
    return {"type": "SCHEMA", "stream": stream, "schema": props, "key_properties": keys}


def record(stream: str, rec: dict) -> dict:
    """A RECORD message (compact, as singer-sdk writers emit it)."""
    return {"type": "RECORD", "stream": stream, "record": rec}


def state(value: dict) -> dict:
    """A STATE message."""
    return {"type": "STATE", "value": value}


def singer_bytes(messages: list[dict]) -> bytes:
    """Encode messages as Singer lines."""
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


@dataclasses.dataclass
class Run:
    """One finished target process."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[dict]:
        """STATE values the target emitted, in order."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


class Store:
    """A store (a file under ``path``, or the PostgreSQL database ``new_database()`` makes)
    and a way to run the target into it."""

    def __init__(self, path: Path, new_database: t.Callable[[], str] | None = None) -> None:
        self.path = path
        self.db = path / "loyalty.duckdb"
        self._new_database = new_database
        self.url = new_database() if new_database else None

    @property
    def backend(self) -> str:
        """'duckdb' or 'postgres'."""
        return "postgres" if self.url else "duckdb"

    @property
    def database(self) -> str:
        """The target's `database` setting for this store."""
        return self.url or str(self.db)

    def another(self, name: str) -> Store:
        """A second, empty store on the same backend (its files in a subfolder)."""
        path = self.path / name
        path.mkdir()
        return Store(path, self._new_database)

    def config(self, **extra: object) -> Path:
        """Write a config file; returns its path."""
        cfg = {"database": self.database, "staging_dir": str(self.path / "staging"), **extra}
        cfg_path = self.path / f"config-{len(list(self.path.glob('config-*.json')))}.json"
        cfg_path.write_text(json.dumps(cfg))
        return cfg_path

    def run(self, messages: list[dict] | bytes, **config: object) -> Run:
        """Run the real executable with the messages on stdin."""
        data = messages if isinstance(messages, bytes) else singer_bytes(messages)
        proc = subprocess.run(
            [TARGET, "--config", str(self.config(**config))],
            input=data,
            capture_output=True,
            timeout=120,
            check=False,
        )
        return Run(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    def load(self, messages: list[dict] | bytes, **config: object) -> Run:
        """Run and insist on success."""
        result = self.run(messages, **config)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Rows of a query against the real store (a DuckDB file is opened read-only)."""
        if self.url:
            return pg_query(self.url, sql, params)
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            con.execute("SET TimeZone = 'UTC'")
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def scalar(self, sql: str, params: list | None = None) -> object:
        """First column of the first row."""
        return self.query(sql, params)[0][0]

    def rows_as_text(self, table: str) -> list[str]:
        """Every row of a table as text, sorted: for comparing a table before and after."""
        if self.url:
            return sorted(r[0] for r in self.query(f'SELECT CAST(t AS text) FROM "{table}" AS t'))
        return sorted(map(repr, self.query(f'SELECT CAST(COLUMNS(*) AS VARCHAR) FROM "{table}"')))


def pg_query(url: str, sql: str, params: list | None = None) -> list[tuple]:
    """A query on PostgreSQL answered as DuckDB answers it: `?` parameters, JSON as text."""
    with psycopg.connect(url) as con:  # the URL's options (a store's schema) kept
        con.execute("SET TimeZone = 'UTC'")
        for json_type in ("json", "jsonb"):
            con.adapters.register_loader(json_type, TextLoader)
        if params is None:
            return con.execute(sql).fetchall()
        return con.execute(sql.replace("?", "%s"), params).fetchall()
