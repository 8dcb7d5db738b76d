"""The per-run staging folder: private (records are personal data), and never left behind.

Each run stages in its own `loyalty-store-<pid>-<random>` folder (0700, files 0600) and holds
an exclusive `flock` on the `.lock` file inside it for its whole life. The kernel drops that
lock when the process dies, even by SIGKILL, so the next run can tell a dead run's folder
(lock free) from a live concurrent run's (lock held) and remove only the former. A lock,
not the pid: pids are reused, and a run in another container sharing the folder has a pid
this one cannot see.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import typing as t
from pathlib import Path

log = logging.getLogger("target-loyalty-store")

PREFIX = "loyalty-store-"
_LOCK = ".lock"


def open_private(path: Path) -> t.BinaryIO:
    """A new staging file readable by its owner only (0600, whatever the umask)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def make_staging(root: str | None) -> tuple[Path, int]:
    """Create this run's folder (0700) and lock it; returns the folder and the lock's fd.

    The folder gets its findable name only once locked (created under a hidden name, then
    renamed), so another run's clean-up never sees it unlocked.
    """
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    parent = Path(root or tempfile.gettempdir())
    remove_abandoned(parent)
    hidden = Path(tempfile.mkdtemp(prefix=f".{PREFIX}", dir=parent))  # 0700
    fd = os.open(hidden / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    folder = parent / f"{PREFIX}{os.getpid()}-{hidden.name.removeprefix('.' + PREFIX)}"
    hidden.rename(folder)
    return folder, fd


def release_staging(folder: Path, fd: int) -> None:
    """Remove this run's folder, then let go of its lock."""
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.close(fd)


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove staging folders whose run is gone (their lock is free); returns them."""
    removed: list[Path] = []
    for folder in parent.glob(f"{PREFIX}*"):
        lock = folder / _LOCK
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:  # not ours (no lock file), or just removed by its run
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live run holds it
        else:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d staging folder(s) left by killed runs in %s", len(removed), parent)
    return removed
