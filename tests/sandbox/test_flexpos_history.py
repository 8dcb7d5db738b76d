"""Order data is served one year back; members are served however old they are."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import requests
from sandbox_http_helpers import TIMEOUT, fetch_all, session, url

CPH = ZoneInfo("Europe/Copenhagen")


def instant(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=CPH)


def local(moment: dt.datetime) -> str:
    return moment.astimezone(CPH).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize("resource", ["journal", "ticket", "membership"])
def test_order_data_older_than_a_year_exists_but_is_not_listed(dated_sandbox, resource):
    sb = dated_sandbox
    start = sb.flexpos.history_start
    assert start == sb.flexpos.data.now - dt.timedelta(days=366)
    every = list(sb.flexpos.data.iter_records(resource))
    old = {r["Uid"] for r in every if instant(r["ModifiedDate"]) < start}
    assert old, "the emulator must hold order data older than its history"
    got = fetch_all(sb, resource, limit=50)
    assert [r["Uid"] for r in got] == [r["Uid"] for r in every if r["Uid"] not in old]


def test_members_are_listed_however_old_and_old_members_still_buy(sandbox):
    now = sandbox.flexpos.data.now
    customers = fetch_all(sandbox, "customer")
    assert len(customers) == sandbox.flexpos.data.count("customer")
    year_ago = now - dt.timedelta(days=365)
    old = {c["Uid"] for c in customers if instant(c["ModifiedDate"]) < year_ago}
    buyers = {j["CustomerUid"] for j in fetch_all(sandbox, "journal")}
    assert len(old & buyers) >= 10, "members unchanged for a year must still buy"


@pytest.mark.parametrize("op", ["$gte", "$gt"])
def test_a_lower_bound_before_the_history_is_400_naming_the_earliest(sandbox, op):
    start = sandbox.flexpos.history_start
    s = session(sandbox)
    before = local(start - dt.timedelta(days=1))
    r = s.get(
        url(sandbox, "journal"), params={f"filters[ModifiedDate][{op}]": before}, timeout=TIMEOUT
    )
    assert r.status_code == 400
    message = r.json()["Message"]
    assert f"filters[ModifiedDate][{op}]" in message and local(start) in message
    ok = s.get(
        url(sandbox, "journal"),
        params={"filters[ModifiedDate][$gte]": local(start)},
        timeout=TIMEOUT,
    )
    assert ok.status_code == 200
    # Members have no such limit.
    r = s.get(
        url(sandbox, "customer"),
        params={f"filters[ModifiedDate][{op}]": "2000-01-01T00:00:00"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and r.json()["Items"]


def test_history_days_none_serves_everything(fresh_sandbox):
    sb = fresh_sandbox(history_days=None)
    assert sb.flexpos.history_start is None
    got = fetch_all(sb, "journal")
    assert len(got) == sb.flexpos.data.count("journal")
    info = requests.get(f"{sb.flexpos.base_url}/_sandbox/", timeout=TIMEOUT).json()
    assert info["history_days"] is None
