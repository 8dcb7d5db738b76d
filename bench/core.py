"""Shared pieces of the harness: a result row, the run context, availability checks."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.measure import Run, run_measured
from singer_kit.redact import MASK, URL_PASSWORD

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUR_BIN = Path(sys.executable).parent

# Runs shorter than this are repeated (median of ``repeat``); longer ones are measured once so
# the whole bench stays inside its 15-minute budget.
REPEAT_BELOW_S = 15.0

OURS, PEER, LIMIT, FLOOR, SOURCE = "ours", "peer", "limit", "floor", "source"


@dataclass
class Row:
    """One line of the results table: one tool on one stage."""

    stage: str
    tool: str
    role: str
    n: int = 0
    status: str = "ok"  # ok | failed | not available | lost rows
    reason: str = ""
    wall_s: float | None = None
    walls_s: list[float] = field(default_factory=list)
    records_per_s: float | None = None
    peak_rss_mib: float | None = None
    tree_rss_mib: float | None = None
    rows_out: int | None = None
    rows_expected: int | None = None
    config: str = ""
    note: str = ""

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class Context:
    """Options and shared state of one bench run."""

    size: int
    quick: bool
    repeat: int
    seed: int
    work: Path
    data_dir: Path
    roles: tuple[str, ...] = (OURS, PEER, LIMIT, FLOOR, SOURCE)
    memory_sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000, 5_000_000])
    log: Callable[[str], None] = field(default=lambda msg: print(msg, flush=True))
    rows: list[Row] = field(default_factory=list)
    peer_status: dict[str, tuple[bool, str]] = field(default_factory=dict)
    served_lines: dict[int, int] = field(default_factory=dict)  # emulator journals -> lines

    def scratch(self, name: str) -> Path:
        """A fresh empty folder for one run (fresh DuckDB file every time)."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work))
        return path

    def add(self, row: Row) -> Row:
        """Record a row and print one progress line for it (flushed: make buffers stdout)."""
        self.rows.append(row)
        if row.wall_s is not None:
            rps = f"{row.records_per_s:,.0f} rec/s" if row.records_per_s else "-"
            flag = "" if row.status == "ok" else f"  [{row.status}: {row.reason}]"
            self.log(
                f"[bench] {row.stage:<6} {row.tool[:36]:<36} N={row.n:<9,} {row.wall_s:7.2f} s "
                f"{rps:>16}  peak {row.peak_rss_mib:6.1f} MiB{flag}"
            )
        else:
            self.log(f"[bench] {row.stage:<6} {row.tool[:36]:<36} {row.status}: {row.reason}")
        return row

    def not_available(self, row: Row, reason: str) -> Row:
        """Record a row that could not be measured (a missing executable or peer), and why."""
        row.status, row.reason = "not available", reason
        return self.add(row)


def write_json(path: Path, obj: object) -> Path:
    """A config or catalog file for one run; returns its path for the command line."""
    path.write_text(json.dumps(obj))
    return path


def our_script(name: str) -> Path:
    """Path of one of our console scripts in the project's venv."""
    return OUR_BIN / name


def check_our_executable(name: str, module: str) -> str | None:
    """None when ``name`` is installed and answers ``--about``; else the reason it is not."""
    exe = our_script(name)
    if not exe.exists():
        return f"{name} is not installed in {OUR_BIN}"
    probe = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
        return f"{name}: {module} does not import yet ({last})"
    about = subprocess.run(
        [str(exe), "--about"], capture_output=True, text=True, check=False, timeout=60
    )
    if about.returncode != 0:
        last = (about.stderr.strip().splitlines() or ["--about failed"])[-1]
        return f"{name} --about failed ({last})"
    return None


@dataclass
class Plan:
    """How to run one row's tool: what ``measure`` takes, kept for interleaved rounds.

    ``cleanup(scratch)`` runs after each run's check (e.g. drop the run's database).
    """

    row: Row
    make_cmd: Callable[[Path], list[str]]
    stdin: Path | None
    verify: Callable[[Path, Run], int | None] | None = None
    stdout_name: str | None = None
    env: dict[str, str] | None = None
    timeout: float = 900.0
    keep: bool = False
    cleanup: Callable[[Path], None] | None = None


def measure(
    ctx: Context,
    row: Row,
    make_cmd: Callable[[Path], list[str]],
    *,
    stdin: Path | None,
    verify: Callable[[Path, Run], int | None] | None = None,
    stdout_name: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900.0,
    keep: bool = False,
) -> Row:
    """Run one tool (fresh scratch folder each time), fill ``row``; repeat short runs.

    ``make_cmd(scratch)`` builds the command; ``verify(scratch, run)`` returns the rows or
    records the tool actually produced (checked against ``row.rows_expected``).
    """
    plan = Plan(row, make_cmd, stdin, verify, stdout_name, env, timeout, keep)
    if row.role not in ctx.roles:
        row.status, row.reason = "skipped", "--roles"
        return ctx.add(row)
    runs: list[Run] = []
    for attempt in range(max(1, ctx.repeat)):
        run = _attempt(ctx, plan, check=attempt == 0)
        if run is None:
            return ctx.add(row)
        runs.append(run)
        if run.wall_s >= REPEAT_BELOW_S:
            break
    return ctx.add(_finish(row, runs))


def measure_interleaved(ctx: Context, plans: list[Plan]) -> list[Row]:
    """Run the plans in turn, round after round (``ctx.repeat`` rounds), and fill their rows.

    On a shared host the load moves from one minute to the next; tools measured next to each
    other in every round see the same load, so the per-round ratios (kept in ``row.walls_s``
    order) mean something even when the walls do not. Every run is checked, not just the
    first: each must load every row. A tool that fails drops out; the others go on.
    """
    runs: dict[int, list[Run]] = {id(p): [] for p in plans}
    live = [p for p in plans if p.row.role in ctx.roles]
    for plan in plans:
        if plan not in live:
            plan.row.status, plan.row.reason = "skipped", "--roles"
            ctx.add(plan.row)
    for _round in range(max(1, ctx.repeat)):
        for plan in list(live):
            run = _attempt(ctx, plan, check=True)
            if run is None:
                live.remove(plan)
                ctx.add(plan.row)
            else:
                runs[id(plan)].append(run)
    for plan in live:
        ctx.add(_finish(plan.row, runs[id(plan)]))
    return [p.row for p in plans]


def _attempt(ctx: Context, plan: Plan, *, check: bool) -> Run | None:
    """One run in a fresh scratch folder; None (the row says why) when it failed."""
    row = plan.row
    scratch = ctx.scratch(row.tool.replace(" ", "_").replace("/", "_"))
    try:
        out = scratch / plan.stdout_name if plan.stdout_name else None
        run = run_measured(
            plan.make_cmd(scratch),
            stdin=plan.stdin,
            stdout=out,
            env=plan.env,
            cwd=scratch,
            timeout=plan.timeout,
        )
        if not run.ok:
            row.status = "failed"
            why = "timed out" if run.timed_out else f"exit {run.returncode}"
            row.reason = f"{why}: {_one_line(run.stderr_tail)}"
            return None
        if check and plan.verify is not None:
            try:
                got = plan.verify(scratch, run)
            except Exception as exc:  # a broken result must show, not crash the bench
                row.status = "failed"
                row.reason = f"could not check the output: {_one_line(str(exc))}"
                return None
            if row.rows_out is None or got != row.rows_expected:
                row.rows_out = got  # the worst run's count is the one that shows
        return run
    finally:
        if plan.cleanup is not None:
            plan.cleanup(scratch)
        if not plan.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _finish(row: Row, runs: list[Run]) -> Row:
    """Walls, median, peaks, rate and the lost-rows flag from a row's successful runs."""
    walls = [run.wall_s for run in runs]
    row.walls_s = [round(w, 3) for w in walls]
    row.wall_s = statistics.median(walls)
    row.peak_rss_mib = max(run.peak_rss_mib for run in runs)
    row.tree_rss_mib = max(run.tree_rss_mib for run in runs)
    row.records_per_s = row.n / row.wall_s if row.wall_s else None
    expected, got = row.rows_expected, row.rows_out
    if expected is not None and got is not None and got != expected:
        row.status = "lost rows" if got < expected else "extra rows"
        row.reason = f"{got:,} of {expected:,} rows"
    return row


def _one_line(text: str) -> str:
    """The last line of a tool's output, any URL password in it masked (results are shared)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return URL_PASSWORD.sub(rf"\1{MASK}@", lines[-1] if lines else "no error output")[:300]


def count_table_rows(db: Path, table: str) -> int:
    """Rows in ``table`` (any schema) of a DuckDB file, read by a separate process."""
    code = (
        "import duckdb,sys\n"
        "c=duckdb.connect(sys.argv[1], read_only=True)\n"
        't=c.execute("select table_schema from information_schema.tables '
        'where table_name=?", [sys.argv[2]]).fetchall()\n'
        "if not t: sys.exit(f'no table {sys.argv[2]} in {sys.argv[1]}')\n"
        'print(c.execute(f\'select count(*) from "{t[0][0]}"."{sys.argv[2]}"\').fetchone()[0])\n'
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(db), table],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(_one_line(proc.stderr) or f"no table {table}")
    return int(proc.stdout.strip())


def count_records(path: Path, stream: str | None = None) -> int:
    """RECORD messages in a Singer file (optionally of one stream), counted without parsing."""
    needle = b'"type":"RECORD"'
    wanted = f'"stream":"{stream}"'.encode() if stream else None
    count = 0
    with path.open("rb") as fh:
        for line in fh:
            compact = line.replace(b'": "', b'":"').replace(b", ", b",")
            if needle in compact and (wanted is None or wanted in compact):
                count += 1
    return count
