"""`loyalty run` with fake Singer processes: pipes, state, failures, locks, secrets."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.loyalty.conftest import wait_for, zombie


def test_success_saves_the_targets_last_state_and_records_the_run(fake_project):
    result = fake_project.run("run", "things")
    assert result.returncode == 0, result.stderr
    assert fake_project.committed() == list(range(10))
    assert fake_project.saved_state() == {"bookmarks": {"things": {"last": 9}}}
    (record,) = fake_project.runs()
    assert record["outcome"] == "success"
    assert record["pipeline"] == "things" and record["env"] == "test"
    assert record["records"] == {"things": 10}
    assert record["ended_at"] >= record["started_at"]
    assert "things=10" in result.stdout
    # The private config files are gone once the run ends.
    assert list((fake_project.state_dir / "tmp").iterdir()) == []
    log = Path(record["log"]).read_text()
    assert "config mode 0o600" in log


def test_incremental_run_resumes_from_saved_state_and_full_refresh_ignores_it(fake_project):
    assert fake_project.run("run", "things").returncode == 0
    fake_project.write(tap={"count": 14}, target={"wrap_state": True})
    result = fake_project.run("run", "things")
    assert result.returncode == 0, result.stderr
    assert fake_project.committed() == list(range(14))  # only 10..13 were added
    assert fake_project.saved_state() == {"bookmarks": {"things": {"last": 13}}}

    result = fake_project.run("run", "things", "--full-refresh")
    assert result.returncode == 0, result.stderr
    assert fake_project.committed() == list(range(14)) + list(range(14))
    assert fake_project.runs()[-1]["full_refresh"] is True


def test_tap_failure_names_the_tap_redacts_the_secret_and_keeps_committed_state(fake_project):
    fake_project.write(tap={"count": 20, "fail_at": 12})
    result = fake_project.run("run", "things")
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()[-1]
    assert "failed at step tap" in err
    assert "RuntimeError: fetch failed (client_secret=***)" in err
    assert fake_project.secret not in result.stderr + result.stdout
    # Records 0..9 were committed with their STATE; 10 and 11 never got one.
    assert fake_project.saved_state() == {"bookmarks": {"things": {"last": 9}}}
    record = fake_project.runs()[-1]
    assert record["outcome"] == "failed" and record["failed_step"] == "tap"
    assert fake_project.secret not in Path(record["log"]).read_text()
    assert fake_project.secret not in json.dumps(record)


def test_target_failure_is_blamed_on_the_target_not_the_broken_pipe_upstream(fake_project):
    fake_project.write(tap={"count": 1000, "state_every": 100}, target={"fail_after_commits": 3})
    result = fake_project.run("run", "things")
    assert result.returncode == 1
    assert "failed at step target" in result.stderr
    assert "ValueError: disk full while writing batch" in result.stderr
    # Three batches committed: the bookmark is the third STATE, never later.
    assert fake_project.committed() == list(range(300))
    assert fake_project.saved_state() == {"bookmarks": {"things": {"last": 299}}}

    # The next run picks up exactly after the committed part: nothing lost, nothing doubled.
    fake_project.write(tap={"count": 1000, "state_every": 100})
    assert fake_project.run("run", "things").returncode == 0
    assert fake_project.committed() == list(range(1000))


def test_mapper_failure_is_reported_with_its_error_line(fake_project):
    fake_project.write(mapper={"fail_at_line": 3})
    result = fake_project.run("run", "things")
    assert result.returncode == 1
    assert "failed at step mapper: fake-mapper exited with code 2: MappingError" in result.stderr
    assert fake_project.saved_state() is None


def test_target_killed_part_way_then_rerun_loses_and_doubles_nothing(fake_project):
    fake_project.write(tap={"count": 400, "state_every": 20, "sleep": 0.01})
    proc = fake_project.popen("run", "things")
    state_file = fake_project.state_dir / "test" / "things" / "state.json"
    wait_for(state_file.exists)
    log = next((fake_project.state_dir / "runs").glob("*.log"))
    target_pid = int(
        next(
            line for line in log.read_text().splitlines() if "target started, pid" in line
        ).split()[-1]
    )
    os.kill(target_pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "failed at step target: fake-target was killed by SIGKILL" in err
    committed = fake_project.committed()
    assert 0 < len(committed) < 400
    assert fake_project.saved_state() == {"bookmarks": {"things": {"last": committed[-1]}}}

    fake_project.write(tap={"count": 400, "state_every": 20})
    assert fake_project.run("run", "things").returncode == 0
    assert fake_project.committed() == list(range(400))


def test_second_run_while_one_is_running_exits_at_once(fake_project):
    fake_project.write(tap={"count": 60, "sleep": 0.05})
    first = fake_project.popen("run", "things", env={"LOYALTY_PROGRESS_SECONDS": "0.5"})
    lock = fake_project.state_dir / "test" / "things" / "run.lock"
    wait_for(lambda: lock.exists() and lock.read_text().strip())
    started = time.monotonic()
    second = fake_project.run("run", "things")
    assert time.monotonic() - started < 10
    assert second.returncode == 75
    assert "already running" in second.stderr and f"pid {first.pid}" in second.stderr
    # Another environment of the same pipeline is not blocked by it.
    other = fake_project.run("run", "things", "--env", "other", env={"OTHER_SECRET": "x"})
    assert other.returncode == 0
    _, first_err = first.communicate(timeout=60)
    assert first.returncode == 0
    # A long run shows a heartbeat even when its steps log nothing.
    assert "progress: running" in first_err and "still running: tap, mapper, target" in first_err


def test_a_killed_runner_leaves_no_stale_lock(fake_project):
    # No STATE for 30 s: nothing would make the children notice the runner is gone.
    fake_project.write(tap={"count": 1500, "sleep": 0.02, "state_every": 100000})
    proc = fake_project.popen("run", "things")
    # The run record is written a moment before the log is opened.
    wait_for(lambda: list(fake_project.state_dir.glob("runs/*.log")))
    log = next((fake_project.state_dir / "runs").glob("*.log"))
    # Past start-up (a child still starting would die on its first stderr line anyway).
    wait_for(lambda: "config mode" in log.read_text() and "target started" in log.read_text())
    time.sleep(0.5)
    tap_pid = int(
        next(x for x in log.read_text().splitlines() if "tap started, pid" in x).split()[-1]
    )
    proc.kill()
    proc.communicate(timeout=30)
    # The children die with the runner, so they cannot race the next run for the store.
    wait_for(lambda: not Path(f"/proc/{tap_pid}").exists() or zombie(tap_pid), timeout=8)
    fake_project.write(tap={"count": 10})
    result = fake_project.run("run", "things")
    assert result.returncode == 0, result.stderr
    status = fake_project.run("status")
    assert "interrupted" in status.stdout and "success" in status.stdout


def test_sigterm_stops_the_run_cleanly(fake_project):
    fake_project.write(tap={"count": 1500, "sleep": 0.02, "state_every": 50})
    proc = fake_project.popen("run", "things")
    state_file = fake_project.state_dir / "test" / "things" / "state.json"
    wait_for(state_file.exists)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted; state stays at the last commit" in err
    (record,) = fake_project.runs()
    assert record["outcome"] == "interrupted" and record["ended_at"]
    assert list((fake_project.state_dir / "tmp").iterdir()) == []
    # The saved bookmark is one the target committed.
    last = fake_project.saved_state()["bookmarks"]["things"]["last"]
    assert last in fake_project.committed() and last < 1499


def test_dry_run_prints_three_commands_without_secrets_and_starts_nothing(fake_project):
    result = fake_project.run("run", "things", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if not line.startswith("#")] == [
        "tap",
        "mapper",
        "target",
    ]
    assert '"client_secret": "***"' in result.stdout
    assert fake_project.secret not in result.stdout + result.stderr
    assert not fake_project.out.exists()
    assert not (fake_project.state_dir / "runs").exists()


def test_missing_executable_fails_with_one_line(fake_project):
    (fake_project.root / "bin" / "fake-target").unlink()
    result = fake_project.run("run", "things")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: pipelines.yaml:22: pipelines.things.target: executable 'bin/fake-target' "
        "not found (in the venv or on PATH)"
    )
