"""The five stages: each adds rows for ours, the peers and the limits to the context."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import peerenv
from bench.core import (
    BENCH_DIR,
    FLOOR,
    LIMIT,
    OURS,
    PEER,
    Context,
    Row,
    check_our_executable,
    count_table_rows,
    measure,
    our_script,
)
from bench.datagen import STREAM, generate

PEERS_SCRIPTS = BENCH_DIR / "peers"
MAPPING_FILE = BENCH_DIR / "mappings" / "journal_lines.yaml"
MELTANO_MAP_CONFIG = PEERS_SCRIPTS / "meltano_map.json"

# Slow peers run on a stated subset (like peer-baseline.md): N is shown in every row.
SQL_TARGET_N = 20_000
QUICK_SQL_TARGET_N = 5_000


def _write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _peer_ready(ctx: Context, env: peerenv.PeerEnv, row: Row) -> bool:
    ok, reason = ctx.peer_status.get(env.name, (False, "peer venv not prepared"))
    if not ok:
        row.status, row.reason = "not available", reason
        ctx.add(row)
    return ok


def _not_available(ctx: Context, row: Row, reason: str) -> None:
    row.status, row.reason = "not available", reason
    ctx.add(row)


# --------------------------------------------------------------------------- 1. store load
def stage_load(ctx: Context) -> None:
    """A Singer file into a fresh DuckDB file: ours, target-duckdb, singer-sdk SQL, read_json."""
    data = generate(ctx.size, ctx.seed)
    n = ctx.size

    def db_rows(scratch: Path, _run: object) -> int:
        return count_table_rows(scratch / "store.duckdb", STREAM)

    row = Row("load", "target-loyalty-store", OURS, n=n, rows_expected=n)
    row.config = '{"database": "<fresh>.duckdb"}'
    missing = check_our_executable("target-loyalty-store", "target_loyalty_store.target")
    if missing:
        _not_available(ctx, row, missing)
    else:
        exe = str(our_script("target-loyalty-store"))
        measure(
            ctx,
            row,
            lambda s: [
                exe,
                "--config",
                str(_write_json(s / "cfg.json", {"database": str(s / "store.duckdb")})),
            ],
            stdin=data.stream,
            verify=db_rows,
        )

    row = Row("load", "target-duckdb 0.8.0", PEER, n=n, rows_expected=n)
    row.config = (
        '{"path": "<fresh>.duckdb", "default_target_schema": "main"}'
        " (batch_size_rows default 100000, validate_records default false)"
    )
    if _peer_ready(ctx, peerenv.TARGET_DUCKDB, row):
        exe = str(peerenv.TARGET_DUCKDB.bin("target-duckdb"))
        measure(
            ctx,
            row,
            lambda s: [
                exe,
                "--config",
                str(
                    _write_json(
                        s / "cfg.json",
                        {"path": str(s / "store.duckdb"), "default_target_schema": "main"},
                    )
                ),
            ],
            stdin=data.stream,
            verify=db_rows,
        )

    sub_n = min(n, QUICK_SQL_TARGET_N if ctx.quick else SQL_TARGET_N)
    sub = generate(sub_n, ctx.seed)
    row = Row("load", "singer-sdk SQLTarget (duckdb_engine)", PEER, n=sub_n, rows_expected=sub_n)
    row.config = "bench/peers/sdk_sql_target.py, SDK defaults, SERIAL fix only"
    if _peer_ready(ctx, peerenv.SINGER_SDK, row):
        py = str(peerenv.SINGER_SDK.python)
        script = str(PEERS_SCRIPTS / "sdk_sql_target.py")
        measure(
            ctx,
            row,
            lambda s: [
                py,
                script,
                "--config",
                str(_write_json(s / "cfg.json", {"database": str(s / "store.duckdb")})),
            ],
            stdin=sub.stream,
            verify=db_rows,
        )

    row = Row("load", "duckdb read_json (limit)", LIMIT, n=n, rows_expected=n)
    row.config = "CREATE TABLE AS SELECT * FROM read_json(records.jsonl), auto-detect"
    measure(
        ctx,
        row,
        lambda s: [
            sys.executable,
            str(PEERS_SCRIPTS / "duckdb_read_json.py"),
            str(data.records),
            str(s / "store.duckdb"),
        ],
        stdin=None,
        verify=db_rows,
    )


# --------------------------------------------------------------------------- 2. mapping
def stage_map(ctx: Context) -> None:
    """The same mapping in mapper-loyalty and meltano-map-transform; orjson pass-through floor."""
    data = generate(ctx.size, ctx.seed)
    n = ctx.size
    from bench import mapcheck

    row = Row("map", "mapper-loyalty", OURS, n=n)
    row.config = f"--config {{'mapping_file': '{MAPPING_FILE.relative_to(BENCH_DIR.parent)}'}}"
    missing = check_our_executable("mapper-loyalty", "mapper_loyalty.mapper")
    if not missing and not MAPPING_FILE.exists():
        missing = f"{MAPPING_FILE.name} not written yet (transforms/README.md not there)"
    ours_cmd = [
        str(our_script("mapper-loyalty")),
        "--config",
        str(_write_json(ctx.work / "mapper-loyalty.json", {"mapping_file": str(MAPPING_FILE)})),
    ]
    peer_ok = ctx.peer_status.get(peerenv.MELTANO_MAP.name, (False, ""))[0]
    peer_cmd = [
        str(peerenv.MELTANO_MAP.bin("meltano-map-transform")),
        "--config",
        str(MELTANO_MAP_CONFIG),
    ]
    problems = mapcheck.compare(ctx, None if missing else ours_cmd, peer_cmd if peer_ok else None)
    if missing:
        _not_available(ctx, row, missing)
    else:
        measure(ctx, row, lambda _s: ours_cmd, stdin=data.stream)
        _flag_mapping(row, problems.get("mapper-loyalty"))

    row = Row("map", "meltano-map-transform 0.12.3", PEER, n=n)
    row.config = f"stream_maps in {MELTANO_MAP_CONFIG.relative_to(BENCH_DIR.parent)}"
    if _peer_ready(ctx, peerenv.MELTANO_MAP, row):
        measure(ctx, row, lambda _s: peer_cmd, stdin=data.stream)
        _flag_mapping(row, problems.get("meltano-map-transform"))

    row = Row("map", "orjson pass-through (floor)", FLOOR, n=n)
    row.config = "parse + dump every line, no mapping"
    measure(
        ctx,
        row,
        lambda _s: [sys.executable, str(PEERS_SCRIPTS / "passthrough.py")],
        stdin=data.stream,
    )


def _flag_mapping(row: Row, problem: str | None) -> None:
    """A mapper that maps the sample wrongly gets no credit for its speed."""
    if problem and row.status == "ok":
        row.status, row.reason = "wrong output", problem
