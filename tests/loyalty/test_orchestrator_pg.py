"""State, run records, finished windows and the run lock in PostgreSQL (issue 17), with the
fake Singer processes and a real server: a pipeline whose target's `database` is a PostgreSQL
URL keeps all of it in that database, so "another machine" (another state directory) sees
the same bookmark and lock."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import psycopg
import pytest

from tests.loyalty.conftest import wait_for

# The run lock held: a session advisory lock of a runner's lock connection (not the moment's
# transaction lock under which a first connection creates the tables).
RUN_LOCK_HELD = (
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'loyalty test/%'"
)
WINDOWS = ("--start", "2026-01-01", "--end", "2026-01-05", "--window", "1d", "--no-batch")


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as con:
        cur = con.execute(sql)
        return cur.fetchall() if cur.description else []


def on_pg(fake_project, pg_url: str, **tap: object) -> None:
    """The fake pipeline with its store (the target's `database`) in the PostgreSQL database."""
    fake_project.env["FAKE_STORE_URL"] = pg_url
    fake_project.write(tap={"count": 10, **tap}, target={"database": "${FAKE_STORE_URL}"})


def committed_rows(path: Path) -> set[tuple[str, int]]:
    return {(r.get("window", ""), r["id"]) for r in map(json.loads, path.read_text().splitlines())}


def test_a_run_on_another_machine_continues_from_the_bookmark_saved_in_postgresql(
    fake_project, pg_url, tmp_path
):
    on_pg(fake_project, pg_url)
    first = fake_project.run("run", "things")
    assert first.returncode == 0, first.stderr
    assert not (fake_project.state_dir / "test" / "things").exists()  # nothing on this disk
    (value,) = query(pg_url, "SELECT value::text FROM _loyalty_state WHERE state_key='test/things'")
    assert json.loads(value[0]) == {"bookmarks": {"things": {"last": 9}}}

    # Another machine: its own state directory, the same database.
    elsewhere = ("--state-dir", str(tmp_path / "machine-b"))
    on_pg(fake_project, pg_url, count=15)
    second = fake_project.run(*elsewhere, "run", "things", "--json")
    assert second.returncode == 0, second.stderr
    log = Path(json.loads(second.stdout)["log"]).read_text()
    assert "fake-tap: resuming at 10" in log
    # The target was told the key to save each STATE under in its own commit.
    assert "fake-target: state key test/things" in log
    assert fake_project.committed() == list(range(15))

    shown = fake_project.invoke(*elsewhere, "state", "show", "things")
    assert json.loads(shown.stdout) == {"bookmarks": {"things": {"last": 14}}}
    status = fake_project.invoke("status", "--json")  # the first machine sees both runs
    assert [r["outcome"] for r in json.loads(status.stdout)] == ["success", "success"]
    assert fake_project.invoke("state", "set", "things", '{"bookmarks": {}}').returncode == 0
    assert json.loads(fake_project.invoke(*elsewhere, "state", "show", "things").stdout) == {
        "bookmarks": {}
    }
    assert fake_project.invoke("state", "clear", "things").returncode == 0
    assert query(pg_url, "SELECT count(*) FROM _loyalty_state") == [(0,)]
    assert pg_url.split("@")[0].split(":")[-1] not in status.stdout + log  # no password


def test_two_machines_never_run_one_pipeline_at_once(fake_project, pg_url, tmp_path):
    on_pg(fake_project, pg_url, count=60, sleep=0.05)
    first = fake_project.popen("run", "things")
    try:
        wait_for(lambda: query(pg_url, RUN_LOCK_HELD) == [(1,)])
        second = fake_project.run("--state-dir", str(tmp_path / "machine-b"), "run", "things")
        status = json.loads(fake_project.invoke("status", "--json").stdout)
    finally:
        first.communicate(timeout=60)
    assert second.returncode == 75
    line = second.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: pipeline 'things' (env test) is already running elsewhere (")
    assert f"on {socket.gethostname()[:20]}" in line and f"pid {first.pid}" in line
    assert [r["outcome"] for r in status] == ["running"]  # not "interrupted": its lock is held
    assert first.returncode == 0
    assert query(pg_url, "SELECT outcome FROM _loyalty_runs") == [("success",)]


def test_a_state_database_that_is_down_is_exit_75_without_the_password(fake_project):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    on_pg(fake_project, f"postgresql://loyalty:hunter2-secret@127.0.0.1:{port}/store")
    result = fake_project.run("run", "things", "--json")
    assert result.returncode == 75
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "temporary"
    assert "cannot open the PostgreSQL store postgresql://loyalty:***@127.0.0.1" in summary["error"]
    assert "hunter2" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_backfill_parallel_loads_what_sequential_loads_and_resumes_after_a_kill(
    fake_project, pg_url
):
    on_pg(fake_project, pg_url, count=10, sleep=0.1)
    one_by_one = fake_project.run("backfill", "things", *WINDOWS, "--json")
    assert one_by_one.returncode == 0, one_by_one.stderr
    expected = committed_rows(fake_project.out)
    assert len(expected) == 40

    side_by_side = fake_project.root / "parallel.jsonl"
    fake_project.write(
        tap={"count": 10, "sleep": 0.1},
        target={"database": "${FAKE_STORE_URL}", "out": str(side_by_side)},
    )
    result = fake_project.run("backfill", "things", *WINDOWS, "--parallel", "2", "--redo", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["windows_done"], summary["records"]) == (4, {"things": 40})
    assert [w["window"] for w in summary["windows"]] == [1, 2, 3, 4]
    assert committed_rows(side_by_side) == expected
    # Side by side indeed: the second window started before the first ended.
    first, second = sorted(summary["windows"], key=lambda w: w["window"])[:2]
    assert second["started_at"] <= first["ended_at"]
    # A window never moves the bookmark, nor tells the target a key to save it under.
    assert query(pg_url, "SELECT count(*) FROM _loyalty_state") == [(0,)]
    assert "fake-target: state key not given" in Path(first["log"]).read_text()

    # Killed part way (SIGKILL: no clean-up at all), then the same command resumes.
    query(pg_url, "DELETE FROM _loyalty_backfill_windows")
    side_by_side.unlink()
    killed = fake_project.popen("backfill", "things", *WINDOWS, "--parallel", "2")
    done = "SELECT count(*) FROM _loyalty_backfill_windows"
    wait_for(lambda: query(pg_url, done)[0][0] >= 1, timeout=60)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    recorded = query(pg_url, done)[0][0]
    assert recorded < 4
    resumed = fake_project.run("backfill", "things", *WINDOWS, "--parallel", "2", "--json")
    assert resumed.returncode == 0, resumed.stderr  # the killed run's lock went with it
    summary = json.loads(resumed.stdout)
    assert summary["windows_skipped"] == recorded
    assert summary["windows_done"] == 4 - recorded
    assert committed_rows(side_by_side) == expected
    runs = json.loads(fake_project.invoke("status", "--json", "-n", "50").stdout)
    assert "running" not in {r["outcome"] for r in runs}  # the killed ones: "interrupted"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"database": "store.duckdb"}, "is a DuckDB file (store.duckdb), which takes one writer"),
        ({}, "is not a database, which takes one writer at a time"),
    ],
)
def test_parallel_windows_need_a_postgresql_store(fake_project, target, expected):
    fake_project.write(target=target)
    result = fake_project.run("backfill", "things", *WINDOWS, "--parallel", "2")
    assert result.returncode == 2
    assert expected in result.stderr.strip().splitlines()[-1]
    assert not fake_project.out.exists()


def test_state_database_is_checked_by_validate(fake_project, pg_url):
    import yaml

    doc = yaml.safe_load(fake_project.pipelines.read_text())
    doc["environments"]["test"]["state_database"] = "state.duckdb"
    fake_project.pipelines.write_text(yaml.safe_dump(doc))
    result = fake_project.invoke("validate")
    assert result.returncode == 2
    assert "environments.test.state_database must be a PostgreSQL URL" in result.stderr

    doc["environments"]["test"]["state_database"] = "${FAKE_STATE_URL}"
    fake_project.pipelines.write_text(yaml.safe_dump(doc))
    result = fake_project.invoke("validate", "--env", "test", env={"FAKE_STATE_URL": "x.db"})
    assert result.returncode == 2 and "must be a PostgreSQL URL" in result.stderr

    # Set, it holds the state of a pipeline whose store is not PostgreSQL (push pipelines).
    result = fake_project.run("run", "things", env={"FAKE_STATE_URL": pg_url})
    assert result.returncode == 0, result.stderr
    assert query(pg_url, "SELECT state_key FROM _loyalty_state") == [("test/things",)]
    assert query(pg_url, "SELECT outcome FROM _loyalty_runs") == [("success",)]


def test_a_state_database_connection_lost_mid_run_stops_the_run_with_exit_75(fake_project, pg_url):
    on_pg(fake_project, pg_url, count=400, sleep=0.02)
    run = fake_project.popen("run", "things", "--json")
    saved = "SELECT count(*) FROM _loyalty_state"
    wait_for(lambda: query(pg_url, "SELECT to_regclass('_loyalty_state') IS NOT NULL")[0][0])
    wait_for(lambda: query(pg_url, saved) == [(1,)])
    # The server ends the runner's state connection (a restart, a failover, a proxy).
    query(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'loyalty state %'",
    )
    out, err = run.communicate(timeout=60)
    assert run.returncode == 75, err
    summary = json.loads(out)
    assert summary["outcome"] == "temporary"
    assert "failed at step runner: could not save the state" in summary["error"]
    assert "_loyalty_state 'test/things'" in summary["error"]
    assert "Traceback" not in err
    assert len(fake_project.committed()) < 400  # stopped at once, not at the end
    assert query(pg_url, "SELECT outcome FROM _loyalty_runs") == [("failed",)]


def test_sigterm_stops_every_window_of_a_parallel_backfill(fake_project, pg_url):
    on_pg(fake_project, pg_url, count=1000, sleep=0.02)
    proc = fake_project.popen("backfill", "things", *WINDOWS, "--parallel", "2", "--json")
    running = "SELECT count(*) FROM _loyalty_runs WHERE outcome = 'running'"
    wait_for(lambda: query(pg_url, "SELECT to_regclass('_loyalty_runs') IS NOT NULL")[0][0])
    wait_for(lambda: query(pg_url, running) == [(2,)])
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert json.loads(out)["outcome"] == "interrupted"
    outcomes = query(pg_url, "SELECT outcome FROM _loyalty_runs")
    assert outcomes == [("interrupted",), ("interrupted",)], err
    assert query(pg_url, "SELECT count(*) FROM _loyalty_backfill_windows") == [(0,)]
    assert list((fake_project.state_dir / "tmp").iterdir()) == []  # children gone, files too


def test_stores_in_two_schemas_of_one_database_never_block_each_other(fake_project, pg_url):
    # An agency's brands: one database, a schema per brand (search_path in the URL), the same
    # pipeline and environment names. Each has its own bookmark and its own lock.
    query(pg_url, "CREATE SCHEMA brand_a; CREATE SCHEMA brand_b")
    urls = {b: f"{pg_url}?options=-csearch_path%3D{b}" for b in ("brand_a", "brand_b")}
    on_pg(fake_project, urls["brand_a"], count=60, sleep=0.05)
    first = fake_project.popen("run", "things")
    try:
        wait_for(lambda: query(pg_url, RUN_LOCK_HELD) == [(1,)])
        second = fake_project.run(
            "--state-dir",
            str(fake_project.root / "brand-b"),
            "run",
            "things",
            env={"FAKE_STORE_URL": urls["brand_b"]},
        )
    finally:
        first.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), second.stderr
    for brand in urls:
        (row,) = query(pg_url, f"SELECT value::text FROM {brand}._loyalty_state")
        assert json.loads(row[0])["bookmarks"]["things"]["last"] == 59
