"""The kit's commit-then-STATE loop on its own: a STATE is out only after the commit that
covers it, a failed commit keeps it back, a held batch is committed by time."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from singer_kit.commit import CommitLoop, InputError


class ListLoop(CommitLoop):
    """Stages record ids in a list; a commit 'makes them durable' in `committed`."""

    def __init__(self, *, fail_on: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.staged: list[int] = []
        self.committed: list[int] = []
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()
        self.interrupted = False

    def on_schema(self, msg: dict) -> None:
        pass

    def on_record(self, msg: dict, line: bytes) -> None:
        self.staged.append(msg["record"]["id"])
        if len(self.staged) == 2:
            self.commit()

    def has_pending(self) -> bool:
        return bool(self.staged)

    def take_batch(self) -> list[int]:
        batch, self.staged = self.staged, []
        return batch

    def commit_batch(self, batch: list[int]) -> None:
        self.gate.wait(5)
        if self.interrupted:
            raise InterruptedError("commit interrupted")
        if self.fail_on in batch:
            raise OSError(f"cannot commit {self.fail_on}")
        self.committed += batch

    def interrupt_commit(self) -> None:
        self.interrupted = True
        self.gate.set()


def msgs(*items: object) -> list[bytes]:
    out = []
    for item in items:
        msg = {"type": "STATE", "value": item} if isinstance(item, str) else item
        if isinstance(item, int):
            msg = {"type": "RECORD", "stream": "s", "record": {"id": item}}
        out.append(json.dumps(msg).encode() + b"\n")
    return out


def emitted(capsys) -> list[str]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_state_waits_for_the_commit_that_covers_it(capsys):
    loop = ListLoop()
    loop.gate.clear()  # the committer is slow: the batch of 1 and 2 stays in flight
    loop.process(msgs(1, 2, 3, "after-3"))
    assert loop.committed == []
    assert emitted(capsys) == []  # 3 is staged, 1 and 2 are not durable yet: nothing is out
    loop.gate.set()
    loop.finish()
    assert loop.committed == [1, 2, 3]
    assert emitted(capsys) == ["after-3"]


def test_a_failed_commit_emits_no_state_and_fails_the_run(capsys):
    loop = ListLoop(fail_on=3)
    with pytest.raises(OSError, match="cannot commit 3"):
        loop.process(msgs(1, 2, "after-2", 3, 4, "after-4"))
    loop.fail(OSError("cannot commit 3"))
    assert loop.committed == [1, 2]
    assert emitted(capsys) == ["after-2"]


def test_a_signal_while_waiting_for_a_commit_stops_that_commit(capsys):
    """SIGTERM while the main thread waits for the last commit: the handler's exception ends
    the wait, and the commit still running must be interrupted and waited for, not left to
    finish (and emit its STATE) after the run was recorded as failed."""

    class Terminated(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Terminated("terminated by signal")

    loop = ListLoop()
    loop.gate.clear()  # the commit of 1 and 2 runs until it is interrupted
    loop.process(msgs(1, 2, 3, "after-3"))  # 3 is staged, so that STATE waits for finish
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Terminated):
            loop.finish()  # waits for the commit in flight
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    started = time.monotonic()
    loop.fail(Terminated("terminated by signal"), interrupt=True)
    assert loop.interrupted
    assert time.monotonic() - started < 2  # not the commit's own 5 s
    assert loop.committed == []
    assert emitted(capsys) == []


def test_a_batch_held_longer_than_max_batch_seconds_commits_at_the_next_state(capsys):
    loop = ListLoop(max_batch_seconds=0)
    loop.process(msgs(1, "after-1"))
    loop.wait()
    assert loop.committed == [1]
    assert emitted(capsys) == ["after-1"]
    loop.finish()


def test_bad_lines_stop_the_run_with_one_line_naming_it():
    loop = ListLoop()
    with pytest.raises(InputError, match=r"^input line 2: STATE without 'value'$"):
        loop.process([*msgs(1), b'{"type": "STATE"}\n'])
    with pytest.raises(InputError, match=r"^input line 3: not valid JSON"):
        loop.process([b"{nope\n"])
    loop.fail(InputError("stopped"))


class StateKeepingLoop(ListLoop):
    """Keeps each STATE the way a store keeps it: with the batch it follows, or on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[tuple[list[int], str]] = []  # (batch it was committed with, STATE)

    def commit_batch(self, batch: list[int]) -> None:
        super().commit_batch(batch)
        self.kept.append((batch, self.state_after_commit))

    def save_state(self, line: bytes) -> None:
        self.kept.append(([], json.loads(line)))


def test_a_store_keeps_each_emitted_state_with_the_batch_it_follows(capsys):
    loop = StateKeepingLoop()
    loop.process(msgs("before", 1, "mid", 2, 3, "after-3"))
    loop.finish()
    # 1-2 commit with "mid" (the STATE pending when the batch filled); "before" came with
    # nothing staged and is kept on its own; 3 commits with "after-3" at the end.
    assert loop.kept == [([], "before"), ([1, 2], "mid"), ([3], "after-3")]
    assert emitted(capsys) == ["before", "mid", "after-3"]
