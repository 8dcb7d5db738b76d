"""target-voyado, the real executable fed Singer records, against the Voyado emulator on
127.0.0.1: what Voyado received, the rejects with Voyado's codes, exit codes and STATE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.voyado import API_KEY, VoyadoEmulator
from sandbox.voyado.app import default_promotions

BIN = Path(sys.executable).parent
NOW = datetime(2026, 6, 1, tzinfo=UTC)
WELCOME, EXPIRED, _ = (p.id for p in default_promotions(NOW))
CONTACTS = "voyado_contacts"
RECEIPTS = "voyado_receipts"


@pytest.fixture
def voyado():
    server = VoyadoEmulator(now=NOW).start()
    yield server
    server.stop()


def person(n: int, **fields: object) -> dict:
    return {
        "contact_id": f"email:p{n}@example.com",
        "email": f"p{n}@example.com",
        "first_name": f"Person{n}",
        "last_name": "Hansen",
        "city": "Aarhus",
        "country_code": "DK",
        "newsletter": True,
        **fields,
    }


def purchase(n: int, email: str, *, kind: str = "PURCHASE", **fields: object) -> dict:
    sign = -1 if kind == "RETURN" else 1
    return {
        "receipt_id": f"flexpos:journal:{n}",
        "kind": kind,
        "email": email,
        "created_at": "2026-05-01T10:00:00+00:00",
        "currency": "DKK",
        "store_id": "store-uid-1",
        "items": [
            {"sku": "A", "quantity": sign * 1, "amount": sign * 100.0, "vat_rate": 25},
            {"sku": "B", "quantity": sign * 2, "amount": sign * 50.0, "vat_rate": 25},
        ],
        **fields,
    }


def singer(contacts: list[dict] = (), receipts: list[dict] = (), state: int = 1) -> bytes:
    out: list[dict] = []
    for stream, records, key in (
        (CONTACTS, contacts, "contact_id"),
        (RECEIPTS, receipts, "receipt_id"),
    ):
        if records:
            out.append(
                {
                    "type": "SCHEMA",
                    "stream": stream,
                    "key_properties": [key],
                    "schema": {"properties": {}},
                }
            )
            out += [{"type": "RECORD", "stream": stream, "record": r} for r in records]
    out.append({"type": "STATE", "value": {"run": state}})
    return b"".join(json.dumps(m).encode() + b"\n" for m in out)


def config(tmp_path: Path, voyado: VoyadoEmulator, **extra: object) -> Path:
    path = tmp_path / "voyado.json"
    settings = {
        "api_url": voyado.api_url,
        "api_key": API_KEY,
        "ledger_path": str(tmp_path / "ledger.sqlite"),
        "store_external_ids": {"store-uid-1": "store01-aarhus"},
        "default_store_external_id": "online-dk",
        "group_currency": "DKK",
        "backoff_seconds": 0.05,
        **extra,
    }
    path.write_text(json.dumps(settings))
    return path


def run(cfg: Path, data: bytes) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOYALTY_NOW": NOW.isoformat()}
    return subprocess.run(
        [str(BIN / "target-voyado"), "--config", str(cfg)],
        input=data.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def rejects(tmp_path: Path) -> list[dict]:
    path = tmp_path / "ledger.rejects.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def loaded(stderr: str) -> Counter[str]:
    totals: Counter[str] = Counter()
    for line in stderr.splitlines():
        if "METRIC: " in line:
            point = json.loads(line.split("METRIC: ", 1)[1])
            if point["metric"] == "record_count":
                totals[point["tags"]["stream"], point["tags"]["status"]] += point["value"]
    return +totals


def test_a_new_contact_is_created_with_source_store_country_and_language(tmp_path, voyado):
    result = run(config(tmp_path, voyado), singer([person(1, store_id="store-uid-1")]))

    assert result.returncode == 0, result.stderr
    (create,) = voyado.ops("create")
    assert create["query"] == {
        "source": "POS",
        "storeExternalId": "store01-aarhus",
        "createAsUnapproved": "false",
    }
    assert create["body"] == {
        "contactType": "Member",
        "email": "p1@example.com",
        "firstName": "Person1",
        "lastName": "Hansen",
        "city": "Aarhus",
        "countryCode": "DK",
        "language": "da",
        "preferences": {"acceptsEmail": True},
    }
    assert json.loads(result.stdout) == {"run": 1}


def test_a_found_contact_is_patched_with_only_its_changed_fields_never_an_empty_one(
    tmp_path, voyado
):
    cid = voyado.add_contact(
        email="p1@example.com",
        firstName="Person1",
        lastName="Hansen",
        city="Odense",
        countryCode="DK",
        language="da",
        mobilePhone="+4511111111",
        preferences={"acceptsEmail": True, "acceptsSms": True},
    )
    # The store knows no last name and no mobile now: those must stay as Voyado has them.
    record = person(1, city="Aarhus", last_name="", mobile=None, newsletter=False)

    result = run(config(tmp_path, voyado), singer([record]))

    assert result.returncode == 0, result.stderr
    assert voyado.ops("create") == []
    assert voyado.ops("patch") == [
        {
            "op": "patch",
            "contactId": cid,
            "body": {"city": "Aarhus", "preferences": {"acceptsEmail": False, "acceptsSms": True}},
        }
    ]
    assert voyado.contacts[cid].attributes["lastName"] == "Hansen"
    assert voyado.contacts[cid].attributes["mobilePhone"] == "+4511111111"

    # Nothing changed since: no call at all (the ledger); a changed name: one PATCH of it.
    voyado.clear_requests()
    assert run(config(tmp_path, voyado), singer([record])).returncode == 0
    assert voyado.requests == []
    renamed = run(config(tmp_path, voyado), singer([{**record, "first_name": "Per"}]))
    assert renamed.returncode == 0, renamed.stderr
    assert voyado.ops("patch")[-1]["body"] == {"firstName": "Per"}


def test_a_lost_create_response_is_looked_up_again_and_the_contact_created_once(tmp_path, voyado):
    voyado.inject_fault("/api/v3/contacts?", lose_response=True, times=1)

    result = run(config(tmp_path, voyado, welcome_promotion_id=WELCOME), singer([person(1)]))

    assert result.returncode == 0, result.stderr
    assert len(voyado.contacts) == 1
    assert len(voyado.ops("create")) == 1
    creates = [r for r in voyado.requests if r.method == "POST" and r.path == "/api/v3/contacts"]
    assert [r.fault for r in creates] == ["lose_response"]  # never sent a second time
    lookups = [r for r in voyado.requests if r.path == "/api/v3/contacts/id"]
    assert len(lookups) == 2  # before the create, and again after its answer was lost
    assert len(voyado.ops("assign")) == 1  # still welcomed: the contact is new
    assert "looking the contact up again" in result.stderr


def test_multiple_matches_is_a_reject_with_that_reason_never_a_new_contact(tmp_path, voyado):
    voyado.add_contact(email="p1@example.com")
    voyado.add_contact(email="P1@example.com")

    result = run(config(tmp_path, voyado), singer([person(1), person(2)]))

    assert result.returncode == 0, result.stderr
    assert len(voyado.contacts) == 3  # p2 created; no third p1
    (reject,) = rejects(tmp_path)
    assert reject["reason"].startswith("MultipleMatches")
    assert reject["record"]["email"] == "p1@example.com"
    assert loaded(result.stderr) == {(CONTACTS, "loaded"): 1, (CONTACTS, "rejected"): 1}


def test_receipts_reach_voyado_once_and_returns_are_negative(tmp_path, voyado):
    cfg = config(tmp_path, voyado)
    receipts = [
        purchase(1, "p1@example.com", discount=30.0),
        purchase(2, "p1@example.com", kind="RETURN"),
        purchase(3, "p1@example.com", currency=None),
    ]
    first = run(cfg, singer([person(1)], receipts))

    assert first.returncode == 0, first.stderr
    received = {r["uniqueReceiptId"]: r for r in voyado.received}
    assert sorted(received) == ["flexpos:journal:1", "flexpos:journal:2"]
    sale, back = received["flexpos:journal:1"], received["flexpos:journal:2"]
    assert sale["totalGrossPrice"] == 120.0
    assert [i["grossPaidPrice"] for i in sale["items"]] == [80.0, 40.0]  # 30.00 spread 2:1
    assert sale["storeExternalId"] == "store01-aarhus"
    assert sale["createdDate"] == "2026-05-01T12:00:00+02:00"
    assert back["totalGrossPrice"] == -150.0
    assert [(i["type"], i["quantity"]) for i in back["items"]] == [("RETURN", -1), ("RETURN", -2)]
    (reject,) = rejects(tmp_path)
    assert "no currency" in reject["reason"]

    # The same window again: nothing is sent twice (the ledger), and with the ledger lost
    # Voyado still holds one copy (uniqueReceiptId is stable).
    voyado.clear_requests()
    assert run(cfg, singer([person(1)], receipts)).returncode == 0
    assert [r for r in voyado.requests if r.path == "/api/v3/receipts"] == []
    (tmp_path / "ledger.sqlite").unlink()
    assert run(cfg, singer([person(1)], receipts)).returncode == 0
    assert len(voyado.received) == 2
    assert voyado.duplicate_receipts == 2


def test_receipts_older_than_the_history_window_are_skipped_and_counted(tmp_path, voyado):
    old = purchase(9, "p1@example.com", created_at="2024-05-31T10:00:00+00:00")
    result = run(
        config(tmp_path, voyado), singer([person(1)], [old, purchase(1, "p1@example.com")])
    )

    assert result.returncode == 0, result.stderr
    assert [r["uniqueReceiptId"] for r in voyado.received] == ["flexpos:journal:1"]
    assert "1 skipped (older than the 24-month history window)" in result.stderr
    assert rejects(tmp_path) == []


def test_welcome_promotion_assigned_once_per_new_contact_and_redeemed_by_its_purchase(
    tmp_path, voyado
):
    cfg = config(tmp_path, voyado, welcome_promotion_id=WELCOME, welcome_promotion_code="WELCOME10")
    existing = voyado.add_contact(email="p2@example.com", firstName="Person2")
    first_buy = purchase(1, "p1@example.com", promotion_codes=["WELCOME10"])
    used_again = purchase(3, "p1@example.com", promotion_codes="WELCOME10")

    result = run(cfg, singer([person(1), person(2)], [first_buy, purchase(2, "p2@example.com")]))

    assert result.returncode == 0, result.stderr
    new = next(c for c in voyado.contacts if c != existing)
    assert [a["contactId"] for a in voyado.ops("assign")] == [new]  # not the existing one
    assert [r["contactId"] for r in voyado.ops("redeem")] == [new]
    assignment = next(iter(voyado.assignments.values()))
    assert (assignment.channel, assignment.redeemed_on is not None) == ("POS", True)
    sale = next(r for r in voyado.received if r["uniqueReceiptId"] == "flexpos:journal:1")
    assert sale["usedPromotions"] == [{"promotionId": WELCOME, "couponId": "WELCOME10"}]

    # A later run: the contact is not new (no second assignment); the code used again is
    # Voyado's PromotionAlreadyRedeemed, a reject with that code.
    again = run(cfg, singer([person(1, city="Vejle")], [used_again]))
    assert again.returncode == 0, again.stderr
    assert len(voyado.ops("assign")) == 1
    (reject,) = rejects(tmp_path)
    assert reject["reason"].startswith("PromotionAlreadyRedeemed")


def test_an_expired_welcome_promotion_is_a_reject_with_its_code(tmp_path, voyado):
    result = run(config(tmp_path, voyado, welcome_promotion_id=EXPIRED), singer([person(1)]))

    assert result.returncode == 0, result.stderr
    assert len(voyado.contacts) == 1
    (reject,) = rejects(tmp_path)
    assert reject["reason"] == "PromotionExpired: contact created; welcome promotion not assigned"


def test_429s_and_a_5xx_burst_are_retried_and_nothing_is_lost(tmp_path, voyado):
    voyado.set_rate_limit(20)
    voyado.inject_fault("/api/v3/receipts", status=503, times=3)
    contacts = [person(n) for n in range(12)]
    receipts = [purchase(n, f"p{n}@example.com") for n in range(12)]
    cfg = config(tmp_path, voyado, requests_per_second=0, workers=4, backoff_seconds=0.05)

    result = run(cfg, singer(contacts, receipts))

    assert result.returncode == 0, result.stderr
    assert len(voyado.contacts) == 12
    assert len(voyado.received) == 12
    statuses = Counter(r.status for r in voyado.requests)
    assert statuses[429] > 0 and statuses[503] == 3
    assert rejects(tmp_path) == []


def test_promotion_command_assigns_and_redeems_at_a_checkout(tmp_path, voyado):
    cid = voyado.add_contact(email="ann@example.com")
    cfg = config(tmp_path, voyado, welcome_promotion_id=WELCOME)

    def promotion(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN / "voyado-promotion"), "--config", str(cfg), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    assigned = promotion("assign", "--email", "ann@example.com")
    redeemed = promotion("redeem", "--email", "ann@example.com")
    twice = promotion("redeem", "--contact-id", cid)

    assert assigned.returncode == 0, assigned.stderr
    assert json.loads(assigned.stdout)["contactId"] == cid
    assert json.loads(redeemed.stdout)["redemptionChannel"] == "POS"
    assert twice.returncode == 1
    assert twice.stderr.strip() == "voyado-promotion: error: PromotionAlreadyRedeemed"
    assert API_KEY not in twice.stderr
