"""Measure one whole process (tree): wall time, peak RSS of its largest process, tree RSS.

``os.wait4`` gives ``ru_maxrss`` of the child *and every descendant it waited for*, i.e. the
largest single process of a pipeline (the figure ``/usr/bin/time -v`` prints and the baseline
uses). A light /proc poller adds the peak of the summed RSS of the whole tree, because a
three-process pipeline holds all three at once.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Run:
    """Outcome of one measured process."""

    cmd: list[str]
    returncode: int
    wall_s: float
    peak_rss_mib: float
    tree_rss_mib: float
    stderr_tail: str = ""
    timed_out: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exited 0 within the time limit."""
        return self.returncode == 0 and not self.timed_out


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:  # noqa: PTH123 - hot loop
                stat = fh.read()
        except OSError:
            continue
        # Field 4 (ppid) follows the ")" that closes the command name.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree_rss_bytes(root: int) -> int:
    kids = _children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, ()))
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:  # noqa: PTH123 - hot loop
                total += int(fh.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


class _TreePoller(threading.Thread):
    """Samples the tree's summed RSS every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, _tree_rss_bytes(self.pid))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(
    cmd: list[str],
    *,
    stdin: Path | None = None,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900.0,
    stderr_file: Path | None = None,
) -> Run:
    """Run ``cmd`` once: stdin from a file (or /dev/null), stdout to a file (or /dev/null).

    Stderr goes to a file so a chatty process never blocks on a full pipe; its last lines are
    kept for the "why did it fail" column.
    """
    stdin_fh = stdin.open("rb") if stdin else open(os.devnull, "rb")  # noqa: PTH123, SIM115
    stdout_fh = stdout.open("wb") if stdout else open(os.devnull, "wb")  # noqa: PTH123, SIM115
    err_path = stderr_file or Path(f"/tmp/bench-stderr-{os.getpid()}-{time.monotonic_ns()}.log")
    err_fh = err_path.open("wb")
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdin=stdin_fh,
            stdout=stdout_fh,
            stderr=err_fh,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        poller = _TreePoller(proc.pid)
        poller.start()
        deadline = started + timeout
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                timed_out = True
                os.killpg(proc.pid, 9)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - started
        poller.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        for fh in (stdin_fh, stdout_fh, err_fh):
            fh.close()
    tail = err_path.read_text(errors="replace").strip().splitlines()[-6:]
    if stderr_file is None:
        err_path.unlink(missing_ok=True)
    return Run(
        cmd=cmd,
        returncode=proc.returncode,
        wall_s=wall,
        peak_rss_mib=usage.ru_maxrss / 1024,
        tree_rss_mib=poller.peak / (1 << 20),
        stderr_tail="\n".join(tail),
        timed_out=timed_out,
    )
