"""`loyalty schedule --foreground`: cron in-process, for containers without a cron daemon.

Each due pipeline is started as its own `loyalty run` process, so a slow pipeline never delays
another and the run lock still stops a pipeline overlapping itself. A missed tick (the machine
slept, a run took longer than the interval) is not made up: the next run starts from the saved
state anyway, so one run catches up on everything.
"""

from __future__ import annotations

import signal
import subprocess
import time
import typing as t
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

if t.TYPE_CHECKING:
    from collections.abc import Callable


@dataclass
class Job:
    """One scheduled pipeline and when it is due next."""

    pipeline: str
    expr: str
    next_at: float

    def advance(self, now: float) -> None:
        """Move next_at past `now` (skipping missed ticks)."""
        it = croniter(self.expr, datetime.fromtimestamp(now, UTC))
        self.next_at = it.get_next(float)


def make_jobs(schedules: dict[str, str], now: float) -> list[Job]:
    """Jobs for {pipeline: cron expression}, each due at its next tick after `now`."""
    jobs = [Job(name, expr, 0.0) for name, expr in schedules.items()]
    for job in jobs:
        job.advance(now)
    return jobs


def due(jobs: list[Job], now: float) -> list[Job]:
    """The jobs due at `now`; each is moved on to its following tick."""
    ready = [j for j in jobs if j.next_at <= now]
    for job in ready:
        job.advance(now)
    return ready


def run_forever(
    schedules: dict[str, str],
    command: Callable[[str], list[str]],
    echo: Callable[[str], None],
    max_runs: int | None = None,
) -> int:
    """Start `command(pipeline)` whenever a pipeline is due, until SIGTERM/Ctrl-C or max_runs.

    Returns how many runs failed. Running children are waited for before returning, so a
    container stop lets them finish their current commit (each handles SIGTERM itself).
    """
    stop = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, _stop)
    jobs = make_jobs(schedules, time.time())
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    started = failed = 0
    try:
        while not stop and (max_runs is None or started < max_runs):
            for job in due(jobs, time.time()):
                if max_runs is not None and started >= max_runs:
                    break
                if any(name == job.pipeline for name, _ in running):
                    echo(f"loyalty schedule: {job.pipeline} is still running; tick skipped")
                    continue
                echo(f"loyalty schedule: starting {job.pipeline}")
                running.append((job.pipeline, subprocess.Popen(command(job.pipeline))))
                started += 1
            failed += _reap(running, echo)
            if max_runs is not None and started >= max_runs:
                break
            wake = min(j.next_at for j in jobs)
            time.sleep(min(1.0, max(0.05, wake - time.time())))
    except KeyboardInterrupt:
        echo("loyalty schedule: interrupted; waiting for running pipelines")
    finally:
        signal.signal(signal.SIGTERM, previous)
        for name, proc in running:
            rc = proc.wait()
            if rc != 0:
                failed += 1
                echo(f"loyalty schedule: {name} exited with {rc}")
    return failed


def _reap(running: list[tuple[str, subprocess.Popen[bytes]]], echo: Callable[[str], None]) -> int:
    failed = 0
    for item in list(running):
        name, proc = item
        rc = proc.poll()
        if rc is None:
            continue
        running.remove(item)
        if rc != 0:
            failed += 1
            echo(f"loyalty schedule: {name} exited with {rc} (see `loyalty status`)")
    return failed
