"""The generic seeded data engine: a second vendor module built on it shares FlexPOS's people.

`Loyaltyish` (loyaltyish_vendor.py) is what the next emulators (LoyaltyLion, Billetten) do:
subclass `SeededDataset` with their own fields, and take each member's identity from `People`,
so the same seed gives the same person (same e-mail) in both vendors' data.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from loyaltyish_vendor import Loyaltyish

from sandbox.flexpos.data import FlexposData

NOW = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)


def test_two_vendor_modules_on_one_seed_describe_the_same_people():
    flexpos = FlexposData(seed=7, customers=600, journals=0, tickets=0, memberships=0, now=NOW)
    members = Loyaltyish(seed=7, customers=200, stride=3, now=NOW)
    customers = list(flexpos.iter_records("customer"))
    for member in members.iter_records("customer"):
        customer = customers[(member["id"] - 1_000) * 3]  # FlexPOS customer i is person i
        assert member["email"] == customer["Email"]
        assert member["first_name"] == customer["FirstName"]
    shared = {m["email"] for m in members.iter_records("customer")} - {None}
    assert len(shared) > 150  # most people have an e-mail, and each is one person's
    assert shared <= {c["Email"] for c in customers}
    # Another seed is other people.
    strangers = {
        m["email"]
        for m in Loyaltyish(seed=8, customers=200, stride=3, now=NOW).iter_records("customer")
    }
    assert not shared & strangers


def test_the_engine_serves_a_vendor_s_own_modified_field_and_mutations():
    members = Loyaltyish(seed=7, customers=50, stride=1, now=NOW)
    stamps = [m["updated_at"] for m in members.iter_records("customer")]
    assert stamps == sorted(stamps) and stamps[-1].endswith("+00:00")
    since = members.time.parse(stamps[40])
    page = members.select("customer", [("updated_at", "$gte", since)], 0, 100)
    assert [m["updated_at"] for m in page] == stamps[40:]
    first = next(members.iter_records("customer"))
    uid = members.uid("customer", 0)
    changed = members.update("customer", uid, points_approved=12)
    assert changed["points_approved"] == 12 and changed["email"] == first["email"]
    assert list(members.iter_records("customer"))[-1] == changed  # moved to the end
    with pytest.raises(ValueError, match="'email' is read-only"):
        members.update("customer", uid, email="x@example.com")
    (added,) = members.add("customer", 1)
    assert members.count("customer") == 51 and members.get("customer", added)["id"] == 1_050
