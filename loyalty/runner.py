"""`loyalty run`: tap | mapper | target as three Singer processes joined by OS pipes.

The data never passes through this process: the tap's stdout is the mapper's stdin and the
mapper's stdout is the target's stdin. The runner only reads the three stderr streams (to the
run log, secrets redacted, METRIC counts picked out) and the target's stdout, where the target
emits STATE after each durable commit. Each such STATE is saved at once (atomically), so the
saved bookmark is always one the store has committed - whatever kills the run afterwards.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import queue
import re
import secrets as _secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from loyalty.config import ROLES, ConfigError, Project, Resolved, find_executable
from loyalty.progress import Progress
from loyalty.state import LockedError, StateBackendError, StateError, StateStore, named
from singer_kit.metrics import LOADED, read_point, record_count
from singer_kit.pgstore import STATE_KEY_ENV
from singer_kit.redact import Redactor

if t.TYPE_CHECKING:
    from collections.abc import Callable

# mapper-loyalty's closing summary, per input stream: "customers: 178 in, 0 out, ... 178 rejected".
_MAPPED_STREAM = re.compile(
    r"([\w.-]+): (\d+) in, \d+ out, \d+ filtered, \d+ empty, (\d+) rejected"
)
# Both log the first rejects of a stream with their reason:
# "rejected: stream 'contacts', key email=None: <reason>" / "..., rule 'birthday': <reason>".
_REJECT_REASON = re.compile(
    r"\brejected: stream '([^']+)', (?:key .*?|no record|key unknown|no key properties|"
    r"rule '[^']*'): (.+?)\s*$"
)
GRACE_SECONDS = 5.0  # SIGTERM, then SIGKILL after this long
DRAIN_SECONDS = 300.0  # how long steps downstream of a failure may take to finish
STATUS_SECONDS = 30.0  # a progress line at least this often on long runs
EX_TEMPFAIL = 75  # a step's "try again later" (target-loyalty-store: the store stayed locked)
# Records per tap batch file in a BATCH run; each file is one store commit (x3 rows for
# journals). Files are a pipeline's unit of overlap: with 50k the mapper and the store idled
# while the tap filled the first file (e2e slower than RECORDs); 10k-25k measured the same.
BATCH_FILE_RECORDS = 25_000


class RunFailed(Exception):
    """A run ended badly; the message names the failing step and its last error line."""

    def __init__(self, message: str, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class RunResult:
    """What `loyalty status` shows about one run."""

    run_id: str
    pipeline: str
    env: str
    started_at: str
    ended_at: str | None = None
    outcome: str = "running"
    failed_step: str | None = None
    error: str | None = None
    records: dict[str, int] = field(default_factory=dict)
    tap_records: dict[str, int] = field(default_factory=dict)
    rejects: int = 0
    states_saved: int = 0
    # Per stream with rejects: "<step> <stream>" -> [rejected, records]; and their reasons.
    rejected_streams: dict[str, list[int]] = field(default_factory=dict)
    reject_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    full_refresh: bool = False
    log: str = ""
    window: list[str] | None = None  # a backfill window [start, end): state is not saved

    def to_dict(self) -> dict[str, t.Any]:
        """JSON-ready record."""
        return dict(self.__dict__)

    def summary(self) -> dict[str, t.Any]:
        """The fields of this record a `--json` summary carries (a run's, a window's)."""
        keys = ("run_id", "started_at", "ended_at", "records", "rejects", "rejected_streams")
        fields = {k: getattr(self, k) for k in keys}
        fields.update(failed_step=self.failed_step, warnings=self.warnings, log=self.log)
        return fields


# The ways a run ends badly that are not bugs: failure_exit turns each into an exit code.
RUN_FAILURES = (LockedError, ConfigError, RunFailed, StateError, OSError)


def failure_exit(exc: BaseException) -> tuple[int, str]:
    """The exit code and one line for a failed run: 75 try again later (the pipeline is
    running elsewhere, a step or the state database is unavailable), 2 configuration,
    1 failed."""
    if isinstance(exc, LockedError):
        return EX_TEMPFAIL, str(exc)
    if isinstance(exc, ConfigError):
        return 2, str(exc)
    if isinstance(exc, StateBackendError):
        return exc.exit_code, str(exc)
    if isinstance(exc, OSError):
        return 1, f"cannot use the state directory: {os_error_line(exc)}"
    return 1, str(exc)


def _utc(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def command_lines(
    project: Project,
    resolved: Resolved,
    config_dir: Path,
    state_file: Path | None,
    catalog: Path | None = None,
) -> dict[str, list[str]]:
    """The three argv lists (config files in config_dir; nothing secret on a command line).

    ``catalog`` replaces the pipeline's catalog (a run's temporary stream selection).
    """
    pipe = resolved.pipeline
    cmds: dict[str, list[str]] = {}
    for step in pipe.steps:
        exe = find_executable(step.executable, project.root) or step.executable
        argv = [exe, "--config", str(config_dir / f"{step.role}.json")]
        if step.role == "tap":
            if catalog is not None:
                argv += ["--catalog", str(catalog)]
            elif step.catalog:
                argv += ["--catalog", str(project.root / step.catalog)]
            if state_file is not None:
                argv += ["--state", str(state_file)]
        cmds[step.role] = argv
    return cmds


def parse_streams(value: str) -> tuple[str, ...]:
    """``customers,journals`` -> the names, in order, without blanks or repeats."""
    return tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))


def select_streams(project: Project, resolved: Resolved, streams: t.Sequence[str]) -> bytes:
    """The pipeline's catalog with exactly ``streams`` selected, as JSON for a private file.

    A run's choice of streams (`--streams`) must not mean editing the committed catalog: the
    runner hands the tap a copy whose stream-level ``selected`` metadata (singer-sdk's
    breadcrumb ``[]``) is true for the chosen streams and false for the others. Field-level
    selection is kept as the catalog has it. Unknown names are one line listing the known.
    """
    pipe = resolved.pipeline
    where = f"--streams of pipeline {pipe.name}"
    if not pipe.tap.catalog:
        raise ConfigError(f"{where}: the pipeline has no tap catalog to select streams in")
    path = project.root / pipe.tap.catalog
    try:
        catalog = json.loads(path.read_text(encoding="utf-8"))
        entries = catalog["streams"]
        known = [e["tap_stream_id"] for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{pipe.tap.catalog}: cannot select streams in it ({exc})") from None
    if not streams:
        raise ConfigError(f"{where}: no stream named (known: {', '.join(known)})")
    unknown = [s for s in streams if s not in known]
    if unknown:
        raise ConfigError(
            f"{where}: unknown stream {', '.join(map(repr, unknown))} (known: {', '.join(known)})"
        )
    for entry in entries:
        chosen = entry["tap_stream_id"] in streams
        metadata = entry.setdefault("metadata", [])
        root = next((m for m in metadata if m.get("breadcrumb") == []), None)
        if root is None:
            root = {"breadcrumb": [], "metadata": {}}
            metadata.append(root)
        root.setdefault("metadata", {})["selected"] = chosen
    return json.dumps(catalog).encode()


def keep_unselected(
    emitted: dict[str, t.Any], before: dict[str, t.Any] | None, streams: t.Sequence[str]
) -> dict[str, t.Any]:
    """The state to save after a run of some streams: the others' bookmarks as they were.

    A tap may drop or rewrite bookmarks of streams it did not sync; a run of a subset must
    leave them exactly where the last run of those streams put them.
    """
    old = (before or {}).get("bookmarks") or {}
    marks = {k: v for k, v in (emitted.get("bookmarks") or {}).items() if k in streams}
    marks.update({k: v for k, v in old.items() if k not in streams})
    return {**emitted, "bookmarks": marks}


def batch_configs(
    configs: dict[str, dict[str, t.Any]], batch_dir: Path
) -> dict[str, dict[str, t.Any]]:
    """Configs for a BATCH run: the tap writes gzip JSONL files, the mapper rewrites them.

    The target needs nothing: it loads any BATCH message's files. Settings the pipeline
    gives itself (a tap's own ``batch_config``) win over these defaults.
    """
    tap = dict(configs["tap"])
    tap.setdefault(
        "batch_config",
        {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            # A plain path: singer-sdk does not unquote a file:// root (a space became %20).
            "storage": {"root": str(batch_dir / "tap")},
            "batch_size": BATCH_FILE_RECORDS,
        },
    )
    mapper = dict(configs["mapper"])
    mapper.setdefault("batch_dir", str(batch_dir / "mapper"))
    return {**configs, "tap": tap, "mapper": mapper}


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise named(exc, path) from None


def os_error_line(exc: OSError, path: Path | str | None = None) -> str:
    """``<path>: <OS error>`` in one line, for an error the user must act on (disk full...)."""
    where = path or exc.filename
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {what}" if where else what


class _Log:
    """The per-run log file, shared by the reader threads.

    A write that fails (disk full) never raises: a reader thread that died would leave its
    child blocked on a full stderr pipe forever. The first failure is reported to
    ``on_error`` (which stops the run) and later lines are dropped while the pipes drain.
    """

    def __init__(self, path: Path, on_error: Callable[[str], None]) -> None:
        self.path = path
        self._on_error = on_error
        self._broken = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            if self._broken:
                return
            try:
                self._fh.write(line + "\n")
                self._fh.flush()
            except OSError as exc:
                self._broken = True
                self._on_error(f"could not write the run log {os_error_line(exc, self.path)}")

    def close(self) -> None:
        # The buffer's last flush may fail too; that was already reported.
        with self._lock, contextlib.suppress(OSError):
            self._fh.close()


class PipelineRun:
    """One run of one pipeline in one environment."""

    def __init__(
        self,
        project: Project,
        resolved: Resolved,
        store: StateStore,
        *,
        full_refresh: bool = False,
        batch: bool | None = None,
        window: tuple[str, str] | None = None,
        streams: t.Sequence[str] | None = None,
        echo: Callable[[str], None] | None = None,
        verbose: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.project = project
        # Only these streams (None: as the catalog selects); the others' bookmarks stay.
        self.streams = tuple(streams) if streams is not None else None
        self.resolved = resolved
        self.store = store
        # A backfill window reads no state and saves none: the bookmark is left alone.
        self.window = window
        self.full_refresh = full_refresh or window is not None
        self.batch = resolved.pipeline.batch if batch is None else batch
        self._echo = echo or (lambda _msg: None)
        # How the progress looks (plain lines, live display, none); what it is comes from here.
        self.progress = progress or Progress(self.echo)
        self.verbose = verbose
        self.redact = Redactor(resolved.secrets, resolved.configs)
        self.pipeline = resolved.pipeline.name
        self.env = resolved.env.name
        now = time.time()
        # Milliseconds in the id keep run records in start order even within one second.
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        self.run_id = f"{stamp}-{self.env}-{self.pipeline}-{_secrets.token_hex(3)}"
        self.result = RunResult(
            self.run_id,
            self.pipeline,
            self.env,
            _utc(),
            full_refresh=self.full_refresh,
            log=str(store.runs_dir / f"{self.run_id}.log"),
            window=list(window) if window else None,
        )
        self._counts: dict[str, collections.Counter[str]] = {
            r: collections.Counter() for r in ROLES
        }
        self._last_lines: dict[str, collections.deque[str]] = {
            r: collections.deque(maxlen=20) for r in ROLES
        }
        self._state_lock = threading.Lock()
        self._loaded: collections.Counter[str] = collections.Counter()
        self._target_rejected = 0
        self._store_rejected: collections.Counter[str] = collections.Counter()
        self._mapped: dict[str, tuple[int, int]] = {}  # input stream -> (records in, rejected)
        self._reasons: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        # The bookmark before this run, put back when too many records were rejected.
        self._state_before: dict[str, t.Any] | None = None
        self._rewind = window is None
        # The runner's own failure (log or state not writable): stops the children at once.
        self._fatal: str | None = None
        self._abort = threading.Event()
        self._cancelled = False  # stopped from outside (a parallel backfill interrupted)
        self._temporary = False  # a step exited EX_TEMPFAIL (75): the whole run is temporary
        # A target committing into the state database saves each STATE it emits in the same
        # transaction as the data (pgstore.STATE_KEY_ENV); not for a backfill window (it never
        # moves the bookmark) nor a run of some streams (the others' bookmarks are merged in
        # here, keep_unselected).
        self._target_state_key = (
            store.target_state_key(
                self.env, self.pipeline, resolved.configs["target"].get("database")
            )
            if window is None and self.streams is None
            else None
        )

    def echo(self, message: str) -> None:
        """A line for the user; a broken or full stderr must not kill a reader thread."""
        with contextlib.suppress(OSError):
            self._echo(message)

    @staticmethod
    def _progress(report: Callable[..., None], *args: t.Any) -> None:
        """Report progress, which (like echo) must never kill a reader thread."""
        with contextlib.suppress(OSError):
            report(*args)

    def _fail_now(self, error: str, temporary: bool = False) -> None:
        """The runner cannot keep its promises (log, state): fail the run now, not at EOF.

        ``temporary``: the state database went away; the run exits 75 (try again later)."""
        if self._fatal is None:
            self._fatal = error
            self._temporary = temporary
        self._abort.set()

    def cancel(self) -> None:
        """Stop the run's steps from another thread; it ends 'interrupted'."""
        self._cancelled = True
        self._abort.set()

    # -- readers -----------------------------------------------------------------------------

    def _read_stderr(self, role: str, stream: t.IO[bytes], log: _Log) -> None:
        for raw in stream:
            line = self.redact(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            if not line.strip():
                continue
            log.write(f"[{role}] {line}")
            point = read_point(line)
            if point is not None:
                self._metric(role, point)
                continue
            if role == "mapper" and " records in, " in line:
                for name, n_in, rejected in _MAPPED_STREAM.findall(line):
                    self._mapped[name] = (int(n_in), int(rejected))
            elif r := _REJECT_REASON.search(line):
                self._reasons[(role, r.group(1))][r.group(2)] += 1
            self._last_lines[role].append(line)
            if self.verbose:
                self.echo(f"[{role}] {line}")
        stream.close()

    def _metric(self, role: str, point: dict[str, t.Any]) -> None:
        """Count a record_count point: a target's commit (with a status) or records seen."""
        count = record_count(point)
        if count is None:
            return
        if role == "target" and count.status is not None:
            self._committed(count.stream, count.status, count.value)
            return
        self._counts[role][count.stream] += count.value
        if role in ("tap", "target") and count.value:
            self._progress(self.progress.counted, role, self._counts[role])

    def _committed(self, stream: str, status: str, n: int) -> None:
        """Rows a target committed: counted even for a run killed later."""
        if status == LOADED:
            self._loaded[stream] += n
            self._progress(self.progress.committed, self._loaded)
        else:
            self._target_rejected += n
            self._store_rejected[stream] += n

    def _read_target_stdout(self, stream: t.IO[bytes], log: _Log) -> None:
        for raw in stream:
            text = raw.strip()
            if not text:
                continue
            try:
                msg = json.loads(text)
            except ValueError:
                log.write(f"[target stdout] {self.redact(text.decode(errors='replace'))}")
                continue
            # Singer targets print the bare state value; a full STATE message is accepted too.
            if isinstance(msg, dict) and msg.get("type") == "STATE":
                msg = msg.get("value")
            if not isinstance(msg, dict):
                shown = self.redact(text[:200].decode(errors="replace"))
                log.write(f"[target stdout] ignored, not a state object: {shown}")
                continue
            if self.window:
                log.write("[runner] backfill window: the target's state is not saved")
                continue
            if self._fatal:  # keep draining, or the target would block on its stdout
                continue
            if self.streams:
                msg = keep_unselected(msg, self._state_before, self.streams)
            try:
                with self._state_lock:
                    self.store.write_state(self.env, self.pipeline, msg)
                    self.result.states_saved += 1
            except OSError as exc:
                where = self.store.state_where(self.env, self.pipeline)
                self._fail_now(
                    f"could not save the state {os_error_line(exc, where)}", _temporary(exc)
                )
                log.write(f"[runner] {self._fatal}")
                continue
            log.write("[runner] saved the state the target emitted after its commit")
        stream.close()

    # -- the run -----------------------------------------------------------------------------

    def check(self) -> None:
        """Fail before anything starts if an executable or the catalog is missing."""
        for step in self.resolved.pipeline.steps:
            if find_executable(step.executable, self.project.root) is None:
                raise ConfigError(
                    f"{step.role} executable {step.executable!r} not found (is the venv installed?)"
                )
        catalog = self.resolved.pipeline.tap.catalog
        if catalog and not (self.project.root / catalog).is_file():
            raise ConfigError(f"catalog {catalog} not found (relative to {self.project.root})")
        if self.streams is not None:
            select_streams(self.project, self.resolved, self.streams)

    def run(self, *, lock: bool = True) -> RunResult:
        """Run under the pipeline's lock; raises LockedError at once if another run holds it.

        ``lock=False``: the caller holds it already (a backfill, for all of its windows)."""
        self.check()
        held = self.store.lock(self.env, self.pipeline) if lock else contextlib.nullcontext()
        with held:
            window = (
                f", window {' to '.join(w[:16].replace('T', ' ') for w in self.window)}"
                if self.window
                else ""
            )
            self.progress.run_started(f"{self.pipeline} (env {self.env}{window})")
            try:
                self.store.write_run(self.result.to_dict())
                self._run_locked()
            except OSError as exc:  # the state directory is full or read-only, or the database
                self.result.outcome = "failed"
                self.result.failed_step = "runner"
                self.result.error = f"cannot use {self.store.describe()}: {os_error_line(exc)}"
                self._temporary = self._temporary or _temporary(exc)
            except BaseException as exc:
                if self.result.outcome == "running":
                    self.result.outcome = (
                        "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                    )
                    self.result.error = self.result.error or self.redact(str(exc))
                raise
            finally:
                self.progress.run_ended()
                self.result.ended_at = _utc()
                self._tally()
                self._record()
        self._notify()
        if self.result.outcome != "success":
            if self._temporary:  # e.g. the store stayed locked: exit 75 too, so cron retries
                raise LockedError(self._failure_message())
            raise RunFailed(self._failure_message(), self.result)
        return self.result

    def _notify(self) -> None:
        """Tell the environment's webhook / e-mail about a failed run or too many rejects.

        After the lock is released and the record saved: a slow receiver delays nothing that
        matters, and its failure is one warning line, never the run's outcome.
        """
        if self.resolved.notify:
            from loyalty.notify import notify

            notify(
                self.resolved.notify,
                self.result,
                self.redact,
                lambda message: self.echo(f"loyalty: warning: {message}"),
            )

    def _record(self) -> None:
        """Save the run record; when even that fails, the run fails naming the file."""
        try:
            self.store.write_run(self.result.to_dict())
        except OSError as exc:
            if self.result.outcome in ("success", "running"):
                self.result.outcome = "failed"
                self.result.failed_step = "runner"
            path = self.store.run_where(self.run_id)
            if path not in (self.result.error or ""):  # not the same failure twice
                self.result.error = (
                    f"{self.result.error}; " if self.result.error else ""
                ) + f"could not write the run record {os_error_line(exc, path)}"

    def _tally(self) -> None:
        """Records per stream and rejects: the counts the target reported per commit (METRIC
        record_count with a status, docs/kit/protocol.md), else its plain singer-sdk
        record_count (records received)."""
        counts = self._loaded if self._loaded else self._counts["target"]
        self.result.rejects = counts.get("_rejects", 0) + self._target_rejected
        self.result.records = {k: v for k, v in sorted(counts.items()) if k != "_rejects"}
        self.result.tap_records = dict(sorted(self._counts["tap"].items()))

    def _failure_message(self) -> str:
        r = self.result
        return (
            f"run of {r.pipeline} (env {r.env}) failed at step {r.failed_step}: {r.error}. "
            f"Log: {r.log}"
        )

    def _run_locked(self) -> None:
        # Private (0700) and named by our pid: configs with secrets and batch files with
        # personal data live here, and the next run removes it if this process is killed.
        tmp = self.store.make_tmp()
        batch_dir = tmp / "batch"
        log: _Log | None = None
        procs: dict[str, subprocess.Popen[bytes]] = {}
        threads: list[threading.Thread] = []
        try:
            log = _Log(Path(self.result.log), self._fail_now)
            state_file = None
            if self.full_refresh and not self.window:
                try:  # only to put back if too much is rejected: a broken file is left as is
                    self._state_before = self.store.read_state(self.env, self.pipeline)
                except StateError:
                    self._rewind = False
            elif not self.window:
                self._state_before = self.store.read_state(self.env, self.pipeline)
            if not self.full_refresh and self._state_before is not None:
                state_file = tmp / "state.json"
                _write_private(state_file, json.dumps(self._state_before).encode())
            configs = self.resolved.configs
            if self.window:
                start, end = self.window
                configs = {
                    **configs,
                    "tap": {**configs["tap"], "start_date": start, "end_date": end},
                }
            if self.batch:
                configs = batch_configs(configs, batch_dir)
            for role in ROLES:
                _write_private(tmp / f"{role}.json", json.dumps(configs[role]).encode())
            catalog = None
            if self.streams:
                catalog = tmp / "catalog.json"
                _write_private(catalog, select_streams(self.project, self.resolved, self.streams))
            cmds = command_lines(self.project, self.resolved, tmp, state_file, catalog)
            if self.window:
                origin = f"not read or saved (backfill window {self.window[0]} to {self.window[1]})"
            elif self.full_refresh:
                origin = "ignored (--full-refresh)"
            elif state_file:
                origin = f"from {self.store.state_where(self.env, self.pipeline)}"
            else:
                origin = "none saved yet"
            mode = f"BATCH files in {batch_dir}" if self.batch else "RECORD messages"
            chosen = f", streams {','.join(self.streams)} only" if self.streams else ""
            in_commit = (
                f", the target saves it with each commit ({STATE_KEY_ENV}={self._target_state_key})"
                if self._target_state_key
                else ""
            )
            log.write(
                f"[runner] run {self.run_id}: {self.pipeline}, env {self.env}, state {origin}"
                f"{in_commit}, {mode}{chosen}"
            )
            procs = self._start(cmds, log, threads)
            failed = self._supervise(procs, log)
            self._join(threads)
            self._conclude(failed, log)
        finally:
            # Interrupted (Ctrl-C, SIGTERM from cron or systemd): stop the children politely,
            # then for good. The state file already holds only committed bookmarks.
            _stop([p for p in procs.values() if p.poll() is None])
            self._join(threads)
            # Secrets and batch files go first, whatever happens to the log after. Batch files
            # are only a transport: once the target has committed them (or the run failed,
            # and the saved state still points before them) they are not needed.
            shutil.rmtree(tmp, ignore_errors=True)
            if log is not None:
                log.write(f"[runner] outcome: {self.result.outcome}")
                log.close()

    def _start(
        self, cmds: dict[str, list[str]], log: _Log, threads: list[threading.Thread]
    ) -> dict[str, subprocess.Popen[bytes]]:
        procs: dict[str, subprocess.Popen[bytes]] = {}
        cwd = self.project.root
        stdin: t.Any = subprocess.DEVNULL
        for role in ROLES:
            log.write(f"[runner] {role}: {' '.join(cmds[role])}")
            try:
                proc = subprocess.Popen(
                    cmds[role],
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=cwd,
                    preexec_fn=_die_with_parent,
                    env=self._child_env(role),
                    # The tap and mapper write BATCH files of personal data: owner-only.
                    umask=0o077 if role != "target" else -1,
                )
            except OSError as exc:
                for started in procs.values():
                    started.terminate()
                raise ConfigError(f"cannot start the {role} ({cmds[role][0]}): {exc}") from None
            # Close our copy of the upstream read end, so EOF and SIGPIPE reach the children.
            if stdin is not subprocess.DEVNULL:
                stdin.close()
            procs[role] = proc
            log.write(f"[runner] {role} started, pid {proc.pid}")
            th = threading.Thread(
                target=self._read_stderr, args=(role, proc.stderr, log), daemon=True
            )
            th.start()
            threads.append(th)
            stdin = proc.stdout
        th = threading.Thread(
            target=self._read_target_stdout, args=(procs["target"].stdout, log), daemon=True
        )
        th.start()
        threads.append(th)
        return procs

    def _child_env(self, role: str) -> dict[str, str]:
        """The environment of one step: ours, plus the run id a target records its runs by
        (the store's _runs) and, for a target that saves state in its commits, the key."""
        env = {k: v for k, v in os.environ.items() if k != STATE_KEY_ENV}
        env["LOYALTY_RUN_ID"] = self.run_id
        if role == "target" and self._target_state_key:
            env[STATE_KEY_ENV] = self._target_state_key
        return env

    @staticmethod
    def _join(threads: list[threading.Thread]) -> None:
        deadline = time.monotonic() + 10
        for th in threads:
            th.join(timeout=max(0.0, deadline - time.monotonic()))

    def _supervise(
        self, procs: dict[str, subprocess.Popen[bytes]], log: _Log
    ) -> tuple[str, int] | None:
        """Wait for all three; returns (step, exit code) of the first to fail, if any.

        On a failure the steps upstream of it are stopped (their output has nowhere to go).
        The steps downstream get EOF and may finish: the target then commits what came with
        a STATE and emits it, so work already extracted is not thrown away. A downstream step
        that has not finished within DRAIN_SECONDS is stopped too.
        """
        exits: queue.Queue[tuple[str, int]] = queue.Queue()
        for role, proc in procs.items():
            threading.Thread(
                target=lambda r=role, p=proc: exits.put((r, p.wait())), daemon=True
            ).start()
        pending = set(procs)
        started = time.monotonic()
        every = _progress_seconds()
        next_status = started + every
        failed: tuple[str, int] | None = None
        deadlines: dict[str, tuple[float, bool]] = {}  # role -> (when, already terminated)
        aborted = False
        while pending:
            if self._abort.is_set() and not aborted:
                # The runner itself failed: nothing the steps still do could be recorded.
                aborted = True
                for r in pending:
                    deadlines[r] = (time.monotonic(), False)
            try:
                role, rc = exits.get(timeout=0.2)
            except queue.Empty:
                now = time.monotonic()
                if now >= next_status:  # a heartbeat, also for steps that log nothing
                    next_status = now + every
                    self._progress(
                        self.progress.heartbeat,
                        int(now - started),
                        self.result.states_saved,
                        [r for r in ROLES if r in pending],
                    )
                for r, (when, termed) in list(deadlines.items()):
                    if r in pending and now > when:
                        if termed:
                            procs[r].kill()
                            del deadlines[r]
                        else:
                            log.write(f"[runner] stopping {r}")
                            procs[r].terminate()
                            deadlines[r] = (now + GRACE_SECONDS, True)
                continue
            pending.discard(role)
            log.write(f"[runner] {role} {_describe_rc(rc)}")
            if rc != 0 and failed is None and not aborted:
                # The first process to fail is the cause; the others may fail after it only
                # because a pipe broke, so they are not blamed.
                failed = (role, rc)
                now = time.monotonic()
                position = ROLES.index(role)
                for r in pending:
                    if ROLES.index(r) < position:
                        deadlines[r] = (now, False)
                    else:
                        deadlines[r] = (now + DRAIN_SECONDS, False)
        return failed

    def _conclude(self, failed: tuple[str, int] | None, log: _Log) -> None:
        if self._cancelled:
            self.result.outcome = "interrupted"
            self.result.error = "stopped: the backfill was interrupted"
            return
        if self._fatal:  # the steps were stopped because of it: they are not to blame
            self.result.outcome = "failed"
            self.result.failed_step = "runner"
            self.result.error = self._fatal
            return
        if failed is None:
            self.result.outcome = "success"
            self._check_rejects(log)
            return
        role, rc = failed
        self._temporary = rc == EX_TEMPFAIL
        exe = Path(self.resolved.pipeline.steps[ROLES.index(role)].executable).name
        last = self._last_error(role)
        self.result.outcome = "failed"
        self.result.failed_step = role
        self.result.error = f"{exe} {_describe_rc(rc)}" + (f": {last}" if last else "")

    def _check_rejects(self, log: _Log) -> None:
        """Fail a run that rejected more of a stream than the pipeline allows.

        Rejects are counted where they happen: the mapper's rule failures per input stream,
        the store's per output stream. The bookmark is put back where the run started, so once
        the mapping (or the source) is fixed the next run reads the same records again.
        """
        limit = self.resolved.pipeline.max_reject_ratio
        streams = {f"mapper {s}": (n, r) for s, (n, r) in self._mapped.items()}
        for s, r in self._store_rejected.items():
            if s != "_rejects":
                streams[f"target {s}"] = (self._loaded[s] + r, r)
        over: list[tuple[str, str]] = []
        for name, (total, rejected) in sorted(streams.items()):
            if not rejected or not total:
                continue
            self.result.rejected_streams[name] = [rejected, total]
            role, stream = name.split(" ", 1)
            reasons = [why for why, _ in self._reasons[(role, stream)].most_common(3)]
            self.result.reject_reasons += reasons
            text = f"{stream}: {rejected} of {total} records rejected ({rejected / total:.0%})" + (
                f"; top reasons: {' | '.join(reasons)}" if reasons else ""
            )
            if rejected / total > limit:
                over.append((role, text))
            else:
                self.result.warnings.append(f"{role} {text}")
        if not over:
            return
        self.result.outcome = "failed"
        self.result.failed_step = over[0][0]
        self.result.error = (
            f"{'; '.join(text for _, text in over)} (more than max_reject_ratio {limit:g}; "
            "the rejects are in the store's _rejects)"
        )
        if not self._rewind:
            return
        if self._state_before is None:
            self.store.clear_state(self.env, self.pipeline)
        else:
            self.store.write_state(self.env, self.pipeline, self._state_before)
        log.write("[runner] too many rejects: the state is back where this run started")

    def _last_error(self, role: str) -> str:
        lines = list(self._last_lines[role])
        for line in reversed(lines):
            if re.search(r"(?i)error|exception|failed|fatal|denied|invalid", line):
                return line.strip()
        return lines[-1].strip() if lines else ""


def _temporary(exc: OSError) -> bool:
    """A state database that went away: the run may succeed later (exit 75)."""
    return isinstance(exc, StateBackendError) and exc.exit_code == EX_TEMPFAIL


def _progress_seconds() -> float:
    """$LOYALTY_PROGRESS_SECONDS, else STATUS_SECONDS: how often the heartbeat line comes."""
    try:
        return max(0.2, float(os.environ.get("LOYALTY_PROGRESS_SECONDS", STATUS_SECONDS)))
    except ValueError:
        return STATUS_SECONDS


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pdeathsig() -> t.Callable[[], None] | None:
    """Linux: ask the kernel to SIGTERM a child when the runner dies (even by SIGKILL).

    Without it a killed runner leaves its tap, mapper and target running, and the next cron
    run (the lock is free again) would race them for the store. The libc function is looked
    up here, in the parent, so the forked child only makes one system call before exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def _set() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return _set


_die_with_parent = _pdeathsig()


def _describe_rc(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"
