"""Poison pills in valid JSON (a lone surrogate, nesting too deep for any decoder) are one
reject each, through the real `mapper-loyalty`, on the RECORD and the BATCH path, and on
into the store; the rest of the input flows on."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import duckdb
from mapper_helpers import write_mapping

BIN = Path(sys.executable).parent
MAPPING = """
streams:
  customers:
    to: people
    key: [id]
    fields:
      id: Uid
      name: Name
"""
SCHEMA = (
    b'{"type":"SCHEMA","stream":"customers","schema":{"properties":{"Uid":{"type":"string"},'
    b'"Name":{"type":["string","null"]}}},"key_properties":["Uid"]}\n'
)
POISON = [
    b'{"type":"RECORD","stream":"customers","record":{"Uid":"u1","Name":"a\\ud800b"}}',
    b'{"type":"RECORD","stream":"customers","record":{"Uid":"u2","Name":"x","deep":'
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}}",
]
GOOD = b'{"type":"RECORD","stream":"customers","record":{"Uid":"u3","Name":"ok"}}\n'
STATE = b'{"type":"STATE","value":{"bookmarks":{"customers":"x"}}}\n'


def _mapper(tmp_path: Path, data: bytes, **config: object) -> subprocess.CompletedProcess:
    cfg = tmp_path / "mapper.json"
    cfg.write_text(json.dumps({"mapping_file": str(write_mapping(tmp_path, MAPPING)), **config}))
    return subprocess.run(
        [BIN / "mapper-loyalty", "--config", str(cfg)],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )


def _messages(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_poison_records_are_rejects_and_the_run_goes_on(tmp_path):
    proc = _mapper(tmp_path, SCHEMA + b"\n".join(POISON) + b"\n" + GOOD + STATE)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    out = _messages(proc)
    assert [m["record"] for m in out if m.get("stream") == "people" and "record" in m] == [
        {"id": "u3", "name": "ok"}
    ]
    rejects = [m["record"] for m in out if m["type"] == "RECORD" and m["stream"] == "_rejects"]
    assert [r["record"].encode() for r in rejects] == POISON  # the line, as written
    assert [(r["stream"], r["rule"]) for r in rejects] == [("customers", "input")] * 2
    assert rejects[0]["reason"] == (
        "input line 2: record cannot be decoded (no low surrogate in string)"
    )
    assert rejects[1]["reason"] == "input line 3: record cannot be decoded (depth limit exceeded)"
    assert out[-1] == {"type": "STATE", "value": {"bookmarks": {"customers": "x"}}}
    assert b"3 records in, 1 out, 0 filtered, 0 empty, 2 rejected" in proc.stderr
    # A line that is not JSON at all is still a protocol error that stops the run.
    proc = _mapper(tmp_path, SCHEMA + b'{"type":"RECORD","stream":"customers","record":{\n')
    assert proc.returncode == 1
    assert (
        proc.stderr.decode()
        .splitlines()[-1]
        .startswith("mapper-loyalty: error: input line 2: invalid JSON:")
    )


def test_batch_files_with_poison_lines_reject_them_the_same_way(tmp_path):
    lines = [
        b'{"Uid":"u1","Name":"\\udc00"}',
        b'{"Uid":"u2","deep":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"Uid":"u3","Name":"ok"}',
    ]
    source = tmp_path / "customers-1.jsonl.gz"
    source.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    batch = {
        "type": "BATCH",
        "stream": "customers",
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "manifest": [source.as_uri()],
    }
    data = SCHEMA + json.dumps(batch).encode() + b"\n"
    proc = _mapper(tmp_path, data, batch_dir=str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    out = _messages(proc)
    rejects = [m["record"] for m in out if m["type"] == "RECORD" and m["stream"] == "_rejects"]
    assert [r["record"].encode() for r in rejects] == lines[:2]
    assert rejects[0]["reason"] == (
        f"batch file {source}, line 1: record cannot be decoded (invalid high surrogate in string)"
    )
    (batch_out,) = [m for m in out if m["type"] == "BATCH"]
    with gzip.open(Path(batch_out["manifest"][0].removeprefix("file://")), "rb") as f:
        assert [json.loads(line) for line in f] == [{"id": "u3", "name": "ok"}]


def test_poison_rejects_land_in_the_store_and_the_rest_loads(tmp_path):
    mapped = _mapper(tmp_path, SCHEMA + b"\n".join(POISON) + b"\n" + GOOD + STATE)
    db = tmp_path / "store.duckdb"
    cfg = tmp_path / "target.json"
    cfg.write_text(json.dumps({"database": str(db)}))
    target = subprocess.run(
        [BIN / "target-loyalty-store", "--config", str(cfg)],
        input=mapped.stdout,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert target.returncode == 0, target.stderr.decode()[-2000:]
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT id, name FROM people").fetchall() == [("u3", "ok")]
        stored = con.execute("SELECT stream, rule, record FROM _rejects ORDER BY reason").fetchall()
    finally:
        con.close()
    assert [(s, r, json.loads(rec).encode()) for s, r, rec in stored] == [
        ("customers", "input", POISON[0]),
        ("customers", "input", POISON[1]),
    ]
