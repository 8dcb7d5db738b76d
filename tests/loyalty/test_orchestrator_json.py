"""`--json` and `--quiet` of `loyalty run` / `loyalty backfill` with fake Singer processes: one
JSON object on stdout for every way a run ends, with the exit code the shell sees."""

from __future__ import annotations

import json

from tests.loyalty.conftest import wait_for


def summary_of(result) -> dict:
    """stdout is exactly one JSON object, and it agrees with the exit code."""
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == result.returncode
    return summary


def test_a_failed_step_is_outcome_failed_with_the_error_line_and_no_secret(fake_project):
    fake_project.write(tap={"count": 20, "fail_at": 12})
    result = fake_project.run("run", "things", "--json")
    assert result.returncode == 1
    summary = summary_of(result)
    assert summary["outcome"] == "failed" and summary["failed_step"] == "tap"
    assert "RuntimeError: fetch failed (client_secret=***)" in summary["error"]
    assert summary["error"] in result.stderr  # the same line a person reads
    record = fake_project.runs()[-1]  # the summary is the run record's counts, not a guess
    assert (summary["run_id"], summary["records"]) == (record["run_id"], record["records"])
    assert fake_project.secret not in result.stdout + result.stderr


def test_a_busy_pipeline_is_outcome_temporary_exit_75(fake_project):
    fake_project.write(tap={"count": 60, "sleep": 0.05})
    first = fake_project.popen("run", "things")
    lock = fake_project.state_dir / "test" / "things" / "run.lock"
    wait_for(lambda: lock.exists() and lock.read_text().strip())
    second = fake_project.run("run", "things", "--json")
    first.communicate(timeout=60)
    assert second.returncode == 75
    summary = summary_of(second)
    assert summary["outcome"] == "temporary" and "already running" in summary["error"]
    assert "run_id" not in summary  # it never started


def test_configuration_errors_are_exit_2_for_run_and_backfill(fake_project):
    result = fake_project.run("run", "things", "--env", "nowhere", "--json")
    assert result.returncode == 2
    summary = summary_of(result)
    assert summary["outcome"] == "config_error" and "unknown environment" in summary["error"]

    result = fake_project.run(
        "backfill", "things", "--start", "2025-02-01", "--end", "2025-01-01", "--json"
    )
    assert result.returncode == 2
    summary = summary_of(result)
    assert summary["outcome"] == "config_error" and "must be before" in summary["error"]
    assert summary["windows"] == [] and summary["windows_done"] == 0


def test_backfill_stopped_by_a_failing_window_lists_each_window(fake_project):
    fake_project.write(tap={"count": 5})
    args = ("backfill", "things", "--start", "2025-01-01", "--end", "2025-01-04", "--window", "1d")
    assert fake_project.run(*args, "--quiet").returncode == 0
    fake_project.write(tap={"count": 5, "fail_at": 2})
    result = fake_project.run(*args, "--redo", "--json", "--quiet")
    assert result.returncode == 1
    summary = summary_of(result)
    assert [w["status"] for w in summary["windows"]] == ["failed"]
    assert "backfill stopped at window 1/3" in summary["error"]
    assert (summary["windows_total"], summary["windows_done"]) == (3, 0)

    # Without --redo the earlier backfill's windows count as skipped.
    fake_project.write(tap={"count": 5})
    result = fake_project.run(*args, "--json")
    summary = summary_of(result)
    assert [w["status"] for w in summary["windows"]] == ["skipped"] * 3
    assert summary["windows_skipped"] == 3 and summary["outcome"] == "success"


def test_quiet_success_prints_nothing(fake_project):
    result = fake_project.run("run", "things", "--quiet")
    assert result.returncode == 0
    assert (result.stdout, result.stderr) == ("", "")
    assert fake_project.committed() == list(range(10))
