"""`loyalty backfill`: re-extract a date range in windows, leaving the bookmark alone.

Each window ``[start, end)`` is one ordinary pipeline run (same lock, log and run record)
whose tap gets ``start_date``/``end_date`` for the window and no state, and whose emitted
STATE is not saved: a backfill never moves the incremental bookmark, so the scheduled runs
carry on as if it never happened. The store's upserts make any overlap harmless. Finished
windows are recorded in ``<state-dir>/<env>/<pipeline>/backfill.json``, so running the same
command again (after a failure, a kill, a reboot) skips what is done and resumes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import typing as t
from pathlib import Path

from loyalty.config import Pipeline, Project, find_executable
from loyalty.state import StateStore, atomic_write

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


class Progress:
    """The windows of a pipeline (in one environment) that backfills have finished."""

    def __init__(self, store: StateStore, env: str, pipeline: str) -> None:
        self.path: Path = store.pipeline_dir(env, pipeline) / "backfill.json"

    def done(self) -> set[str]:
        """Recorded windows; an unreadable file is an error, never silently ignored."""
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return set()
        except ValueError as exc:
            raise ValueError(
                f"{self.path}: not valid JSON ({exc}); delete it to start over"
            ) from None
        windows_done = data.get("windows_done") if isinstance(data, dict) else None
        if not isinstance(windows_done, list):
            raise ValueError(f"{self.path}: no 'windows_done' list; delete it to start over")
        return {str(w) for w in windows_done}

    def add(self, window: str) -> None:
        """Record one more finished window (atomically)."""
        finished = sorted(self.done() | {window})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"windows_done": finished}, indent=2).encode() + b"\n")


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
