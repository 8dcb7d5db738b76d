"""The push sink base and the push-emulator base, end to end: a real target process (the
example in example_push_target.py) sending Singer input from stdin to an emulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sandbox.push import API_KEY, PushEmulator

TARGET = Path(__file__).with_name("example_push_target.py")
SCHEMA = {
    "type": "SCHEMA",
    "stream": "people",
    "key_properties": ["id"],
    "schema": {"properties": {"id": {"type": "integer"}, "email": {"type": "string"}}},
}


class ExamplePushEmulator(PushEmulator):
    """The vendor side of the example: refuses an e-mail without '@', as a remote would."""

    name = "example-push"
    max_records_per_call = 5
    max_record_bytes = 2048

    def validate(self, record: object) -> str | None:
        if isinstance(record, dict) and "@" not in str(record.get("email")):
            return "not a valid value: email"
        return super().validate(record)


@pytest.fixture
def emulator():
    server = ExamplePushEmulator().start()
    yield server
    server.stop()


def person(n: int, **fields: object) -> dict:
    return {"id": n, "email": f"p{n}@example.com", "name": f"Person {n}", **fields}


def lines(records: list[dict], state_every: int = 10) -> bytes:
    """SCHEMA, the records, and a STATE {"done": n} after every `state_every` records."""
    out = [SCHEMA]
    for n, record in enumerate(records, 1):
        out.append({"type": "RECORD", "stream": "people", "record": record})
        if n % state_every == 0 or n == len(records):
            out.append({"type": "STATE", "value": {"done": n}})
    return b"".join(json.dumps(m).encode() + b"\n" for m in out)


def config(tmp_path: Path, emulator: PushEmulator, **extra: object) -> Path:
    path = tmp_path / "config.json"
    settings = {
        "url": emulator.base_url + emulator.push_path,
        "api_key": API_KEY,
        "ledger_path": str(tmp_path / "ledger.sqlite"),
        "batch_size_rows": 10,
        **extra,
    }
    path.write_text(json.dumps(settings))
    return path


def run(cfg: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(TARGET), "--config", str(cfg)],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )


def states(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def counted(stderr: bytes) -> Counter[str]:
    """The METRIC record counts of a run (loaded / rejected), summed, zeros left out."""
    totals: Counter[str] = Counter()
    for line in stderr.decode().splitlines():
        if "METRIC: " in line:
            metric = json.loads(line.split("METRIC: ", 1)[1])
            if metric["metric"] == "record_count":
                totals[metric["tags"]["status"]] += metric["value"]
    return +totals


def pushes(emulator: PushEmulator) -> list:
    return [r for r in emulator.requests if r.path == emulator.push_path]


def test_records_arrive_and_an_unchanged_rerun_sends_nothing(tmp_path, emulator):
    records = [person(n) for n in range(1, 24)]
    cfg = config(tmp_path, emulator)

    first = run(cfg, lines(records))

    assert first.returncode == 0, first.stderr.decode()
    assert emulator.stored == {str(r["id"]): {**r, "id": str(r["id"])} for r in records}
    assert states(first.stdout)[-1] == {"done": 23}
    assert all(len(r.query) == 0 for r in pushes(emulator))
    assert len(pushes(emulator)) == 5  # 23 records, at most 5 per call

    emulator.clear_requests()
    second = run(cfg, lines(records))

    assert second.returncode == 0, second.stderr.decode()
    assert pushes(emulator) == []
    assert states(second.stdout)[-1] == {"done": 23}  # STATE still moves
    assert counted(first.stderr) == {"loaded": 23}
    assert counted(second.stderr) == {}
    assert "people: 0 sent, 3 unchanged, 0 rejected" in second.stderr.decode()


def test_a_changed_record_is_sent_again_and_only_it(tmp_path, emulator):
    records = [person(n) for n in range(1, 11)]
    cfg = config(tmp_path, emulator)
    assert run(cfg, lines(records)).returncode == 0
    emulator.clear_received()

    records[3] = person(4, name="Renamed")
    again = run(cfg, lines(records))

    assert again.returncode == 0, again.stderr.decode()
    assert emulator.received == [{"id": "4", "email": "p4@example.com", "name": "Renamed"}]


def test_an_oversize_record_and_a_remote_rejection_are_rejects_with_their_reason(
    tmp_path, emulator
):
    records = [person(1), person(2, name="x" * 3000), person(3, email="nobody"), person(4)]
    cfg = config(tmp_path, emulator)

    result = run(cfg, lines(records))

    assert result.returncode == 0, result.stderr.decode()
    assert sorted(emulator.stored) == ["1", "4"]
    rejects = [json.loads(x) for x in (tmp_path / "ledger.rejects.jsonl").read_text().splitlines()]
    reasons = {r["record"]["id"]: r["reason"] for r in rejects}
    assert reasons[2].startswith("record is ") and "over the limit of 2048 bytes" in reasons[2]
    assert reasons[3] == "not a valid value: email"
    assert len(rejects) == 2
    assert counted(result.stderr) == {"loaded": 2, "rejected": 2}
    assert states(result.stdout)[-1] == {"done": 4}
    assert all(r.status == 200 for r in pushes(emulator))  # the oversize one was never sent

    # A remote rejection is not in the ledger: the next run offers it again (it may be fixed
    # on the remote's side); the accepted ones and the oversize one cost no call.
    emulator.clear_requests()
    assert run(cfg, lines(records)).returncode == 0
    assert len(pushes(emulator)) == 1


def test_four_workers_under_the_remotes_rate_limit_lose_nothing_and_see_no_429(tmp_path, emulator):
    emulator.set_rate_limit(8)
    records = [person(n) for n in range(1, 61)]
    cfg = config(tmp_path, emulator, workers=4, batch_size_rows=60, requests_per_second=8)

    started = time.monotonic()
    result = run(cfg, lines(records, state_every=60))

    assert result.returncode == 0, result.stderr.decode()
    assert [r.status for r in pushes(emulator)] == [200] * 12
    assert sorted(emulator.stored, key=int) == [str(n) for n in range(1, 61)]
    assert time.monotonic() - started >= 11 / 8  # the client spaced its calls


def test_a_failed_call_fails_the_run_in_one_line_and_state_stays_at_the_last_confirmed(
    tmp_path, emulator
):
    records = [person(n) for n in range(1, 21)]
    cfg = config(tmp_path, emulator, workers=1)
    assert run(cfg, lines(records[:10])).returncode == 0
    emulator.inject_fault(emulator.push_path, status=500, times=1)  # records 11-15's call

    result = run(cfg, lines(records))

    assert result.returncode == 2
    error = result.stderr.decode().strip().splitlines()[-1]
    assert error.startswith("target-example-push: error: stream 'people': a call of 5 records")
    assert "500" in error and API_KEY not in result.stderr.decode()
    assert states(result.stdout) == [{"done": 10}]
    # The other call of that batch (16-20) was confirmed and ledgered: a re-run sends only
    # the failed call's records.
    emulator.clear_received()
    again = run(cfg, lines(records))
    assert again.returncode == 0
    assert [r["id"] for r in emulator.received] == ["11", "12", "13", "14", "15"]
    assert states(again.stdout)[-1] == {"done": 20}


def test_a_kill_mid_run_then_a_rerun_delivers_every_record_once_and_state_never_leads(
    tmp_path, emulator
):
    records = [person(n) for n in range(1, 61)]
    data = lines(records).splitlines(keepends=True)  # SCHEMA, then 10 records + STATE, ...
    cfg = config(tmp_path, emulator, workers=2)

    def covered(state: dict) -> None:
        """The moment a STATE is out, every record it covers is held by the remote."""
        held = emulator.stored
        assert all(str(n) in held for n in range(1, state["done"] + 1)), state

    target = subprocess.Popen(
        [sys.executable, str(TARGET), "--config", str(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        target.stdin.write(b"".join(data[:23]))  # SCHEMA and two batches with their STATEs
        target.stdin.flush()
        seen = []
        for _ in range(2):
            seen.append(json.loads(target.stdout.readline()))
            covered(seen[-1])
        assert seen == [{"done": 10}, {"done": 20}]
        # The third batch's calls hang in the remote, and are never accepted, until the kill.
        emulator.inject_fault(emulator.push_path, delay_seconds=5, drop=True, times=10)
        target.stdin.write(b"".join(data[23:34]))
        target.stdin.flush()
        deadline = time.monotonic() + 10
        while emulator.faults[0].times == 10 and time.monotonic() < deadline:  # none hung yet
            time.sleep(0.02)
        os.kill(target.pid, signal.SIGKILL)
        assert target.wait(timeout=10) == -signal.SIGKILL
        assert target.stdout.read() == b""  # no STATE for the batch in flight
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
    emulator.clear_faults()

    rerun = subprocess.Popen(
        [sys.executable, str(TARGET), "--config", str(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    rerun.stdin.write(b"".join(data))
    rerun.stdin.close()
    for line in rerun.stdout:
        covered(json.loads(line))
    assert rerun.wait(timeout=60) == 0, rerun.stderr.read().decode()

    assert Counter(r["id"] for r in emulator.received) == {str(n): 1 for n in range(1, 61)}
    assert sorted(emulator.stored, key=int) == [str(n) for n in range(1, 61)]
