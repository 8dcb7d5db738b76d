"""`loyalty run` while an analyst holds the store: exit 75 (cron retries), then it loads."""

from __future__ import annotations

import subprocess
import sys

import duckdb

HOLDER = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
    "print('held', flush=True); sys.stdin.readline(); con.close()"
)


def test_a_store_held_open_fails_the_run_with_75_and_the_next_run_loads(sandbox, store_project):
    project = store_project(sandbox.env(), lock_timeout_seconds=1)
    duckdb.connect(str(project.db)).close()  # the store exists; an analyst opens it
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project.db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        held = project.run("run", "flexpos_to_store", "--env", "sandbox")
    finally:
        holder.communicate("close\n", timeout=30)
    assert held.returncode == 75, held.stderr
    assert "is locked by " in held.stderr and f"(PID {holder.pid})" in held.stderr
    assert not (project.state_dir / "sandbox" / "flexpos_to_store" / "state.json").exists()

    again = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert again.returncode == 0, again.stderr
    assert project.query("SELECT count(*) FROM contacts")[0][0] > 0
