"""What a person sees: the real `loyalty run` / `loyalty backfill` against the FlexPOS emulator,
once on a real pseudo-terminal (the live display) and once through pipes (the plain lines a
cron or CI log keeps), plus the `--json` and `--quiet` forms for machines."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time

from singer_kit.dates import now
from tests.e2e.conftest import LOYALTY, StoreProject

CURSOR_UP = "\x1b[1A"  # how rich's live display redraws its lines in place
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PLAIN_PROGRESS = re.compile(r"^  progress \[(tap|target)\] ", re.MULTILINE)


def on_terminal(project: StoreProject, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run `loyalty ...` with stdin, stdout and stderr on a new 120x40 pseudo-terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [LOYALTY, "-f", str(project.root / "pipelines.yaml"), *args],
        cwd=project.root,
        env={**project.env, "TERM": "xterm-256color"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        os.close(master)


def last_frame(text: str) -> list[str]:
    """The screen's lines after the last redraw, without colours: what stays on screen."""
    tail = text.rsplit(CURSOR_UP, 1)[-1]
    return [ANSI.sub("", line).strip() for line in tail.replace("\r", "").split("\n")]


def store_counts(project: StoreProject) -> dict[str, int]:
    return {
        table: project.query(f"SELECT count(*) FROM {table}")[0][0]
        for table in ("contacts", "order_lines")
    }


def test_run_on_a_terminal_shows_a_live_line_per_stream_and_the_summary_stays(
    sandbox, store_project
):
    project = store_project(sandbox.env())
    rc, text = on_terminal(project, "run", "flexpos_to_store", "--env", "sandbox")
    assert rc == 0, text
    assert CURSOR_UP in text  # redrawn in place, not appended
    assert not PLAIN_PROGRESS.search(text)  # the log lines are not printed on a terminal
    frame = last_frame(text)
    rows = {line.split()[0]: line.split() for line in frame if "rec/s" in line}
    counts = store_counts(project)
    # One line per stream: what the tap read, and what the store loaded (= its rows).
    assert set(rows) == {
        "customers",
        "journals",
        "tickets",
        "memberships",
        "contacts",
        "order_lines",
    }
    for table, n in counts.items():
        _name, what, records, rate, _unit, elapsed = rows[table]
        assert (what, int(records.replace(",", ""))) == ("loaded", n)
        assert float(rate.replace(",", "")) > 0
        assert re.fullmatch(r"\d+:\d\d:\d\d", elapsed)
    assert rows["customers"][1] == "read"
    summary = next(line for line in frame if "succeeded" in line)
    assert f"contacts={counts['contacts']}" in summary
    assert f"order_lines={counts['order_lines']}" in summary


def test_run_through_a_pipe_keeps_the_plain_greppable_lines(sandbox, store_project):
    project = store_project(sandbox.env())
    result = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr + result.stdout
    counts = store_counts(project)
    committed = [
        line for line in result.stderr.splitlines() if line.startswith("  progress [target] ")
    ]
    assert committed[-1] == (
        f"  progress [target] committed contacts={counts['contacts']}, "
        f"order_lines={counts['order_lines']}"
    )
    assert re.search(r"^  progress \[tap\] customers=\d+", result.stderr, re.MULTILINE)
    assert result.stdout.startswith("loyalty: flexpos_to_store (env sandbox) succeeded: ")


def _window(days: int) -> tuple[str, ...]:
    """--start/--end: `days` days from 45 days before the sandbox's pinned clock, so a backfill
    stays inside the history the tap serves whatever date the suite runs at."""
    start = (now() - dt.timedelta(days=45)).date()
    return ("--start", start.isoformat(), "--end", (start + dt.timedelta(days=days)).isoformat())


def test_backfill_on_a_terminal_shows_windows_done_of_total_with_an_eta(sandbox, store_project):
    project = store_project(sandbox.env())
    args = ("--env", "sandbox", *_window(31), "--window", "11d")
    rc, text = on_terminal(project, "backfill", "flexpos_to_store", *args)
    assert rc == 0, text
    plain = ANSI.sub("", text)
    # While it works: windows done of the total, with an ETA once a window has taken its time.
    assert re.search(r"windows 1/3 \S+ ETA \d+:\d\d:\d\d", plain), plain
    frame = last_frame(text)
    assert any(line.startswith("windows 3/3") and line.endswith("done") for line in frame)
    assert "loyalty: backfill of flexpos_to_store finished; the saved state was not touched" in (
        frame
    )
    loaded = {
        line.split()[0]: int(line.split()[2].replace(",", ""))
        for line in frame
        if " loaded " in line
    }
    # The stream lines add up the windows; overlapping contacts are upserts, so the store
    # holds at most what was loaded.
    counts = store_counts(project)
    assert loaded["order_lines"] == counts["order_lines"]
    assert loaded["contacts"] >= counts["contacts"] > 0

    # Run again: every window is skipped, and the bar still ends full.
    rc, text = on_terminal(project, "backfill", "flexpos_to_store", *args)
    assert rc == 0, text
    assert "windows 3/3 (3 skipped)" in "\n".join(last_frame(text))


def test_json_is_one_object_on_stdout_and_quiet_prints_only_warnings(sandbox, store_project):
    project = store_project(sandbox.env())
    result = project.run("run", "flexpos_to_store", "--env", "sandbox", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # exactly one JSON document, nothing around it
    counts = store_counts(project)
    assert summary["exit_code"] == 0 and summary["outcome"] == "success"
    assert summary["records"] == counts
    assert summary["rejects"] == project.query("SELECT count(*) FROM _rejects")[0][0] > 0
    assert summary["env"] == "sandbox" and summary["error"] is None
    (record,) = [r for r in json.loads(project.run("status", "--json").stdout)]
    assert record["run_id"] == summary["run_id"]
    # --quiet: no progress, no result line; the reject warning still reaches stderr.
    assert all(line.startswith("warning: ") for line in result.stderr.splitlines())

    backfill = project.run(
        "backfill",
        "flexpos_to_store",
        *("--env", "sandbox", *_window(20), "--window", "10d"),
        "--json",
    )
    assert backfill.returncode == 0, backfill.stderr
    summary = json.loads(backfill.stdout)
    assert [w["status"] for w in summary["windows"]] == ["done", "done"]
    assert (summary["windows_total"], summary["windows_done"]) == (2, 2)
    assert summary["records"]["order_lines"] == sum(
        w["records"]["order_lines"] for w in summary["windows"]
    )
    # Without --quiet the progress and the window lines go to stderr, not into the JSON.
    assert "window 2/2 " in backfill.stderr and "  progress [target] " in backfill.stderr
