"""BATCH messages through mapper-loyalty: files of bare records in, mapped gzip JSONL files out."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import typing as t
from pathlib import Path

import msgspec
import pytest
from mapper_helpers import FLEXPOS_MAPPING, compile_text, rec, records, run_messages

from mapper_loyalty import CompiledMapping, compile_mapping
from mapper_loyalty.runner import RunError, Runner

MAPPER = str(Path(sys.executable).parent / "mapper-loyalty")

CONTACTS = """
{top}
streams:
  customers:
    to: contacts
    key: [id]
    filter: {{path: Deleted, ne: true}}
    fields:
      id: Uid
      born: {{path: Birthday, type: date, format: DD-MM-YYYY}}
"""


def contacts(tmp_path: Path, top: str = "") -> CompiledMapping:
    return compile_text(tmp_path, CONTACTS.format(top=top))


def journal(uid: str, lines: int, **extra: t.Any) -> dict:
    return {
        "Uid": uid,
        "JournalNumber": 1,
        "Date": "2024-05-01T10:11:12+02:00",
        "ModifiedDate": "2024-05-01T10:11:12+02:00",
        "StoreName": "Main",
        "CustomerUid": "c-" + uid,
        "Currency": "DKK",
        "IsReturn": False,
        "Lines": [
            {
                "LineNumber": n,
                "ProductUid": f"p{n}",
                "ProductName": f"Product {n}",
                "Quantity": n,
                "TotalInclVat": 10.5 * n,
                "DiscountInclVat": 0,
            }
            for n in range(1, lines + 1)
        ],
        **extra,
    }


def write_file(path: Path, rows: list[t.Any], compression: str = "gzip") -> str:
    """Bare records, one JSON per line; return the file:// URL."""
    data = b"".join(msgspec.json.encode(r) + b"\n" for r in rows)
    if compression == "gzip":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path.as_uri()


def batch(stream: str, urls: list[str], compression: str = "gzip") -> dict:
    return {
        "type": "BATCH",
        "stream": stream,
        "encoding": {"format": "jsonl", "compression": compression},
        "manifest": urls,
    }


def run_batch(
    mapping: CompiledMapping, messages: list[dict], batch_dir: Path | None
) -> tuple[list[dict], Runner, list[str]]:
    """Run messages with a batch_dir; return output messages, the runner and its warnings."""
    out: list[bytes] = []
    warnings: list[str] = []
    runner = Runner(mapping, out.append, warn=warnings.append, batch_dir=batch_dir)
    runner.run(msgspec.json.encode(m) + b"\n" for m in messages)
    return [msgspec.json.decode(line) for line in out], runner, warnings


def batch_records(message: dict) -> list[dict]:
    """The records of an output BATCH message (files decoded in manifest order)."""
    assert message["encoding"] == {"format": "jsonl", "compression": "gzip"}
    rows: list[dict] = []
    for url in message["manifest"]:
        assert url.startswith("file:///")
        with gzip.open(Path(url.removeprefix("file://")), "rb") as f:
            rows.extend(msgspec.json.decode(line) for line in f)
    return rows


def batches(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "BATCH"]


def without_time(rejects: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "rejected_at"} for r in rejects]


def test_batch_of_journals_yields_exactly_what_the_record_path_yields(tmp_path):
    mapping = compile_mapping(FLEXPOS_MAPPING)
    first = [journal("j1", 3), journal("j2", 0), journal("j3", 1, IsReturn=True)]
    second = [journal("j4", 2), journal("j5", 1, Currency=None), journal("j6", 2, Lines=None)]
    urls = [write_file(tmp_path / "a.json.gz", first), write_file(tmp_path / "b.json.gz", second)]

    via_records, by_records = run_messages(mapping, [rec("journals", r) for r in first + second])
    via_batch, by_batch, _ = run_batch(mapping, [batch("journals", urls)], tmp_path / "out")

    [message] = batches(via_batch)
    assert message["stream"] == "order_lines"
    assert len(message["manifest"]) == 2  # one output file per input file
    assert all(
        Path(u.removeprefix("file://")).parent == tmp_path / "out" for u in message["manifest"]
    )
    assert batch_records(message) == records(via_records, "order_lines")
    assert [r["line_id"] for r in batch_records(message)] == [
        "flexpos:journal:j1:1",
        "flexpos:journal:j1:2",
        "flexpos:journal:j1:3",
        "flexpos:journal:j3:1",
        "flexpos:journal:j4:1",
        "flexpos:journal:j4:2",
    ]
    assert without_time(records(via_batch, "_rejects")) == without_time(
        records(via_records, "_rejects")
    )
    # Same output SCHEMA, sent before the BATCH; same counts and summary.
    schemas = [m for m in via_batch if m["type"] == "SCHEMA" and m["stream"] == "order_lines"]
    assert schemas == [
        m for m in via_records if m["type"] == "SCHEMA" and m["stream"] == "order_lines"
    ]
    assert via_batch.index(schemas[0]) < via_batch.index(message)
    assert by_batch.stats == by_records.stats
    assert by_batch.summary() == by_records.summary()
    assert "6 records in, 6 out, 0 filtered, 2 empty, 1 rejected" in by_batch.summary()


def test_explode_in_batch_writes_one_record_per_element(tmp_path):
    mapping = compile_text(
        tmp_path,
        """
        streams:
          journals:
            to: lines
            explode: {path: Lines, as: line}
            fields:
              order: Uid
              n: line.LineNumber
              qty: {path: line.Quantity, type: integer}
        """,
    )
    url = write_file(tmp_path / "j.json.gz", [journal("a", 2), journal("b", 0), journal("c", 1)])
    out, runner, _ = run_batch(mapping, [batch("journals", [url])], tmp_path / "out")
    assert batch_records(batches(out)[0]) == [
        {"order": "a", "n": 1, "qty": 1},
        {"order": "a", "n": 2, "qty": 2},
        {"order": "c", "n": 1, "qty": 1},
    ]
    stats = runner.stats["journals"]
    assert (stats.records_in, stats.emitted, stats.records_out, stats.empty) == (3, 2, 3, 1)


def test_rejects_go_out_before_the_batch_and_the_counts_add_up(tmp_path):
    rows = [
        {"Uid": "u1", "Birthday": "31-01-1990"},
        {"Uid": "u2", "Birthday": "1990-01-31"},  # wrong date format
        {"Uid": "u3", "Birthday": None, "Deleted": True},  # filtered
        {"Uid": None, "Birthday": None},  # null key
        {"Uid": "u5", "Birthday": "01-02-2000"},
    ]
    url = write_file(tmp_path / "c.json.gz", rows)
    out, runner, _ = run_batch(contacts(tmp_path), [batch("customers", [url])], tmp_path / "out")

    assert [(m["type"], m["stream"]) for m in out] == [
        ("SCHEMA", "contacts"),
        ("SCHEMA", "_rejects"),
        ("RECORD", "_rejects"),
        ("RECORD", "_rejects"),
        ("BATCH", "contacts"),
    ]
    assert [(r["record"], r["rule"]) for r in records(out, "_rejects")] == [
        (rows[1], "born"),
        (rows[3], "id"),
    ]
    assert batch_records(batches(out)[0]) == [
        {"id": "u1", "born": "1990-01-31"},
        {"id": "u5", "born": "2000-02-01"},
    ]
    s = runner.stats["customers"]
    assert s.records_in == s.emitted + s.filtered + s.empty + s.rejected == 5
    assert "5 records in, 2 out, 1 filtered, 0 empty, 2 rejected" in runner.summary()


def test_records_and_batches_of_one_stream_are_counted_together(tmp_path):
    url = write_file(tmp_path / "c.json.gz", [{"Uid": "u2"}, {"Uid": "u3"}])
    messages = [rec("customers", {"Uid": "u1"}), batch("customers", [url])]
    out, runner, _ = run_batch(contacts(tmp_path), messages, tmp_path / "out")
    assert records(out, "contacts") == [{"id": "u1", "born": None}]
    assert [r["id"] for r in batch_records(batches(out)[0])] == ["u2", "u3"]
    assert [m["type"] for m in out].count("SCHEMA") == 1
    assert "3 records in, 3 out" in runner.summary()


def test_uncompressed_input_is_read_by_its_encoding_not_its_suffix(tmp_path):
    # singer-sdk names its files *.json.gz; the encoding says what they are.
    url = write_file(tmp_path / "plain.json.gz", [{"Uid": "u1"}, {"Uid": "u2"}], "none")
    out, _, _ = run_batch(contacts(tmp_path), [batch("customers", [url], "none")], tmp_path / "o")
    [message] = batches(out)
    assert message["encoding"]["compression"] == "gzip"  # the mapper always writes gzip
    assert [r["id"] for r in batch_records(message)] == ["u1", "u2"]


def test_batch_dir_is_created_and_defaults_to_mapped_next_to_the_input(tmp_path):
    (tmp_path / "in").mkdir()
    url = write_file(tmp_path / "in" / "c.json.gz", [{"Uid": "u1"}])
    out, _, _ = run_batch(contacts(tmp_path), [batch("customers", [url])] * 2, None)
    manifests = [m["manifest"] for m in batches(out)]
    assert manifests == [
        [(tmp_path / "in" / "mapped" / "contacts-1.jsonl.gz").as_uri()],
        [(tmp_path / "in" / "mapped" / "contacts-2.jsonl.gz").as_uri()],
    ]
    # A second run into the same folder never overwrites the files of the first.
    again, _, _ = run_batch(contacts(tmp_path), [batch("customers", [url])], None)
    assert batches(again)[0]["manifest"] == [
        (tmp_path / "in" / "mapped" / "contacts-3.jsonl.gz").as_uri()
    ]
    nested = tmp_path / "new" / "deeper"
    out, _, _ = run_batch(contacts(tmp_path), [batch("customers", [url])], nested)
    assert batch_records(batches(out)[0]) == [{"id": "u1", "born": None}]


def bad_json(tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "bad.json.gz"
    url = write_file(path, [{"Uid": "u1"}])
    path.write_bytes(gzip.compress(b'{"Uid": "u1"}\n{"Uid": \n'))
    return url, f"batch file {path}, line 2: invalid JSON:"


@pytest.mark.parametrize(
    ("case", "make"),
    [
        (
            "missing file",
            lambda p: (
                (p / "nope.json.gz").as_uri(),
                f"batch file {p / 'nope.json.gz'}: not found",
            ),
        ),
        (
            "not a file URL",
            lambda p: (
                "s3://bucket/c.json.gz",
                "input line 1: BATCH of stream 'customers': unsupported URL 's3://bucket/c.json.gz'",
            ),
        ),
        ("bad JSON line", bad_json),
        (
            "not gzip",
            lambda p: (
                write_file(p / "plain.json.gz", [{"Uid": "u1"}], "none"),
                f"batch file {p / 'plain.json.gz'}, line 1: not readable as gzip JSONL",
            ),
        ),
    ],
)
def test_unreadable_batch_stops_the_run_with_one_line_naming_the_file(tmp_path, case, make):
    url, expected = make(tmp_path)
    with pytest.raises(RunError) as info:
        run_batch(contacts(tmp_path), [batch("customers", [url])], tmp_path / "out")
    message = str(info.value)
    assert message.startswith(expected), case
    assert "\n" not in message
    # No half-written output file is left behind.
    assert list((tmp_path / "out").glob("*")) == []


def test_on_error_fail_names_the_batch_file_and_line(tmp_path):
    path = tmp_path / "c.json.gz"
    rows = [{"Uid": "u1", "Birthday": "31-01-1990"}, {"Uid": "u2", "Birthday": "1990-01-31"}]
    url = write_file(path, rows)
    with pytest.raises(RunError) as info:
        run_batch(contacts(tmp_path, "on_error: fail"), [batch("customers", [url])], tmp_path / "o")
    message = str(info.value)
    assert message.startswith(f"batch file {path}, line 2: {tmp_path / 'm.yaml'}:")
    assert "stream 'customers' record 2: rule 'born'" in message and "(on_error: fail)" in message


def test_unmapped_stream_batch_passes_unchanged_or_is_dropped_with_a_warning(tmp_path):
    url = write_file(tmp_path / "t.json.gz", [{"Uid": "t1"}])
    message = {**batch("tickets", [url]), "version": 3}
    out, _, warnings = run_batch(contacts(tmp_path, "other_streams: pass"), [message], None)
    assert out == [message]
    out, runner, warnings = run_batch(contacts(tmp_path), [message], None)
    assert out == []
    assert len(warnings) == 1 and "stream 'tickets' has no mapping" in warnings[0]
    assert not (tmp_path / "mapped").exists()  # the file was not even read
    assert "0 records in" in runner.summary()


def test_state_after_a_batch_is_written_after_the_batch(tmp_path):
    url = write_file(tmp_path / "c.json.gz", [{"Uid": "u1"}, {"Uid": "u2", "Birthday": "x"}])
    state = {"type": "STATE", "value": {"bookmarks": {"customers": "b"}}}
    events: list[str] = []
    runner = Runner(
        contacts(tmp_path),
        lambda line: events.append(msgspec.json.decode(line)["type"]),
        flush=lambda: events.append("flush"),
        batch_dir=tmp_path / "out",
    )
    runner.run(msgspec.json.encode(m) + b"\n" for m in [batch("customers", [url]), state])
    assert events == ["SCHEMA", "SCHEMA", "RECORD", "BATCH", "STATE", "flush", "flush"]


def test_the_executable_maps_a_batch_with_batch_dir_from_its_json_config(tmp_path):
    (tmp_path / "m.yaml").write_text(CONTACTS.format(top=""))
    (tmp_path / "config.json").write_text(
        json.dumps({"mapping_file": "m.yaml", "batch_dir": "out"})
    )
    url = write_file(
        tmp_path / "c.json.gz", [{"Uid": "u1", "Birthday": "24-12-1980"}, {"Uid": "u2"}]
    )
    state = {"type": "STATE", "value": {"bookmarks": {"customers": "x"}}}
    stdin = "".join(json.dumps(m) + "\n" for m in [batch("customers", [url]), state])
    proc = subprocess.run(
        [MAPPER, "--config", "config.json"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [m["type"] for m in out] == ["SCHEMA", "BATCH", "STATE"]
    assert out[1]["manifest"] == [(tmp_path / "out" / "contacts-1.jsonl.gz").as_uri()]
    assert batch_records(out[1]) == [{"id": "u1", "born": "1980-12-24"}, {"id": "u2", "born": None}]
    assert "2 records in, 2 out, 0 filtered, 0 empty, 0 rejected" in proc.stderr


def test_the_executable_reports_a_bad_batch_line_in_one_line_and_exit_1(tmp_path):
    (tmp_path / "m.yaml").write_text(CONTACTS.format(top=""))
    url, expected = bad_json(tmp_path)
    proc = subprocess.run(
        [MAPPER, "--config", "m.yaml"],
        input=json.dumps(batch("customers", [url])) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"mapper-loyalty: error: {expected}")
    assert "Traceback" not in proc.stderr
    about = subprocess.run([MAPPER, "--about", "--format", "json"], capture_output=True, timeout=60)
    info = json.loads(about.stdout)
    assert "batch_dir" in info["settings"]["properties"] and "batch" in info["capabilities"]
