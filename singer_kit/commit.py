"""The "commit, then STATE" loop every target shares: Singer lines in, durable batches and
STATE out, a STATE never ahead of what is durable.

A target is a loop over Singer messages that stages records, makes a batch durable (the
store: one DuckDB transaction; a push target: the remote confirmed every record) and only
then echoes the STATE that arrived after those records. The orchestrator saves exactly those
STATE lines, so a run killed at any point resumes from the last durable batch and never skips
a record. :class:`CommitLoop` is that loop; a target fills in what staging and committing mean.

Commits run on one committer thread while the main thread reads and stages the next batch
(DuckDB and sockets release the GIL, so reading hides under committing). One commit is in
flight at a time, so batches commit in input order and each STATE is emitted after the
commit it covers.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import sys
import time
import typing as t

import msgspec
import orjson
from singer_sdk.exceptions import RecordsWithoutSchemaException

log = logging.getLogger(__name__)

_decode = msgspec.json.Decoder().decode
NO_STATE: t.Any = object()  # no STATE received yet (a STATE's value may itself be null)


class InputError(Exception):
    """Input the user must fix (printed as one line naming the input line, exit code 2)."""

    exit_code = 2


class CommitLoop:
    """Reads Singer messages, commits staged batches in order, emits STATE after each commit.

    A subclass provides ``on_schema``/``on_record`` (stage), ``has_pending`` (is anything
    staged?), ``take_batch`` (detach what is staged, on the main thread) and ``commit_batch``
    (make it durable, on the committer thread). It calls :meth:`commit` when its batch is full;
    a STATE arriving ``max_batch_seconds`` after the last commit commits too, and a STATE with
    nothing staged is emitted as soon as the commit in flight is done.
    """

    #: What :meth:`fail_input` raises; a target sets its own one-line error class.
    error_class: type[Exception] = InputError

    def __init__(self, *, max_batch_seconds: float = 60.0, thread_name: str = "commit") -> None:
        self.max_batch_seconds = max_batch_seconds
        self.line_no = 0
        self.counts: collections.Counter[str] = collections.Counter()
        self.states_emitted = 0
        self._pending_state: t.Any = NO_STATE
        self._last_emitted: bytes | None = None
        # The STATE the commit running now is followed by (NO_STATE: none), for a target
        # that saves it in the same transaction as the data (see ``save_state``).
        self.state_after_commit: t.Any = NO_STATE
        self._last_commit = time.monotonic()
        self._committer = concurrent.futures.ThreadPoolExecutor(1, thread_name)
        self._inflight: concurrent.futures.Future[None] | None = None

    # -- what a target provides ------------------------------------------------------------

    def on_schema(self, msg: dict) -> None:
        """A SCHEMA message (``type`` checked, the rest not)."""
        raise NotImplementedError

    def on_record(self, msg: dict, line: bytes) -> None:
        """A decoded RECORD message and its raw line; stage it, commit when a batch is full."""
        raise NotImplementedError

    def on_batch(self, msg: dict) -> None:
        """A Singer BATCH message; a target that does not declare BATCH support refuses it."""
        self.fail_input("BATCH messages are not supported by this target")

    def on_undecodable(self, line: bytes, exc: BaseException) -> None:
        """A line no decoder takes: it stops the run (the store stages valid-JSON RECORDs)."""
        what = str(exc) if isinstance(exc, msgspec.DecodeError) else "nested too deep"
        self.fail_input(f"not valid JSON ({what})")

    def has_pending(self) -> bool:
        """Whether records are staged that no commit has taken yet."""
        raise NotImplementedError

    def take_batch(self) -> t.Any:
        """Main thread: detach what is staged as one batch (falsy when nothing is)."""
        raise NotImplementedError

    def commit_batch(self, batch: t.Any) -> None:
        """Committer thread: make the batch durable, or raise (its STATE is then not emitted)."""
        raise NotImplementedError

    def interrupt_commit(self) -> None:
        """Stop the commit in flight promptly (a signal); by default it runs to its end."""

    def discard(self) -> None:
        """Drop what is staged (the run failed before committing it)."""

    def save_state(self, line: bytes) -> None:
        """Keep a STATE (its value as JSON) durably before it is emitted without a commit.

        A target that stores STATE next to its data saves the one following a batch inside
        that batch's transaction (``state_after_commit``); this hook covers a STATE that no
        commit carries (nothing was staged before it). Default: nothing to keep.
        """

    # -- the loop ---------------------------------------------------------------------------

    def process_stream(self, source: t.BinaryIO) -> collections.Counter[str]:
        """Consume a binary stream (a target with a faster block reader overrides this)."""
        return self.process(source)

    def process(self, lines: t.Iterable[bytes]) -> collections.Counter[str]:
        """Consume Singer lines, one message each."""
        for line in lines:
            self.line_no += 1
            self.dispatch(line)
        return self.counts

    def dispatch(self, line: bytes) -> None:
        """Decode one line and hand it to the handler of its message type."""
        if not line.strip():
            return
        try:
            msg = _decode(line)
        except (msgspec.DecodeError, RecursionError) as exc:
            self.on_undecodable(line, exc)
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self.fail_input("not a Singer message (no 'type')")
        kind = msg["type"]
        self.counts[kind] += 1
        if kind == "RECORD":
            self.on_record(msg, line)
        elif kind == "SCHEMA":
            self.on_schema(msg)
        elif kind == "STATE":
            self.on_state(msg)
        elif kind == "BATCH":
            self.on_batch(msg)
        elif kind == "ACTIVATE_VERSION":
            log.debug("ACTIVATE_VERSION ignored (targets here upsert; they never hard-delete)")
        else:
            self.fail_input(f"unsupported Singer message type {kind!r}")

    def fail_input(self, message: str) -> t.NoReturn:
        """Stop the run with one line naming the input line."""
        raise self.error_class(f"input line {self.line_no}: {message}")

    def missing_schema(self, msg: dict, lost: str) -> t.NoReturn:
        """A RECORD or BATCH before its stream's SCHEMA: a Singer protocol error."""
        raise RecordsWithoutSchemaException(
            f"input line {self.line_no}: {msg['type']} for stream {msg.get('stream')!r} arrived "
            f"before its SCHEMA (a Singer protocol error); nothing of {lost} was written"
        )

    def on_state(self, msg: dict) -> None:
        """Hold a STATE until everything before it is durable; commit a batch held too long."""
        if "value" not in msg:
            self.fail_input("STATE without 'value'")
        self._pending_state = msg["value"]
        if not self.has_pending():
            self.wait()  # once the commit in flight is done, all before it is committed
            self._emit_state(self._pending_state)
        elif self.batch_age() >= self.max_batch_seconds:
            self.commit()

    def batch_age(self) -> float:
        """Seconds since the last commit was taken (the time-based flush)."""
        return time.monotonic() - self._last_commit

    # -- commits ----------------------------------------------------------------------------

    def commit(self) -> None:
        """Hand what is staged to the committer thread as one batch; go on reading.

        The previous commit is waited for first, so batches commit in input order, and each
        emits the STATE that was pending when it was taken.
        """
        self.wait()
        batch = self.take_batch()
        state = self._pending_state
        self._last_commit = time.monotonic()
        if batch:
            self._inflight = self._committer.submit(self._commit_then_state, batch, state)
        else:
            self._emit_state(state)

    def wait(self) -> None:
        """Let the commit in flight finish; its failure is raised here, in the main thread.

        A signal handler's exception can end the wait while the commit still runs: it then
        stays in flight, so ``fail`` interrupts it and waits for it (the run's record is not
        written over a busy connection, and the process ends promptly).
        """
        inflight = self._inflight
        if inflight is None:
            return
        try:
            inflight.result()
        finally:
            if inflight.done():
                self._inflight = None

    def _commit_then_state(self, batch: t.Any, state: t.Any) -> None:
        self.state_after_commit = state
        self.commit_batch(batch)
        self._emit_state(state, saved=True)

    def _emit_state(self, state: t.Any, *, saved: bool = False) -> None:
        if state is NO_STATE:
            return
        line = orjson.dumps(state)
        if line == self._last_emitted:
            return
        if not saved:
            self.save_state(line)
        out = sys.stdout
        out.write(line.decode() + "\n")
        out.flush()
        self._last_emitted = line
        self.states_emitted += 1

    # -- end --------------------------------------------------------------------------------

    def finish(self) -> None:
        """End of input: commit the last batch, wait for it (its STATE is then out), end."""
        self.commit()
        self.wait()
        self.end(None)

    def fail(self, error: BaseException, *, interrupt: bool = False) -> None:
        """Abort: the batch being staged is dropped, the run ends with the error's first line.

        A batch already handed to the committer was complete, so it may still commit (and
        emit its STATE), as it would have before the error; on a signal (``interrupt``) it is
        stopped instead (``interrupt_commit``), so the process ends promptly.
        """
        if self._inflight is not None:
            if interrupt:
                self.interrupt_commit()
            with contextlib.suppress(BaseException):  # its own failure is not the story here
                self.wait()
        self.discard()
        self.end(str(error).splitlines()[0] if str(error) else type(error).__name__)

    def end(self, error: str | None) -> None:
        """The run is over (``error`` None: the input ended); release the committer thread.

        A target that records its runs (the store's ``_runs``) does so here, then calls this.
        """
        self._committer.shutdown(wait=True)
