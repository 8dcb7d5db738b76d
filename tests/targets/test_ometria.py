"""target-ometria end to end: the store's contacts model read by the real tap-loyalty-store,
pushed by the real target-ometria to the Ometria emulator on 127.0.0.1.

What a user cares about: what Ometria holds (each contact once, exactly the expected loyalty
properties, never opted in when unsubscribed), how many calls it took and their limits, that
429s, 500s and a kill lose and duplicate nothing, and that unchanged records cost no call.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from ometria_helpers import (
    BIN,
    SYNC_LIST,
    account,
    catalog,
    contact_id,
    expected_optin,
    expected_properties,
    last_state,
    ledger_key,
    make_store,
    pseudonym,
    run_target,
    tap_config,
    tap_output,
    target_config,
)

from sandbox.ometria import OmetriaEmulator
from target_ometria.sinks import DEFAULT_PROPERTY_KEYS

CONTACTS = "ometria_contacts"


@pytest.fixture
def ometria():
    server = OmetriaEmulator().start()
    yield server
    server.stop()


@pytest.fixture
def contacts_input(tmp_path: Path):
    """Factory: a store of n contacts -> (tap config, catalog, the tap's Singer output)."""

    def _make(n: int) -> tuple[Path, Path, bytes]:
        db = tmp_path / "store.duckdb"
        make_store(db, n)
        cfg = tap_config(tmp_path, db)
        cat = catalog(tmp_path, cfg, CONTACTS)
        return cfg, cat, tap_output(cfg, cat)

    return _make


def push_calls(server: OmetriaEmulator) -> list:
    return [r for r in server.requests if r.method == "POST" and r.path == "/v2/push"]


def test_250_contacts_three_calls_exact_properties(tmp_path, ometria, contacts_input):
    _, _, data = contacts_input(250)
    result = run_target(target_config(tmp_path, ometria), data)
    assert result.returncode == 0, result.stderr.decode()[-2000:]

    calls = ometria.calls
    assert [c["records"] for c in calls] == [100, 100, 50]
    assert all(c["types"] == ["contact"] for c in calls)
    assert all(r.status == 200 for r in push_calls(ometria))
    log = result.stderr.decode()
    for call in calls:
        assert f"request_id {call['request_id']}" in log

    assert len(SYNC_LIST) == 21 and set(DEFAULT_PROPERTY_KEYS) == set(SYNC_LIST)
    stored = ometria.of_type("contact")
    assert len(stored) == 250 and len(ometria.received) == 250
    for n in range(250):
        contact = stored[pseudonym(n)]
        assert contact["customer_id"] == pseudonym(n)
        assert "@" not in contact["id"] and "member" not in contact["id"]
        assert contact["email"] == f"member{n}@example.com"
        assert contact["marketing_optin"] == expected_optin(n)
        assert contact.get("properties", {}) == expected_properties(n), n
        assert None not in contact.values() and "" not in contact.values()
    unsubscribed = [stored[pseudonym(n)] for n in range(0, 250, 5)]
    assert {c["marketing_optin"] for c in unsubscribed} == {"EXPLICITLY_OPTEDOUT"}
    assert all("timestamp_unsubscribed" in c for c in unsubscribed)
    assert ometria.errors == []


def test_second_run_sends_nothing_then_one_changed_member_one_contact(
    tmp_path, ometria, contacts_input
):
    tap_cfg, cat, data = contacts_input(120)
    cfg = target_config(tmp_path, ometria)
    first = run_target(cfg, data)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    assert len(ometria.calls) == 2

    # The whole model again (no state): every record unchanged, so no call at all.
    again = run_target(cfg, data)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert len(ometria.calls) == 2
    assert "0 sent, 120 unchanged" in again.stderr.decode()

    # One member earns points: the model's updated_at moves, that contact alone is sent.
    db = json.loads(tap_cfg.read_text())["database"]
    con = duckdb.connect(db)
    con.execute(
        "UPDATE loyalty_accounts SET points_total = points_total + 50, "
        "updated_at = TIMESTAMPTZ '2026-06-01 00:00:00+00' WHERE contact_id = ?",
        [contact_id(8)],
    )
    con.close()
    third = run_target(cfg, tap_output(tap_cfg, cat, last_state(first.stdout)))
    assert third.returncode == 0, third.stderr.decode()[-2000:]
    assert [c["records"] for c in ometria.calls[2:]] == [1]
    assert ometria.received[-1]["id"] == pseudonym(8)
    props = ometria.of_type("contact")[pseudonym(8)]["properties"]
    assert props["loyalty_points_total"] == account(8)["points_total"] + 50


def test_rate_limit_holds_against_the_emulators_limit(tmp_path, ometria, contacts_input):
    """2,000 contacts = 20 calls at Ometria's 8 requests/s: the client's limit never earns a 429."""
    _, _, data = contacts_input(2000)
    start = time.monotonic()
    result = run_target(target_config(tmp_path, ometria, workers=4), data)
    took = time.monotonic() - start
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    statuses = [r.status for r in push_calls(ometria)]
    assert statuses == [200] * 20
    assert took >= 19 / 8 * 0.9  # 20 calls at most 8 a second (the first without waiting)
    assert len(ometria.of_type("contact")) == 2000


def test_429_storm_and_500_burst_lose_and_duplicate_nothing(tmp_path, ometria, contacts_input):
    _, _, data = contacts_input(600)
    ometria.set_rate_limit(2)  # a real 429 storm: the client believes 8/s, Ometria allows 2/s
    ometria.inject_fault("/v2/push", status=500, times=3)
    ometria.inject_fault("/v2/push", status=503, times=2)
    result = run_target(target_config(tmp_path, ometria, max_retries=10, workers=4), data)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    statuses = [r.status for r in push_calls(ometria)]
    assert statuses.count(429) >= 3 and statuses.count(500) == 3 and statuses.count(503) == 2
    assert len(ometria.received) == 600  # each record accepted exactly once
    assert len(ometria.of_type("contact")) == 600


def test_sigkill_mid_run_then_rerun_exactly_one_copy_nothing_confirmed_resent(
    tmp_path, ometria, contacts_input
):
    _, _, data = contacts_input(1000)
    cfg = target_config(tmp_path, ometria, workers=1, batch_size_rows=100, requests_per_second=4)
    proc = subprocess.Popen(
        [str(BIN / "target-ometria"), "--config", str(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while len(ometria.calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    first_run = {r["id"] for r in ometria.received}
    assert 4 <= len(ometria.calls) < 10, "the kill should land mid-run"

    import sqlite3

    con = sqlite3.connect(tmp_path / "ledger.sqlite")
    confirmed = {k for (k,) in con.execute("SELECT key FROM sent")}
    con.close()
    assert confirmed, "the calls answered before the kill are in the ledger"

    before = len(ometria.received)
    result = run_target(target_config(tmp_path, ometria, batch_size_rows=100), data)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    second_run = [r["id"] for r in ometria.received[before:]]
    by_id = {pseudonym(n): n for n in range(1000)}
    resent_confirmed = [
        i for i in second_run if ledger_key(CONTACTS, contact_id(by_id[i])) in confirmed
    ]
    assert resent_confirmed == []
    # Exactly one copy of each: everything there, each record sent at most twice (the one call
    # a kill may catch between Ometria's answer and the ledger write), stored once.
    stored = ometria.of_type("contact")
    assert set(stored) == set(by_id)
    assert len(second_run) == len(set(second_run))
    assert len(first_run & set(second_run)) <= 100


def test_oversize_record_rejected_before_sending_and_late_errors_reported(
    tmp_path, ometria, contacts_input
):
    _, _, data = contacts_input(5)
    lines = data.decode().splitlines()
    out = []
    for line in lines:
        msg = json.loads(line)
        if msg["type"] == "RECORD" and msg["record"]["contact_id"] == contact_id(1):
            msg["record"]["referral_url"] = "x" * 70_000  # over Ometria's 60 KB per record
        if msg["type"] == "RECORD" and msg["record"]["contact_id"] == contact_id(2):
            msg["record"]["email"] = "not-an-address"  # Ometria refuses it after answering
        out.append(json.dumps(msg))
    result = run_target(target_config(tmp_path, ometria), "\n".join(out).encode() + b"\n")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert pseudonym(1) not in {r["id"] for r in ometria.received}  # never sent
    assert len(ometria.of_type("contact")) == 3  # the invalid e-mail is not stored either
    rejects = [
        json.loads(line) for line in (tmp_path / "ledger.rejects.jsonl").read_text().splitlines()
    ]
    reasons = {r["key"]: r["reason"] for r in rejects}
    assert "over the limit of 61440 bytes" in reasons[ledger_key(CONTACTS, contact_id(1))]
    assert (
        "not a valid email address (root > email)" in reasons[ledger_key(CONTACTS, contact_id(2))]
    )
    # the late reject is out of the ledger: the next run offers it again
    import sqlite3

    con = sqlite3.connect(tmp_path / "ledger.sqlite")
    keys = {k for (k,) in con.execute("SELECT key FROM sent")}
    con.close()
    assert ledger_key(CONTACTS, contact_id(2)) not in keys
    assert ledger_key(CONTACTS, contact_id(3)) in keys
    assert "secret" not in result.stderr.decode() and "test-salt" not in result.stderr.decode()


def test_orders_with_line_items_totals_and_cancelled_lines(tmp_path, ometria):
    db = tmp_path / "store.duckdb"
    make_store(db, 10, orders=12)
    cfg = tap_config(tmp_path, db)
    data = tap_output(cfg, catalog(tmp_path, cfg, "ometria_orders"))
    result = run_target(target_config(tmp_path, ometria), data)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert [c["types"] for c in ometria.calls] == [["order"]]
    orders = ometria.of_type("order")
    assert len(orders) == 12
    gone = orders.pop("flexpos:order-11")  # every line cancelled
    assert (gone["status"], gone["is_valid"], gone["grand_total"]) == ("cancelled", False, 0.0)
    assert [li["refunded"] for li in gone["lineitems"]] == [50.0, 100.0]
    for o in range(11):
        order = orders[f"flexpos:order-{o}"]
        cancelled = o % 5 == 0  # its second line (2 x 50 DKK) was cancelled
        assert order["currency"] == "DKK"
        assert order["status"] == "complete" and order["is_valid"] is True
        assert order["grand_total"] == (50.0 if cancelled else 150.0)
        assert order["customer"] == {
            "id": pseudonym(o % 7),
            "email": f"member{o % 7}@example.com",
        }
        first, second = order["lineitems"]
        assert (first["sku"], first["quantity"], first["total"]) == ("SKU-1", 1.0, 50.0)
        assert "quantity_refunded" not in first
        if cancelled:
            assert (second["quantity_refunded"], second["refunded"]) == (2.0, 100.0)
        else:
            assert "refunded" not in second


class TimedOmetria(OmetriaEmulator):
    """Notes when each request arrives, faulted ones included (the base log has no times)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    def __call__(self, environ: dict, start_response):
        if environ.get("PATH_INFO") == "/v2/push":
            self.arrivals.append(time.monotonic())
        return super().__call__(environ, start_response)


def test_retries_wait_for_the_same_rate_limit_as_first_attempts(tmp_path, contacts_input):
    """One limiter: four answers 500 and then a 200 are five attempts, each in its own slot of
    the 4 requests/s budget, though the retry backoff itself is zero."""
    _, _, data = contacts_input(10)
    ometria = TimedOmetria().start()
    try:
        ometria.inject_fault("/v2/push", status=500, times=4)
        cfg = target_config(tmp_path, ometria, requests_per_second=4, backoff_seconds=0)
        result = run_target(cfg, data)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert [r.status for r in push_calls(ometria)] == [500, 500, 500, 500, 200]
        gaps = [b - a for a, b in zip(ometria.arrivals, ometria.arrivals[1:], strict=False)]
        assert len(gaps) == 4 and min(gaps) >= 0.2  # 1/4 s apart, less a little jitter
        assert len(ometria.of_type("contact")) == 10
    finally:
        ometria.stop()
