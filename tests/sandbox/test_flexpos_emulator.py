"""The FlexPOS emulator over real HTTP: it must follow docs/emulated-contracts.md exactly,
because the tap is tested against it and production points the same tap at the real API."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

import pendulum
import pytest
import requests
from sandbox_http_helpers import TIMEOUT, fetch_all, login, served, session, url

DENIED = {"Message": "Authorization has been denied for this request."}
NOW = datetime(2026, 6, 1, tzinfo=UTC)  # fixed, so two sandboxes built apart agree


def local_ts(text: str, fmt: str = "YYYY-MM-DDTHH:mm:ss") -> int:
    """Wall-clock seconds: the API's timestamps are local time without offset."""
    return pendulum.from_format(text, fmt, tz="UTC").int_timestamp


# ----- auth ------------------------------------------------------------------------------------
def test_login_gives_bearer_token_with_configured_lifetime(fresh_sandbox):
    sb = fresh_sandbox(customers=3, journals=3, tickets=3, memberships=3, token_ttl_seconds=42)
    body = login(sb)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 42
    assert body["access_token"] and body["refresh_token"]
    r = requests.get(
        url(sb, "customer"),
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and len(r.json()["Items"]) == 3


@pytest.mark.parametrize(
    "auth",
    [("sandbox-pos", "wrong-secret"), ("nobody", "sandbox-pos-secret"), None],
    ids=["wrong-secret", "unknown-client", "no-credentials"],
)
def test_bad_client_credentials_get_401_invalid_client_without_the_secret(sandbox, auth):
    r = requests.post(
        f"{sandbox.flexpos.auth_url}/api/v2/auth/login",
        auth=auth,
        data={"scope": "customer:read"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert "wrong-secret" not in r.text and "sandbox-pos-secret" not in r.text


@pytest.mark.parametrize(
    "header", [None, "Bearer not-a-token", "Basic c2FuZGJveC1wb3M6c2FuZGJveC1wb3Mtc2VjcmV0"]
)
def test_api_without_a_valid_bearer_token_is_denied(sandbox, header):
    headers = {"Authorization": header} if header else {}
    r = requests.get(url(sandbox, "customer"), headers=headers, timeout=TIMEOUT)
    assert r.status_code == 401
    assert r.json() == DENIED


def test_token_expires_after_its_ttl_and_refresh_rotates(fresh_sandbox):
    sb = fresh_sandbox(customers=2, journals=0, tickets=0, memberships=0, token_ttl_seconds=1)
    first = login(sb)
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    assert requests.get(url(sb, "customer"), headers=headers, timeout=TIMEOUT).status_code == 200
    time.sleep(1.3)
    r = requests.get(url(sb, "customer"), headers=headers, timeout=TIMEOUT)
    assert r.status_code == 401 and r.json() == DENIED

    refresh_url = f"{sb.flexpos.auth_url}/api/v2/auth/refresh"
    r = requests.post(refresh_url, data={"refresh_token": first["refresh_token"]}, timeout=TIMEOUT)
    assert r.status_code == 200
    second = r.json()
    assert second["expires_in"] == 1 and second["access_token"] != first["access_token"]
    headers = {"Authorization": f"Bearer {second['access_token']}"}
    assert requests.get(url(sb, "customer"), headers=headers, timeout=TIMEOUT).status_code == 200
    # A refresh token works once; the old one is now refused.
    r = requests.post(refresh_url, data={"refresh_token": first["refresh_token"]}, timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["error"] == "invalid_grant"


def test_expire_all_tokens_forces_relogin_from_python_and_over_http(fresh_sandbox):
    sb = fresh_sandbox(customers=2, journals=0, tickets=0, memberships=0)
    s = session(sb)
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 200
    sb.flexpos.expire_all_tokens()
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 401
    s = session(sb)  # a fresh login works again
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 200
    r = requests.post(f"{sb.flexpos.base_url}/_sandbox/flexpos/expire-tokens", timeout=TIMEOUT)
    assert r.status_code == 200
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 401


def test_attraction_tokens_only_open_the_attraction_api(sandbox):
    pos, attraction = session(sandbox, "pos"), session(sandbox, "attraction")
    assert attraction.get(url(sandbox, "ticket"), timeout=TIMEOUT).status_code == 200
    assert attraction.get(url(sandbox, "membership"), timeout=TIMEOUT).status_code == 200
    assert pos.get(url(sandbox, "ticket"), timeout=TIMEOUT).json() == DENIED
    assert attraction.get(url(sandbox, "customer"), timeout=TIMEOUT).json() == DENIED
    # Resources live on their own API only.
    r = pos.get(f"{sandbox.flexpos.api_url}/ticket", timeout=TIMEOUT)
    assert r.status_code == 404 and "Message" in r.json()


# ----- lists ------------------------------------------------------------------------------------
@pytest.mark.parametrize("resource", ["customer", "journal", "ticket", "membership"])
def test_paging_returns_every_record_exactly_once_in_modified_order(sandbox, resource):
    every = list(sandbox.flexpos.data.iter_records(resource))
    assert (
        len(every) == {"customer": 200, "journal": 600, "ticket": 400, "membership": 80}[resource]
    )
    expected = [r["Uid"] for r in served(sandbox, resource)]
    got = fetch_all(sandbox, resource, limit=37)  # odd size: the last page is short
    uids = [r["Uid"] for r in got]
    assert uids == expected
    assert len(set(uids)) == len(uids)
    keys = [(local_ts(r["ModifiedDate"]), r["Uid"]) for r in got]
    assert keys == sorted(keys)


def test_a_page_of_exactly_limit_is_followed_by_an_empty_page(sandbox):
    s = session(sandbox)
    r = s.get(url(sandbox, "customer"), params={"offset": 0, "limit": 200}, timeout=TIMEOUT)
    assert len(r.json()["Items"]) == 200
    r = s.get(url(sandbox, "customer"), params={"offset": 200, "limit": 200}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"Items": []}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "501"}, "limit must be between 1 and 500"),
        ({"limit": "0"}, "limit must be between 1 and 500"),
        ({"offset": "-1"}, "offset must be a non-negative integer"),
        ({"offset": "ten"}, "offset must be a non-negative integer"),
        ({"filters[Nope][$eq]": "1"}, "unknown field 'Nope'"),
        ({"filters[IsActive][$ne]": "true"}, "unknown operator '$ne'"),
        ({"filters[IsActive][$eq]": "yes"}, "expected true or false"),
        ({"filters[IsClubMember][$eq]": "one"}, "expected an integer"),
        ({"filters[ModifiedDate][$gte]": "2025-13-01"}, "does not match the date format"),
        ({"filters[cards][$eq]": "1"}, "array field"),
        ({"filters[IsActive]": "true"}, "filters take the form"),
        ({"fields": "Nope"}, "unknown field(s) Nope"),
    ],
)
def test_bad_parameters_get_400_with_a_message_naming_them(sandbox, params, message):
    r = session(sandbox).get(url(sandbox, "customer"), params=params, timeout=TIMEOUT)
    assert r.status_code == 400
    assert message in r.json()["Message"]


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("IsActive", "true", lambda r: r["IsActive"] is True),
        ("IsActive", "false", lambda r: r["IsActive"] is False),
        ("IsClubMember", "1", lambda r: r["IsClubMember"] == 1),
        ("GetsNewsletter", "1", lambda r: r["GetsNewsletter"] == 1),
        ("CountryCode", "SE", lambda r: r["CountryCode"] == "SE"),
        ("Email", "null", lambda r: r["Email"] is None),
    ],
)
def test_eq_filters_return_exactly_the_matching_customers(sandbox, field, value, check):
    expected = [r["Uid"] for r in sandbox.flexpos.data.iter_records("customer") if check(r)]
    assert 0 < len(expected) < 200  # the data has both kinds
    got = fetch_all(sandbox, "customer", {f"filters[{field}][$eq]": value}, limit=23)
    assert [r["Uid"] for r in got] == expected


def test_modified_date_range_and_other_filters_combine(sandbox):
    everything = list(sandbox.flexpos.data.iter_records("customer"))
    low = everything[50]["ModifiedDate"]
    high = everything[150]["ModifiedDate"]
    params = {
        "filters[ModifiedDate][$gte]": low,
        "filters[ModifiedDate][$lt]": high,
        "filters[IsClubMember][$eq]": "1",
    }
    got = fetch_all(sandbox, "customer", params, limit=10)
    expected = [r["Uid"] for r in everything[50:150] if r["IsClubMember"] == 1]
    assert [r["Uid"] for r in got] == expected and expected

    gt = fetch_all(sandbox, "customer", {"filters[ModifiedDate][$gt]": low})
    assert [r["Uid"] for r in gt] == [r["Uid"] for r in everything[51:]]
    lte = fetch_all(sandbox, "customer", {"filters[ModifiedDate][$lte]": low})
    assert [r["Uid"] for r in lte] == [r["Uid"] for r in everything[:51]]
    eq = fetch_all(sandbox, "customer", {"filters[ModifiedDate][$eq]": low})
    assert [r["Uid"] for r in eq] == [everything[50]["Uid"]]


def test_filters_on_numbers_dates_and_null_customer(sandbox):
    got = fetch_all(sandbox, "customer", {"filters[CustomerNumber][$gt]": "10189"})
    assert [r["CustomerNumber"] for r in got] == list(range(10190, 10200))
    journals = served(sandbox, "journal")
    anonymous = fetch_all(sandbox, "journal", {"filters[CustomerUid][$eq]": "null"})
    assert [j["Uid"] for j in anonymous] == [j["Uid"] for j in journals if j["CustomerUid"] is None]
    assert fetch_all(sandbox, "journal", {"filters[ModifiedDate][$eq]": "null"}) == []
    returns = fetch_all(sandbox, "journal", {"filters[IsReturn][$eq]": "true"})
    assert returns and all(line["Quantity"] < 0 for j in returns for line in j["Lines"])
    cut = "01-01-1990"
    young = fetch_all(sandbox, "customer", {"filters[Birthday][$gte]": cut})
    expected = [
        c["Uid"]
        for c in sandbox.flexpos.data.iter_records("customer")
        if c["Birthday"] and datetime.strptime(c["Birthday"], "%d-%m-%Y") >= datetime(1990, 1, 1)
    ]
    assert [c["Uid"] for c in young] == expected and expected


def test_fields_projection_and_single_object(sandbox):
    s = session(sandbox)
    r = s.get(url(sandbox, "customer"), params=[("fields", "Uid"), ("fields", "Email")])
    items = r.json()["Items"]
    assert items and all(set(i) == {"Uid", "Email"} for i in items)
    one = s.get(f"{url(sandbox, 'customer')}/{items[3]['Uid']}", timeout=TIMEOUT)
    assert one.status_code == 200 and one.json()["Uid"] == items[3]["Uid"]
    missing = s.get(f"{url(sandbox, 'customer')}/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404


def test_default_date_formats_are_local_time_without_offset(sandbox):
    c = next(r for r in sandbox.flexpos.data.iter_records("customer") if r["Birthday"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", c["ModifiedDate"])
    assert re.fullmatch(r"\d\d-\d\d-\d{4}", c["Birthday"])
    m = next(sandbox.flexpos.data.iter_records("membership"))
    assert re.fullmatch(r"\d\d-\d\d-\d{4}", m["ValidFrom"])


def test_date_format_is_configurable_for_output_and_filters(fresh_sandbox):
    fmt = "DD/MM/YYYY HH.mm.ss"
    sb = fresh_sandbox(customers=40, journals=0, tickets=0, memberships=0, date_format=fmt)
    everything = fetch_all(sb, "customer")
    assert all(
        re.fullmatch(r"\d\d/\d\d/\d{4} \d\d\.\d\d\.\d\d", c["CreatedDate"]) for c in everything
    )
    cut = everything[30]["ModifiedDate"]
    got = fetch_all(sb, "customer", {"filters[ModifiedDate][$gte]": cut})
    assert [c["Uid"] for c in got] == [c["Uid"] for c in everything[30:]]
    r = session(sb).get(url(sb, "customer"), params={"filters[ModifiedDate][$gte]": "2025-01-01"})
    assert r.status_code == 400 and fmt in r.json()["Message"]


# ----- rate limit and faults ---------------------------------------------------------------------
def test_rate_limit_answers_429_with_retry_after_per_client(fresh_sandbox):
    sb = fresh_sandbox(customers=2, journals=0, tickets=1, memberships=0, rate_limit_per_second=3)
    pos, attraction = session(sb, "pos"), session(sb, "attraction")
    statuses = [pos.get(url(sb, "customer"), timeout=TIMEOUT) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert "Rate limit" in limited[0].json()["Message"]
    # Another client has its own budget.
    assert attraction.get(url(sb, "ticket"), timeout=TIMEOUT).status_code == 200
    time.sleep(int(limited[-1].headers["Retry-After"]))
    assert pos.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 200
    assert [e.status for e in sb.flexpos.requests].count(429) == len(limited)


def test_injected_status_fault_hits_only_matching_requests_then_clears(fresh_sandbox):
    sb = fresh_sandbox(customers=5, journals=5, tickets=0, memberships=0)
    s = session(sb)
    sb.flexpos.inject_fault("/customer", status=503, times=2, body={"Message": "maintenance"})
    assert s.get(url(sb, "journal"), timeout=TIMEOUT).status_code == 200
    for _ in range(2):
        r = s.get(url(sb, "customer"), timeout=TIMEOUT)
        assert r.status_code == 503 and r.json() == {"Message": "maintenance"}
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 200
    log = [(e.path.rsplit("/", 1)[-1], e.status, e.fault) for e in sb.flexpos.requests]
    assert log[-4:] == [
        ("journal", 200, None),
        ("customer", 503, "status:503"),
        ("customer", 503, "status:503"),
        ("customer", 200, None),
    ]


def test_malformed_delay_and_drop_faults(fresh_sandbox):
    sb = fresh_sandbox(customers=5, journals=0, tickets=0, memberships=0)
    s = session(sb)
    sb.flexpos.inject_fault("filters[IsActive][$eq]=true", malformed=True)
    r = s.get(url(sb, "customer"), params={"filters[IsActive][$eq]": "false"}, timeout=TIMEOUT)
    assert r.status_code == 200 and "Items" in r.json()  # not the targeted query
    r = s.get(url(sb, "customer"), params={"filters[IsActive][$eq]": "true"}, timeout=TIMEOUT)
    assert r.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        r.json()

    sb.flexpos.inject_fault("/customer", delay_seconds=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        s.get(url(sb, "customer"), timeout=0.5)

    sb.flexpos.inject_fault("/customer", drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(url(sb, "customer"), timeout=TIMEOUT)
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 200
    assert sb.flexpos.faults == []


# ----- control API and mutations -----------------------------------------------------------------
def test_control_api_injects_faults_sets_rate_limit_and_reads_the_log(fresh_sandbox):
    sb = fresh_sandbox(customers=5, journals=0, tickets=0, memberships=0)
    ctl = f"{sb.flexpos.base_url}/_sandbox"
    s = session(sb)
    r = requests.post(f"{ctl}/faults", json={"path_contains": "/customer", "status": 500})
    assert r.status_code == 201
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 500
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 200
    r = requests.post(f"{ctl}/faults", json={"path_contains": "/x", "colour": "red"})
    assert r.status_code == 400 and "colour" in r.json()["Message"]
    r = requests.post(
        f"{ctl}/faults", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "not JSON" in r.json()["Message"]

    assert requests.put(f"{ctl}/rate-limit", json={"per_second": 1}).json() == {"per_second": 1}
    codes = [s.get(url(sb, "customer"), timeout=TIMEOUT).status_code for _ in range(4)]
    assert 429 in codes
    assert requests.put(f"{ctl}/rate-limit", json={"per_second": None}).status_code == 200
    assert s.get(url(sb, "customer"), timeout=TIMEOUT).status_code == 200

    log = requests.get(f"{ctl}/requests", params={"path_contains": "/customer"}).json()
    statuses = [e["status"] for e in log["requests"]]
    assert statuses[:2] == [500, 200] and 429 in statuses
    info = requests.get(f"{ctl}/").json()
    assert info["counts"]["customer"] == 5 and info["api_url"] == sb.flexpos.api_url


def test_updated_customer_moves_to_the_end_and_an_incremental_read_sees_only_it(fresh_sandbox):
    sb = fresh_sandbox(customers=30, journals=0, tickets=0, memberships=0, now=NOW)
    before = fetch_all(sb, "customer")
    bookmark = before[-1]["ModifiedDate"]
    target = before[4]
    changed = sb.flexpos.data.update_customer(target["Uid"], Email="new@example.com")
    assert local_ts(changed["ModifiedDate"]) > local_ts(bookmark)

    after = fetch_all(sb, "customer")
    assert len(after) == 30 and sorted(c["Uid"] for c in after) == sorted(c["Uid"] for c in before)
    assert after[-1]["Uid"] == target["Uid"] and after[-1]["Email"] == "new@example.com"
    assert after[-1]["CreatedDate"] == target["CreatedDate"]
    new = fetch_all(sb, "customer", {"filters[ModifiedDate][$gt]": bookmark})
    assert [c["Uid"] for c in new] == [target["Uid"]]

    # The same over the control API, from "another process".
    ctl = f"{sb.flexpos.base_url}/_sandbox/flexpos"
    r = requests.patch(f"{ctl}/customers/{before[7]['Uid']}", json={"IsActive": False})
    assert r.status_code == 200 and r.json()["IsActive"] is False
    r = requests.post(f"{ctl}/customers", json={"count": 2})
    added = r.json()["uids"]
    assert r.status_code == 201 and len(added) == 2
    new = fetch_all(sb, "customer", {"filters[ModifiedDate][$gt]": bookmark})
    assert [c["Uid"] for c in new] == [target["Uid"], before[7]["Uid"], *added]
    assert all(c["CreatedDate"] == c["ModifiedDate"] for c in new[2:])
    bad = requests.patch(f"{ctl}/customers/{before[7]['Uid']}", json={"IsActive": "no"})
    assert bad.status_code == 400 and "IsActive" in bad.json()["Message"]
    bad = requests.patch(f"{ctl}/customers/{before[7]['Uid']}", json={"Uid": "x"})
    assert bad.status_code == 400 and "read-only" in bad.json()["Message"]
    missing = requests.patch(f"{ctl}/customers/not-a-uid", json={"Email": None})
    assert missing.status_code == 404


def test_added_journals_and_cancelled_tickets_are_visible_incrementally(fresh_sandbox):
    sb = fresh_sandbox(customers=20, journals=10, tickets=12, memberships=0, now=NOW)
    customers = {c["Uid"] for c in fetch_all(sb, "customer")}
    journal_mark = fetch_all(sb, "journal")[-1]["ModifiedDate"]
    tickets = fetch_all(sb, "ticket")
    active = next(t for t in tickets if t["Status"] == "Active")

    uids = sb.flexpos.data.add_journals(3)
    new = fetch_all(sb, "journal", {"filters[ModifiedDate][$gt]": journal_mark})
    assert [j["Uid"] for j in new] == uids
    assert all(j["CustomerUid"] is None or j["CustomerUid"] in customers for j in new)

    r = requests.post(f"{sb.flexpos.base_url}/_sandbox/flexpos/tickets/{active['Uid']}/cancel")
    assert r.status_code == 200
    new = fetch_all(sb, "ticket", {"filters[ModifiedDate][$gt]": tickets[-1]["ModifiedDate"]})
    assert [t["Uid"] for t in new] == [active["Uid"]]
    assert new[0]["Status"] == "Cancelled" and new[0]["CancelledDate"] == new[0]["ModifiedDate"]
    again = requests.post(f"{sb.flexpos.base_url}/_sandbox/flexpos/tickets/{active['Uid']}/cancel")
    assert again.status_code == 409


# ----- determinism and scale ---------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_data(fresh_sandbox):
    sizes = {"customers": 25, "journals": 25, "tickets": 25, "memberships": 25, "now": NOW}
    a, b, c = fresh_sandbox(**sizes), fresh_sandbox(**sizes), fresh_sandbox(seed=7, **sizes)
    for resource in ("customer", "journal", "ticket", "membership"):
        bodies = []
        for sb in (a, b, c):
            s = session(sb, "attraction" if resource in ("ticket", "membership") else "pos")
            bodies.append(s.get(url(sb, resource), params={"limit": 500}, timeout=TIMEOUT).content)
        assert bodies[0] == bodies[1]
        assert bodies[0] != bodies[2]


def test_millions_of_customers_are_served_without_materialising_them(fresh_sandbox):
    sb = fresh_sandbox(customers=3_000_000, journals=0, tickets=0, memberships=0, now=NOW)
    data = sb.flexpos.data
    assert data.count("customer") == 3_000_000
    last = data.record_at("customer", 2_999_999)
    cut = data.record_at("customer", 2_999_990)["ModifiedDate"]
    got = fetch_all(sb, "customer", {"filters[ModifiedDate][$gte]": cut})
    assert len(got) == 10 and got[-1] == last
    s = session(sb)
    r = s.get(url(sb, "customer"), params={"offset": 2_999_998, "limit": 500}, timeout=TIMEOUT)
    assert [c["Uid"] for c in r.json()["Items"]] == [
        data.record_at("customer", 2_999_998)["Uid"],
        last["Uid"],
    ]


def test_prefetched_next_page_is_never_stale_after_a_mutation(fresh_sandbox):
    sb = fresh_sandbox(customers=20, journals=0, tickets=0, memberships=0, now=NOW)
    s = session(sb)
    first = s.get(url(sb, "customer"), params={"offset": 0, "limit": 5}, timeout=TIMEOUT)
    assert len(first.json()["Items"]) == 5  # full page: the emulator now builds offset=5
    moved = sb.flexpos.data.record_at("customer", 6)["Uid"]
    sb.flexpos.data.update_customer(moved, City="Ribe")
    second = s.get(url(sb, "customer"), params={"offset": 5, "limit": 5}, timeout=TIMEOUT)
    expected = [c["Uid"] for c in sb.flexpos.data.iter_records("customer")][5:10]
    assert [c["Uid"] for c in second.json()["Items"]] == expected
    assert moved not in expected


@pytest.mark.parametrize("style", ["offset", "keyset"])
def test_the_look_ahead_serves_offset_and_keyset_pagers_alike(fresh_sandbox, monkeypatch, style):
    """The next page is prepared for a keyset pager (tap-flexpos: ``$gte`` moved to the last
    ModifiedDate, ``offset`` past its ties) as for an offset pager: the request that follows a
    full page renders nothing itself, and gets the very page a cold emulator serves."""
    from singer_kit.http.paging import KeysetPaginator

    sb = fresh_sandbox(customers=20, journals=0, tickets=0, memberships=0, now=NOW)
    data = sb.flexpos.data
    upper = data.record_at("customer", 18)["ModifiedDate"]
    base = {"limit": 5, "filters[ModifiedDate][$lt]": upper}  # the tap's window bound
    paginator = KeysetPaginator(
        page_size=5, key="ModifiedDate", lower_param="filters[ModifiedDate][$gte]"
    )
    s = session(sb)
    state = paginator.start
    first = s.get(url(sb, "customer"), params={**base, **paginator.params(state)}, timeout=TIMEOUT)
    items = first.json()["Items"]
    assert len(items) == 5  # full: the emulator now prepares what may come next
    if style == "keyset":
        state = paginator.advance(state, items)
        assert state is not None and state[0] == items[-1]["ModifiedDate"]
        following = {**paginator.params(state), **base}  # another order: the same query
    else:
        following = {**base, "offset": 5}

    rendered_by: list[str] = []
    raw = data._raw

    def spy(resource: str, idx: int) -> dict:
        rendered_by.append(threading.current_thread().name)
        return raw(resource, idx)

    monkeypatch.setattr(data, "_raw", spy)
    second = s.get(url(sb, "customer"), params=following, timeout=TIMEOUT)
    assert [n for n in rendered_by if n != "flexpos-prefetch"] == []  # served from look-ahead
    expected = [c["Uid"] for c in data.iter_records("customer")][5:10]
    assert [c["Uid"] for c in second.json()["Items"]] == expected


def test_a_filtered_page_asked_again_holds_at_most_limit_items(fresh_sandbox):
    """A page of a filtered listing read again after later pages (a client's retry) is the same
    page: the cached match list grown by those pages must not spill into it."""
    sb = fresh_sandbox(customers=40, journals=0, tickets=0, memberships=0, now=NOW)
    s = session(sb)
    params = {"filters[IsActive][$eq]": "true", "limit": 5}

    def page(offset: int) -> list[str]:
        r = s.get(url(sb, "customer"), params={**params, "offset": offset}, timeout=TIMEOUT)
        return [c["Uid"] for c in r.json()["Items"]]

    first = page(0)
    page(5)
    page(10)
    assert page(0) == first and len(first) == 5
