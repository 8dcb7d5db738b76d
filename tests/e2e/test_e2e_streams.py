"""`--streams` against the emulator: a run of some streams loads only those, the mapper is fine
without the others, and the other streams' bookmarks do not move."""

from __future__ import annotations

import json


def _state(project) -> dict:
    return json.loads(project.run("state", "show", "flexpos_to_store").stdout)["bookmarks"]


def test_a_run_of_some_streams_loads_those_and_leaves_the_other_bookmarks(
    fresh_sandbox, store_project
):
    sb = fresh_sandbox()
    project = store_project(sb.env())
    data = sb.flexpos.data

    # Members only: no order data at all, and that is fine for the mapper and the store.
    first = project.run("run", "flexpos_to_store", "--streams", "customers")
    assert first.returncode == 0, first.stderr
    with_email = {c["Email"].strip().lower() for c in data.iter_records("customer") if c["Email"]}
    with_email.discard("")
    assert {e for (e,) in project.query("SELECT email FROM contacts")} == with_email
    assert project.query("SELECT count(*) FROM order_lines") == [(0,)]
    assert set(_state(project)) == {"customers"}

    full = project.run("run", "flexpos_to_store")
    assert full.returncode == 0, full.stderr
    marks = _state(project)
    assert set(marks) == {"customers", "journals", "tickets", "memberships"}

    # Something new everywhere; a journals-only run takes the journals and nothing else.
    buyer = next(c for c in data.iter_records("customer") if c["Email"])
    data.update_customer(buyer["Uid"], City="Aarhus")
    new_journals = data.add_journals(2)
    journals = project.run("run", "flexpos_to_store", "--streams", "journals")
    assert journals.returncode == 0, journals.stderr
    lines = {r[0].split(":")[2] for r in project.query("SELECT line_id FROM order_lines")}
    assert set(new_journals) <= lines
    email = buyer["Email"].strip().lower()
    assert project.query(f"SELECT city FROM contacts WHERE email = '{email}'") != [("Aarhus",)]
    after = _state(project)
    assert after["journals"] != marks["journals"]
    assert {k: after[k] for k in ("customers", "tickets", "memberships")} == {
        k: marks[k] for k in ("customers", "tickets", "memberships")
    }

    # The customers bookmark was not moved, so the next run still finds the change.
    rest = project.run("run", "flexpos_to_store", "--streams", "customers,tickets")
    assert rest.returncode == 0, rest.stderr
    assert project.query(f"SELECT city FROM contacts WHERE email = '{email}'") == [("Aarhus",)]
