"""Sharing the store: a process holding the DuckDB file makes a load wait, then exit 75."""

from __future__ import annotations

import subprocess
import sys
import time

from store_helpers import TARGET, Store, record, schema, singer_bytes, state

PROPS = {"type": "object", "properties": {"id": {"type": "integer"}}}
ROWS = [schema("things", PROPS, ["id"]), record("things", {"id": 1}), state({"upto": 1})]
# An analyst's session: the store open read-only until told to close it (a line on stdin).
HOLDER = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
    "print('held', flush=True); sys.stdin.readline(); con.close()"
)


def _hold(store: Store) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    holder.communicate("close\n", timeout=30)


def _start_target(store: Store, **config: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [TARGET, "--config", str(store.config(**config))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_line(stream, needle: bytes, seconds: float = 60) -> bytes:
    """Read stderr lines until one contains needle (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = stream.readline()
        assert line, "the target ended before saying it waits for the lock"
        if needle in line:
            return line
    raise AssertionError(f"no line with {needle!r} within {seconds}s")


def test_a_reader_holding_the_store_makes_the_load_wait_then_it_loads(store):
    store.load([schema("things", PROPS, ["id"])])  # the store exists
    holder = _hold(store)
    try:
        target = _start_target(store, lock_timeout_seconds=60)
        target.stdin.write(singer_bytes(ROWS))
        target.stdin.flush()  # communicate() closes it
        line = _wait_for_line(target.stderr, b"is locked by")
        assert f"(PID {holder.pid}); waiting up to 60s".encode() in line
        assert target.poll() is None  # still waiting, not failed
    finally:
        _release(holder)
    out, err = target.communicate(timeout=60)
    assert target.returncode == 0, err.decode()[-2000:]
    assert out.decode().splitlines() == ['{"upto":1}']
    assert store.query("SELECT id FROM things") == [(1,)]


def test_the_store_held_past_the_timeout_exits_75_naming_the_holder(store):
    store.load([schema("things", PROPS, ["id"])])
    holder = _hold(store)
    try:
        started = time.monotonic()
        run = store.run(ROWS, lock_timeout_seconds=1)
        took = time.monotonic() - started
        at_once = store.run(ROWS, lock_timeout_seconds=0)
    finally:
        _release(holder)
    assert run.returncode == 75, run.stderr[-2000:]
    program = run.stderr.split(" is locked by ", 1)[1].split(" (PID ", 1)[0]
    assert "python" in program  # DuckDB names the holder's executable and its PID
    assert run.stderr.strip().splitlines()[-1] == (
        f"target-loyalty-store: error: loyalty store {store.db} is locked by "
        f"{program} (PID {holder.pid}); gave up after 1s "
        "(lock_timeout_seconds), exit 75: try again later"
    )
    assert 1 <= took < 30
    assert at_once.returncode == 75
    assert "waiting" not in at_once.stderr  # 0: no wait at all
    assert run.stdout == at_once.stdout == ""  # no STATE: nothing was committed
    assert store.query("SELECT count(*) FROM things") == [(0,)]


def test_two_loads_into_one_store_both_land(store):
    """The second pipeline waits for the first instead of failing with a lock error."""
    first = _start_target(store, lock_timeout_seconds=60)
    first.stdin.write(singer_bytes([schema("things", PROPS, ["id"]), record("things", {"id": 1})]))
    first.stdin.flush()
    deadline = time.monotonic() + 60
    while not store.db.exists():  # the first one has the store open
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = _start_target(store, lock_timeout_seconds=60)
    second.stdin.write(singer_bytes([schema("things", PROPS, ["id"]), record("things", {"id": 2})]))
    second.stdin.flush()
    _wait_for_line(second.stderr, b"is locked by")
    first.stdin.close()
    assert first.wait(60) == 0
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()[-2000:]
    assert store.query("SELECT id FROM things ORDER BY id") == [(1,), (2,)]
