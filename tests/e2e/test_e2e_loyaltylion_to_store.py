"""loyaltylion_to_store end to end: `loyalty run` (tap-loyaltylion | mapper | store) into DuckDB.

Every expected value is computed here from the emulator's own data (its customers, its ledger,
its tier list `TIERS`) with the formulas of docs/loyaltylion.md, never read back from the
store's view: the view and this file must agree independently.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter

import pytest
from conftest import StoreProject, make_store_project

from sandbox.launcher import start_sandbox
from sandbox.loyaltylion import TIERS, LoyaltyLionSettings
from sandbox.loyaltylion.data import FIRST_CUSTOMER_ID, PERSON_STRIDE

PIPELINE = "loyaltylion_to_store"
# The columns of loyalty_accounts, fixed by the contract between issues 13 and 14.
CONTRACT = [
    ("contact_id", "VARCHAR"),
    ("source", "VARCHAR"),
    ("source_id", "VARCHAR"),
    ("programme", "VARCHAR"),
    ("points_total", "BIGINT"),
    ("points_approved", "BIGINT"),
    ("points_pending", "BIGINT"),
    ("points_spent", "BIGINT"),
    ("points_expired", "BIGINT"),
    ("points_lifetime", "BIGINT"),
    ("rewards_claimed", "BIGINT"),
    ("rewards_used", "BIGINT"),
    ("blocked", "BOOLEAN"),
    ("enrolled", "BOOLEAN"),
    ("enrolled_at", "TIMESTAMP WITH TIME ZONE"),
    ("referral_url", "VARCHAR"),
    ("receipt_upload_url", "VARCHAR"),
    ("birthday", "DATE"),
    ("insights_segment", "VARCHAR"),
    ("tier_name", "VARCHAR"),
    ("tier_started_at", "TIMESTAMP WITH TIME ZONE"),
    ("tier_expires_at", "TIMESTAMP WITH TIME ZONE"),
    ("tier_progress", "BIGINT"),
    ("tier_progress_projected", "BIGINT"),
    ("tier_progress_to_renew", "BIGINT"),
    ("tier_progress_to_upgrade", "BIGINT"),
    ("next_tier_name", "VARCHAR"),
    ("forecast_tier_name", "VARCHAR"),
    ("updated_at", "TIMESTAMP WITH TIME ZONE"),
]


def _at(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def expected_accounts(data) -> dict[str, dict]:
    """loyalty_accounts as the emulator's data implies it, by LoyaltyLion customer id."""
    ledger: dict[str, list[dict]] = {}
    for tx in data.visible_transactions():
        served = data.serve_transaction(tx)
        ledger.setdefault(str(served["customer"]["id"]), []).append(served)
    by_position = sorted(TIERS, key=lambda t: t["position"])
    out = {}
    for c in data.iter_records("customer"):
        txs = ledger.get(str(c["id"]), [])
        expired = -sum(
            t["points_approved"] + t["points_pending"] for t in txs if t["resource"] == "expiry"
        )
        as_of = max([_at(c["updated_at"]), *(_at(t["created_at"]) for t in txs)])
        row = {
            "contact_id": f"email:{c['email'].strip().lower()}",
            "programme": c["merchant_id"],
            "points_total": c["points_approved"] + c["points_pending"],
            "points_approved": c["points_approved"],
            "points_pending": c["points_pending"],
            "points_spent": c["points_spent"],
            "points_expired": expired,
            "points_lifetime": c["points_approved"]
            + c["points_pending"]
            + c["points_spent"]
            + expired,
            "rewards_claimed": c["rewards_claimed"],
            "rewards_used": c["rewards_used"],
            "blocked": c["blocked"],
            "enrolled": c["enrolled"],
            "enrolled_at": _at(c["enrolled_at"]),
            "referral_url": c["referral_url"],
            "receipt_upload_url": c["receipt_upload_url"],
            "birthday": None if c["birthday"] is None else dt.date.fromisoformat(c["birthday"]),
            "insights_segment": c["insights_segment"],
            "updated_at": as_of,
        }
        membership = c["loyalty_tier_membership"]
        tier_keys = ("tier_name", "tier_started_at", "tier_expires_at", "tier_progress")
        tier_keys += ("tier_progress_projected", "tier_progress_to_renew")
        tier_keys += ("tier_progress_to_upgrade", "next_tier_name", "forecast_tier_name")
        row.update(dict.fromkeys(tier_keys))
        if membership is not None:
            tier = membership["loyalty_tier"]
            started, expires = _at(membership["started_at"]), _at(membership["expires_at"])
            progress = sum(
                t["points_approved"] + t["points_pending"]
                for t in txs
                if t["resource"] == "activity" and _at(t["created_at"]) >= started
            )
            projected = progress
            if progress > 0 and expires is not None and started < as_of < expires:
                rate = (expires - as_of).total_seconds() / (as_of - started).total_seconds()
                projected = progress + math.floor(progress * rate)
            nxt = next((t for t in by_position if t["position"] > tier["position"]), None)
            forecast = [t for t in by_position if int(t["lower_bound"]) <= projected]
            row.update(
                tier_name=tier["name"],
                tier_started_at=started,
                tier_expires_at=expires,
                tier_progress=progress,
                tier_progress_projected=projected,
                tier_progress_to_renew=max(0, int(tier["lower_bound"]) - progress),
                tier_progress_to_upgrade=None
                if nxt is None
                else max(0, int(nxt["lower_bound"]) - progress),
                next_tier_name=None if nxt is None else nxt["name"],
                forecast_tier_name=max(forecast, key=lambda t: int(t["lower_bound"]))["name"]
                if forecast
                else None,
            )
        out[str(c["id"])] = row
    return out


def _accounts(project: StoreProject) -> dict[str, dict]:
    names = [name for name, _ in CONTRACT]
    rows = project.query(f"SELECT {', '.join(names)} FROM loyalty_accounts")
    return {row[2]: dict(zip(names, row, strict=True)) for row in rows}


@pytest.fixture(scope="module")
def run_twice(tmp_path_factory: pytest.TempPathFactory):
    """Two runs: the first before the late transactions commit, the second after it, with
    one customer's points changed in between. Yields (sandbox, project, first, second)."""
    with start_sandbox(LoyaltyLionSettings(customers=60, late_pct=20), only=["loyaltylion"]) as sb:
        project = make_store_project(
            tmp_path_factory.mktemp("ll"), sb.env(), {"window_days": 90}, pipeline=PIPELINE
        )
        first = project.run("run", PIPELINE, "--env", "sandbox")
        assert first.returncode == 0, first.stderr
        yield sb, project, first
        # (the tests below drive the second run themselves; the sandbox stays up for them)


def test_the_store_holds_every_member_as_contact_and_account(run_twice):
    sb, project, first = run_twice
    data = sb.loyaltylion.data
    assert "loyalty_members=60" in first.stdout
    (n_contacts,) = project.query("SELECT count(*) FROM contacts")[0]
    assert n_contacts == 60
    ids = dict(
        project.query("SELECT source_id, contact_id FROM contact_ids WHERE source = 'loyaltylion'")
    )
    for c in data.iter_records("customer"):
        assert ids[str(c["id"])] == f"email:{c['email']}"
    # Member i is person 3i of the seed: a FlexPOS customer with the same e-mail.
    shared = [
        c
        for c in data.iter_records("customer")
        if c["email"] == data.people.person(PERSON_STRIDE * (c["id"] - FIRST_CUSTOMER_ID)).email
    ]
    assert len(shared) > 45
    assert project.query("SELECT count(*) FROM _rejects")[0][0] == 0


def test_loyalty_accounts_has_exactly_the_contract_columns(run_twice):
    _sb, project, _first = run_twice
    got = project.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'loyalty_accounts' ORDER BY ordinal_position"
    )
    assert got == CONTRACT


def test_late_transactions_then_a_change_reach_the_store_once_and_every_field_matches(run_twice):
    sb, project, _first = run_twice
    ll = sb.loyaltylion
    data = ll.data
    late = sorted(data.late)
    assert late, "the emulator should hold some transactions back"
    got = {tid for (tid,) in project.query("SELECT transaction_id FROM loyalty_transactions")}
    assert got.isdisjoint(late)  # not served yet
    assert max(got) > late[0]  # ...although higher ids were
    # They commit; one customer's points change after the first run.
    data.release_late()
    changed = FIRST_CUSTOMER_ID + 7
    data.adjust_points(changed, 25, note="Goodwill")
    ll.clear_requests()
    second = project.run("run", PIPELINE, "--env", "sandbox")
    assert second.returncode == 0, second.stderr
    # Only the changed customer is read again, plus the one exactly at the bookmark (the kit's
    # window starts inclusive); the other 58 are not.
    assert "loyalty_members=2," in second.stdout, second.stdout
    rows = project.query(
        "SELECT transaction_id, count(*) FROM loyalty_transactions GROUP BY 1 HAVING count(*) > 1"
    )
    assert rows == []  # the look-back re-read transactions: upserted, never doubled
    all_ids = sorted(t["id"] for t in data.visible_transactions())
    stored = [
        tid
        for (tid,) in project.query("SELECT transaction_id FROM loyalty_transactions ORDER BY 1")
    ]
    assert stored == all_ids
    # Sum of the signed deltas = the balance, for every customer.
    sums = project.query(
        "SELECT m.source_id, m.points_approved, m.points_pending, "
        "coalesce(sum(t.points_approved), 0), coalesce(sum(t.points_pending), 0) "
        "FROM loyalty_members m LEFT JOIN loyalty_transactions t "
        "ON t.source = m.source AND t.source_customer_id = m.source_id GROUP BY ALL"
    )
    assert len(sums) == 60
    for sid, approved, pending, sum_approved, sum_pending in sums:
        assert (approved, pending) == (sum_approved, sum_pending), sid
    # Every field of loyalty_accounts, against the emulator's data.
    expected = expected_accounts(data)
    got_accounts = _accounts(project)
    assert set(got_accounts) == set(expected)
    for sid, want in expected.items():
        row = got_accounts[sid]
        for name, value in want.items():
            assert row[name] == value, (sid, name, row[name], value)
    assert got_accounts[str(changed)]["updated_at"] == _at(data.record_at_index(7)["updated_at"])
    # Some of every kind, so the formulas were really exercised.
    kinds = Counter(k for (k,) in project.query("SELECT kind FROM loyalty_transactions"))
    assert set(kinds) == {"activity", "adjustment", "claimed_reward", "expiry"}
    assert project.query("SELECT count(*) FROM loyalty_transactions WHERE state = 'void'")[0][0] > 0
    tiers = {name for (name,) in project.query("SELECT DISTINCT tier_name FROM loyalty_accounts")}
    assert {"Bronze", "Silver", "Gold", "Platinum", None} <= tiers


def test_the_demo_summary_shows_members_per_tier(run_twice):
    from loyalty.demo import summary

    _sb, project, _first = run_twice
    text = summary(project.db)
    rows = project.query(
        "SELECT coalesce(tier_name, '(no tier)'), count(*), sum(points_total) "
        "FROM loyalty_accounts GROUP BY 1"
    )
    assert "LoyaltyLion members per tier" in text
    for tier, n, points in rows:
        assert f"  {tier:<12} {n:>5} members {points:>9} points" in text, text
    assert "0 of them are also contacts of another source" in text  # this store: LoyaltyLion only
