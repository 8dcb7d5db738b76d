"""Helpers for the store's tests: build Singer input, run the real executable, read the file."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson

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
    """A store file under tmp_path and a way to run the target into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = path / "loyalty.duckdb"

    def config(self, **extra: object) -> Path:
        """Write a config file; returns its path."""
        cfg = {"database": str(self.db), "staging_dir": str(self.path / "staging"), **extra}
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
        """Rows of a query against the real file (read-only, so it never changes it)."""
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            con.execute("SET TimeZone = 'UTC'")
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def scalar(self, sql: str, params: list | None = None) -> object:
        """First column of the first row."""
        return self.query(sql, params)[0][0]
