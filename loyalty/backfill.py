"""`loyalty backfill`: re-extract a date range in windows, leaving the bookmark alone.

Each window ``[start, end)`` is one ordinary pipeline run (same lock, log and run record)
whose tap gets ``start_date``/``end_date`` for the window and no state, and whose emitted
STATE is not saved: a backfill never moves the incremental bookmark, so the scheduled runs
carry on as if it never happened. The store's upserts make any overlap harmless. Finished
windows are recorded where the pipeline keeps its state (``<state-dir>/<env>/<pipeline>/
backfill.json``, or the state database's ``_loyalty_backfill_windows``), so running the same
command again (after a failure, a kill, a reboot, on another machine) skips what is done and
resumes. With ``--parallel N`` (a PostgreSQL store only) N windows run side by side.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor, wait

from loyalty.config import ConfigError, Pipeline, Project, Resolved, find_executable
from singer_kit.pgstore import is_postgres_url

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from loyalty.progress import Progress
    from loyalty.runner import PipelineRun

_EVERY = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}


def parse_window(value: str) -> dt.timedelta:
    """A window length such as ``30d``, ``12h`` or ``2w``."""
    match = _EVERY.match(value)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"--window: {value!r} is not a length like 30d, 12h or 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


def windows(
    start: dt.datetime, end: dt.datetime, length: dt.timedelta | None
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Consecutive ``[a, b)`` windows from start to end (the last one may be shorter).

    Boundaries depend only on start and the length, so the same command always cuts the
    same windows, and a resumed backfill recognises the ones it finished.
    """
    if start >= end:
        raise ValueError(f"--start {start.isoformat()} must be before --end {end.isoformat()}")
    if length is None:
        return [(start, end)]
    out = []
    a = start
    while a < end:
        b = min(a + length, end)
        out.append((a, b))
        a = b
    return out


def key(window: tuple[dt.datetime, dt.datetime]) -> str:
    """How a window is recorded: ``<start>/<end>`` in UTC ISO 8601."""
    return "/".join(x.astimezone(dt.UTC).isoformat() for x in window)


class Windows:
    """The windows of one backfill, run one at a time or ``parallel`` side by side.

    Each window is its own pipeline run (tap | mapper | target). One at a time, each takes the
    pipeline's lock as any run does (a scheduled run may slip in between two windows); side
    by side they cannot each take it, so the caller holds it for all of them. A finished
    window is recorded at once (``record``), so a killed backfill resumes with the windows not
    recorded. After a window fails no new one starts; those running finish and are recorded,
    and ``failure`` holds the first failure's (exit code, line).
    """

    def __init__(
        self,
        cut: list[tuple[dt.datetime, dt.datetime]],
        done: set[str],
        done_as: str,
        entries: list[dict[str, t.Any]],
        progress: Progress,
        make_runner: Callable[[tuple[dt.datetime, dt.datetime]], PipelineRun],
    ) -> None:
        self.cut = cut
        self.done = done
        self.done_as = done_as  # a window loaded for some streams only says which
        self.entries = entries  # the --json summary's, one per window started or skipped
        self.progress = progress
        self._make = make_runner
        self.failure: tuple[int, str] | None = None
        self._lock_each = True
        self._stopping = False
        self._running: set[PipelineRun] = set()
        self._guard = threading.Lock()

    def run(self, parallel: int, record: Callable[[str], None]) -> None:
        """Run every window not done yet; returns when all are over (or one failed)."""
        self._lock_each = parallel == 1
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="window")
        try:
            futures = [
                pool.submit(self._one, n, window, record)
                for n, window in enumerate(self.cut, start=1)
            ]
            # A signal may be delivered to a window's thread; Python runs its handler (SIGTERM:
            # KeyboardInterrupt) in this one only once it wakes up, so it wakes up often.
            while wait(futures, timeout=0.2).not_done:
                pass
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C or SIGTERM: stop the windows' steps, then go
            self.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def cancel(self) -> None:
        """Start no more windows and stop the running ones (they end 'interrupted')."""
        with self._guard:
            self._stopping = True
            running = list(self._running)
        for runner in running:
            runner.cancel()

    def _one(
        self, n: int, window: tuple[dt.datetime, dt.datetime], record: Callable[[str], None]
    ) -> None:
        from loyalty.runner import RUN_FAILURES, failure_exit, os_error_line

        label = f"window {n}/{len(self.cut)} {describe(window)}"
        entry: dict[str, t.Any] = {
            "window": n,
            "start": window[0].isoformat(),
            "end": window[1].isoformat(),
        }
        with self._guard:
            if self._stopping or self.failure:
                return
            self.entries.append(entry)
        if key(window) + self.done_as in self.done:
            entry["status"] = "skipped"
            self.progress.result(f"{label}: skipped (finished by an earlier backfill)")
            self.progress.window_done(skipped=True)
            return
        entry["status"] = "failed"  # until it is recorded as done
        runner = self._make(window)
        with self._guard:
            if self._stopping:
                return
            self._running.add(runner)
        try:
            result = runner.run(lock=self._lock_each)
        except RUN_FAILURES as exc:
            if not self._stopping:
                code, why = failure_exit(exc)
                self._fail(
                    code,
                    f"backfill stopped at {label}: {why}. Finished windows are recorded; "
                    "run the same command again to resume",
                )
            return
        finally:
            with self._guard:
                self._running.discard(runner)
            if runner.result.ended_at:
                entry.update(runner.result.summary())
        try:
            record(key(window) + self.done_as)
        except OSError as exc:  # the window is loaded, but a resume would redo it
            code = failure_exit(exc)[0]
            self._fail(
                code,
                f"backfill stopped after {label}: cannot record it as done: {os_error_line(exc)}",
            )
            return
        entry["status"] = "done"
        self.progress.window_done()
        counts = ", ".join(f"{k}={v}" for k, v in sorted(result.records.items()))
        self.progress.result(f"{label}: done, {counts or 'no records'}; rejects={result.rejects}")
        self.progress.warnings(result.warnings)

    def _fail(self, code: int, why: str) -> None:
        with self._guard:
            if self.failure is None:
                self.failure = (code, why)


def parallel_error(resolved: Resolved) -> None:
    """Refuse `--parallel` where windows side by side would fight: a DuckDB store file takes
    one writer at a time (each window would wait for the others' commits, or give up with
    75). A PostgreSQL store takes them all; a ConfigError says so in one line otherwise."""
    database = resolved.configs["target"].get("database")
    if not is_postgres_url(database):
        where = f"a DuckDB file ({database})" if database else "not a database"
        raise ConfigError(
            f"--parallel: the store of pipeline {resolved.pipeline.name} is {where}, which "
            "takes one writer at a time; run the windows one by one (without --parallel) "
            "or put the store in PostgreSQL"
        )


def history_error(
    project: Project,
    pipe: Pipeline,
    start: dt.datetime,
    now: dt.datetime,
    streams: t.Collection[str] | None = None,
) -> str | None:
    """Why a backfill from ``start`` cannot work, or None.

    A source may serve some streams only so far back (FlexPOS: order data, one year). The tap
    says so in its `--about` as ``history_days``; a window before that would fail at the API
    (or, with a source that silently clips, load nothing), so the whole backfill is refused
    before the first window. Only the streams the backfill extracts count: ``streams``
    (`--streams`) when given, else those the catalog selects.
    """
    from loyalty.validate import About, Abouts

    path = find_executable(pipe.tap.executable, project.root)
    if path is None:
        return None
    # A cached --about is trusted only to accept; here it would, wrongly, if it predates the
    # limit (an editable install changes the tap without touching its script): ask afresh.
    abouts = Abouts()
    abouts.get([path])
    abouts.refresh()
    about = abouts.get([path])[path]
    if not isinstance(about, About) or not about.history_days:
        return None
    selected = set(streams) if streams is not None else _selected_streams(project, pipe)
    limits = {
        name: days
        for name, days in about.history_days.items()
        if selected is None or name in selected
    }
    if not limits:
        return None
    days = min(limits.values())
    earliest = now - dt.timedelta(days=days)
    if start >= earliest:
        return None
    names = ", ".join(sorted(n for n, d in limits.items() if d == days))
    return (
        f"--start {start.astimezone(dt.UTC).isoformat()} is too early: {pipe.tap.executable} "
        f"serves {names} only {days} days back, from {earliest.astimezone(dt.UTC).isoformat()}; "
        "start there or later"
    )


def _selected_streams(project: Project, pipe: Pipeline) -> set[str] | None:
    """Streams the pipeline's catalog selects; None when it has no (readable) catalog."""
    if not pipe.tap.catalog:
        return None
    try:
        catalog = json.loads((project.root / pipe.tap.catalog).read_text(encoding="utf-8"))
        streams = catalog["streams"]
        selected = set()
        for stream in streams:
            top = next((m for m in stream.get("metadata", []) if m.get("breadcrumb") == []), {})
            if top.get("metadata", {}).get("selected", True):
                selected.add(stream["tap_stream_id"])
        return selected
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # `loyalty validate` reports a bad catalog


def describe(window: tuple[dt.datetime, dt.datetime]) -> str:
    """``2025-01-01 00:00 -> 2025-01-31 00:00 UTC`` for progress lines."""
    a, b = (x.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") for x in window)
    return f"{a} -> {b} UTC"
