"""Project-local state: bookmarks, locks and run records under `.loyalty/`.

Layout (one directory per environment and pipeline, so sandbox runs never touch prod state)::

    .loyalty/<env>/<pipeline>/state.json   last STATE the target emitted after a commit
    .loyalty/<env>/<pipeline>/run.lock     flock'ed while a run is in progress
    .loyalty/<env>/<pipeline>/backfill.json the windows backfills have finished
    .loyalty/runs/<run_id>.json            one record per run (pipeline, env, times, counts)
    .loyalty/runs/<run_id>.log             the run's stderr from all three processes
    .loyalty/tmp/run-<pid>-*/              0700: a run's 0600 config files and its BATCH files

Every write is temp file + fsync + `os.replace`, so a crash at any moment leaves either the old
or the new file, never half of one. Locks use `fcntl.flock`: the kernel drops them when the
holder dies, so a killed run never leaves a stale lock behind.

`StateStore` is the one interface the runner, `loyalty backfill`, `loyalty state` and
`loyalty status` use. When a pipeline's state lives in PostgreSQL (`loyalty.pgstate`) the
bookmark, run records, finished windows and lock move to the database; the run log and the
run's private temporary files stay in the local state directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from collections.abc import Iterator

STATE_DIR_ENV = "LOYALTY_STATE_DIR"
# The temporary folders this process made (its runs' own, never swept as a dead run's).
_MADE: set[Path] = set()
_MADE_LOCK = threading.Lock()


class StateError(ValueError):
    """The saved state file is unreadable; the message names the file."""


class LockedError(Exception):
    """Another run of the same pipeline and environment holds the lock."""


class StateBackendError(OSError):
    """The state database failed (one line, no password); ``exit_code`` says what kind:
    75 unreachable (try again later), 2 refused us (credentials), 1 anything else.

    An OSError, so every path that handles an unwritable state directory handles it too."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def checked_state(value: t.Any, where: str) -> dict[str, t.Any]:
    """A saved state value, or StateError naming ``where`` when it is not one a tap takes."""
    if not isinstance(value, dict):
        raise StateError(f"{where}: saved state must be a JSON object")
    marks = value.get("bookmarks", {})
    if not isinstance(marks, dict) or not all(isinstance(m, dict) for m in marks.values()):
        raise StateError(
            f"{where}: 'bookmarks' must be an object of one object per stream; fix it with "
            "`loyalty state set` or start over with `loyalty state clear`"
        )
    return value


def default_state_dir(pipelines_file: Path, override: str | os.PathLike[str] | None) -> Path:
    """`--state-dir`, else $LOYALTY_STATE_DIR, else `.loyalty/` next to pipelines.yaml."""
    chosen = override or os.environ.get(STATE_DIR_ENV)
    return Path(chosen).absolute() if chosen else pipelines_file.absolute().parent / ".loyalty"


def named(exc: OSError, path: Path) -> OSError:
    """The same error naming ``path``: a failed write() (disk full) names no file itself."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a whole file or nothing: temp file in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise named(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    """Bookmarks, locks and run records of one project."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._windows_lock = threading.Lock()  # parallel backfill windows record at once

    def describe(self) -> str:
        """Where this store keeps state, for messages."""
        return f"the state directory {self.root}"

    def state_where(self, env: str, pipeline: str) -> str:
        """Where one pipeline's bookmark is saved, for messages."""
        return str(self.state_path(env, pipeline))

    def run_where(self, run_id: str) -> str:
        """Where one run's record is saved, for messages."""
        return str(self.run_path(run_id))

    def target_state_key(self, env: str, pipeline: str, database: t.Any) -> str | None:
        """The key under which a target writing ``database`` saves the bookmark in its own
        commits (`singer_kit.pgstore.STATE_KEY_ENV`), when the state lives in that same
        database; never for files."""
        return None

    def close(self) -> None:
        """Release connections (nothing to do for files)."""

    def pipeline_dir(self, env: str, pipeline: str) -> Path:
        """Where one environment's pipeline keeps its state and lock."""
        return self.root / env / pipeline

    def state_path(self, env: str, pipeline: str) -> Path:
        """The saved bookmark file."""
        return self.pipeline_dir(env, pipeline) / "state.json"

    def read_state(self, env: str, pipeline: str) -> dict[str, t.Any] | None:
        """The saved Singer state value, or None before the first committed run."""
        path = self.state_path(env, pipeline)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise StateError(
                f"{path}: saved state is not valid JSON ({exc}); fix it with `loyalty state set` "
                "or start over with `loyalty state clear`"
            ) from None
        return checked_state(value, str(path))

    def may_have_state(self, env: str, pipeline: str) -> bool:
        """Whether a bookmark may be saved, without reading it (`--dry-run`)."""
        return self.state_path(env, pipeline).exists()

    def write_state(self, env: str, pipeline: str, value: dict[str, t.Any]) -> None:
        """Replace the bookmark atomically."""
        data = json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.state_path(env, pipeline), data)

    def clear_state(self, env: str, pipeline: str) -> bool:
        """Forget the bookmark (the next run starts from the tap's start_date)."""
        try:
            self.state_path(env, pipeline).unlink()
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def lock(self, env: str, pipeline: str) -> Iterator[None]:
        """Hold the pipeline's lock, or raise LockedError naming the holder at once."""
        path = self.pipeline_dir(env, pipeline) / "run.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or full state directory
            raise named(exc, path) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                detail = f" ({holder})" if holder else ""
                raise LockedError(
                    f"pipeline {pipeline!r} (env {env}) is already running{detail}; "
                    "not starting a second run"
                ) from None
            os.ftruncate(fd, 0)
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            try:
                os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
            except OSError as exc:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise named(exc, path) from None
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def is_locked(self, env: str, pipeline: str) -> bool:
        """Whether a run of this pipeline is in progress right now.

        Read from the lock file's holder line instead of trying the lock, so that `loyalty
        status` can never make a cron run starting at the same instant fail as "running".
        """
        pid = self._lock_holder(env, pipeline)
        return pid is not None and _alive(pid)

    def _lock_holder(self, env: str, pipeline: str) -> int | None:
        """The pid the lock file names (the holder writes it), if any."""
        path = self.pipeline_dir(env, pipeline) / "run.lock"
        try:
            holder = path.read_text(encoding="utf-8", errors="replace").split()
        except OSError:
            return None
        if len(holder) < 2 or holder[0] != "pid" or not holder[1].rstrip(",").isdigit():
            return None
        return int(holder[1].rstrip(","))

    # -- finished backfill windows -------------------------------------------------------------

    def backfill_path(self, env: str, pipeline: str) -> Path:
        """The file of finished backfill windows."""
        return self.pipeline_dir(env, pipeline) / "backfill.json"

    def backfill_done(self, env: str, pipeline: str) -> set[str]:
        """Windows backfills finished; an unreadable file is an error, never silently ignored."""
        path = self.backfill_path(env, pipeline)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return set()
        except ValueError as exc:
            raise StateError(f"{path}: not valid JSON ({exc}); delete it to start over") from None
        windows_done = data.get("windows_done") if isinstance(data, dict) else None
        if not isinstance(windows_done, list):
            raise StateError(f"{path}: no 'windows_done' list; delete it to start over")
        return {str(w) for w in windows_done}

    def add_backfill_done(self, env: str, pipeline: str, window: str) -> None:
        """Record one more finished window (atomically; windows may finish side by side)."""
        with self._windows_lock:
            finished = sorted(self.backfill_done(env, pipeline) | {window})
            data = json.dumps({"windows_done": finished}, indent=2).encode() + b"\n"
            atomic_write(self.backfill_path(env, pipeline), data)

    # -- run records -------------------------------------------------------------------------

    @property
    def runs_dir(self) -> Path:
        """Run records and logs."""
        return self.root / "runs"

    def run_path(self, run_id: str) -> Path:
        """Where one run's record is saved."""
        return self.runs_dir / f"{run_id}.json"

    def write_run(self, record: dict[str, t.Any]) -> Path:
        """Save (or update) one run's record."""
        path = self.run_path(record["run_id"])
        atomic_write(path, json.dumps(record, indent=2).encode() + b"\n")
        return path

    def runs(self, limit: int | None = None) -> list[dict[str, t.Any]]:
        """Run records, newest first; a record left 'running' by a dead runner is 'interrupted'."""
        if not self.runs_dir.is_dir():
            return []
        records = []
        for path in sorted(self.runs_dir.glob("*.json"), reverse=True):
            try:
                rec = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if rec.get("outcome") == "running" and not self.is_locked(rec["env"], rec["pipeline"]):
                rec["outcome"] = "interrupted"
            records.append(rec)
            if limit and len(records) >= limit:
                break
        return records

    # -- temp dirs for child configs ---------------------------------------------------------

    def make_tmp(self) -> Path:
        """A 0700 directory for this run's private files; removes those of dead runs.

        A folder named for our own pid that this process did not make belongs to a killed run
        whose pid came round again (containers start every runner as the same pid); those
        it made belong to runs going on beside this one (parallel backfill windows).
        """
        base = self.root / "tmp"
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _MADE_LOCK:
            for old in base.glob("run-*"):
                try:
                    pid = int(old.name.split("-")[1])
                except (IndexError, ValueError):
                    continue
                if (pid == os.getpid() and old not in _MADE) or not _alive(pid):
                    shutil.rmtree(old, ignore_errors=True)
            self._sweep_old_batches()
            made = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=base))
            _MADE.add(made)
        return made

    def _sweep_old_batches(self) -> None:
        """Remove ``batches/<run_id>/`` of earlier versions (customer data, 0644) once that
        run is over: its record is finished, or its pipeline's lock is free (or held by this
        process: this run is not that one)."""
        base = self.root / "batches"
        if not base.is_dir():
            return
        for folder in base.iterdir():
            try:
                rec = json.loads(self.run_path(folder.name).read_bytes())
                holder = self._lock_holder(rec["env"], rec["pipeline"])
                running = (
                    rec.get("outcome") == "running"
                    and holder is not None
                    and holder != os.getpid()
                    and _alive(holder)
                )
            except (OSError, ValueError, KeyError, AttributeError):
                running = False  # no readable record: no run can be using it
            if not running:
                shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            base.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
