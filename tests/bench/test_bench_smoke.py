"""Smoke test of `make bench`'s harness: data generator + the DuckDB read_json limit row.

Tiny size and no peers or project executables, so it is fast and independent of the other
stages; it proves the harness generates reproducible input, measures a real process, checks
the rows it loaded, and writes the results JSON the table is printed from. No timing asserts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from singer_kit.dates import local_to_utc

ROOT = Path(__file__).resolve().parents[2]
# bench/ is a tool beside the distribution, not part of it: import it from the checkout.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.datagen import generate  # noqa: E402
from bench.journals import emulator_data, generate_journals  # noqa: E402


def _bench(module: str, *args: str, timeout: int) -> str:
    """Run a bench module from the checkout; it must succeed. Returns what it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_generator_is_reproducible_and_well_formed(tmp_path):
    first = generate(300, seed=7, data_dir=tmp_path / "a")
    second = generate(300, seed=7, data_dir=tmp_path / "b")
    assert first.stream.read_bytes() == second.stream.read_bytes()
    lines = [orjson.loads(line) for line in first.stream.read_bytes().splitlines()]
    assert lines[0]["type"] == "SCHEMA" and lines[0]["key_properties"] == ["line_id"]
    records = [m["record"] for m in lines if m["type"] == "RECORD"]
    assert [r["line_id"] for r in records] == list(range(1, 301))
    assert len(records[0]) == 15
    assert lines[-1]["type"] == "STATE"
    bare = [orjson.loads(x) for x in first.records.read_bytes().splitlines()]
    assert bare == records
    assert generate(300, seed=8, data_dir=tmp_path / "c").stream.read_bytes() != (
        first.stream.read_bytes()
    )


def test_read_json_limit_row_lands_in_results(tmp_path):
    out = tmp_path / "result.json"
    printed = _bench(
        "bench",
        *("--only", "load", "--size", "400", "--roles", "limit", "--repeat", "1"),
        *("--data-dir", str(tmp_path / "data"), "--out", str(out)),
        timeout=180,
    )
    result = json.loads(out.read_text())
    rows = {row["tool"]: row for row in result["rows"]}
    limit = rows["duckdb read_json (limit)"]
    assert limit["status"] == "ok"
    assert limit["rows_out"] == limit["rows_expected"] == 400
    assert limit["wall_s"] > 0 and limit["peak_rss_mib"] > 0
    # Roles left out show up as skipped rather than silently missing.
    assert rows["target-duckdb 0.8.0"]["status"] == "skipped"
    assert "duckdb read_json" in printed  # the printed table
    targets = {t["target"]: t for t in result["targets"]}
    assert targets["store load >= 10x target-duckdb"]["met"] is None
    # The chart beside the JSON (bench/chart.py; drawn from it, tested in test_bench_chart.py).
    assert f"[bench] chart: {out.with_suffix('.svg')}" in printed
    assert 'data-tool="duckdb read_json (limit)"' in out.with_suffix(".svg").read_text()


def test_incremental_stage_times_a_real_run_with_nothing_new(tmp_path):
    # `--only incr --quick`: the emulator with a few hundred records, a first full run of the
    # shipped flexpos_to_store, then one timed run that finds nothing new. No timing asserts.
    result = run_bench(tmp_path, "--only", "incr", "--size", "400", "--roles", "ours")
    (row,) = result["rows"]
    assert row["stage"] == "incr" and row["status"] == "ok", row
    # The store held every order line of the first run, and the timed run added none.
    assert row["rows_out"] == row["rows_expected"] > 0
    assert row["wall_s"] > 0
    targets = {t["target"]: t for t in result["targets"]}
    incr = targets["incremental run with nothing new < 60 s (schedule */5)"]
    assert incr["value"] == round(row["wall_s"], 2) and incr["met"] is not None


def test_memory_stage_input_is_what_tap_flexpos_reads_from_the_emulator(tmp_path):
    # bench/journals.py writes the FlexPOS emulator's own journals (same seed, fixed clock) as
    # tap-flexpos emits them (UTC ISO timestamps), cut to exactly N lines.
    path = generate_journals(301, seed=5, data_dir=tmp_path)
    messages = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert messages[0]["type"] == "SCHEMA" and messages[-1]["type"] == "STATE"
    journals = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert sum(len(j["Lines"]) for j in journals) == 301
    served = emulator_data(301, seed=5).select("journal", [], 0, len(journals))
    for got, want in zip(journals, served, strict=True):
        assert got["Uid"] == want["Uid"] and got["CustomerUid"] == want["CustomerUid"]
        local = datetime.strptime(want["ModifiedDate"], "%Y-%m-%dT%H:%M:%S")
        utc = local_to_utc(local, ZoneInfo("Europe/Copenhagen")).isoformat()
        assert got["ModifiedDate"] == got["Date"] == utc
        assert got["Lines"] == want["Lines"][: len(got["Lines"])]
    assert journals[-1]["TotalInclVat"] == round(
        sum(x["TotalInclVat"] for x in journals[-1]["Lines"]), 2
    )
    assert messages[-1]["value"]["bookmarks"]["journals"]["replication_key_value"] == utc


def test_loyaltylion_stage_measures_the_tap_and_the_pager_on_every_record(tmp_path):
    result = run_bench(tmp_path, "--only", "loyaltylion", "--roles", "ours,source", "--size", "400")
    rows = {row["tool"]: row for row in result["rows"]}
    for tool in ("tap-loyaltylion", "LoyaltyLion emulator alone (plain pager)"):
        assert rows[tool]["status"] == "ok", rows[tool]
        assert rows[tool]["rows_out"] == rows[tool]["rows_expected"] > 1_000
    assert rows["singer-sdk RESTStream tap"]["status"] == "skipped"
    targets = {t["target"]: t for t in result["targets"]}
    assert targets["tap-loyaltylion >= 0.8x its emulator's plain pager"]["value"] > 0


def test_voyado_stage_pushes_every_contact_and_receipt_under_the_emulators_rate_limit(tmp_path):
    # `--only voyado --quick`: 100 contacts and 100 receipts against the emulator in its own
    # process, limited to 50 requests/s. No timing asserts: only that nothing is lost.
    (row,) = run_bench(tmp_path, "--only", "voyado", "--size", "100")["rows"]
    assert row["stage"] == "voyado" and row["status"] == "ok", row
    assert row["rows_out"] == row["rows_expected"] == 200
    assert "0 duplicates" in row["note"]


def run_bench(tmp_path: Path, *args: str) -> dict:
    """`python -m bench --quick --repeat 1 <args>` into tmp_path; its results JSON."""
    out = tmp_path / "result.json"
    _bench(
        "bench",
        *("--quick", "--repeat", "1", *args),
        *("--data-dir", str(tmp_path / "data"), "--out", str(out)),
        timeout=300,
    )
    return json.loads(out.read_text())


def test_interleaved_load_rounds_compare_each_run_with_the_reference_beside_it(tmp_path):
    """`python -m bench.interleave load`: real processes in turn, a ratio per round."""
    data = generate(200, seed=3, data_dir=tmp_path / "data")
    out = tmp_path / "interleave.json"
    _bench(
        "bench.interleave",
        *("load", "--input", str(data.stream), "--rounds", "2", "--out", str(out)),
        *("--candidates", "read_json,target,batch"),
        timeout=300,
    )
    result = json.loads(out.read_text())
    runs = result["runs"]
    assert list(runs) == ["read_json", "target", "batch"]
    assert all(r["rc"] == 0 and r["wall_s"] > 0 for rows in runs.values() for r in rows)
    target = result["summary"]["target"]
    assert len(target["rate_vs_read_json_per_round"]) == 2
    assert target["rate_vs_read_json_per_round"] == [
        round(ref["wall_s"] / row["wall_s"], 3)
        for ref, row in zip(runs["read_json"], runs["target"], strict=True)
    ]
