"""What a person sees while `loyalty run` / `loyalty backfill` work: one source, three looks.

The runner learns its progress from the children's METRIC record counts (docs/kit/protocol.md:
the tap's records read, the target's commits) and its own heartbeat, and reports each to one
``Progress`` object. How it looks depends on where the output goes:

- ``Progress``: the plain lines cron, CI and ``| tee`` logs have always had
  (``  progress [target] committed contacts=…``), unchanged so scripts can grep them;
- ``QuietProgress`` (``--quiet``): none of them, only warnings and errors;
- ``LiveProgress`` (stdout and stderr both a terminal): a rich live display, one line per
  stream with records so far, rate and elapsed time, and for a backfill the windows done of
  the total with an ETA. The last frame stays on screen as the final summary.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import typing as t

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))


class Progress:
    """The plain progress lines (stderr): one per METRIC count, commit and heartbeat."""

    def __init__(
        self, echo: Callable[[str], None], out: Callable[[str], None] | None = None
    ) -> None:
        self._echo = echo  # stderr
        self._out = out or echo  # the result lines: stdout, unless --json keeps it for JSON

    def result(self, message: str) -> None:
        """A result line (a run succeeded, a window is done): not with --quiet."""
        self._out(message)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """No more progress: a live display leaves its last frame (the summary) on screen."""

    def say(self, message: str) -> None:
        """A line that is not progress (start, warnings, --verbose): shown in every mode."""
        self._echo(message)

    def warnings(self, warnings: Sequence[str]) -> None:
        """A run's reject warnings (under max_reject_ratio: it succeeded, but say so)."""
        for warning in warnings:
            self.say(f"warning: {warning}")

    def note(self, message: str) -> None:
        """A line of progress narration (a run starts, a window is skipped): not with --quiet."""
        self._echo(message)

    def counted(self, role: str, counts: Mapping[str, int]) -> None:
        """The records ``role`` (tap or target) reported so far, per stream."""
        self._echo(f"  progress [{role}] {_counts(counts)}")

    def committed(self, counts: Mapping[str, int]) -> None:
        """The rows the target committed so far, per stream."""
        self._echo(f"  progress [target] committed {_counts(counts)}")

    def heartbeat(self, seconds: int, commits: int, running: Sequence[str]) -> None:
        """Every few seconds (LOYALTY_PROGRESS_SECONDS), also when no step logs anything."""
        self._echo(
            f"  progress: running {seconds}s, {commits} commit(s) saved, "
            f"still running: {', '.join(running)}"
        )

    def run_started(self, label: str) -> None:
        """A pipeline run (one window of a backfill) begins."""

    def run_ended(self) -> None:
        """That run is over (whatever its outcome)."""

    def windows(self, total: int) -> None:
        """A backfill of ``total`` windows begins."""

    def window_done(self, skipped: bool = False) -> None:
        """One more window is finished (or was finished by an earlier backfill)."""


class QuietProgress(Progress):
    """``--quiet``: warnings and errors only; a run that went well prints nothing."""

    def note(self, message: str) -> None:
        return None

    def result(self, message: str) -> None:
        return None

    def counted(self, role: str, counts: Mapping[str, int]) -> None:
        return None

    def committed(self, counts: Mapping[str, int]) -> None:
        return None

    def heartbeat(self, seconds: int, commits: int, running: Sequence[str]) -> None:
        return None


class _Stream:
    """One stream's line: its records so far (read by the tap or loaded by the target)."""

    def __init__(self) -> None:
        self.records = 0
        self.base = 0  # the total of earlier backfill windows
        self.updated = 0.0  # when last counted: the rate is records over the time until then


class LiveProgress(Progress):
    """A rich live display on the terminal; every other line is printed above it."""

    def __init__(
        self, echo: Callable[[str], None], out: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(echo, out)
        self._lock = threading.Lock()
        self._streams: dict[tuple[str, str], _Stream] = {}  # (read|loaded, stream)
        self._label = ""
        self._started = time.monotonic()
        self._ended: float | None = None
        self._running: Sequence[str] = ()
        self._total = 0  # backfill windows; 0 for a single run
        self._done = 0
        self._skipped = 0
        self._window_times: list[float] = []  # how long each window run here took
        self._window_started = 0.0
        # Last: Live renders a first frame at once, from the fields above.
        self._live = Live(
            console=Console(file=sys.stderr, highlight=False),
            get_renderable=self._render,
            refresh_per_second=4,
            transient=False,  # the last frame stays: it is the run's summary
            redirect_stdout=True,
            redirect_stderr=True,
        )

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._ended = self._ended or time.monotonic()
        self._live.stop()

    def say(self, message: str) -> None:
        self._live.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def note(self, message: str) -> None:
        self.say(message)

    def result(self, message: str) -> None:
        # Above the display too: a write to stdout behind rich's back would land inside it.
        self.say(message)

    def counted(self, role: str, counts: Mapping[str, int]) -> None:
        if role == "tap":  # the target's own counts are what it received; commits say more
            self._update("read", counts)

    def committed(self, counts: Mapping[str, int]) -> None:
        self._update("loaded", counts)

    def heartbeat(self, seconds: int, commits: int, running: Sequence[str]) -> None:
        with self._lock:
            self._running = tuple(running)

    def _update(self, what: str, counts: Mapping[str, int]) -> None:
        now = time.monotonic()
        with self._lock:
            for name, n in counts.items():
                if name.startswith("_"):  # _rejects: in the summary, not a stream of its own
                    continue
                s = self._streams.setdefault((what, name), _Stream())
                s.records = s.base + n
                s.updated = now

    def run_started(self, label: str) -> None:
        with self._lock:
            self._label = label
            self._running = ("tap", "mapper", "target")
            self._window_started = time.monotonic()
            for s in self._streams.values():
                s.base = s.records
            if not self._total:
                self._started = self._window_started

    def run_ended(self) -> None:
        with self._lock:
            self._running = ()
            if self._total:
                self._window_times.append(time.monotonic() - self._window_started)
            else:
                self._ended = time.monotonic()

    def windows(self, total: int) -> None:
        with self._lock:
            self._total = total
            self._started = time.monotonic()

    def window_done(self, skipped: bool = False) -> None:
        with self._lock:
            self._done += 1
            self._skipped += skipped

    def _render(self) -> RenderableType:
        with self._lock:
            now = self._ended or time.monotonic()
            elapsed = now - self._started
            table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
            table.add_column("stream")
            table.add_column("")
            for column in ("records", "rate", "elapsed"):
                table.add_column(column, justify="right")
            # Source streams first (what the tap read), then what the target loaded.
            for (what, name), s in sorted(
                self._streams.items(), key=lambda i: (i[0][0] != "read", i[0][1])
            ):
                took = max(s.updated - self._started, 1e-3)
                table.add_row(
                    name, what, f"{s.records:,}", f"{s.records / took:,.0f} rec/s", _clock(elapsed)
                )
            if not self._streams:
                table.add_row("(waiting for the first counts)", "", "", "", _clock(elapsed))
            status = f"{self._label}  {_clock(elapsed)}"
            if self._running:
                status += f", running: {', '.join(self._running)}"
            parts: list[RenderableType] = [Text(status, style="bold"), table]
            if self._total:
                parts.append(self._windows_line())
        return Group(*parts)

    def _windows_line(self) -> RenderableType:
        """``windows 3/12 [bar] ETA 0:04:10`` from the windows this backfill ran itself."""
        remaining = self._total - self._done
        if remaining == 0:
            eta = "done"
        elif self._window_times:
            eta = "ETA " + _clock(remaining * sum(self._window_times) / len(self._window_times))
        else:
            eta = "ETA -:--:--"
        skipped = f" ({self._skipped} skipped)" if self._skipped else ""
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            Text(f"windows {self._done}/{self._total}{skipped}"),
            ProgressBar(total=self._total, completed=self._done, width=30),
            Text(eta),
        )
        return grid


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def choose(
    quiet: bool, echo: Callable[[str], None], out: Callable[[str], None] | None = None
) -> Progress:
    """Quiet if asked; live when a person watches (stdout and stderr a terminal); else plain.

    Both streams must be terminals: ``loyalty run … | tee run.log`` keeps the plain lines.
    The file descriptors are asked directly, not rich's guess, which FORCE_COLOR or
    TTY_COMPATIBLE in a CI environment would turn on.
    """
    if quiet:
        return QuietProgress(echo, out)
    try:
        both = os.isatty(sys.stdout.fileno()) and os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # a replaced stream (click's test runner)
        both = False
    if both and os.environ.get("TERM", "") not in ("", "dumb"):
        return LiveProgress(echo, out)
    return Progress(echo, out)
