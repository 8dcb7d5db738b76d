"""The generic seeded data engine: a second vendor module built on it shares FlexPOS's people.

`Loyaltyish` below is what the next emulators (LoyaltyLion, Billetten) do: subclass
`SeededDataset` with their own fields, and take each member's identity from `People`, so the
same seed gives the same person (same e-mail) in both vendors' data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sandbox.engine import INT, STR, TS, People, SeededDataset
from sandbox.flexpos.data import FlexposData
from sandbox.timefmt import TimeFormat

NOW = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)


class Loyaltyish(SeededDataset):
    """A LoyaltyLion-shaped vendor: integer ids, snake_case, `updated_at`, ISO timestamps."""

    FIELD_KINDS = {
        "customer": {
            "id": INT,
            "email": STR,
            "first_name": STR,
            "points_approved": INT,
            "updated_at": TS,
        }
    }
    MODIFIED = "updated_at"
    CREATED = {"customer": "updated_at"}
    READ_ONLY = frozenset({"id", "email"})

    def __init__(self, seed: int, customers: int, stride: int) -> None:
        super().__init__(
            seed, {"customer": customers}, now=NOW, time=TimeFormat("YYYY-MM-DDTHH:mm:ssZ", "UTC")
        )
        self.people = People(seed)
        self.stride = stride  # member k is person k*stride: a different slice of the people
        self.generators["customer"] = self._customer

    def _customer(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        d, _uid, ts = self.start("customer", i, gen_ts)
        person = self.people.person(i * self.stride)
        return {
            "id": 1_000 + i,
            "email": person.email,
            "first_name": person.first_name,
            "points_approved": d.below(5_000),
            "updated_at": ts,
        }


def test_two_vendor_modules_on_one_seed_describe_the_same_people():
    flexpos = FlexposData(seed=7, customers=600, journals=0, tickets=0, memberships=0, now=NOW)
    members = Loyaltyish(seed=7, customers=200, stride=3)
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
        m["email"] for m in Loyaltyish(seed=8, customers=200, stride=3).iter_records("customer")
    }
    assert not shared & strangers


def test_the_engine_serves_a_vendor_s_own_modified_field_and_mutations():
    members = Loyaltyish(seed=7, customers=50, stride=1)
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
