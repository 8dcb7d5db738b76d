"""The guide's segments, run by `loyalty segment show` on a store the real pipeline loaded from
the emulator, each checked against members computed here in Python from the store's raw rows
(contacts, contact_ids, order_lines) — never with the segment's own SQL.

One store for the whole module, on the suite's pinned clock (LOYALTY_NOW), so the periods
("the last 365 days") are the same every day. It holds both sources, FlexPOS and Billetten
(every emulator on one seed, so some people bought at the POS and online): each segment is
checked across them, a person being one contact whichever source a line came from.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from conftest import StoreProject, make_store_project

from target_loyalty_store.segments import catalog

Line = dict[str, object]
Expected = dict[str, tuple[object, ...]]  # contact_id -> (email, evidence...)


@pytest.fixture(scope="module")
def loaded(full_sandbox, tmp_path_factory: pytest.TempPathFactory) -> StoreProject:
    project = make_store_project(tmp_path_factory.mktemp("segments"), full_sandbox.env())
    for pipeline in ("flexpos_to_store", "billetten_to_store"):
        proc = project.run("run", pipeline, "--env", "sandbox")
        assert proc.returncode == 0, proc.stderr
    return project


@pytest.fixture(scope="module")
def raw(loaded: StoreProject) -> Raw:
    return Raw(loaded)


def _value(v: object) -> object:
    """A JSON value of DuckDB's to_json: instants and dates back to Python values."""
    if isinstance(v, str):
        for parse in (dt.datetime.fromisoformat, dt.date.fromisoformat):
            try:
                parsed = parse(v)
            except ValueError:
                continue
            if isinstance(parsed, dt.datetime) and " " in v:
                return parsed
            if not isinstance(parsed, dt.datetime) and len(v) == 10:
                return parsed
    return v


class Raw:
    """The store's rows as plain Python, and the person each line belongs to."""

    def __init__(self, project: StoreProject) -> None:
        def table(name: str) -> list[dict[str, object]]:
            rows = project.query(f"SELECT to_json(t)::VARCHAR FROM {name} AS t")
            return [
                {k: _value(v) for k, v in json.loads(r[0], parse_float=Decimal).items()}
                for r in rows
            ]

        self.contacts = {c["contact_id"]: c for c in table("contacts")}
        owner = {(i["source"], i["source_id"]): i["contact_id"] for i in table("contact_ids")}
        self.lines: list[Line] = []
        for line in table("order_lines"):
            cid = owner.get((line["source"], line["source_customer_id"]))
            if cid in self.contacts and line["cancelled_at"] is None:
                line["contact_id"] = cid
                self.lines.append(line)
        self.now = dt.datetime.fromisoformat(project.env["LOYALTY_NOW"])
        # Behaviour: a browser's events belong to the buyer of its first pairing with cookies
        # accepted, when that buyer is a contact; everything else stays anonymous.
        events = table("tracking_events")
        paired: dict[tuple[object, object], tuple[object, object]] = {}
        for e in sorted(events, key=lambda e: e["occurred_at"]):
            if e["event_type"] == "pairing" and e["cookies_accepted"]:
                paired.setdefault(
                    (e["source"], e["browser_id"]), (e["source"], e["source_customer_id"])
                )
        self.events = []
        for e in events:
            cid = owner.get(paired.get((e["source"], e["browser_id"]), ("", "")))
            if cid in self.contacts:
                e["contact_id"] = cid
                self.events.append(e)

    def email(self, cid: str) -> object:
        return self.contacts[cid]["email"]

    def in_period(self, ts: dt.datetime, days: int) -> bool:
        return self.now - dt.timedelta(days=days) < ts <= self.now

    def of(self, line_type: str, days: int | None = None) -> list[Line]:
        return [
            x
            for x in self.lines
            if x["line_type"] == line_type
            and (days is None or self.in_period(x["occurred_at"], days))
        ]


def _by_contact(lines: list[Line]) -> dict[str, list[Line]]:
    grouped: dict[str, list[Line]] = defaultdict(list)
    for x in lines:
        grouped[x["contact_id"]].append(x)
    return grouped


def show(project: StoreProject, name: str, **params: object) -> tuple[list[str], Expected]:
    """`loyalty segment show NAME --param k=v --csv`: its columns and members."""
    args = [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    proc = project.run("segment", "show", name, *args, "--csv", "--env", "sandbox")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    header, body = rows[0], rows[1:]
    assert proc.stderr.strip().startswith(f"{len(body)} member(s) in {name}")
    return header, {r[0]: tuple(_cell(v) for v in r[1:]) for r in body}


def _cell(text: str) -> object:
    if text == "":
        return None
    try:
        return Decimal(text)
    except ArithmeticError:
        pass
    value = _value(text)
    return value


def booked_more_than(raw: Raw) -> Expected:
    out = {}
    for cid, xs in _by_contact(raw.of("ticket", 365)).items():
        times = [x["occurred_at"] for x in xs]
        if len({x["order_id"] for x in xs}) > 2:
            out[cid] = (raw.email(cid), len({x["order_id"] for x in xs}), min(times), max(times))
    return out


def booked_event(raw: Raw) -> Expected:
    xs = [x for x in raw.of("ticket") if str(x["event_name"]).lower() == "hamlet"]
    return {
        cid: (
            raw.email(cid),
            len(ys),
            max(y["event_date"] for y in ys),
            max(y["occurred_at"] for y in ys),
        )
        for cid, ys in _by_contact(xs).items()
    }


def tickets_in_one_order(raw: Raw) -> Expected:
    per_order = Counter((x["contact_id"], x["order_id"]) for x in raw.of("ticket", 365))
    big: dict[str, list[int]] = defaultdict(list)
    for (cid, _order), n in per_order.items():
        if n > 3:
            big[cid].append(n)
    return {cid: (raw.email(cid), max(ns), len(ns)) for cid, ns in big.items()}


def booked_seat(raw: Raw) -> Expected:
    xs = [x for x in raw.of("ticket") if x["zone"] == "Loge"]
    return {
        cid: (
            raw.email(cid),
            len(ys),
            "; ".join(sorted({f"{y['zone']} row {y['row']} seat {y['seat']}" for y in ys})),
        )
        for cid, ys in _by_contact(xs).items()
    }


def booked_channel(raw: Raw) -> Expected:
    xs = [x for x in raw.of("ticket", 365) if x["channel"] == "desk"]
    return {
        cid: (raw.email(cid), len(ys), len({y["order_id"] for y in ys}))
        for cid, ys in _by_contact(xs).items()
    }


def total_amount(raw: Raw) -> Expected:
    xs = [x for x in raw.lines if x["currency"] == "EUR" and raw.in_period(x["occurred_at"], 365)]
    out = {}
    for cid, ys in _by_contact(xs).items():
        total = sum(y["amount"] for y in ys)
        if total >= 100:
            out[cid] = (raw.email(cid), total, "EUR", len({y["order_id"] for y in ys}))
    return out


def updated_profile(raw: Raw) -> Expected:
    return {
        cid: (c["email"], c["updated_at"], c["first_seen_at"])
        for cid, c in raw.contacts.items()
        if c["updated_at"] > c["first_seen_at"] and raw.in_period(c["updated_at"], 60)
    }


def event_then_dining(raw: Raw) -> Expected:
    dining = _by_contact([x for x in raw.of("purchase", 365) if x["product_group"] == "Dining"])
    out = {}
    for cid, booked in _by_contact(raw.of("ticket", 365)).items():
        pairs = [
            (b["occurred_at"], d["occurred_at"])
            for b in booked
            for d in dining.get(cid, [])
            if d["order_id"] != b["order_id"] and d["occurred_at"] > b["occurred_at"]
        ]
        if pairs:
            out[cid] = (raw.email(cid), min(p[0] for p in pairs), max(p[1] for p in pairs))
    return out


def purchased_product(raw: Raw) -> Expected:
    xs = [x for x in raw.of("purchase", 365) if x["product_name"] == "Latte"]
    return {
        cid: (raw.email(cid), sum(y["quantity"] for y in ys), max(y["occurred_at"] for y in ys))
        for cid, ys in _by_contact(xs).items()
    }


def _local_day(ts: dt.datetime) -> dt.date:
    return ts.astimezone(ZoneInfo("Europe/Copenhagen")).date()


def busiest_booking_day(raw: Raw) -> dt.date:
    return Counter(_local_day(x["occurred_at"]) for x in raw.of("ticket")).most_common(1)[0][0]


def booked_on_date(raw: Raw) -> Expected:
    day = busiest_booking_day(raw)
    xs = [x for x in raw.of("ticket") if _local_day(x["occurred_at"]) == day]
    return {
        cid: (raw.email(cid), len(ys), len({y["order_id"] for y in ys}))
        for cid, ys in _by_contact(xs).items()
    }


def has_membership(raw: Raw) -> Expected:
    today = raw.now.astimezone(dt.UTC).date()
    xs = [x for x in raw.of("membership") if x["valid_from"] <= today <= x["valid_to"]]
    return {
        cid: (
            raw.email(cid),
            "; ".join(sorted({y["product_name"] for y in ys})),
            max(y["valid_to"] for y in ys),
        )
        for cid, ys in _by_contact(xs).items()
    }


def bought_items(raw: Raw) -> Expected:
    out = {}
    for cid, ys in _by_contact(raw.of("ticket", 365) + raw.of("purchase", 365)).items():
        tickets = sum(1 for y in ys if y["line_type"] == "ticket")
        products = sum(y["quantity"] for y in ys if y["line_type"] == "purchase")
        if tickets + products >= 10:
            out[cid] = (raw.email(cid), tickets, products, tickets + products)
    return out


def new_members(raw: Raw) -> Expected:
    return {
        cid: (c["email"], c["first_seen_at"])
        for cid, c in raw.contacts.items()
        if raw.in_period(c["first_seen_at"], 120)
    }


def abandoned_cart(raw: Raw) -> Expected:
    carts: dict[tuple[str, object], dt.datetime] = {}
    for e in raw.events:
        if e["event_type"] == "add_to_cart" and raw.in_period(e["occurred_at"], 60):
            key = (e["contact_id"], e["event_id"])
            carts[key] = max(carts.get(key, e["occurred_at"]), e["occurred_at"])
    left: dict[str, list[dt.datetime]] = defaultdict(list)
    for (cid, show_id), added in carts.items():
        bought = any(
            x["contact_id"] == cid and x["event_id"] == show_id and x["occurred_at"] >= added
            for x in raw.lines
        )
        if not bought:
            left[cid].append(added)
    return {cid: (raw.email(cid), len(at), max(at)) for cid, at in left.items()}


# segment -> (its --param values, the members computed independently)
CASES: dict[str, tuple[dict[str, object], Callable[[Raw], Expected]]] = {
    "booked_more_than": ({"times": 2}, booked_more_than),
    "booked_event": ({"event": "hamlet"}, booked_event),
    "tickets_in_one_order": ({"more_than": 3}, tickets_in_one_order),
    "booked_seat": ({"zone": "Loge"}, booked_seat),
    "booked_channel": ({"channel": "desk"}, booked_channel),
    "total_amount": ({"at_least": 100, "currency": "eur"}, total_amount),
    "updated_profile": ({"days": 60}, updated_profile),
    "event_then_dining": ({}, event_then_dining),
    "purchased_product": ({"product": "latte"}, purchased_product),
    "booked_on_date": ({}, booked_on_date),
    "has_membership": ({}, has_membership),
    "bought_items": ({}, bought_items),
    "new_members": ({"days": 120}, new_members),
    "abandoned_cart": ({"days": 60}, abandoned_cart),
}


def test_every_segment_of_the_store_has_a_case():
    assert set(CASES) == set(catalog())


@pytest.mark.parametrize("name", list(CASES))
def test_segment_members_match_the_raw_rows(loaded: StoreProject, raw: Raw, name: str):
    params, expect = CASES[name]
    if name == "booked_on_date":
        params = {"day": busiest_booking_day(raw).isoformat()}
    expected = expect(raw)
    # Parameters chosen so the answer is a real selection: some contacts, not all of them.
    assert 0 < len(expected) < len(raw.contacts), name
    header, members = show(loaded, name, **params)
    assert header[:2] == ["contact_id", "email"]
    assert members == expected


def test_amounts_are_never_summed_across_currencies(loaded: StoreProject, raw: Raw):
    """Someone with EUR and DKK lines is a member of the EUR segment by their EUR total only."""
    _, members = show(loaded, "total_amount", at_least=0, currency="EUR")
    eur = {cid: ys for cid, ys in _by_contact(raw.of("purchase", 365)).items()}
    mixed = [cid for cid, ys in eur.items() if {"EUR", "DKK"} <= {str(y["currency"]) for y in ys}]
    assert mixed
    for cid in mixed:
        eur_total = sum(
            y["amount"]
            for y in raw.lines
            if y["contact_id"] == cid
            and y["currency"] == "EUR"
            and raw.in_period(y["occurred_at"], 365)
        )
        assert members[cid][1] == eur_total


def test_product_groups_reach_the_store(raw: Raw):
    groups = {x["product_group"] for x in raw.lines if x["line_type"] in ("purchase", "return")}
    assert groups == {"Dining", "Bar", "Merchandise", "Kiosk"}
    assert {x["product_group"] for x in raw.of("ticket")} == {None}


def test_an_analyst_gets_the_same_members_from_sql(loaded: StoreProject, raw: Raw):
    """The target installed the macros: plain SQL on the store answers like the CLI."""
    rows = loaded.query("SELECT contact_id FROM seg_booked_event('Hamlet')")
    assert {r[0] for r in rows} == set(booked_event(raw))
    as_of = raw.now.isoformat()
    rows = loaded.query(f"SELECT contact_id FROM seg_event_then_dining(as_of := '{as_of}')")
    assert {r[0] for r in rows} == set(event_then_dining(raw))


def test_list_names_each_segment_its_question_and_parameters(loaded: StoreProject):
    proc = loaded.run("segment", "list")
    assert proc.returncode == 0, proc.stderr
    for seg in catalog().values():
        assert f"{seg.name}\n  {seg.question}\n" in proc.stdout
        for p in seg.params:
            assert f"--param {p.name}=<{p.type}>" in proc.stdout
    assert "--param event=<text>  the event's name, e.g. Hamlet (required)" in proc.stdout
    assert "--param times=<integer>  bookings a member must exceed (default: 1)" in proc.stdout


def test_show_prints_a_table_and_the_count(loaded: StoreProject, raw: Raw):
    proc = loaded.run("segment", "show", "booked_event", "--param", "event=Hamlet")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["contact_id", "email", "tickets", "event_date", "last_booked_at"]
    assert lines[-1] == f"{len(booked_event(raw))} member(s) in booked_event (event=Hamlet)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown segment 'nope'"),
        (["booked_event"], "segment booked_event needs --param event=..."),
        (["booked_more_than", "--param", "times=many"], "times must be an integer, got 'many'"),
        (["booked_more_than", "--param", "weeks=2"], "has no parameter 'weeks'"),
    ],
)
def test_bad_parameters_are_one_line_and_exit_2(loaded: StoreProject, args, message):
    proc = loaded.run("segment", "show", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_store_locked_by_a_load_is_one_line_and_exit_75(loaded: StoreProject):
    holder = duckdb.connect(str(loaded.db))  # as a load does: read-write, for its whole run
    try:
        proc = loaded.run("segment", "show", "booked_event", "--param", "event=Hamlet")
    finally:
        holder.close()
    assert proc.returncode == 75
    assert "is locked by" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_missing_store_is_one_line(tmp_path: Path, loaded: StoreProject):
    proc = loaded.run("segment", "show", "new_members", "--database", str(tmp_path / "none.duckdb"))
    assert proc.returncode == 2
    assert "no loyalty store at" in proc.stderr and "run a load first" in proc.stderr
    assert not (tmp_path / "none.duckdb").exists()


def test_the_demo_summary_shows_segments_with_their_member_counts(loaded: StoreProject, raw: Raw):
    from loyalty.demo import summary

    text = summary(loaded.db)
    assert "\nSegments (loyalty segment list; members of each):\n" in text
    assert f"  {len(event_then_dining(raw)):>5}  event_then_dining\n" in text
    assert f"  {len(booked_more_than(raw)):>5}  booked_more_than --param times=2\n" in text


def test_a_store_without_the_segments_is_one_line(tmp_path: Path, loaded: StoreProject):
    """A store no load of this version touched (an older target's) lacks the macros."""
    old = tmp_path / "old.duckdb"
    duckdb.connect(str(old)).close()
    proc = loaded.run("segment", "show", "new_members", "--database", str(old))
    assert proc.returncode == 2
    assert "segment new_members cannot run on" in proc.stderr
    assert "a load with this version of target-loyalty-store installs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_person_who_bought_at_the_pos_and_online_is_one_contact(loaded: StoreProject, raw: Raw):
    """FlexPOS tickets and Billetten seats of one e-mail address count for one member."""
    tickets = _by_contact(raw.of("ticket"))
    both = {
        cid: {x["order_id"] for x in lines}
        for cid, lines in tickets.items()
        if {x["source"] for x in lines} == {"flexpos", "billetten"}
    }
    assert both, "the sandbox should have people who bought at the POS and online"
    _, members = show(loaded, "booked_more_than", times=0)
    for cid, orders in both.items():
        assert members[cid][1] == len(orders)  # bookings from both sources, one row
