"""`loyalty run`: tap | mapper | target as three Singer processes joined by OS pipes.

The data never passes through this process: the tap's stdout is the mapper's stdin and the
mapper's stdout is the target's stdin. The runner only reads the three stderr streams (to the
run log, secrets redacted, METRIC counts picked out) and the target's stdout, where the target
emits STATE after each durable commit. Each such STATE is saved at once (atomically), so the
saved bookmark is always one the store has committed - whatever kills the run afterwards.
"""

from __future__ import annotations

import collections
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
from loyalty.state import LockedError, StateStore

if t.TYPE_CHECKING:
    from collections.abc import Callable

_METRIC = re.compile(r"METRIC: (\{.*\})\s*$")
# target-loyalty-store reports each commit as "committed contacts: 5 loaded, 1 rejected, ... in
# 0.12s"; counting those gives rows actually committed, even for a run killed later.
_COMMITTED = re.compile(r"\bcommitted (.+) in [0-9.]+s\s*$")
_COMMITTED_STREAM = re.compile(r"([\w.-]+): (\d+) loaded, (\d+) rejected")
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
    full_refresh: bool = False
    log: str = ""
    window: list[str] | None = None  # a backfill window [start, end): state is not saved

    def to_dict(self) -> dict[str, t.Any]:
        """JSON-ready record."""
        return dict(self.__dict__)


class Redactor:
    """Replaces secret values in any text the runner echoes or logs."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = [s for s in secrets if s]
        self._re = (
            re.compile("|".join(re.escape(s) for s in self._secrets)) if self._secrets else None
        )

    def __call__(self, text: str) -> str:
        """Text with every secret replaced by ***."""
        return self._re.sub("***", text) if self._re else text


def _utc(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def command_lines(
    project: Project, resolved: Resolved, config_dir: Path, state_file: Path | None
) -> dict[str, list[str]]:
    """The three argv lists (config files in config_dir; nothing secret on a command line)."""
    pipe = resolved.pipeline
    cmds: dict[str, list[str]] = {}
    for step in pipe.steps:
        exe = find_executable(step.executable, project.root) or step.executable
        argv = [exe, "--config", str(config_dir / f"{step.role}.json")]
        if step.role == "tap":
            if step.catalog:
                argv += ["--catalog", str(project.root / step.catalog)]
            if state_file is not None:
                argv += ["--state", str(state_file)]
        cmds[step.role] = argv
    return cmds


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
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class _Log:
    """The per-run log file, shared by the reader threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
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
        echo: Callable[[str], None] | None = None,
        verbose: bool = False,
    ) -> None:
        self.project = project
        self.resolved = resolved
        self.store = store
        # A backfill window reads no state and saves none: the bookmark is left alone.
        self.window = window
        self.full_refresh = full_refresh or window is not None
        self.batch = resolved.pipeline.batch if batch is None else batch
        self.echo = echo or (lambda _msg: None)
        self.verbose = verbose
        self.redact = Redactor(resolved.secrets)
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
        self._state_error: str | None = None
        self._temporary = False  # a step exited EX_TEMPFAIL (75): the whole run is temporary

    # -- readers -----------------------------------------------------------------------------

    def _read_stderr(self, role: str, stream: t.IO[bytes], log: _Log) -> None:
        for raw in stream:
            line = self.redact(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            if not line.strip():
                continue
            log.write(f"[{role}] {line}")
            m = _METRIC.search(line)
            if m:
                self._metric(role, m.group(1))
                continue
            if role == "target" and (c := _COMMITTED.search(line)):
                self._committed(c.group(1))
            self._last_lines[role].append(line)
            if self.verbose:
                self.echo(f"[{role}] {line}")
        stream.close()

    def _metric(self, role: str, payload: str) -> None:
        try:
            point = json.loads(payload)
        except ValueError:
            return
        if point.get("metric") != "record_count" or not isinstance(point.get("value"), int):
            return
        stream = (point.get("tags") or {}).get("stream")
        if not stream:
            return
        self._counts[role][stream] += point["value"]
        if role in ("tap", "target") and point["value"]:
            counts = ", ".join(f"{k}={v}" for k, v in sorted(self._counts[role].items()))
            self.echo(f"  progress [{role}] {counts}")

    def _committed(self, text: str) -> None:
        for stream, loaded, rejected in _COMMITTED_STREAM.findall(text):
            self._loaded[stream] += int(loaded)
            self._target_rejected += int(rejected)
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self._loaded.items()))
        self.echo(f"  progress [target] committed {counts}")

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
            try:
                with self._state_lock:
                    self.store.write_state(self.env, self.pipeline, msg)
                    self.result.states_saved += 1
            except OSError as exc:  # keep draining, or the target would block on its stdout
                self._state_error = f"could not save the state: {exc}"
                log.write(f"[runner] {self._state_error}")
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

    def run(self) -> RunResult:
        """Run under the pipeline's lock; raises LockedError at once if another run holds it."""
        self.check()
        with self.store.lock(self.env, self.pipeline):
            self.store.write_run(self.result.to_dict())
            try:
                self._run_locked()
            except BaseException as exc:
                if self.result.outcome == "running":
                    self.result.outcome = (
                        "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                    )
                    self.result.error = self.result.error or self.redact(str(exc))
                raise
            finally:
                self.result.ended_at = _utc()
                self._tally()
                self.store.write_run(self.result.to_dict())
        if self.result.outcome != "success":
            if self._temporary:  # e.g. the store stayed locked: exit 75 too, so cron retries
                raise LockedError(self._failure_message())
            raise RunFailed(self._failure_message(), self.result)
        return self.result

    def _tally(self) -> None:
        """Records per stream and rejects: committed counts if the target reports them, else
        singer-sdk's METRIC record_count of the target (received records)."""
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
        tmp = self.store.make_tmp()
        batch_dir = self.store.root / "batches" / self.run_id
        log = _Log(Path(self.result.log))
        procs: dict[str, subprocess.Popen[bytes]] = {}
        threads: list[threading.Thread] = []
        try:
            state_file = None
            if not self.full_refresh:
                state = self.store.read_state(self.env, self.pipeline)
                if state is not None:
                    state_file = tmp / "state.json"
                    _write_private(state_file, json.dumps(state).encode())
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
            cmds = command_lines(self.project, self.resolved, tmp, state_file)
            if self.window:
                origin = f"not read or saved (backfill window {self.window[0]} to {self.window[1]})"
            elif self.full_refresh:
                origin = "ignored (--full-refresh)"
            elif state_file:
                origin = f"from {self.store.state_path(self.env, self.pipeline)}"
            else:
                origin = "none saved yet"
            mode = f"BATCH files in {batch_dir}" if self.batch else "RECORD messages"
            log.write(
                f"[runner] run {self.run_id}: {self.pipeline}, env {self.env}, state {origin}, "
                f"{mode}"
            )
            procs = self._start(cmds, log, threads)
            failed = self._supervise(procs, log)
            self._join(threads)
            self._conclude(failed)
        finally:
            # Interrupted (Ctrl-C, SIGTERM from cron or systemd): stop the children politely,
            # then for good. The state file already holds only committed bookmarks.
            _stop([p for p in procs.values() if p.poll() is None])
            self._join(threads)
            log.write(f"[runner] outcome: {self.result.outcome}")
            log.close()
            for child in tmp.iterdir():
                child.unlink()
            tmp.rmdir()
            # Batch files are only a transport: once the target has committed them (or the
            # run failed, and the saved state still points before them) they are not needed.
            shutil.rmtree(batch_dir, ignore_errors=True)

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
        while pending:
            try:
                role, rc = exits.get(timeout=0.2)
            except queue.Empty:
                now = time.monotonic()
                if now >= next_status:  # a heartbeat, also for steps that log nothing
                    next_status = now + every
                    self.echo(
                        f"  progress: running {int(now - started)}s, "
                        f"{self.result.states_saved} commit(s) saved, "
                        f"still running: {', '.join(r for r in ROLES if r in pending)}"
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
            if rc != 0 and failed is None:
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

    def _conclude(self, failed: tuple[str, int] | None) -> None:
        if failed is None and self._state_error:
            self.result.outcome = "failed"
            self.result.failed_step = "runner"
            self.result.error = self._state_error
            return
        if failed is None:
            self.result.outcome = "success"
            return
        role, rc = failed
        self._temporary = rc == EX_TEMPFAIL
        exe = Path(self.resolved.pipeline.steps[ROLES.index(role)].executable).name
        last = self._last_error(role)
        self.result.outcome = "failed"
        self.result.failed_step = role
        self.result.error = f"{exe} {_describe_rc(rc)}" + (f": {last}" if last else "")

    def _last_error(self, role: str) -> str:
        lines = list(self._last_lines[role])
        for line in reversed(lines):
            if re.search(r"(?i)error|exception|failed|fatal|denied|invalid", line):
                return line.strip()
        return lines[-1].strip() if lines else ""


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
