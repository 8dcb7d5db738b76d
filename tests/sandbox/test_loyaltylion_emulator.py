"""The LoyaltyLion emulator over real HTTP: auth and scopes, error bodies, cursor paging that
carries the filters, newest first, the rate limit, the ledger (voids, late ids), tiers, and the
people it shares with FlexPOS."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests
from sandbox_http_helpers import login

from sandbox.launcher import start_sandbox
from sandbox.loyaltylion import (
    API_KEY,
    CUSTOMERS_ONLY_KEY,
    LEGACY_SECRET,
    LEGACY_TOKEN,
    TIERS,
    LoyaltyLionSettings,
)
from sandbox.loyaltylion.data import TIER_PERIOD_DAYS

NOW = datetime.fromisoformat("2026-06-15T09:30:00+00:00")
BEARER = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def sb():
    """Read-only for the tests that take it: FlexPOS and LoyaltyLion on one seed and clock."""
    settings = LoyaltyLionSettings(customers=60, rate_limit_per_second=None)
    with start_sandbox(settings, only=["flexpos", "loyaltylion"], now=NOW) as running:
        yield running


def get(sb, path: str, headers=BEARER, **params) -> requests.Response:
    return requests.get(
        f"{sb.loyaltylion.api_url}/{path}", headers=headers, params=params, timeout=10
    )


def test_bearer_basic_bad_key_and_missing_scope(sb):
    assert get(sb, "customers").status_code == 200
    bad = get(sb, "customers", headers={"Authorization": "Bearer pat_nope"})
    assert (bad.status_code, bad.json()) == (
        401,
        {"error": {"message": "Authentication is required"}},
    )
    assert get(sb, "customers", headers={}).status_code == 401
    scoped = {"Authorization": f"Bearer {CUSTOMERS_ONLY_KEY}"}
    assert get(sb, "customers", headers=scoped).status_code == 200
    forbidden = get(sb, "transactions", headers=scoped)
    assert (forbidden.status_code, forbidden.json()) == (
        403,
        {"error": {"message": "Authentication is required"}},
    )
    legacy = requests.get(
        f"{sb.loyaltylion.api_url}/customers", auth=(LEGACY_TOKEN, LEGACY_SECRET), timeout=10
    )
    assert legacy.status_code == 200 and legacy.headers["Deprecation"] == "true"
    assert legacy.headers["Sunset"] == "Sun, 10 Jan 2027 00:00:00 GMT"
    wrong = requests.get(
        f"{sb.loyaltylion.api_url}/customers", auth=(LEGACY_TOKEN, "wrong"), timeout=10
    )
    assert wrong.status_code == 401 and wrong.headers["Deprecation"] == "true"


def test_error_bodies_for_bad_parameters_and_unknown_paths(sb):
    r = get(sb, "customers", limit=501)
    assert r.status_code == 400
    assert r.json() == {
        "error": {"message": "Invalid request", "details": {"limit": "must be between 1 and 500"}}
    }
    r = get(sb, "customers", updated_at_min="yesterday")
    assert r.status_code == 400 and "updated_at_min" in r.json()["error"]["details"]
    r = get(sb, "customers", cursor="!!not-a-cursor!!")
    assert r.status_code == 400 and "cursor" in r.json()["error"]["details"]
    r = get(sb, "nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_customers_newest_first_default_limit_and_a_cursor_that_carries_the_filters(sb):
    everyone = get(sb, "customers", limit=500).json()["customers"]
    assert len(everyone) == 60
    stamps = [c["updated_at"] for c in everyone]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert len(get(sb, "customers").json()["customers"]) == 60  # default limit 100
    lower = stamps[40]
    first = get(sb, "customers", limit=7, updated_at_min=lower).json()
    seen = [c["id"] for c in first["customers"]]
    cursor = first["cursor"]["next"]
    pages = 1
    while cursor and pages < 20:
        # Only the cursor: the filter (updated_at_min) travels inside it. A different filter
        # sent beside it is ignored, as documented.
        page = get(sb, "customers", limit=7, cursor=cursor, updated_at_min="2000-01-01").json()
        seen += [c["id"] for c in page["customers"]]
        assert page["cursor"]["prev"] == cursor
        cursor = page["cursor"]["next"]
        pages += 1
    assert seen == [c["id"] for c in everyone[:41]]
    asc = get(sb, "customers", limit=3, sort_direction="asc").json()["customers"]
    assert [c["id"] for c in asc] == [c["id"] for c in everyone[::-1][:3]]


def test_the_customer_object_and_its_tier(sb):
    customers = get(sb, "customers", limit=500).json()["customers"]
    keys = {
        *("id", "merchant_id", "email", "points_approved", "points_pending", "points_spent"),
        *("properties", "metadata", "rewards_claimed", "blocked", "guest", "enrolled"),
        *("enrolled_at", "referral_id", "referred_by", "loyalty_tier_membership"),
        *("insights_segment", "birthday", "referral_url", "linked_merchant_ids"),
        *("created_at", "updated_at", "rewards_used", "receipt_upload_url"),
    }
    assert all(set(c) == keys for c in customers)
    assert {c["insights_segment"] for c in customers} == {"Loyal", "At Risk", "Win Back", None}
    with_tier = [c for c in customers if c["loyalty_tier_membership"]]
    assert {m["loyalty_tier_membership"]["loyalty_tier"]["name"] for m in with_tier} == {
        t["name"] for t in TIERS
    }
    for c in with_tier:
        m = c["loyalty_tier_membership"]
        assert m["loyalty_tier"] in TIERS
        started = datetime.fromisoformat(m["started_at"].replace("Z", "+00:00"))
        assert started <= NOW
        if m["loyalty_tier"]["default"]:
            assert m["expires_at"] is None
        else:
            expires = datetime.fromisoformat(m["expires_at"].replace("Z", "+00:00"))
            assert (expires - started).days == TIER_PERIOD_DAYS
    for c in customers:
        assert (c["loyalty_tier_membership"] is None) == (not c["enrolled"]) == c["guest"]
    # Upper bound of each tier = lower bound of the next; the top one is open.
    ordered = sorted(TIERS, key=lambda t: t["position"])
    assert [t["upper_bound"] for t in ordered[:-1]] == [t["lower_bound"] for t in ordered[1:]]
    assert ordered[-1]["upper_bound"] is None


def test_members_share_emails_with_flexpos_customers_on_one_seed(sb):
    env = sb.env()
    token = login(env)["access_token"]
    flexpos = requests.get(
        f"{env['FLEXPOS_API_URL']}/customer",
        params={"limit": 500},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["Items"]
    fp_emails = {c["Email"] for c in flexpos if c["Email"]}
    members = get(sb, "customers", limit=500).json()["customers"]
    shared = [m for m in members if m["email"] in fp_emails]
    assert len(shared) > 40  # member i is FlexPOS customer 3i (those with an e-mail)


def test_the_ledger_sums_to_the_balances_and_voids_are_negative_transactions(sb):
    txs = []
    cursor = None
    for _ in range(50):
        page = get(sb, "transactions", limit=100, **({"cursor": cursor} if cursor else {})).json()
        txs += page["transactions"]
        cursor = page["cursor"]["next"]
        if not cursor:
            break
    ids = [t["id"] for t in txs]
    assert ids == sorted(ids, reverse=True)  # newest first
    data = sb.loyaltylion.data
    assert len(txs) == len(data.transactions) - len(data.late)
    assert {t["resource"] for t in txs} == {"activity", "adjustment", "claimed_reward", "expiry"}
    voids = [t for t in txs if t["resource"] == "activity" and t["activity"]["state"] == "void"]
    assert voids and all(t["points_approved"] < 0 for t in voids)
    for void in voids:  # the earlier, positive transaction of the same activity is still there
        originals = [
            t
            for t in txs
            if t["id"] < void["id"]
            and t["customer"]["id"] == void["customer"]["id"]
            and t["resource"] == "activity"
            and t["activity"]["value"] == void["activity"]["value"]
            and t["points_approved"] == -void["points_approved"]
        ]
        assert originals
    # Every customer's balances are the sums of all its transactions (late ones included).
    for c in data.iter_records("customer"):
        mine = [t for t in data.transactions if t["customer_index"] == c["id"] - 100_000]
        assert c["points_approved"] == sum(t["points_approved"] for t in mine)
        assert c["points_pending"] == sum(t["points_pending"] for t in mine)
    since = get(sb, "transactions", since_id=ids[10], limit=500).json()["transactions"]
    assert [t["id"] for t in since] == ids[:10]


def test_late_ids_appear_below_ids_already_served_after_release():
    with start_sandbox(
        LoyaltyLionSettings(customers=40, late_pct=40), only=["loyaltylion"], now=NOW
    ) as sb:
        data = sb.loyaltylion.data
        late = sorted(data.late)
        assert late
        before = {t["id"] for t in get(sb, "transactions", limit=500).json()["transactions"]}
        assert max(before) > late[-1] and before.isdisjoint(late)
        released = requests.post(
            f"{sb.loyaltylion.base_url}/_sandbox/loyaltylion/release-late", timeout=10
        )
        assert released.json() == {"released": late}
        after = {t["id"] for t in get(sb, "transactions", limit=500).json()["transactions"]}
        assert after == before | set(late)


def test_twenty_requests_per_second_then_429_with_retry_after():
    with start_sandbox(LoyaltyLionSettings(customers=3), only=["loyaltylion"], now=NOW) as sb:
        session = requests.Session()
        statuses = []
        started = time.monotonic()
        for _ in range(40):
            r = session.get(f"{sb.loyaltylion.api_url}/customers", headers=BEARER, timeout=10)
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert "Rate limit" in r.json()["error"]["message"]
        elapsed = time.monotonic() - started
        # A bucket of 20 that refills at 20 per second: what passed is bounded by that.
        assert 20 <= statuses.count(200) <= 20 + 20 * elapsed + 1
        if elapsed < 0.5:
            assert statuses.count(429) >= 1


def test_the_data_is_the_same_for_the_same_seed_and_clock():
    def snapshot() -> list:
        with start_sandbox(LoyaltyLionSettings(customers=10), only=["loyaltylion"], now=NOW) as sb:
            return get(sb, "customers", limit=500).json()["customers"]

    first, second = snapshot(), snapshot()
    assert first == second
    assert max(c["updated_at"] for c in first) < "2026-06-15T09:30:00.000Z"
