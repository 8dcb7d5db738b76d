"""Stages load, map, tap, e2e, memory, incr: each adds rows for ours, the peers and the limits."""

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
    count_records,
    count_table_rows,
    measure,
    our_script,
    write_json,
)
from bench.datagen import STREAM, DataSet, generate
from bench.loyaltylion import stage_loyaltylion  # noqa: F401 (cli runs stages by name)
from bench.ometria import stage_push  # noqa: F401 (cli runs stage_<name> from here)
from bench.pg import stage_pg  # noqa: F401 (cli runs stage_<name> from here)

PEERS_SCRIPTS = BENCH_DIR / "peers"
MAPPING_FILE = BENCH_DIR / "mappings" / "journal_lines.yaml"
MELTANO_MAP_CONFIG = PEERS_SCRIPTS / "meltano_map.json"
E2E_MAP = PEERS_SCRIPTS / "meltano_e2e_map.json"

# Slow peers run on a stated subset (like peer-baseline.md): N is shown in every row.
SQL_TARGET_N = 20_000
QUICK_SQL_TARGET_N = 5_000


def _store_config(scratch: Path) -> dict:
    """Our store's config: a fresh file, and staging in the run's own scratch folder.

    Staging under the scratch folder (not the default system temp dir) keeps a long run safe
    from anything that cleans /tmp meanwhile; it is the same disk, so speed is unaffected.
    """
    return {"database": str(scratch / "store.duckdb"), "staging_dir": str(scratch / "staging")}


def _peer_ready(ctx: Context, env: peerenv.PeerEnv, row: Row) -> bool:
    if row.role not in ctx.roles:
        row.status, row.reason = "skipped", "--roles"
        ctx.add(row)
        return False
    ok, reason = ctx.peer_status.get(env.name, (False, "peer venv not prepared"))
    if not ok:
        ctx.not_available(row, reason)
    return ok


# --------------------------------------------------------------------------- 1. store load
def stage_load(ctx: Context) -> None:
    """A Singer file into a fresh DuckDB file: ours, target-duckdb, singer-sdk SQL, read_json."""
    data = generate(ctx.size, ctx.seed, ctx.data_dir)
    n = ctx.size

    def db_rows(scratch: Path, _run: object) -> int:
        return count_table_rows(scratch / "store.duckdb", STREAM)

    row = Row("load", "target-loyalty-store", OURS, n=n, rows_expected=n)
    row.config = '{"database": "<fresh>.duckdb", "staging_dir": "<scratch>"}'
    missing = check_our_executable("target-loyalty-store", "target_loyalty_store.target")
    if missing:
        ctx.not_available(row, missing)
    else:
        exe = str(our_script("target-loyalty-store"))
        measure(
            ctx,
            row,
            lambda s: [
                exe,
                "--config",
                str(write_json(s / "cfg.json", _store_config(s))),
            ],
            stdin=data.stream,
            verify=db_rows,
        )

    row = Row("load", "target-loyalty-store (BATCH file)", OURS, n=n, rows_expected=n)
    row.config = "same config; input: the SCHEMA + one BATCH message naming records.jsonl"
    if missing:
        ctx.not_available(row, missing)
    else:
        exe = str(our_script("target-loyalty-store"))
        batch_input = _batch_input(ctx.work / "load-batch.jsonl", data)
        measure(
            ctx,
            row,
            lambda s: [exe, "--config", str(write_json(s / "cfg.json", _store_config(s)))],
            stdin=batch_input,
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
                    write_json(
                        s / "cfg.json",
                        {"path": str(s / "store.duckdb"), "default_target_schema": "main"},
                    )
                ),
            ],
            stdin=data.stream,
            verify=db_rows,
        )

    sub_n = min(n, QUICK_SQL_TARGET_N if ctx.quick else SQL_TARGET_N)
    sub = generate(sub_n, ctx.seed, ctx.data_dir)
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
                str(write_json(s / "cfg.json", {"database": str(s / "store.duckdb")})),
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
    data = generate(ctx.size, ctx.seed, ctx.data_dir)
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
        str(write_json(ctx.work / "mapper-loyalty.json", {"mapping_file": str(MAPPING_FILE)})),
    ]
    peer_ok = ctx.peer_status.get(peerenv.MELTANO_MAP.name, (False, ""))[0]
    peer_cmd = [
        str(peerenv.MELTANO_MAP.bin("meltano-map-transform")),
        "--config",
        str(MELTANO_MAP_CONFIG),
    ]
    problems = mapcheck.compare(ctx, None if missing else ours_cmd, peer_cmd if peer_ok else None)
    if missing:
        ctx.not_available(row, missing)
    else:
        measure(ctx, row, lambda _s: ours_cmd, stdin=data.stream)
        _flag_mapping(row, problems.get("mapper-loyalty"))

    row = Row("map", "mapper-loyalty (BATCH file)", OURS, n=n)
    row.config = "same mapping; SCHEMA + one BATCH (records.jsonl) in, gzip JSONL file out"
    if missing:
        ctx.not_available(row, missing)
    else:
        batch_input = _batch_input(ctx.work / "map-batch.jsonl", data)

        def batch_cmd(s: Path) -> list[str]:
            cfg = {"mapping_file": str(MAPPING_FILE), "batch_dir": str(s / "mapped")}
            return [ours_cmd[0], "--config", str(write_json(s / "cfg.json", cfg))]

        measure(ctx, row, batch_cmd, stdin=batch_input)

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


def _batch_input(path: Path, data: DataSet) -> Path:
    """A Singer file of the data set's SCHEMA and one BATCH naming its bare records file."""
    with data.stream.open("rb") as src:
        schema_line = src.readline()
    batch = {
        "type": "BATCH",
        "stream": STREAM,
        "encoding": {"format": "jsonl", "compression": "none"},
        "manifest": [data.records.resolve().as_uri()],
    }
    path.write_bytes(schema_line + json.dumps(batch).encode() + b"\n")
    return path


def _flag_mapping(row: Row, problem: str | None) -> None:
    """A mapper that maps the sample wrongly gets no credit for its speed."""
    if problem and row.status == "ok":
        row.status, row.reason = "wrong output", problem


# --------------------------------------------------------------------------- 3. tap
# The emulator renders ~6-10k journals/s, so the HTTP stages run on a stated subset.
TAP_LINES = 300_000
QUICK_TAP_LINES = 15_000
STACK_LINES = 20_000
QUICK_STACK_LINES = 3_000
CUSTOMERS = 1_000
KEYSET_PAGER = "plain pager (the tap's requests)"


def _journals_for(lines: int) -> int:
    """Emulator journals carry 1-5 lines (3 on average)."""
    return max(1, lines // 3)


def _tap_config(env: dict[str, str], scratch: Path) -> Path:
    return write_json(
        scratch / "tap.json",
        {
            "auth_url": env["FLEXPOS_AUTH_URL"],
            "api_url": env["FLEXPOS_API_URL"],
            "client_id": env["FLEXPOS_CLIENT_ID"],
            "client_secret": env["FLEXPOS_CLIENT_SECRET"],
            "start_date": "2000-01-01",
            "page_size": 500,
        },
    )


def _journals_catalog(path: Path) -> Path:
    """The committed catalog with only `journals` selected (the stage measures one stream)."""
    catalog = json.loads((BENCH_DIR.parent / "catalogs" / "flexpos.json").read_text())
    for stream in catalog["streams"]:
        for meta in stream.get("metadata", []):
            if meta.get("breadcrumb") == []:
                meta["metadata"]["selected"] = stream["tap_stream_id"] == "journals"
    return write_json(path, catalog)


def _pager(ctx: Context, env: dict[str, str], journals: int) -> tuple[Row, int | None]:
    """The emulator alone; returns the row and the journal lines it served."""
    import os

    row = Row("tap", "FlexPOS emulator alone (plain pager)", "source", n=journals)
    row.rows_expected = journals
    row.config = "requests + orjson, offset/limit=500, no Singer output; N = journals"
    lines: dict[str, int] = {}

    def served(scratch: Path, _run: object) -> int:
        got_journals, got_lines = (scratch / "out.txt").read_text().split()
        lines["n"] = int(got_lines)
        return int(got_journals)

    measure(
        ctx,
        row,
        lambda _s: [sys.executable, str(PEERS_SCRIPTS / "flexpos_pager.py")],
        stdin=None,
        stdout_name="out.txt",
        verify=served,
        env={**os.environ, **env},
    )
    if "n" in lines:
        row.note = f"{lines['n']:,} journal lines"
        ctx.served_lines[journals] = lines["n"]
    return row, lines.get("n")


def _keyset_pager(ctx: Context, env: dict[str, str], journals: int) -> Row:
    """A plain pager making the tap's requests and writing JSON lines: the tap's ceiling."""
    import os

    row = Row("tap", KEYSET_PAGER, "source", n=journals, rows_expected=journals)
    row.config = (
        "requests + orjson, the tap's ModifiedDate keyset requests (limit 500), "
        "one JSON line per journal to a file; N = journals"
    )
    measure(
        ctx,
        row,
        lambda _s: [sys.executable, str(PEERS_SCRIPTS / "flexpos_pager.py"), "--keyset"],
        stdin=None,
        stdout_name="out.jsonl",
        verify=lambda s, _run: sum(1 for _ in (s / "out.jsonl").open("rb")),
        env={**os.environ, **env},
    )
    return row


def stage_tap(ctx: Context) -> None:
    """tap-flexpos vs a singer-sdk default tap over the emulator, and plain pagers on it."""
    from bench.emulator import running

    lines = min(ctx.size, QUICK_TAP_LINES if ctx.quick else TAP_LINES)
    journals = _journals_for(lines)
    with running(journals, CUSTOMERS, ctx.seed) as env:
        _pager(ctx, env, journals)
        _keyset_pager(ctx, env, journals)

        def tap_records(scratch: Path, _run: object) -> int:
            return count_records(scratch / "out.jsonl", "journals")

        row = Row("tap", "tap-flexpos", OURS, n=journals, rows_expected=journals)
        row.config = "emulator config, start_date 2000-01-01, page_size 500, journals only"
        missing = check_our_executable("tap-flexpos", "tap_flexpos.tap")
        if missing:
            ctx.not_available(row, missing)
        else:
            exe = str(our_script("tap-flexpos"))
            catalog = _journals_catalog(ctx.work / "catalog-journals.json")
            measure(
                ctx,
                row,
                lambda s: [exe, "--config", str(_tap_config(env, s)), "--catalog", str(catalog)],
                stdin=None,
                stdout_name="out.jsonl",
                verify=tap_records,
            )
            row.note = "stdout to a file (counted), N = journals"

        row = Row("tap", "singer-sdk RESTStream tap", PEER, n=journals, rows_expected=journals)
        row.config = "bench/peers/sdk_flexpos_tap.py, explode=false, SDK defaults"
        if _peer_ready(ctx, peerenv.SINGER_SDK, row):
            py = str(peerenv.SINGER_SDK.python)
            script = str(PEERS_SCRIPTS / "sdk_flexpos_tap.py")

            def sdk_cmd(s: Path) -> list[str]:
                cfg = json.loads(_tap_config(env, s).read_text())
                cfg.pop("start_date")
                cfg.pop("page_size")
                cfg["explode"] = False
                return [py, script, "--config", str(write_json(s / "sdk.json", cfg))]

            measure(ctx, row, sdk_cmd, stdin=None, stdout_name="out.jsonl", verify=tap_records)
            row.note = "stdout to a file (counted), N = journals"


# --------------------------------------------------------------------------- 4. end to end
def _pipelines_file(scratch: Path, tap_exe: str, tap_config: dict, catalog: Path) -> Path:
    """A pipelines.yaml like the project's flexpos_to_store, pointed at scratch and the env."""
    doc = {
        "version": 1,
        "default_environment": "bench",
        "environments": {
            "bench": {
                "config": {
                    "target-loyalty-store": _store_config(scratch),
                }
            }
        },
        "pipelines": {
            "bench": {
                "tap": {"executable": tap_exe, "catalog": str(catalog), "config": tap_config},
                "mapping": str(
                    BENCH_DIR.parent / "transforms" / "mappings" / "flexpos_to_store.yaml"
                ),
                "mapper": {"executable": "mapper-loyalty"},
                "target": {
                    "executable": "target-loyalty-store",
                    "config": {"match_field": "email"},
                },
            }
        },
    }
    path = scratch / "pipelines.yaml"
    path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
    return path


def _loyalty_cmd(scratch: Path, pipelines: Path) -> list[str]:
    return [
        str(our_script("loyalty")),
        "-f",
        str(pipelines),
        "--state-dir",
        str(scratch / ".loyalty"),
        "run",
        "bench",
        "--env",
        "bench",
    ]


def _order_lines(scratch: Path, _run: object) -> int:
    return count_table_rows(scratch / "store.duckdb", "order_lines")


def _ours_e2e_missing() -> str | None:
    for exe, module in (
        ("loyalty", "loyalty.runner"),
        ("tap-flexpos", "tap_flexpos.tap"),
        ("mapper-loyalty", "mapper_loyalty.mapper"),
        ("target-loyalty-store", "target_loyalty_store.target"),
    ):
        missing = (
            check_our_executable(exe, module)
            if exe != "loyalty"
            else (None if our_script("loyalty").exists() else "loyalty is not installed")
        )
        if missing:
            return missing
    return None


def stage_e2e(ctx: Context) -> None:
    """`loyalty run` tap -> mapper -> store vs a singer-sdk default stack doing the same work."""
    import os

    from bench.emulator import running

    lines = min(ctx.size, QUICK_TAP_LINES if ctx.quick else TAP_LINES)
    journals = _journals_for(lines)
    row = Row("e2e", "loyalty run (tap|mapper|store)", OURS)
    row.config = "flexpos_to_store pipeline (journals only), emulator; N = order_lines loaded"
    missing = _ours_e2e_missing()
    with running(journals, CUSTOMERS, ctx.seed) as env:
        if missing:
            ctx.not_available(row, missing)
        else:
            served = _served_lines(ctx, env, journals)
            row.n = row.rows_expected = served
            catalog = _journals_catalog(ctx.work / "catalog-journals.json")

            def cmd(s: Path) -> list[str]:
                cfg = json.loads(_tap_config(env, s).read_text())
                # pipelines.yaml takes secrets by reference only; the run's env holds it
                cfg["client_secret"] = "${FLEXPOS_CLIENT_SECRET}"
                return _loyalty_cmd(s, _pipelines_file(s, "tap-flexpos", cfg, catalog))

            measure(ctx, row, cmd, stdin=None, verify=_order_lines, env={**os.environ, **env})

            row = Row("e2e", "loyalty run --batch (BATCH files)", OURS, n=served)
            row.rows_expected = served
            row.config = "the same pipeline with --batch: gzip JSONL files tap -> mapper -> store"
            measure(
                ctx,
                row,
                lambda s: [*cmd(s), "--batch"],
                stdin=None,
                verify=_order_lines,
                env={**os.environ, **env},
            )

    stack_lines = min(ctx.size, QUICK_STACK_LINES if ctx.quick else STACK_LINES)
    row = Row("e2e", "singer-sdk default stack", PEER)
    row.config = (
        "sdk_flexpos_tap.py | meltano-map-transform (meltano_e2e_map.json) | sdk_sql_target.py"
    )
    if row.role not in ctx.roles:
        row.status, row.reason = "skipped", "--roles"
        ctx.add(row)
        return
    for env_needed in (peerenv.SINGER_SDK, peerenv.MELTANO_MAP):
        ok, reason = ctx.peer_status.get(env_needed.name, (False, "peer venv not prepared"))
        if not ok:
            ctx.not_available(row, f"{env_needed.name}: {reason}")
            return
    stack_journals = _journals_for(stack_lines)
    with running(stack_journals, CUSTOMERS, ctx.seed) as env:
        served = _served_lines(ctx, env, stack_journals)
        row.n = row.rows_expected = served
        py = str(peerenv.SINGER_SDK.python)
        mapper = str(peerenv.MELTANO_MAP.bin("meltano-map-transform"))

        def stack(s: Path) -> list[str]:
            cfg = {
                "auth_url": env["FLEXPOS_AUTH_URL"],
                "api_url": env["FLEXPOS_API_URL"],
                "client_id": env["FLEXPOS_CLIENT_ID"],
                "client_secret": env["FLEXPOS_CLIENT_SECRET"],
            }
            tap_cfg = write_json(s / "tap.json", cfg)
            tgt_cfg = write_json(s / "target.json", {"database": str(s / "store.duckdb")})
            script = (
                f"set -o pipefail; '{py}' '{PEERS_SCRIPTS / 'sdk_flexpos_tap.py'}' "
                f"--config '{tap_cfg}' | '{mapper}' --config '{E2E_MAP}'"
                f" | '{py}' '{PEERS_SCRIPTS / 'sdk_sql_target.py'}' --config '{tgt_cfg}'"
            )
            return ["bash", "-c", script]

        measure(ctx, row, stack, stdin=None, verify=_order_lines)


def _served_lines(ctx: Context, env: dict[str, str], journals: int) -> int:
    """Journal lines the emulator holds (what order_lines must end up with)."""
    import os
    import subprocess

    if journals in ctx.served_lines:
        return ctx.served_lines[journals]

    proc = subprocess.run(
        [sys.executable, str(PEERS_SCRIPTS / "flexpos_pager.py")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    ctx.served_lines[journals] = int(proc.stdout.split()[1])
    return ctx.served_lines[journals]


# --------------------------------------------------------------------------- 5. memory
def stage_memory(ctx: Context) -> None:
    """Peak RSS of `loyalty run` (mapper + store, replayed tap output) at each size."""
    from bench.journals import generate_journals

    missing = _ours_e2e_missing()
    sizes = ctx.memory_sizes
    catalog = _journals_catalog(ctx.work / "catalog-journals.json")
    wrapper = ctx.work / "replay-tap"
    wrapper.write_text(
        f"#!/bin/sh\nexec '{sys.executable}' '{PEERS_SCRIPTS / 'replay_tap.py'}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    for lines in sizes:
        row = Row("memory", "loyalty run (replayed tap output)", OURS, n=lines)
        row.rows_expected = lines
        row.config = "flexpos_to_store mapping + store; tap = replay of a journals file"
        if missing:
            ctx.not_available(row, missing)
            continue
        replay = generate_journals(lines, ctx.seed, ctx.data_dir)

        def cmd(s: Path, replay: Path = replay) -> list[str]:
            pipelines = _pipelines_file(s, str(wrapper), {"replay_file": str(replay)}, catalog)
            return _loyalty_cmd(s, pipelines)

        saved = ctx.repeat
        ctx.repeat = 1  # one run per size: memory, not speed, is the point here
        try:
            measure(ctx, row, cmd, stdin=None, verify=_order_lines, timeout=1_200)
        finally:
            ctx.repeat = saved


# --------------------------------------------------------------------------- 6. incremental
# The emulated history an incremental run sits on: members, order data of all three kinds.
INCR_DATA = {"customers": 10_000, "journals": 20_000, "tickets": 5_000, "memberships": 1_000}
QUICK_INCR_DATA = {"customers": 300, "journals": 500, "tickets": 100, "memberships": 50}
INCR_PIPELINE = "flexpos_to_store"


def _shipped_pipelines(folder: Path) -> Path:
    """The project's own pipelines.yaml (its schedule, catalog, mapping), paths made absolute
    and history read from 2000 on, so the first run takes everything the emulator holds."""
    import yaml

    doc = yaml.safe_load((BENCH_DIR.parent / "pipelines.yaml").read_text())
    for each in doc["pipelines"].values():  # the run checks every pipeline's files
        if "catalog" in each["tap"]:
            each["tap"]["catalog"] = str(BENCH_DIR.parent / each["tap"]["catalog"])
        if "mapping" in each:
            each["mapping"] = str(BENCH_DIR.parent / each["mapping"])
    doc["pipelines"][INCR_PIPELINE]["tap"]["config"]["start_date"] = "2000-01-01"
    path = folder / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def stage_incr(ctx: Context) -> None:
    """One scheduled `loyalty run` with nothing new, after a first full run: the whole cron
    job (start-up, config check, login, one page per stream, commit) against the schedule."""
    import os
    import subprocess
    import time

    from bench.emulator import running

    sizes = QUICK_INCR_DATA if ctx.quick else INCR_DATA
    row = Row("incr", "loyalty run, nothing new (incremental)", OURS)
    row.config = (
        f"pipelines.yaml {INCR_PIPELINE} as shipped (env sandbox), all four streams, after a "
        "first full run; emulator " + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
    )
    missing = _ours_e2e_missing()
    if missing:
        ctx.not_available(row, missing)
        return
    folder = ctx.scratch("incremental")
    with running(
        sizes["journals"], sizes["customers"], ctx.seed, sizes["tickets"], sizes["memberships"]
    ) as flexpos:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "FLEXPOS_"))},
            **flexpos,
            "LOYALTY_STORE": str(folder / "store.duckdb"),
        }
        cmd = [
            str(our_script("loyalty")),
            *("-f", str(_shipped_pipelines(folder)), "--state-dir", str(folder / ".loyalty")),
            *("run", INCR_PIPELINE, "--env", "sandbox"),
        ]
        started = time.monotonic()
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        first_s = time.monotonic() - started
        if first.returncode != 0:
            last = (first.stderr.strip().splitlines() or ["no output"])[-1]
            ctx.not_available(row, f"the first full run failed: {last}")
            return
        loaded = count_table_rows(folder / "store.duckdb", "order_lines")
        row.n = row.rows_expected = loaded

        def unchanged(_scratch: Path, _run: object) -> int:
            return count_table_rows(folder / "store.duckdb", "order_lines")

        measure(ctx, row, lambda _s: cmd, stdin=None, verify=unchanged, env=env)
        # Nothing moved, so records per second would only restate the store's size.
        row.records_per_s = None
        row.note = (
            "N = order lines already in the store (none added); wall = the whole cron job; "
            f"the first full run took {first_s:.1f} s"
        )
