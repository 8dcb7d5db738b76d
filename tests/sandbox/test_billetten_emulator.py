"""The Billetten emulator over HTTP: API key, cursor pages in (updated_at, id) order, ISO
filters, errors, 429 with Retry-After, the fixed scenarios, people shared with FlexPOS, and the
control API that changes the data."""

from __future__ import annotations

import requests

from sandbox.billetten import API_KEY
from sandbox.billetten.data import SCENARIOS
from sandbox.engine import People

KEY = {"X-API-Key": API_KEY}


def get(server, path, **params):
    return requests.get(f"{server.api_url}/{path}", headers=KEY, params=params, timeout=10)


def every_page(server, path, **params):
    out, cursor = [], None
    for _ in range(1000):
        body = get(server, path, **params, **({"cursor": cursor} if cursor else {})).json()
        out += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("cursor never ended")


def test_a_key_is_required(full_sandbox):
    url = f"{full_sandbox.billetten.api_url}/buyers"
    missing = requests.get(url, timeout=10)
    wrong = requests.get(url, headers={"X-API-Key": "nope"}, timeout=10)
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert wrong.json() == {"error": {"code": 401, "message": "invalid API key"}}


def test_cursor_pages_hold_every_record_once_in_order(full_sandbox):
    server = full_sandbox.billetten
    for resource, path in (("order_lines", "order-lines"), ("tracking_events", "tracking-events")):
        paged = every_page(server, path, limit=17)
        assert paged == server.data.all(resource)
        keys = [(r["updated_at"], r["id"]) for r in paged]
        assert keys == sorted(keys)


def test_updated_since_is_inclusive_and_updated_before_exclusive(full_sandbox):
    server = full_sandbox.billetten
    lines = server.data.all("order_lines")
    lo, hi = lines[10]["updated_at"], lines[20]["updated_at"]
    got = every_page(server, "order-lines", updated_since=lo, updated_before=hi)
    assert got == [x for x in lines if lo <= x["updated_at"] < hi]
    offset = every_page(server, "order-lines", updated_since=lo.replace("Z", "+00:00"))
    assert offset[0]["updated_at"] == lo


def test_bad_parameters_are_400_with_a_reason(full_sandbox):
    server = full_sandbox.billetten
    cases = {
        "limit": ("500", "limit must be an integer from 1 to 200"),
        "cursor": ("garbage!", "is not one this API issued"),
        "updated_since": ("yesterday", "must be an ISO 8601 date-time"),
    }
    for name, (value, reason) in cases.items():
        response = get(server, "buyers", **{name: value})
        assert response.status_code == 400
        assert reason in response.json()["error"]["message"]
    naive = get(server, "buyers", updated_since="2026-01-01T00:00:00")
    assert "must carry a UTC offset" in naive.json()["error"]["message"]


def test_429_with_retry_after(fresh_full_sandbox):
    server = fresh_full_sandbox(only=["billetten"]).billetten
    server.set_rate_limit(1)
    statuses = [get(server, "buyers", limit=1) for _ in range(3)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1


def test_the_scenarios_are_as_documented(full_sandbox):
    data = full_sandbox.billetten.data
    for i, (related, newsletter, _) in SCENARIOS.items():
        first = data.get("buyers", f"B{100_000 + i}")["permission_history"][0]
        assert (first["10_2"], first["consent_email"]) == (related, newsletter)
        assert first["changed_by"] == "checkout"
    full = data.get("buyers", "B100004")
    assert full["permissions"] == {"10_2": "no", "consent_email": "no"}
    assert full["permission_history"][-1]["changed_by"] == "unsubscribe_form"
    partial = data.get("buyers", "B100005")
    assert partial["permissions"] == {"10_2": "yes", "consent_email": "no"}
    seats = [x for x in data.all("order_lines") if x["buyer_id"] == "B100007"]
    assert len(seats) == 5 and len({x["order_id"] for x in seats}) == 1
    assert [x["status"] for x in seats].count("cancelled") == 1
    assert all(x["price"] > 0 and x["fee"] > 0 for x in seats)


def test_pairing_only_for_a_logged_in_or_paying_buyer_with_cookies(full_sandbox):
    events = full_sandbox.billetten.data.all("tracking_events")
    assert {e["type"] for e in events} == {"session", "visit", "add_to_cart", "purchase", "pairing"}
    pairings = [e for e in events if e["type"] == "pairing"]
    assert all(e["cookies_accepted"] and e["buyer_id"] for e in pairings)
    assert len({e["browser_id"] for e in pairings}) == len(pairings)  # the first time only
    assert {e["trigger"] for e in pairings} == {"login", "checkout"}
    paid_without_cookies = [e for e in events if e["browser_id"] == "br-b100001"]
    assert any(e["type"] == "purchase" for e in paid_without_cookies)
    assert not any(e["type"] == "pairing" for e in paid_without_cookies)
    assert not any(e["type"] == "pairing" for e in events if e["browser_id"].startswith("br-anon"))


def test_some_buyers_are_flexpos_customers(full_sandbox):
    people = People(full_sandbox.billetten.data.seed)
    flexpos = {people.person(i).email for i in range(full_sandbox.flexpos.data.count("customer"))}
    buyers = {b["email"] for b in full_sandbox.billetten.data.all("buyers")}
    assert 0 < len(buyers & flexpos) < len(buyers)


def test_the_control_api_cancels_unsubscribes_and_sells(fresh_full_sandbox):
    server = fresh_full_sandbox(only=["billetten"]).billetten
    ctl = f"{server.base_url}/_sandbox/billetten"
    sold = requests.post(f"{ctl}/purchase", json={"buyer_id": "B100003", "seats": 3}, timeout=10)
    assert sold.status_code == 201 and len(sold.json()) == 3
    line = sold.json()[0]["id"]
    cancelled = requests.post(f"{ctl}/cancel", json={"line_id": line}, timeout=10)
    assert cancelled.json()["status"] == "cancelled"
    again = requests.post(f"{ctl}/cancel", json={"line_id": line}, timeout=10)
    assert again.status_code == 400 and "cancelled already" in again.json()["error"]["message"]
    unsub = requests.post(
        f"{ctl}/unsubscribe", json={"buyer_id": "B100000", "kind": "partial"}, timeout=10
    )
    assert unsub.json()["permissions"] == {"10_2": "yes", "consent_email": "no"}
    missing = requests.post(f"{ctl}/cancel", json={"line_id": "T1"}, timeout=10)
    assert missing.status_code == 404
    newest = server.data.all("order_lines")[-1]
    assert newest["id"] == line and newest["updated_at"] > server.data.now.strftime("%Y")
