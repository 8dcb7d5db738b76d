"""SIGKILL part-way, then run again: nothing lost, nothing doubled, STATE never ahead of data."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time

from store_helpers import TARGET, record, schema, singer_bytes, state

N = 20_000
PROPS = {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}


def _messages(first: int, last: int) -> bytes:
    out = [schema("numbers", PROPS, ["id"])]
    for i in range(first, last + 1):
        out.append(record("numbers", {"id": i, "v": f"value {i}"}))
        if i % 500 == 0:
            out.append(state({"upto": i}))
    return singer_bytes(out)


def test_sigkill_mid_run_then_rerun_loses_and_doubles_nothing(store):
    config = store.config(batch_size_rows=2000)
    proc = subprocess.Popen(
        [TARGET, "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    killed = threading.Event()
    first_part, rest = _messages(1, 9_000), _messages(9_001, N)

    def feed() -> None:
        try:
            proc.stdin.write(first_part)
            proc.stdin.flush()
            killed.wait(60)  # hold the rest back so the kill lands mid-run
            proc.stdin.write(rest)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    emitted: list[int] = []
    for raw in proc.stdout:
        emitted.append(json.loads(raw)["upto"])
        if emitted[-1] >= 6_000:
            break
    os.kill(proc.pid, signal.SIGKILL)
    killed.set()
    assert proc.wait(30) == -signal.SIGKILL
    writer.join(30)
    proc.stdout.close()

    # Every STATE the target emitted is backed by committed rows; no batch is half there.
    committed = store.scalar("SELECT count(*) FROM numbers")
    assert emitted and emitted == sorted(emitted)
    assert committed >= emitted[-1]
    assert store.query("SELECT count(DISTINCT id), coalesce(max(id), 0) FROM numbers") == [
        (committed, committed)
    ]
    assert committed < N
    assert store.query("SELECT outcome FROM _runs") == [("running",)]  # honest: never finished

    # The orchestrator resumes from the last STATE it saw (re-sending some overlap).
    resume_from = emitted[-1] - 700
    store.load(_messages(resume_from + 1, N), batch_size_rows=2000)
    assert store.query("SELECT count(*), count(DISTINCT id), sum(id) FROM numbers") == [
        (N, N, N * (N + 1) // 2)
    ]
    assert store.query("SELECT outcome FROM _runs ORDER BY started_at") == [
        ("running",),
        ("input_ended",),
    ]


def test_sigterm_drops_the_open_batch_with_one_clear_line(store):
    config = store.config(batch_size_rows=2000)
    proc = subprocess.Popen(
        [TARGET, "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdin.write(_messages(1, 2_600))  # one committed batch, 600 records left open
    proc.stdin.flush()
    first = json.loads(proc.stdout.readline())
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.decode().strip().splitlines()[-1] == (
        "target-loyalty-store: error: terminated by signal 15; the uncommitted batch was dropped"
    )
    # The batch of 2000 was committed (and its STATE emitted); the open 600 were dropped.
    assert first["upto"] <= 2000
    assert store.scalar("SELECT count(*) FROM numbers") == 2000
    assert store.query("SELECT outcome, error FROM _runs") == [
        ("failed", "terminated by signal 15; the uncommitted batch was dropped")
    ]


def _staging_folders(root) -> set:
    return {p.name for p in root.glob("loyalty-store-*")}


def test_staging_is_private_and_the_next_run_removes_what_a_killed_one_left(store, tmp_path):
    staging = store.path / "staging"
    killed = subprocess.Popen(
        [TARGET, "--config", str(store.config(batch_size_rows=100_000))],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed.stdin.write(_messages(1, 3_000))  # staged, not committed (the batch is not full)
    killed.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(staging.glob("loyalty-store-*/*.ndjson")):
        assert time.monotonic() < deadline and killed.poll() is None
        time.sleep(0.05)
    (folder,) = staging.glob("loyalty-store-*")
    (staged,) = folder.glob("*.ndjson")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # customer data: owner only
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600

    # A live run of another pipeline stages in the same place meanwhile.
    other_db = {"database": str(tmp_path / "other.duckdb"), "staging_dir": str(staging)}
    live = subprocess.Popen(
        [TARGET, "--config", str(store.config(**other_db))],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    live.stdin.write(_messages(1, 10))
    live.stdin.flush()
    while len(_staging_folders(staging)) < 2:
        assert time.monotonic() < deadline and live.poll() is None
        time.sleep(0.05)
    live_folder = (_staging_folders(staging) - {folder.name}).pop()

    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(30) == -signal.SIGKILL
    killed.stdin.close()
    assert folder.name in _staging_folders(staging)  # the kill left it behind

    store.load(_messages(1, 10))  # the next run: removes the dead run's folder only
    assert _staging_folders(staging) == {live_folder}
    live.stdin.close()
    assert live.wait(60) == 0
    assert _staging_folders(staging) == set()
