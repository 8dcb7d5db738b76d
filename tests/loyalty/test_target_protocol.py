"""What `loyalty run` reads from a target it knows nothing about: commit counts from METRIC
lines (docs/kit/protocol.md) and BATCH support from `--about`."""

from __future__ import annotations

from pathlib import Path


def _metrics(reject_every: int) -> dict[str, str]:
    """The fake target reports commits in METRIC lines, rejecting ids divisible by n."""
    return {"FAKE_TARGET_COMMIT_METRICS": "1", "FAKE_TARGET_REJECT_EVERY": str(reject_every)}


def test_counts_come_from_the_targets_commit_metrics_not_its_log_text(fake_project):
    # Ids 0 and 5 rejected; the target's "committed things: N loaded" text says 100x more.
    result = fake_project.run("run", "things", env=_metrics(reject_every=5))
    assert result.returncode == 0, result.stderr
    assert "things=8; rejects=2" in result.stdout
    (record,) = fake_project.runs()
    assert record["records"] == {"things": 8} and record["rejects"] == 2
    assert record["rejected_streams"] == {"target things": [2, 10]}
    assert "committed things: 400 loaded" in Path(record["log"]).read_text()
    status = fake_project.run("status").stdout
    assert "things=8 (rejects 2)" in status


def test_too_many_rejects_reported_in_commit_metrics_fail_the_run_and_rewind(fake_project):
    result = fake_project.run("run", "things", env=_metrics(reject_every=1))
    assert result.returncode == 1
    assert "things: 10 of 10 records rejected (100%)" in result.stderr
    assert fake_project.saved_state() is None  # back where the run started
    assert fake_project.runs()[-1]["failed_step"] == "target"


NOTE = (
    "loyalty: note: bin/fake-target does not declare BATCH support in its --about "
    "(capability 'batch'): records travel as RECORD messages"
)
NO_BATCH = {"FAKE_TARGET_NO_BATCH": "1"}


def test_batch_run_falls_back_to_records_for_a_target_without_batch(fake_project):
    result = fake_project.run("run", "things", "--batch", env=NO_BATCH)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(NOTE) == 1
    assert fake_project.committed() == list(range(10))
    log = Path(fake_project.runs()[-1]["log"]).read_text()
    assert "RECORD messages" in log and "fake-tap: batch file" not in log


def test_dry_run_shows_the_fallback(fake_project):
    plain = fake_project.run("run", "things", "--batch", "--dry-run", env=NO_BATCH)
    assert plain.returncode == 0 and NOTE in plain.stderr
    assert "batch_config" not in plain.stdout
    batched = fake_project.run("run", "things", "--batch", "--dry-run")
    assert "batch_config" in batched.stdout and "note:" not in batched.stderr


def test_backfill_defaults_to_batch_but_falls_back_once_for_the_whole_backfill(fake_project):
    args = ("backfill", "things", "--start", "2025-01-01", "--end", "2025-01-03", "--window", "1d")
    result = fake_project.run(*args, env=NO_BATCH)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(NOTE) == 1
    runs = fake_project.runs()
    assert len(runs) == 2
    for run in runs:
        log = Path(run["log"]).read_text()
        assert "RECORD messages" in log and "fake-tap: batch file" not in log
