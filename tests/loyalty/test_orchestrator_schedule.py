"""`loyalty schedule`: when pipelines are due, and the foreground scheduler really runs them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from loyalty.scheduler import due, make_jobs


def _ts(h: int, m: int, s: int = 0) -> float:
    return datetime(2026, 3, 2, h, m, s, tzinfo=UTC).timestamp()


def test_due_follows_the_cron_expression_and_never_makes_up_missed_ticks():
    jobs = make_jobs({"a": "*/15 * * * *", "b": "0 * * * *"}, _ts(10, 7))
    assert [j.next_at for j in jobs] == [_ts(10, 15), _ts(11, 0)]
    assert due(jobs, _ts(10, 14, 59)) == []
    assert [j.pipeline for j in due(jobs, _ts(10, 15))] == ["a"]
    assert jobs[0].next_at == _ts(10, 30)
    # The machine slept through several ticks: each pipeline runs once, then keeps its rhythm.
    assert [j.pipeline for j in due(jobs, _ts(12, 2))] == ["a", "b"]
    assert [j.next_at for j in jobs] == [_ts(12, 15), _ts(13, 0)]


def test_foreground_scheduler_runs_the_pipeline_when_due(fake_project):
    # Every second (seconds: foreground only); each run takes longer, so ticks are skipped
    # while it runs instead of starting a second run that would hit the lock.
    fake_project.write(tap={"sleep": 0.15}, schedule="* * * * * */1")
    crontab = fake_project.invoke("schedule")
    assert crontab.returncode == 2 and "crontab takes five fields" in crontab.stderr
    result = fake_project.run("schedule", "--foreground", "--max-runs", "2", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("starting things") == 2
    assert "things is still running; tick skipped" in result.stderr
    runs = fake_project.runs()
    assert len(runs) == 2 and all(r["outcome"] == "success" for r in runs)
    assert fake_project.committed() == list(range(10))  # the second run resumed from state


def test_the_shipped_pipeline_imports_every_five_minutes_as_the_guide_does():
    # The FlexPOS guide imports every 5 minutes; bench stage `incr` shows a run with nothing
    # new fits well inside that.
    from croniter import croniter

    from loyalty.config import load

    project = load(Path(__file__).resolve().parents[2] / "pipelines.yaml")
    schedule = project.pipelines["flexpos_to_store"].schedule
    fires = croniter(schedule, datetime(2026, 3, 29, 0, 58, tzinfo=UTC))
    times = [fires.get_next(datetime) for _ in range(4)]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [300] * 3
