"""tap-loyaltylion against the real LoyaltyLion emulator on 127.0.0.1: what it writes (records,
STATE) and what the emulator received, under paging, windows, faults, late ids and bad keys."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from sandbox.launcher import RunningSandbox, start_sandbox
from sandbox.loyaltylion import API_KEY, CUSTOMERS_ONLY_KEY, LEGACY_SECRET, LEGACY_TOKEN
from sandbox.loyaltylion import LoyaltyLionSettings as Settings
from sandbox.loyaltylion.data import FIRST_CUSTOMER_ID

TAP = str(Path(sys.executable).parent / "tap-loyaltylion")


class Run:
    """One finished tap process and its parsed Singer output."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        messages = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        self.records: dict[str, list[dict]] = {}
        for m in messages:
            if m["type"] == "RECORD":
                self.records.setdefault(m["stream"], []).append(m["record"])
        self.states = [m["value"] for m in messages if m["type"] == "STATE"]

    def ids(self, stream: str) -> list[int]:
        return [r["id"] for r in self.records.get(stream, [])]

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("tap-loyaltylion:")]


def run_tap(tmp_path: Path, config: dict, state: dict | None = None, **popen) -> Run:
    tmp_path.mkdir(parents=True, exist_ok=True)
    n = len(list(tmp_path.glob("config-*.json")))
    cfg = tmp_path / f"config-{n}.json"
    cfg.write_text(json.dumps(config))
    cmd = [TAP, "--config", str(cfg)]
    if state is not None:
        st = tmp_path / f"state-{n}.json"
        st.write_text(json.dumps(state))
        cmd += ["--state", str(st)]
    return Run(subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False))


@pytest.fixture
def lion():
    """A private LoyaltyLion emulator (tests mutate it), small data."""
    started: list[RunningSandbox] = []

    def _start(**settings: object) -> RunningSandbox:
        running = start_sandbox(Settings(**settings), only=["loyaltylion"])  # type: ignore[arg-type]
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


def config(sb: RunningSandbox, **extra: object) -> dict:
    ll = sb.loyaltylion
    return {
        "api_url": ll.api_url,
        "api_key": API_KEY,
        "page_size": 20,
        "backoff_seconds": 0.01,
        **extra,
    }


def test_customers_in_windows_write_a_state_per_window_and_read_each_once(lion, tmp_path):
    sb = lion(customers=40)
    data = sb.loyaltylion.data
    run = run_tap(tmp_path, config(sb, start_date="2025-01-01T00:00:00Z", window_days=60))
    assert run.returncode == 0, run.stderr
    ids = run.ids("customers")
    assert sorted(ids) == sorted(c["id"] for c in data.iter_records("customer"))
    assert len(ids) == len(set(ids))  # windows meet at a bound no record sits on
    marks = [
        s["bookmarks"]["customers"]["replication_key_value"]
        for s in run.states
        if "customers" in s.get("bookmarks", {})
    ]
    assert len(marks) >= 5  # one STATE per finished 60-day window, then the last record
    # Each window asked for its own bounds, oldest first; pages after the first sent only the
    # cursor (it carries the filters).
    asked = [e.query for e in sb.loyaltylion.requests if e.path == "/v2/customers"]
    firsts = [q for q in asked if "cursor" not in q]
    assert all(q["sort_field"] == "updated_at" and q["sort_direction"] == "asc" for q in firsts)
    assert all(set(q) == {"cursor", "limit"} for q in asked if "cursor" in q)
    assert firsts[0]["updated_at_min"].startswith("2025-01-01")
    # The final bookmark is the newest customer's updated_at.
    newest = max(c["updated_at"] for c in data.iter_records("customer"))
    assert run.states[-1]["bookmarks"]["customers"]["replication_key_value"] == newest


def test_a_customer_changed_during_a_run_is_read_by_the_next_run_and_no_unchanged_one_is(
    lion, tmp_path
):
    sb = lion(customers=40)
    ll = sb.loyaltylion
    # The second customers page waits 1 s; while it waits, customer 3 (read on the first
    # page already) earns points.
    ll.inject_fault("/v2/customers?limit=20&cursor=", delay_seconds=1.0)
    changed = FIRST_CUSTOMER_ID + 3

    def change_while_the_page_waits() -> None:
        for _ in range(600):  # bounded: 60 s
            if not ll.faults:  # the delayed request has arrived
                ll.data.adjust_points(changed, 40)
                return
            time.sleep(0.1)

    changer = threading.Thread(target=change_while_the_page_waits)
    changer.start()
    first = run_tap(tmp_path, config(sb))
    changer.join()
    assert not ll.faults
    assert first.returncode == 0, first.stderr
    assert set(first.ids("customers")) >= {c["id"] for c in ll.data.iter_records("customer")}
    second = run_tap(tmp_path, config(sb), state=first.states[-1])
    assert second.returncode == 0, second.stderr
    now = ll.data.record_at_index(3)
    # Only the newest (the changed one, at the bookmark) is read again, with its new points.
    assert second.ids("customers") == [changed]
    assert second.records["customers"][0]["points_approved"] == now["points_approved"]
    # A third run with no change reads it (at the inclusive bookmark) and nothing else.
    third = run_tap(tmp_path, config(sb), state=second.states[-1])
    assert third.ids("customers") == [changed]


def test_a_429_storm_and_a_500_burst_lose_and_duplicate_nothing(lion, tmp_path):
    sb = lion(customers=40)
    ll = sb.loyaltylion
    ll.inject_fault("/v2/customers", status=429, times=3)
    ll.inject_fault("/v2/transactions?", status=500, times=2)
    ll.inject_fault("cursor=", status=503, times=2)
    run = run_tap(tmp_path, config(sb, max_retries=4))
    assert run.returncode == 0, run.stderr
    ids = run.ids("customers")
    assert sorted(ids) == sorted(c["id"] for c in ll.data.iter_records("customer"))
    tx = run.ids("transactions")
    assert sorted(tx) == [t["id"] for t in ll.data.visible_transactions()]
    assert len(tx) == len(set(tx))
    faults = Counter(e.fault for e in ll.requests if e.fault)
    assert faults == {"status:429": 3, "status:500": 2, "status:503": 2}
    assert run.stderr.count("retry ") >= 7


def test_the_client_stays_under_the_api_rate_limit(lion, tmp_path):
    sb = lion(customers=20)
    run = run_tap(tmp_path, config(sb, page_size=5, requests_per_second=18))
    assert run.returncode == 0, run.stderr
    statuses = Counter(e.status for e in sb.loyaltylion.requests)
    assert statuses[200] > 20 and statuses[429] == 0, statuses


def test_late_transaction_ids_are_caught_by_the_look_back(lion, tmp_path):
    sb = lion(customers=40, late_pct=30)
    data = sb.loyaltylion.data
    late = sorted(data.late)
    assert late
    first = run_tap(tmp_path, config(sb))
    assert set(first.ids("transactions")).isdisjoint(late)
    bookmark = first.states[-1]["bookmarks"]["transactions"]["replication_key_value"]
    assert bookmark > late[-1]
    data.release_late()
    too_short = run_tap(
        tmp_path / "a", config(sb, transactions_lookback_ids=0), state=first.states[-1]
    )
    assert too_short.ids("transactions") == []  # no look-back: the late ones are skipped
    second = run_tap(
        tmp_path / "b", config(sb, transactions_lookback_ids=500), state=first.states[-1]
    )
    got = set(first.ids("transactions")) | set(second.ids("transactions"))
    assert got == {t["id"] for t in data.visible_transactions()}
    assert set(late) <= set(second.ids("transactions"))
    assert second.states[-1]["bookmarks"]["transactions"]["replication_key_value"] == bookmark
    since = [
        e.query.get("since_id") for e in sb.loyaltylion.requests if e.path == "/v2/transactions"
    ]
    assert str(bookmark - 500) in since


def test_a_bad_key_and_a_missing_scope_are_one_line_each(lion, tmp_path):
    sb = lion(customers=5)
    bad = run_tap(tmp_path, config(sb, api_key="pat_wrong_key_123"))
    assert bad.returncode == 1
    assert len(bad.errors()) == 1, bad.stderr
    line = bad.errors()[0]
    assert "HTTP 401" in line and "check api_key" in line and "Traceback" not in bad.stderr
    assert "pat_wrong_key_123" not in bad.stderr + bad.stdout
    scoped = run_tap(tmp_path, config(sb, api_key=CUSTOMERS_ONLY_KEY))
    assert scoped.returncode == 1
    (line,) = scoped.errors()
    assert "HTTP 403" in line and "'read_transactions'" in line and "'transactions'" in line
    assert len(scoped.ids("customers")) == 5  # the stream the key may read came first
    assert "Traceback" not in scoped.stderr


def test_the_legacy_token_and_secret_still_work_and_stay_secret(lion, tmp_path):
    sb = lion(customers=5)
    cfg = config(sb, api_token=LEGACY_TOKEN, api_secret=LEGACY_SECRET)
    del cfg["api_key"]
    run = run_tap(tmp_path, cfg)
    assert run.returncode == 0, run.stderr
    assert len(run.ids("customers")) == 5
    assert LEGACY_SECRET not in run.stdout + run.stderr
    assert "api_token/api_secret (HTTP Basic) are deprecated" in run.stderr
    assert all(e.status == 200 for e in sb.loyaltylion.requests)


def test_a_bookmark_that_is_no_transaction_id_is_one_line(lion, tmp_path):
    sb = lion(customers=5)
    state = {"bookmarks": {"transactions": {"replication_key": "id", "replication_key_value": "x"}}}
    run = run_tap(tmp_path, config(sb), state=state)
    assert run.returncode == 1
    assert run.errors() == [
        "tap-loyaltylion: error: stream 'transactions': the bookmark 'x' in the state (--state) "
        "is not a transaction id; correct or remove it"
    ]


def test_no_credential_is_a_config_error(tmp_path):
    run = run_tap(tmp_path, {"api_url": "http://127.0.0.1:9/v2"})
    assert run.returncode == 1
    assert run.errors() == [
        "tap-loyaltylion: config error: set api_key, or (deprecated) api_token and api_secret"
    ]
