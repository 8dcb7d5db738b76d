"""LoyaltyLion → store → Ometria end to end, as `make demo` runs it: every pushed contact carries
exactly the sync-list properties computed independently from the LoyaltyLion emulator's data
(issue 14), and a change to one member sends that one contact again."""

from __future__ import annotations

import datetime as dt
import sys

from conftest import REPO, make_store_project
from test_e2e_loyaltylion_to_store import expected_accounts

from sandbox.flexpos import FlexposSettings
from sandbox.loyaltylion import LoyaltyLionSettings

sys.path.insert(0, str(REPO / "tests" / "targets"))
from ometria_helpers import SYNC_LIST

from target_ometria.sinks import DEFAULT_PROPERTY_KEYS

LOADS = ("flexpos_to_store", "loyaltylion_to_store")
PUSH = "loyaltylion_to_ometria"


def _properties(account: dict) -> dict:
    """What Ometria should hold: each sync-list field that has a value, as JSON gives it."""
    out = {}
    for column in SYNC_LIST:
        value = account[column]
        if value is None or value == "":
            continue  # left out, never sent empty
        out[DEFAULT_PROPERTY_KEYS[column]] = (
            value.isoformat() if isinstance(value, dt.date) else value
        )
    return out


def test_every_member_reaches_ometria_with_the_emulators_loyalty_fields(
    tmp_path, fresh_full_sandbox
):
    sb = fresh_full_sandbox(
        FlexposSettings(customers=40, journals=20, tickets=10, memberships=2),
        LoyaltyLionSettings(customers=30, late_pct=0),
    )
    project = make_store_project(tmp_path, sb.env())
    for pipeline in (*LOADS, PUSH):
        done = project.run("run", pipeline, "--env", "sandbox")
        assert done.returncode == 0, (pipeline, done.stderr[-2000:])

    by_email = {c["email"]: c for c in sb.ometria.of_type("contact").values() if "email" in c}
    expected = expected_accounts(sb.loyaltylion.data)
    assert len(expected) == 30
    for account in expected.values():
        email = account["contact_id"].removeprefix("email:")
        assert by_email[email]["properties"] == _properties(account), email
        assert email not in by_email[email]["id"]  # the id carries no personal data

    # One member's points change: the next runs send that one contact and nothing else.
    calls = len(sb.ometria.calls)
    changed = next(iter(sb.loyaltylion.data.iter_records("customer")))
    sb.loyaltylion.data.adjust_points(changed["id"], 25)
    for pipeline in ("loyaltylion_to_store", PUSH):
        again = project.run("run", pipeline, "--env", "sandbox")
        assert again.returncode == 0, (pipeline, again.stderr[-2000:])
    new_calls = sb.ometria.calls[calls:]
    assert sum(c["records"] for c in new_calls) == 1
    after = expected_accounts(sb.loyaltylion.data)[str(changed["id"])]
    email = after["contact_id"].removeprefix("email:")
    assert {c["email"]: c for c in sb.ometria.of_type("contact").values()}[email][
        "properties"
    ] == _properties(after)
