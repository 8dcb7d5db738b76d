"""Singer BATCH messages: the store loads JSONL batch files in place, with RECORD semantics."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from store_helpers import CONTACT_SCHEMA, LINE_SCHEMA, record, schema, state


def _lines(n: int, start: int = 0, amount: float = 10.0) -> list[dict]:
    return [
        {
            "line_id": f"pos:{i}",
            "order_id": f"o{i // 3}",
            "source": "flexpos",
            "source_customer_id": f"c{i % 7}",
            "line_type": "purchase",
            "product_name": f"product {i}",
            "quantity": 1 + i % 4,
            "amount": amount + i,
            "currency": "DKK",
            "channel": "pos",
            "occurred_at": f"2026-01-{1 + i % 28:02d}T10:00:00+00:00",
            "updated_at": "2026-02-01T00:00:00+00:00",
        }
        for i in range(start, start + n)
    ]


def _write(path: Path, records: list[dict], *, gz: bool) -> Path:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _batch(stream: str, files: list[Path], compression: str = "gzip") -> dict:
    return {
        "type": "BATCH",
        "stream": stream,
        "encoding": {"format": "jsonl", "compression": compression},
        "manifest": [f.as_uri() for f in files],
    }


_ROWS = (
    "SELECT line_id, order_id, quantity, amount, occurred_at::VARCHAR FROM order_lines "
    "ORDER BY line_id"
)


def test_batch_files_load_exactly_what_the_same_records_load(store, tmp_path):
    records = _lines(2500)
    gz = _write(tmp_path / "a.jsonl.gz", records[:1500], gz=True)
    plain = _write(tmp_path / "b.jsonl", records[1500:], gz=False)
    result = store.load(
        [
            schema("order_lines", LINE_SCHEMA, ["line_id"]),
            _batch("order_lines", [gz]),
            state({"bookmark": 1}),
            _batch("order_lines", [plain], compression="none"),
            state({"bookmark": 2}),
        ]
    )
    assert result.states == [{"bookmark": 1}, {"bookmark": 2}]
    via_batch = store.query(_ROWS)

    other = type(store)(tmp_path / "records")
    other.path.mkdir()
    other.load(
        [schema("order_lines", LINE_SCHEMA, ["line_id"])]
        + [record("order_lines", r) for r in records]
    )
    assert len(via_batch) == 2500
    assert via_batch == other.query(_ROWS)
    assert gz.exists() and plain.exists(), "the target never deletes files it does not own"


def test_records_before_a_batch_commit_first_and_the_batch_upserts_on_keys(store, tmp_path):
    first = _lines(10)
    changed = _lines(10, amount=500.0)  # the same keys, new amounts
    store.load(
        [
            schema("order_lines", LINE_SCHEMA, ["line_id"]),
            *[record("order_lines", r) for r in first],
            _batch("order_lines", [_write(tmp_path / "c.jsonl.gz", changed, gz=True)]),
        ]
    )
    assert store.scalar("SELECT count(*) FROM order_lines") == 10
    assert store.scalar("SELECT min(amount) FROM order_lines") == 500.0
    # A re-run of the same BATCH leaves the same rows.
    store.load(
        [
            schema("order_lines", LINE_SCHEMA, ["line_id"]),
            _batch("order_lines", [tmp_path / "c.jsonl.gz"]),
        ]
    )
    assert store.scalar("SELECT count(*) FROM order_lines") == 10


def test_bad_rows_in_a_batch_go_to_rejects_and_contacts_merge(store, tmp_path):
    contacts = [
        {
            "source": "flexpos",
            "source_id": str(i),
            "email": f"  Person{i % 3}@Example.com ",
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": f"2026-01-0{1 + i}T00:00:00+00:00",
        }
        for i in range(6)
    ] + [
        {
            "source": "flexpos",
            "source_id": "x",
            "email": None,
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00",
        }
    ]
    store.load(
        [
            schema("contacts", CONTACT_SCHEMA, ["source", "source_id"]),
            _batch("contacts", [_write(tmp_path / "c.jsonl", contacts, gz=False)], "none"),
        ]
    )
    assert store.scalar("SELECT count(*) FROM contacts") == 3
    assert store.scalar("SELECT count(*) FROM contact_ids") == 6
    assert store.query("SELECT stream, reason FROM _rejects") == [("contacts", "no email")]


def test_batch_errors_name_the_file_and_write_nothing(store, tmp_path):
    head = [schema("order_lines", LINE_SCHEMA, ["line_id"])]
    missing = tmp_path / "nope.jsonl.gz"
    result = store.run([*head, _batch("order_lines", [missing])])
    assert result.returncode == 2
    assert f"BATCH for stream 'order_lines': no such file {missing}" in result.stderr

    result = store.run(
        [*head, {**_batch("order_lines", []), "manifest": ["s3://bucket/a.jsonl.gz"]}]
    )
    assert result.returncode == 2
    assert "only local file:// URLs are supported" in result.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(orjson.dumps(_lines(1)[0]) + b"\n{not json\n")
    result = store.run([*head, _batch("order_lines", [bad], "none"), state({"b": 1})])
    assert result.returncode == 2
    assert "BATCH files is not a valid JSON record" in result.stderr
    assert "bad.jsonl" in result.stderr
    assert result.states == []
    assert store.scalar("SELECT count(*) FROM order_lines") == 0

    result = store.run([_batch("order_lines", [bad], "none")])
    assert result.returncode == 2
    assert "BATCH for stream 'order_lines' arrived before its SCHEMA" in result.stderr

    result = store.run([*head, {**_batch("order_lines", [bad]), "encoding": {"format": "parquet"}}])
    assert result.returncode == 2
    assert "only encoding format 'jsonl' is supported, got {'format': 'parquet'}" in result.stderr
