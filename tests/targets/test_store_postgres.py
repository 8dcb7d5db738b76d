"""The store on PostgreSQL, where several loads and readers share it: concurrent loads end as
sequential ones do, a reader is never blocked and sees whole commits only, and the pipeline's
STATE is saved in the transaction of the data it covers (also when the load is killed)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time

import psycopg
import pytest
from store_helpers import (
    CONTACT_SCHEMA,
    LINE_SCHEMA,
    TARGET,
    Run,
    Store,
    pg_query,
    record,
    schema,
    singer_bytes,
    state,
)

from sandbox.postgres import running_postgres
from singer_kit.pgstore import STATE_KEY_ENV

pytestmark = pytest.mark.parametrize("backend", ["postgres"])

CONTACTS = schema("contacts", CONTACT_SCHEMA, ["source", "source_id"])
LINES = schema("order_lines", LINE_SCHEMA, ["line_id"])
NUMBERS = schema(
    "numbers",
    {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}},
    ["id"],
)


def _pipeline(source: str, people: list[int], minute: int) -> list[bytes]:
    """One source's contacts (people overlap between sources) and the same order lines, in
    parts of 50 people, each part ending with a STATE."""
    parts = []
    for start in range(0, len(people), 50):
        out = [CONTACTS, LINES]
        for i in people[start : start + 50]:
            when = f"2024-01-{1 + i % 28:02d}T10:{minute:02d}:00Z"  # sources never tie
            contact = {
                "source": source,
                "source_id": f"{source}-{i}",
                "email": f"p{i}@x.dk",
                "first_name": f"{source} {i}",
                "newsletter": (i + minute) % 2 == 0,  # the two sources disagree
                "created_at": "2023-06-01T00:00:00Z",
                "updated_at": when,
            }
            line = {"line_id": f"l{i}", "order_id": f"o{i}", "source": "pos", "amount": i}
            out += [record("contacts", contact), record("order_lines", line)]
        parts.append(singer_bytes([*out, state({source: start + 50})]))
    return parts


def _contents(store: Store) -> dict[str, list[str]]:
    tables = ("contacts", "contact_ids", "contact_consents", "order_lines")
    return {table: store.rows_as_text(table) for table in tables}


def _start(
    store: Store, data: bytes, env: dict[str, str] | None = None, **config: object
) -> subprocess.Popen:
    """The target running on ``data`` (from a file: it reads at its own pace, EOF at the end)."""
    source = store.path / f"input-{len(list(store.path.glob('input-*')))}.jsonl"
    source.write_bytes(data)
    with source.open("rb") as stdin:
        return subprocess.Popen(
            [TARGET, "--config", str(store.config(**config))],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )


def _finish(proc: subprocess.Popen) -> Run:
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None  # the test fed it and closed it (communicate would flush it)
    stdout, stderr = proc.communicate(timeout=120)
    return Run(proc.returncode, stdout.decode(), stderr.decode())


def test_two_concurrent_loads_end_as_loading_one_after_the_other(store):
    # After a first part of people of its own, each load merges 150..299 in the same order,
    # so both merge the same people at the same time.
    pos = _pipeline("pos", [*range(0, 50), *range(150, 300), *range(50, 150)], 1)
    web = _pipeline("web", [*range(400, 450), *range(150, 400)], 2)
    config = store.config(batch_size_rows=100)  # 50 people: a STATE after each commit
    procs = [
        subprocess.Popen(
            [TARGET, "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in (pos, web)
    ]
    for proc, parts in zip(procs, (pos, web), strict=True):
        proc.stdin.write(parts[0])  # people the other load does not have
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdout.readline()  # both have committed once: the rest runs side by side
    for proc, parts in zip(procs, (pos, web), strict=True):
        proc.stdin.write(b"".join(parts[1:]))
        proc.stdin.close()
    runs = [_finish(proc) for proc in procs]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    sequential = store.another("sequential")
    sequential.load(b"".join(pos), batch_size_rows=100)
    sequential.load(b"".join(web), batch_size_rows=100)
    assert _contents(store) == _contents(sequential)
    assert store.scalar("SELECT count(*) FROM contacts") == 450
    assert store.scalar("SELECT count(*) FROM contact_ids") == 600


def test_a_reader_during_a_load_is_never_blocked_and_sees_whole_commits_only(store):
    n, batch = 60_000, 10_000
    data = singer_bytes([NUMBERS, *(record("numbers", {"id": i, "v": "v"}) for i in range(n))])
    proc = _start(store, data, batch_size_rows=batch)
    seen: set[int] = set()
    with psycopg.connect(store.url, autocommit=True) as reader:
        reader.execute("SET statement_timeout = '3s'")  # a blocked read fails the test
        while proc.poll() is None:
            with contextlib.suppress(psycopg.errors.UndefinedTable):  # before its SCHEMA
                seen.add(reader.execute("SELECT count(*) FROM numbers").fetchone()[0])
            time.sleep(0.02)
    run = _finish(proc)
    assert run.returncode == 0, run.stderr[-2000:]
    assert seen <= set(range(0, n + 1, batch))  # only whole batches, never a part of one
    assert len(seen - {0, n}) >= 1  # and some read landed while the load went on
    assert store.scalar("SELECT count(*) FROM numbers") == n


def _numbers(last: int) -> bytes:
    """Records 0..last, a STATE after every 1,000th."""
    out = [NUMBERS]
    for i in range(last + 1):
        out.append(record("numbers", {"id": i, "v": f"value {i}"}))
        if i % 1000 == 999:
            out.append(state({"upto": i}))
    return singer_bytes(out)


def _saved_state(store: Store, key: str) -> dict | None:
    rows = pg_query(store.url, "SELECT value FROM _loyalty_state WHERE state_key = ?", [key])
    return json.loads(rows[0][0]) if rows else None


def test_the_state_is_saved_with_the_data_it_covers(store):
    key = {STATE_KEY_ENV: "dev/numbers"}
    proc = _start(store, _numbers(4_999), env=key, batch_size_rows=2_000)
    run = _finish(proc)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.states[-1] == {"upto": 4_999}
    assert _saved_state(store, "dev/numbers") == {"upto": 4_999}
    # A later run with no records still moves the saved bookmark (no commit carries it).
    proc = _start(store, singer_bytes([NUMBERS, state({"upto": 5_000})]), env=key)
    assert _finish(proc).returncode == 0
    assert _saved_state(store, "dev/numbers") == {"upto": 5_000}


def test_a_load_killed_after_some_commits_leaves_the_state_of_its_data(store):
    key = {STATE_KEY_ENV: "dev/numbers"}
    proc = _start(store, _numbers(99_999), env=key, batch_size_rows=5_000)
    for emitted, _ in enumerate(proc.stdout, 1):
        if emitted == 3:  # three commits made (and their STATEs emitted): now, mid-load
            break
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    saved = _saved_state(store, "dev/numbers")
    count, low, high = pg_query(store.url, "SELECT count(*), min(id), max(id) FROM numbers")[0]
    assert count >= 2 * 5_000 and (low, high) == (0, count - 1)  # whole batches, in order
    # A batch is taken as its 5,000th record arrives, so the STATE saved in its transaction
    # is the one 1,000 records before; the STATE right after it has no records to wait for
    # and is saved on its own, unless the kill came first. Never one ahead of the data.
    assert saved in ({"upto": count - 1_001}, {"upto": count - 1})


def test_a_wrong_password_or_a_server_down_is_one_line_without_the_password(store):
    wrong = store.url.replace(store.url.split(":")[2].split("@")[0], "not-the-password")
    secret = store.url.split(":")[2].split("@")[0]
    refused = store.run([NUMBERS], database=wrong)
    assert refused.returncode == 2
    assert "password authentication failed" in refused.stderr.splitlines()[-1]
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = store.run([NUMBERS], database=f"postgresql://loyalty:{secret}@127.0.0.1:{port}/x")
    assert down.returncode == 75
    for run in (refused, down):
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("target-loyalty-store: error: cannot open the PostgreSQL store")
        assert secret not in run.stderr and "not-the-password" not in run.stderr
        assert "Traceback" not in run.stderr


def test_a_server_that_goes_away_mid_load_is_exit_75_without_the_password(store):
    with running_postgres() as server:  # a server of its own, to stop
        url = server.create_database("store")
        proc = _start(store, _numbers(59_999), database=url, batch_size_rows=10_000)
        assert proc.stdout.readline()  # a commit is done: the load is under way
        server.stop()
        run = _finish(proc)
    assert run.returncode == 75
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("target-loyalty-store: error: the PostgreSQL store postgresql://")
    assert "went away while" in last and "Traceback" not in run.stderr
    assert server.password not in run.stderr


def test_a_name_too_long_for_postgresql_is_refused_at_its_schema(store):
    long = "a_field_name_" + "x" * 60  # 73 bytes: PostgreSQL would cut it to 63
    props = {"type": "object", "properties": {"id": {"type": "integer"}, long: {"type": "string"}}}
    run = store.run([schema("things", props, ["id"]), record("things", {"id": 1, long: "v"})])
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "is longer than PostgreSQL's 63 bytes for a table or column; rename it "
            "(e.g. with a stream map)"
        )
    )
