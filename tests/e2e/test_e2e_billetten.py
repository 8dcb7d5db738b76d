"""`loyalty run billetten_to_store`: the real tap | mapper | target against the Billetten
emulator, asserted on the rows of the DuckDB store.

The emulator's first buyers are fixed scenarios (sandbox/billetten/data.py, SCENARIOS): B100000
both permissions, B100001 consent_email only, B100002 10_2 only, B100003 terms only, B100004 a
full unsubscribe later, B100005 a partial one, B100006 10_2 only then a full unsubscribe,
B100007 five seats with one cancelled. Billetten runs alone here, so no FlexPOS record of the
same person says anything about their consent.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from conftest import StoreProject

from sandbox.billetten import BillettenSettings

RUN = ("run", "billetten_to_store", "--env", "sandbox")


@pytest.fixture
def billetten(fresh_full_sandbox):
    return fresh_full_sandbox(BillettenSettings(), only=["billetten"])


def project_for(store_project, sb, **target) -> StoreProject:
    return store_project(sb.env(), pipeline="billetten_to_store", **target)


def run(project: StoreProject) -> None:
    proc = project.run(*RUN)
    assert proc.returncode == 0, proc.stderr


def consent(project: StoreProject, buyer: str) -> tuple:
    """(newsletter, consent_related, unsubscribed_at, "10_2", consent_email) of a buyer."""
    rows = project.query(
        'SELECT c.newsletter, c.consent_related, c.unsubscribed_at, c."10_2", c.consent_email '
        "FROM contacts AS c JOIN contact_ids AS i USING (contact_id) "
        f"WHERE i.source = 'billetten' AND i.source_id = '{buyer}'"
    )
    assert len(rows) == 1, rows
    return rows[0]


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def withdrawn_at(sb, buyer: str) -> dt.datetime:
    history = sb.billetten.data.get("buyers", buyer)["permission_history"]
    return instant(next(h["changed_at"] for h in history if h["changed_by"] != "checkout"))


def test_the_permission_cases_and_later_changes_land_as_the_guide_says(billetten, store_project):
    project = project_for(store_project, billetten)
    run(project)
    (buyers,) = project.query("SELECT count(*) FROM contact_ids WHERE source = 'billetten'")[0]
    assert buyers == billetten.billetten.data.count("buyers")  # every buyer is a contact
    assert consent(project, "B100000")[:4] == (True, True, None, "yes")
    assert consent(project, "B100001")[:3] == (True, None, None)  # consent_email only
    assert consent(project, "B100002")[:3] == (None, True, None)  # 10_2 only
    assert consent(project, "B100003") == (None, None, None, "", "")  # terms only: neither
    # Full unsubscribe: both withdrawn, unsubscribed_at the form's time.
    assert consent(project, "B100004") == (
        False,
        False,
        withdrawn_at(billetten, "B100004"),
        "no",
        "no",
    )
    # Partial: the newsletter withdrawn, 10_2 kept.
    assert consent(project, "B100005") == (
        False,
        True,
        withdrawn_at(billetten, "B100005"),
        "yes",
        "no",
    )
    # A 10_2-only buyer's full unsubscribe withdraws the one consent given.
    assert consent(project, "B100006")[1:3] == (False, withdrawn_at(billetten, "B100006"))


@pytest.mark.parametrize("resubscribe", [False, True])
def test_a_purchase_after_an_unsubscribe_resubscribes_only_when_configured(
    billetten, store_project, resubscribe
):
    project = project_for(store_project, billetten, resubscribe_unsubscribed=resubscribe)
    run(project)
    full, partial = consent(project, "B100004"), consent(project, "B100005")
    data = billetten.billetten.data
    data.purchase("B100004", 2, related=True, newsletter=True)  # both boxes ticked again
    data.purchase("B100005", 1, related=True, newsletter=True)
    run(project)  # incremental: only the new order and the two buyers
    tickets = project.query(
        "SELECT count(*) FROM order_lines_by_contact WHERE source = 'billetten' "
        "AND source_customer_id IN ('B100004', 'B100005') AND cancelled_at IS NULL"
    )[0][0]
    live = [x for x in data.all("order_lines") if x["buyer_id"] in ("B100004", "B100005")]
    assert tickets == sum(x["status"] == "active" for x in live)
    if resubscribe:
        assert consent(project, "B100004")[:3] == (True, True, None)
        assert consent(project, "B100005")[:3] == (True, True, None)
    else:
        assert consent(project, "B100004")[:3] == full[:3] == (False, False, full[2])
        assert consent(project, "B100005")[:3] == partial[:3]
        assert consent(project, "B100004")[3:] == ("yes", "yes")  # the text as sent


def test_five_seats_then_one_cancellation(billetten, store_project):
    data = billetten.billetten.data
    lines = data.purchase("B100012", 5)
    order = lines[0]["order_id"]
    price, fee = Decimal(str(lines[0]["price"])), Decimal(str(lines[0]["fee"]))
    project = project_for(store_project, billetten)
    run(project)

    def order_row() -> list[tuple]:
        return project.query(
            "SELECT lines, active_lines, tickets, amount, cancelled FROM orders "
            f"WHERE source = 'billetten' AND order_id = '{order}'"
        )

    assert order_row() == [(5, 5, 5, 5 * price, False)]
    (contact,) = project.query("SELECT contact_id FROM contact_ids WHERE source_id = 'B100012'")[0]
    assert contact in big_orders(project)
    data.cancel_line(lines[2]["id"])
    run(project)
    assert order_row() == [(5, 4, 4, 4 * price, False)]  # one order, the total of four
    seats = project.query(
        "SELECT seat, cancelled_at IS NOT NULL, status, amount, fee FROM order_lines "
        f"WHERE order_id = '{order}' ORDER BY line_id"
    )
    assert [s[1] for s in seats] == [False, False, True, False, False]  # kept, marked
    assert {s[2] for s in seats if s[1]} == {"cancelled"}
    assert {(s[3], s[4]) for s in seats} == {(price, fee)}  # price incl. VAT, fee apart
    cancelled = project.query("SELECT line_id FROM ticket_cancellations")
    assert (f"billetten:ticket:{lines[2]['id']}",) in cancelled
    assert contact not in big_orders(project)  # segments count live seats: 4 is not > 4


def big_orders(project: StoreProject) -> str:
    """The members of tickets_in_one_order with more than four seats, as CSV, as of a day
    after the clock (the emulator's changes happen just after it)."""
    later = dt.datetime.fromisoformat(project.env["LOYALTY_NOW"]) + dt.timedelta(days=1)
    params = ("--param", "more_than=4", "--param", f"as_of={later.isoformat()}")
    args = ("segment", "show", "tickets_in_one_order", *params, "--csv")
    shown = project.run(*args, "--env", "sandbox")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_the_seeded_five_seats_with_one_cancelled(billetten, store_project):
    project = project_for(store_project, billetten)
    run(project)
    rows = project.query(
        "SELECT lines, active_lines, tickets, amount FROM orders AS o JOIN contact_ids AS i "
        "ON i.contact_id = o.contact_id AND i.source = 'billetten' WHERE i.source_id = 'B100007'"
    )
    (each,) = {
        Decimal(str(x["price"]))
        for x in billetten.billetten.data.all("order_lines")
        if x["buyer_id"] == "B100007"
    }
    assert rows == [(5, 4, 4, 4 * each)]


def test_pairing_links_that_browsers_events_and_no_others(billetten, store_project):
    project = project_for(store_project, billetten)
    run(project)
    events = billetten.billetten.data.all("tracking_events")
    pairing = {e["browser_id"]: e for e in events if e["type"] == "pairing"}
    assert all(e["cookies_accepted"] for e in pairing.values())  # never without cookies
    assert "br-b100001" not in pairing  # paid without accepting cookies
    contact_of = dict(
        project.query("SELECT source_id, contact_id FROM contact_ids WHERE source = 'billetten'")
    )
    linked = dict(
        project.query(
            "SELECT tracking_event_id, contact_id FROM tracking_events_by_contact "
            "WHERE contact_id IS NOT NULL"
        )
    )
    expected = {
        f"billetten:{e['id']}": contact_of[pairing[e["browser_id"]]["buyer_id"]]
        for e in events
        if e["browser_id"] in pairing
    }
    assert linked == expected
    # The paired buyer's anonymous visit before logging in is linked too.
    b0 = [e for e in events if e["browser_id"] == "br-b100000"]
    assert b0[0]["occurred_at"] < pairing["br-b100000"]["occurred_at"]
    assert linked[f"billetten:{b0[0]['id']}"] == contact_of["B100000"]
    anonymous = project.query(
        "SELECT count(*) FROM tracking_events_by_contact WHERE contact_id IS NULL"
    )[0][0]
    assert anonymous == len(events) - len(expected) > 0


def test_a_re_run_duplicates_nothing_and_a_failed_run_keeps_the_state(billetten, store_project):
    project = project_for(store_project, billetten)
    run(project)
    tables = ("contacts", "order_lines", "tracking_events", "ticket_cancellations")
    counts = {t: project.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
    state = project.run("state", "show", "billetten_to_store", "--env", "sandbox").stdout
    billetten.billetten.inject_fault("/v1/buyers", status=500, times=50)
    failed = project.run(*RUN)
    assert failed.returncode != 0
    assert "Billetten GET buyers failed after" in failed.stderr
    assert project.run("state", "show", "billetten_to_store", "--env", "sandbox").stdout == state
    billetten.billetten.clear_faults()
    run(project)
    assert {t: project.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables} == counts


def test_the_demo_runs_billetten_and_shows_buyers_by_permission_and_cancelled_seats(
    billetten, store_project
):
    from loyalty.demo import PIPELINES, summary

    assert PIPELINES.index("billetten_to_store") > PIPELINES.index("flexpos_to_store")
    project = project_for(store_project, billetten)
    run(project)
    text = summary(project.db)
    section = text[text.index("Billetten buyers by permission") :]
    counted = [x for x in section.splitlines()[1:] if x[:7].strip().isdigit()]
    shown = {line[7:].strip(): int(line[:7]) for line in counted}
    assert shown["terms only"] >= 1 and shown["10_2 only"] >= 1
    assert shown["unsubscribed"] >= 2 and shown["partly unsubscribed (10_2 kept)"] >= 1
    assert sum(shown.values()) == billetten.billetten.data.count("buyers")
    lines = billetten.billetten.data.all("order_lines")
    cancelled = sum(x["status"] == "cancelled" for x in lines)
    assert f"  seats: {len(lines)}, of them {cancelled} cancelled" in section
    assert "paired to a contact" in section
