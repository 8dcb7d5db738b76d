"""`loyalty run` when the machine fails it: full disks, unreadable inputs, killed runners.

Each failure must end the run in bounded time with exit 1 and one line that names the file
and the OS error, never a traceback or a hang, and leave no secret or personal data behind.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.loyalty.conftest import LOYALTY, wait_for, zombie


def _small_files(limit: int):
    """preexec_fn: every file this process tree writes stops at ``limit`` bytes (EFBIG).

    A portable stand-in for a full disk: RLIMIT_FSIZE needs no root and no mount, and with
    SIGXFSZ ignored a write past the limit fails with an OSError just as ENOSPC does.
    """

    def _set() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return _set


def _run_with_small_files(
    fake_project, limit: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`loyalty run things` whose every written file stops at ``limit`` bytes."""
    return subprocess.Popen(
        [LOYALTY, "-f", str(fake_project.pipelines), "run", "things"],
        cwd=fake_project.root,
        env=fake_project.environ(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_small_files(limit),
    )


def _last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines, "no error line"
    return lines[-1]


def test_a_run_log_that_cannot_be_written_fails_the_run_at_once_instead_of_hanging(
    fake_project,
):
    # ~1 MB of stderr from the tap: the log stops growing at 64 KB, long before the tap ends.
    fake_project.write(tap={"chatter": 10_000, "count": 50})
    proc = _run_with_small_files(fake_project, 64 * 1024, {"LOYALTY_PROGRESS_SECONDS": "1"})
    started = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    (record,) = fake_project.runs()
    line = _last_line(err)
    assert line.startswith("Error: run of things (env test) failed at step runner: ")
    assert f"could not write the run log {record['log']}: File too large" in line
    assert record["outcome"] == "failed" and record["failed_step"] == "runner"
    assert "could not write the run log" in record["error"]
    # Nothing was committed after the failure, and the private configs are gone.
    assert fake_project.saved_state() is None
    assert list((fake_project.state_dir / "tmp").iterdir()) == []


def test_a_killed_batch_run_leaves_only_private_files_and_the_next_run_removes_them(
    fake_project,
):
    fake_project.write(tap={"count": 1500, "sleep": 0.02, "state_every": 100000})
    proc = fake_project.popen("run", "things", "--batch")
    wait_for(lambda: list(fake_project.state_dir.rglob("things-0001.jsonl.gz")))
    (batch_file,) = fake_project.state_dir.rglob("things-0001.jsonl.gz")
    # Personal data: readable by the owner only, in folders only the owner can enter.
    assert oct(batch_file.stat().st_mode & 0o777) == "0o600"
    assert _has_private_parent(batch_file.parent)
    log = next((fake_project.state_dir / "runs").glob("*.log"))
    tap_pid = int(
        next(x for x in log.read_text().splitlines() if "tap started, pid" in x).split()[-1]
    )
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: not Path(f"/proc/{tap_pid}").exists() or zombie(tap_pid), timeout=8)
    assert batch_file.exists()  # nobody could clean up after a SIGKILL

    fake_project.write(tap={"count": 10})
    result = fake_project.run("run", "things")
    assert result.returncode == 0, result.stderr
    assert not batch_file.exists()
    assert not list(fake_project.state_dir.rglob("*.jsonl.gz"))
    assert list((fake_project.state_dir / "tmp").iterdir()) == []


def _has_private_parent(path: Path) -> bool:
    """Some folder between the file and the state directory is closed to everyone else."""
    return any(p.stat().st_mode & 0o077 == 0 for p in [path, *path.parents][:4])


def test_a_password_inside_a_url_is_redacted_everywhere_like_any_secret(fake_project):
    password = "pw-Url-Secret-77"
    fake_project.write(tap={"api_url": f"http://loyal:{password}@127.0.0.1:9/api", "fail_at": 3})
    dry = fake_project.run("run", "things", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "http://loyal:***@127.0.0.1:9/api" in dry.stdout

    result = fake_project.run("run", "things")
    assert result.returncode == 1
    assert "fetch failed from http://loyal:***@127.0.0.1:9/api" in result.stderr
    (record,) = fake_project.runs()
    status = fake_project.run("status")
    as_json = fake_project.run("status", "--json")
    assert "http://loyal:***@" in status.stdout
    seen = {
        "dry run": dry.stdout + dry.stderr,
        "run output": result.stdout + result.stderr,
        "run record": json.dumps(record),
        "log": Path(record["log"]).read_text(),
        "status": status.stdout + status.stderr + as_json.stdout,
    }
    assert [where for where, text in seen.items() if password in text] == []


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run's last stderr line, which must be its one error line (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    line = _last_line(result.stderr)
    assert line.startswith("Error: "), result.stderr
    return line


def test_a_state_directory_that_cannot_be_written_is_one_line_naming_it(fake_project):
    # /sys refuses new folders even to root: a portable read-only place on Linux.
    result = fake_project.run("--state-dir", "/sys/loyalty-state", "run", "things")
    assert result.returncode == 1
    line = _one_error_line(result)
    assert (
        line == "Error: cannot use the state directory: /sys/loyalty-state: Operation not permitted"
    )
    assert not fake_project.out.exists()


@pytest.mark.parametrize("limit", [0, 600])
def test_a_full_state_directory_fails_the_run_with_one_line_naming_the_file(fake_project, limit):
    # 0: not even the lock's holder line can be written; 600: the lock can, the log not.
    proc = _run_with_small_files(fake_project, limit)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    line = _one_error_line(subprocess.CompletedProcess(proc.args, 1, "", err))
    assert str(fake_project.state_dir) in line and "File too large" in line, line
    assert not (fake_project.state_dir / "tmp").exists() or not list(
        (fake_project.state_dir / "tmp").iterdir()
    )


def test_a_catalog_that_is_not_json_is_one_line_naming_it_before_anything_starts(fake_project):
    catalog = fake_project.root / "catalog.json"
    catalog.write_text('{"streams": [')
    doc = yaml.safe_load(fake_project.pipelines.read_text())
    doc["pipelines"]["things"]["tap"]["catalog"] = "catalog.json"
    fake_project.pipelines.write_text(yaml.safe_dump(doc))
    result = fake_project.run("run", "things")
    assert result.returncode == 2
    # The check `loyalty validate` makes, applied before the run starts anything.
    assert _one_error_line(result) == (
        "Error: catalog.json: not a valid Singer catalog (Expecting value: line 1 column 14 "
        "(char 13))"
    )
    assert not fake_project.out.exists()


def test_saved_bookmarks_of_the_wrong_shape_are_one_line_naming_the_state_file(fake_project):
    state = fake_project.state_dir / "test" / "things" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"bookmarks": {"things": "2025-01-01"}}')
    result = fake_project.run("run", "things")
    assert result.returncode == 1
    line = _one_error_line(result)
    assert line.startswith(f"Error: {state}: 'bookmarks' must be an object of one object")
    assert not fake_project.out.exists()


def test_a_state_that_cannot_be_saved_stops_the_run_at_once(fake_project):
    # Each bookmark is ~100 KB, past the 64 KB files allowed: the first save fails. Without
    # stopping, the tap would go on for 30 s producing work whose state cannot be saved.
    fake_project.write(tap={"count": 1500, "sleep": 0.02, "state_every": 5, "state_pad": 100_000})
    proc = _run_with_small_files(fake_project, 64 * 1024)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 15
    assert proc.returncode == 1
    line = _one_error_line(subprocess.CompletedProcess(proc.args, 1, "", err))
    state = fake_project.state_dir / "test" / "things" / "state.json"
    assert f"failed at step runner: could not save the state {state}: File too large" in line
    assert not state.exists()


def test_a_backfill_that_cannot_record_its_windows_is_one_line_naming_the_file(fake_project):
    progress = fake_project.state_dir / "test" / "things" / "backfill.json"
    progress.mkdir(parents=True)  # not a file: neither readable nor replaceable
    args = ("backfill", "things", "--start", "2025-01-01", "--end", "2025-01-03", "--no-batch")
    result = fake_project.run(*args)
    assert result.returncode == 1
    assert _one_error_line(result) == (
        f"Error: cannot read the finished windows: {progress}: Is a directory"
    )
    redo = fake_project.run(*args, "--redo")
    assert redo.returncode == 1
    line = _one_error_line(redo)
    assert line.startswith("Error: backfill stopped after window 1/1 ")
    assert f"cannot record it as done: {progress}: Is a directory" in line


def test_batch_folders_an_earlier_version_left_are_removed_once_their_run_is_over(fake_project):
    batches = fake_project.state_dir / "batches"
    runs = fake_project.state_dir / "runs"
    runs.mkdir(parents=True)
    for run_id, outcome, pipeline in [
        ("killed-long-ago", "running", "things"),
        ("failed-run", "failed", "things"),
        ("live-run", "running", "elsewhere"),
    ]:
        (batches / run_id / "tap").mkdir(parents=True)
        (batches / run_id / "tap" / "customers-1.jsonl.gz").write_bytes(b"personal data")
        record = {"run_id": run_id, "env": "test", "pipeline": pipeline, "outcome": outcome}
        (runs / f"{run_id}.json").write_text(json.dumps(record))
    (batches / "no-record" / "tap").mkdir(parents=True)
    # Another pipeline's run is going on (its lock names a live process: this one).
    lock = fake_project.state_dir / "test" / "elsewhere" / "run.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"pid {os.getpid()}, started 2026-01-01T00:00:00Z\n")

    result = fake_project.run("run", "things")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in batches.iterdir()) == ["live-run"]


@pytest.mark.parametrize("value", [1.5, -0.1, "half", True])
def test_a_max_reject_ratio_outside_0_to_1_is_one_line_naming_the_setting(fake_project, value):
    doc = yaml.safe_load(fake_project.pipelines.read_text())
    doc["pipelines"]["things"]["max_reject_ratio"] = value
    fake_project.pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = fake_project.invoke("validate")
    assert result.returncode == 2
    line = _one_error_line(result)
    assert line.startswith("Error: pipelines.yaml:") and "pipelines.things.max_reject_ratio" in line
