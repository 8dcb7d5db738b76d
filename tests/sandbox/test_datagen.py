"""The generated FlexPOS data: realistic mixes, consistent references, deterministic, O(1)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pendulum
import pytest

from sandbox.flexpos.data import FlexposData
from sandbox.timefmt import TimeFormat
from singer_kit.dates import local_to_utc

NOW = datetime(2026, 3, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def data() -> FlexposData:
    return FlexposData(customers=2000, journals=3000, tickets=3000, memberships=500, now=NOW)


NOW_LOCAL = NOW.astimezone(ZoneInfo("Europe/Copenhagen")).replace(tzinfo=None)


def ts(text: str) -> datetime:
    """Timestamps are local wall-clock time without offset."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")


def test_customers_have_realistic_mixes(data):
    customers = list(data.iter_records("customer"))
    share = lambda pred: sum(1 for c in customers if pred(c)) / len(customers)  # noqa: E731
    assert 0.8 < share(lambda c: c["IsActive"] is True) < 0.97
    assert 0.5 < share(lambda c: c["IsClubMember"] == 1) < 0.8
    assert 0.25 < share(lambda c: c["GetsNewsletter"] == 1) < 0.7
    assert 0.05 < share(lambda c: c["Email"] is None) < 0.2
    assert 0.1 < share(lambda c: c["Mobile"] is None) < 0.35
    assert {len(c["cards"]) for c in customers} == {0, 1, 2}
    assert {c["IsClubMember"] for c in customers} == {0, 1}
    assert {c["GetsNewsletter"] for c in customers} == {0, 1}
    for c in customers:
        assert all(
            isinstance(k["Cardnumber"], int) and isinstance(k["Cardname"], str) for k in c["cards"]
        )
        assert ts(c["CreatedDate"]) <= ts(c["ModifiedDate"])
    emails = [c["Email"] for c in customers if c["Email"]]
    assert len(set(emails)) == len(emails)
    assert len({c["Uid"] for c in customers}) == len(customers)


def test_everything_references_customers_that_exist(data):
    customers = {c["Uid"] for c in data.iter_records("customer")}
    journals = list(data.iter_records("journal"))
    assert any(j["CustomerUid"] is None for j in journals)
    for resource in ("journal", "ticket", "membership"):
        refs = {r["CustomerUid"] for r in data.iter_records(resource)} - {None}
        assert refs and refs <= customers, resource


def test_journals_have_lines_currencies_and_returns(data):
    journals = list(data.iter_records("journal"))
    assert {len(j["Lines"]) for j in journals} == {1, 2, 3, 4, 5}
    currencies = Counter(j["Currency"] for j in journals)
    assert currencies["DKK"] > currencies["EUR"] > 0 and currencies["SEK"] > 0
    returns = [j for j in journals if j["IsReturn"]]
    assert returns and all(line["Quantity"] < 0 for j in returns for line in j["Lines"])
    assert all(j["TotalInclVat"] < 0 for j in returns)
    for j in journals:
        assert j["TotalInclVat"] == pytest.approx(sum(x["TotalInclVat"] for x in j["Lines"]))
        assert j["DiscountInclVat"] == pytest.approx(sum(x["DiscountInclVat"] for x in j["Lines"]))
    assert any(j["DiscountInclVat"] > 0 for j in journals)


def test_journal_lines_have_product_groups_and_bookers_come_back_to_dine(data):
    """The guide's "booked an event, then added dining in a new order" has people to find."""
    journals = list(data.iter_records("journal"))
    groups = Counter(line["ProductGroup"] for j in journals for line in j["Lines"])
    assert set(groups) == {"Dining", "Bar", "Kiosk", "Merchandise"}
    by_product = {(x["ProductName"], x["ProductGroup"]) for j in journals for x in j["Lines"]}
    assert len({name for name, _ in by_product}) == len(by_product)  # one group per product
    with_email = {c["Uid"] for c in data.iter_records("customer") if c["Email"]}
    booked: dict[str, datetime] = {}
    for t in data.iter_records("ticket"):
        if t["Status"] == "Active" and t["CustomerUid"] in with_email:
            at = ts(t["CreatedDate"])
            booked[t["CustomerUid"]] = min(booked.get(t["CustomerUid"], at), at)
    came_back = {
        j["CustomerUid"]
        for j in journals
        if j["CustomerUid"] in booked
        and ts(j["Date"]) > booked[j["CustomerUid"]]
        and any(x["ProductGroup"] == "Dining" for x in j["Lines"])
    }
    assert len(came_back) > len(booked) // 4


def test_tickets_form_orders_of_one_to_six_seats(data):
    tickets = list(data.iter_records("ticket"))
    orders: dict[str, list[dict]] = defaultdict(list)
    for t in tickets:
        orders[t["OrderUid"]].append(t)
    sizes = Counter(len(v) for v in orders.values())
    assert set(sizes) <= set(range(1, 7)) and len(sizes) >= 4
    for seats in orders.values():
        first = seats[0]
        for key in ("OrderNumber", "CustomerUid", "EventUid", "EventDate", "Zone", "Row"):
            assert {s[key] for s in seats} == {first[key]}, key
        assert len({s["Seat"] for s in seats}) == len(seats)
    assert {t["SalesChannel"] for t in tickets} == {"Online", "Desk"}
    cancelled = [t for t in tickets if t["Status"] == "Cancelled"]
    assert cancelled and all(t["CancelledDate"] for t in cancelled)
    assert all(t["CancelledDate"] is None for t in tickets if t["Status"] == "Active")
    assert all(ts(t["EventDate"]) > ts(t["CreatedDate"]) for t in tickets)


def test_memberships_run_one_year(data):
    for m in data.iter_records("membership"):
        start = pendulum.from_format(m["ValidFrom"], "DD-MM-YYYY")
        end = pendulum.from_format(m["ValidTo"], "DD-MM-YYYY")
        assert 364 <= (end - start).days <= 365


def test_data_spans_thirteen_months_before_now_in_index_order(data):
    for resource in ("customer", "journal", "ticket", "membership"):
        stamps = [ts(r["ModifiedDate"]) for r in data.iter_records(resource)]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert stamps[-1] < NOW_LOCAL
        assert (NOW_LOCAL - stamps[0]).days >= 13 * 30


def test_same_seed_same_records_and_default_now_is_loyalty_now_else_today_midnight(
    monkeypatch,
):
    monkeypatch.setenv("LOYALTY_NOW", "2028-02-29T12:34:56")
    assert FlexposData(customers=1).now == datetime(2028, 2, 29, 12, 34, 56, tzinfo=UTC)
    monkeypatch.delenv("LOYALTY_NOW")
    a = FlexposData(customers=50, journals=50, tickets=50, memberships=50)
    b = FlexposData(customers=50, journals=50, tickets=50, memberships=50)
    assert a.now.hour == 0 and a.now.minute == 0 and a.now.tzinfo is not None
    assert a.now <= datetime.now(UTC) < a.now + timedelta(days=1, minutes=1)  # today, 00:00
    for resource in ("customer", "journal", "ticket", "membership"):
        assert list(a.iter_records(resource)) == list(b.iter_records(resource))
    other = FlexposData(seed=1, customers=50, now=a.now)
    assert list(other.iter_records("customer")) != list(a.iter_records("customer"))


def test_invalid_sizes_and_updates_are_refused_clearly():
    with pytest.raises(ValueError, match="customer count"):
        FlexposData(customers=-1)
    with pytest.raises(ValueError, match="need at least one customer"):
        FlexposData(customers=0, tickets=1)
    d = FlexposData(customers=3, journals=0, tickets=0, memberships=0, now=NOW)
    uid = next(d.iter_records("customer"))["Uid"]
    with pytest.raises(ValueError, match="unknown customer field 'Colour'"):
        d.update_customer(uid, Colour="red")
    with pytest.raises(ValueError, match="DD-MM-YYYY"):
        d.update_customer(uid, Birthday="1990-01-01")
    with pytest.raises(KeyError, match="no customer"):
        d.update_customer("ffffffff-ffff-4fff-bfff-ffffffffffff", Email=None)
    assert d.update_customer(uid, Birthday="24-12-1990", Email=None)["Birthday"] == "24-12-1990"


def test_the_api_shows_instants_in_local_time_around_both_dst_changes():
    # The emulator stores instants and shows local time without offset: the skipped spring hour
    # never appears, the repeated autumn hour appears twice (summer, then winter time) in
    # instant order, and offset-less filter values are read by the shared fold=0 rule.
    d = FlexposData(customers=400_000, journals=0, tickets=0, memberships=0, now=NOW)

    def window(low: str, high: str) -> list[str]:
        bounds = [
            ("ModifiedDate", "$gte", d.time.parse(low)),
            ("ModifiedDate", "$lt", d.time.parse(high)),
        ]
        return [c["ModifiedDate"] for c in d.select("customer", bounds, 0, 500)]

    autumn = window("2025-10-26T01:30:00", "2025-10-26T03:30:00")
    steps_back = [(a, b) for a, b in pairwise(autumn) if b <= a]
    assert len(steps_back) == 1 and all(x.startswith("2025-10-26T02:") for x in steps_back[0])
    # "02:30" as a filter is the first 02:30 (00:30 UTC) and "03:00" is 02:00 UTC, so the window
    # holds the end of the first 02:xx hour and all of the second.
    later = window("2025-10-26T02:30:00", "2025-10-26T03:00:00")
    in_hour = [x for x in autumn if x.startswith("2025-10-26T02:")]
    assert in_hour[-len(later) :] == later and steps_back[0][1] in later
    assert all(x >= "2025-10-26T02:30:00" for x in later[: later.index(steps_back[0][1])])

    spring = window("2025-03-30T01:00:00", "2025-03-30T04:00:00")
    assert len(spring) > 40 and not any(x.startswith("2025-03-30T02:") for x in spring)
    assert spring == sorted(spring)


@pytest.mark.parametrize("fmt", ["YYYY-MM-DDTHH:mm:ss", "dddd YYYY-MM-DD HH:mm:ss"])
@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2026-03-29 02:21:34", "2026-03-29T01:21:34+00:00"),  # skipped: offset before the gap
        ("2026-03-29 03:00:00", "2026-03-29T01:00:00+00:00"),
        ("2026-10-25 02:30:00", "2026-10-25T00:30:00+00:00"),  # repeated: first occurrence
        ("2026-10-25 03:00:00", "2026-10-25T02:00:00+00:00"),
    ],
)
def test_filter_values_in_the_dst_gap_and_repeated_hour_follow_the_shared_rule(fmt, local, utc):
    tf = TimeFormat(fmt, "Europe/Copenhagen")
    text = pendulum.parse(local, tz="UTC").format(fmt)
    expected = int(datetime.fromisoformat(utc).timestamp())
    assert tf.parse(text) == expected
    shared = local_to_utc(datetime.fromisoformat(local), ZoneInfo("Europe/Copenhagen"))
    assert int(shared.timestamp()) == expected
