"""`make demo`: sandbox up, every demo pipeline into ./loyalty.duckdb, a summary of what landed.

Runs the same `loyalty run` a data engineer would, against the emulators started in-process
(every one in sandbox/registry.py, with the one export block `loyalty sandbox` prints), so a
fresh clone shows the whole path (tap | mapper | target, state, run record) without any
credentials.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb

from sandbox.launcher import RunningSandbox, start_sandbox
from sandbox.registry import emulators, env_prefixes
from singer_kit.dates import now
from target_loyalty_store.segments import catalog, query

ROOT = Path(__file__).resolve().parents[1]
# Run in this order (a push pipeline reads what an earlier one loaded); one line per pipeline.
PIPELINES: tuple[str, ...] = ("flexpos_to_store",)
TABLES = ("contacts", "contact_ids", "order_lines", "orders", "_rejects", "_runs")
# A few of the guide's segments (docs/segments.md), with the parameters the demo shows.
DEMO_SEGMENTS: tuple[tuple[str, dict[str, object]], ...] = (
    ("event_then_dining", {}),
    ("booked_more_than", {"times": 2}),
    ("tickets_in_one_order", {"more_than": 3}),
    ("booked_channel", {"channel": "desk"}),
    ("total_amount", {"at_least": 2000, "currency": "DKK"}),
    ("updated_profile", {"days": 30}),
)

Section = Callable[[duckdb.DuckDBPyConnection, RunningSandbox | None], list[str]]
# Each source's or destination's own lines of the summary, in PIPELINES order. A section may
# read the store and, when given the sandbox, what an emulator received (the summary runs
# before the emulators stop; tests call summary() on a store alone).
SECTIONS: tuple[Section, ...] = ()


def _loyalty() -> str:
    local = Path(sys.executable).parent / "loyalty"
    return str(local) if local.exists() else "loyalty"


def run_pipeline(pipeline: str, env: dict[str, str]) -> int:
    """`loyalty run <pipeline> --env sandbox --full-refresh`; its progress goes to stderr.

    Full refresh because each demo starts a fresh emulator: the load is an idempotent upsert,
    so re-running the demo never duplicates anything in the store.
    """
    cmd = [_loyalty(), "-f", str(ROOT / "pipelines.yaml"), "run", pipeline, "--env", "sandbox"]
    print("$ " + " ".join(["loyalty", *cmd[3:], "--full-refresh"]), flush=True)
    return subprocess.run([*cmd, "--full-refresh"], cwd=ROOT, env=env, check=False).returncode


def write_report(env: dict[str, str]) -> int:
    """`loyalty report --env sandbox --out report.html`: the page the summary points to."""
    report = ROOT / "report.html"
    cmd = [_loyalty(), "-f", str(ROOT / "pipelines.yaml"), "report", "--env", "sandbox"]
    rc = subprocess.run(
        [*cmd, "--out", str(report)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False
    ).returncode
    if rc == 0:
        print(f"\nThe run report (open it in a browser): {report}")
    return rc


def summary(db: Path, sandbox: RunningSandbox | None = None) -> str:
    """Rows per table, one contact with its orders, each source's section, where to look next."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = [f"\nThe loyalty store {db}:"]
        for table in TABLES:
            (n,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            out.append(f"  {table:<12} {n:>7} rows")
        sample = con.execute(
            """
            SELECT c.contact_id, c.first_name, c.last_name, c.email, c.city,
                   c.is_club_member, c.newsletter, count(*) AS orders
            FROM contacts c JOIN orders o ON o.contact_id = c.contact_id
            GROUP BY ALL
            ORDER BY count(DISTINCT o.has_return) DESC, max(o.tickets) > 0 DESC, orders DESC,
                     c.contact_id
            LIMIT 1
            """
        ).fetchone()
        if sample:
            cid, first, last, email, city, club, news, n_orders = sample
            out.append(f"\nA sample contact: {first} {last} <{email}>, {city}")
            out.append(f"  club member: {club}, newsletter: {news}, orders: {n_orders}")
            rows = con.execute(
                """
                SELECT order_id, strftime(ordered_at, '%Y-%m-%d %H:%M') AS at, channel,
                       lines, tickets, amount::DECIMAL(12, 2), currency, has_return, cancelled
                FROM orders WHERE contact_id = ? ORDER BY ordered_at
                """,
                [cid],
            ).fetchall()
            out.append(
                f"  {'ordered (UTC)':<17} {'channel':<8} {'lines':>5} {'tickets':>7} "
                f"{'amount':>10} cur  note"
            )
            for _oid, at, channel, lines, tickets, amount, cur, ret, cancelled in rows:
                note = "return" if ret else ("cancelled" if cancelled else "")
                out.append(
                    f"  {at:<17} {channel or '-':<8} {lines:>5} {tickets:>7} {amount:>10} "
                    f"{cur:<4} {note}"
                )
        out.append("\nSegments (loyalty segment list; members of each):")
        segments = catalog()
        for name, params in DEMO_SEGMENTS:
            segment = segments[name]
            args = {**params, "as_of": now()}
            _, members = query(con, segment, args)
            shown = " ".join(f"--param {k}={v}" for k, v in params.items())
            out.append(f"  {len(members):>5}  {name} {shown}".rstrip())
            out.append(f"         {segment.question}")
        for section in SECTIONS:
            out += section(con, sandbox)
        reasons = con.execute(
            "SELECT stream, reason, count(*) FROM _rejects GROUP BY ALL ORDER BY 3 DESC LIMIT 5"
        ).fetchall()
        if reasons:
            out.append("\nNot loaded (kept in _rejects with the record and the reason):")
            out += [f"  {n:>5} {stream}: {reason}" for stream, reason, n in reasons]
        out.append(
            "\nWhere to look next:\n"
            "  .venv/bin/loyalty status                 the run just recorded\n"
            "  .venv/bin/loyalty segment show event_then_dining   a segment's members\n"
            "  .venv/bin/loyalty state show flexpos_to_store   its saved bookmarks\n"
            '  .venv/bin/python -c "import duckdb; '
            "duckdb.connect('loyalty.duckdb', read_only=True).sql('FROM orders LIMIT 5').show()\"\n"
            "  .venv/bin/loyalty sandbox                start the emulators, then\n"
            "  .venv/bin/loyalty run flexpos_to_store --env sandbox   (incremental runs)\n"
            "  docs/architecture.md, docs/store-streams.md, docs/segments.md, pipelines.yaml"
        )
        return "\n".join(out)
    finally:
        con.close()


def main() -> int:
    """Start the emulators, run the pipelines, print the summary, stop the emulators."""
    titles = ", ".join(e.title for e in emulators().values())
    print(f"Starting the sandbox emulators ({titles}) on 127.0.0.1...")
    with start_sandbox() as sb:
        stale = ("LOYALTY_", *env_prefixes())  # a shell's exports of an earlier sandbox
        env = {k: v for k, v in os.environ.items() if not k.startswith(stale)}
        env.update(sb.env())
        for pipeline in PIPELINES:
            rc = run_pipeline(pipeline, env)
            if rc != 0:
                print(
                    f"\nThe demo run of {pipeline} failed (exit {rc}); see the message above.",
                    file=sys.stderr,
                )
                return rc
        print(summary(ROOT / "loyalty.duckdb", sb))
        return write_report(env)


if __name__ == "__main__":
    sys.exit(main())
