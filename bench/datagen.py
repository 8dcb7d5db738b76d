"""Reproducible bench input: the `journal_lines` stream of peer-baseline.md, at any size.

Two files from one pass, so every tool reads byte-identical records:
- ``stream.jsonl``: SCHEMA + RECORD lines (with ``time_extracted``) + a STATE every 10k;
- ``records.jsonl``: the same records as bare NDJSON (what DuckDB's ``read_json`` reads).

Values come from a seeded ``random.Random``, so a size and seed always give the same bytes;
files are cached under ``bench/.data/`` and reused.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

DATA_DIR = Path(__file__).resolve().parent / ".data"
FORMAT_VERSION = 2
STREAM = "journal_lines"
STATE_EVERY = 10_000
TIME_EXTRACTED = "2026-11-22T12:00:00+00:00"

SCHEMA: dict = {
    "type": "SCHEMA",
    "stream": STREAM,
    "key_properties": ["line_id"],
    "bookmark_properties": ["updated_at"],
    "schema": {
        "type": "object",
        "properties": {
            "line_id": {"type": "integer"},
            "journal_id": {"type": "integer"},
            "line_number": {"type": "integer"},
            "company_code": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "quantity": {"type": "number"},
            "unit_price": {"type": "number"},
            "amount": {"type": "number"},
            "currency": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "reference": {"type": ["string", "null"]},
            "is_reconciled": {"type": "boolean"},
            "is_return": {"type": "boolean"},
            "cards": {
                "type": ["object", "null"],
                "properties": {
                    "Cardnumber": {"type": "integer"},
                    "Cardname": {"type": "string"},
                },
            },
        },
    },
}

_COMPANIES = ("AMR01", "AMR02", "FLX10", "FLX11", "ZOO07", "TIV03")
_CURRENCIES = ("DKK", "DKK", "DKK", "SEK", "NOK", "EUR")
_PRODUCTS = (
    "Annual pass adult, valid in all parks and on all rides",
    "Ride ticket bundle of ten, valid for twelve months from purchase",
    "Soft drink 0.5 l, refillable cup with loyalty stamp",
    "Family day ticket, two adults and up to three children",
    "Parking, one day, main entrance car park, electric charging included",
    "Season card upgrade, gold tier, priority entry and fast lane access",
)
_CARDNAMES = ("Gold member", "Silver member", "Family club", "Staff card", "Student")
_EPOCH = datetime(2025, 11, 22, tzinfo=UTC)
_TZ_SUFFIX = ("+01:00", "+02:00")
_UNIX_DAY_ONE = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class DataSet:
    """Paths and size of one generated data set."""

    size: int
    stream: Path
    records: Path

    @property
    def stream_bytes(self) -> int:
        """Size of the Singer file."""
        return self.stream.stat().st_size


_DAY_CACHE: dict[int, str] = {}
_EPOCH_SECONDS = int(_EPOCH.timestamp())


def iso(instant: int, offset: str) -> str:
    """ISO date-time of an instant (epoch seconds, shown as UTC) followed by ``offset``.

    strftime per record was the generators' bottleneck: the date part is cached per day.
    """
    day, rest = divmod(instant, 86_400)
    prefix = _DAY_CACHE.get(day)
    if prefix is None:
        prefix = _DAY_CACHE[day] = f"{date.fromordinal(_UNIX_DAY_ONE + day).isoformat()}T"
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{secs:02d}{offset}"


def iter_records(size: int, seed: int = 42):
    """Yield ``size`` records; deterministic for (size, seed)."""
    rand = random.Random(seed).random

    def randrange(k: int) -> int:
        # random.randrange costs ~5x this and was 40 % of generation time.
        return int(rand() * k)

    journal_id = 100_000
    line_number = 0
    for i in range(1, size + 1):
        if line_number == 0 or rand() < 0.3:
            journal_id += 1
            line_number = 0
        line_number += 1
        created = i * 30 + randrange(30)
        updated = created + randrange(86_400)
        quantity = float(1 + randrange(5))
        unit_price = round(rand() * 900 + 10, 2)
        is_return = rand() < 0.05
        if is_return:
            quantity = -quantity
        has_card = rand() < 0.8
        yield {
            "line_id": i,
            "journal_id": journal_id,
            "line_number": line_number,
            "company_code": _COMPANIES[i % len(_COMPANIES)],
            "created_at": iso(_EPOCH_SECONDS + created, _TZ_SUFFIX[i & 1]),
            "updated_at": iso(_EPOCH_SECONDS + updated, _TZ_SUFFIX[i & 1]),
            "quantity": quantity,
            "unit_price": unit_price,
            "amount": round(quantity * unit_price, 2),
            "currency": _CURRENCIES[randrange(len(_CURRENCIES))],
            "description": _PRODUCTS[randrange(len(_PRODUCTS))],
            "reference": f"POS-{journal_id:09d}-{line_number:03d}-{randrange(1 << 30):08x}",
            "is_reconciled": rand() < 0.5,
            "is_return": is_return,
            "cards": (
                {"Cardnumber": 4_000_000_000 + randrange(10_000_000), "Cardname": _CARDNAMES[i % 5]}
                if has_card
                else None
            ),
        }


def generate(size: int, seed: int = 42, data_dir: Path = DATA_DIR) -> DataSet:
    """Write (or reuse) the two files for ``size`` records and return their paths."""
    folder = data_dir / f"journal_lines-{size}-s{seed}-v{FORMAT_VERSION}"
    stream, records, done = (
        folder / "stream.jsonl",
        folder / "records.jsonl",
        folder / ".complete",
    )
    if done.exists() and stream.exists() and records.exists():
        return DataSet(size, stream, records)
    folder.mkdir(parents=True, exist_ok=True)
    head = b'{"type":"RECORD","stream":"' + STREAM.encode() + b'","record":'
    tail = b',"time_extracted":"' + TIME_EXTRACTED.encode() + b'"}\n'
    dumps = orjson.dumps
    with stream.open("wb", buffering=1 << 20) as s_out, records.open("wb", 1 << 20) as r_out:
        s_out.write(dumps(SCHEMA) + b"\n")
        last_updated = ""
        for n, record in enumerate(iter_records(size, seed), start=1):
            body = dumps(record)
            r_out.write(body + b"\n")
            s_out.write(head + body + tail)
            last_updated = max(last_updated, record["updated_at"])
            if n % STATE_EVERY == 0 or n == size:
                state = {"bookmarks": {STREAM: {"replication_key_value": last_updated}}}
                s_out.write(dumps({"type": "STATE", "value": state}) + b"\n")
    done.write_text(f"{size}\n")
    return DataSet(size, stream, records)
