"""LoyaltyLion's data on the seeded engine: customers (members), their tiers, and the
immutable points ledger (transactions) their balances are the sum of.

Customer ``i`` is person ``3 * i`` of the seed (``People``), so on one seed every third FlexPOS
customer is a LoyaltyLion member with the same e-mail, and the loyalty store meets them as one
contact. A customer's balances are *computed* from its own ledger (approved and pending
points are the sums of the transactions' signed deltas), which is what lets the tests check
the store's derived fields against this data independently.

Transactions are materialised once (ids are global, in creation order across customers).
A few recent ones are *late*: their id is lower than ids already served, and they become
visible only when ``release_late()`` is called (the control API does it), as a transaction
committed late does at LoyaltyLion.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.engine import BOOL, DAY, INT, STR, TS, Draw, People, SeededDataset
from sandbox.timefmt import TimeFormat

# LoyaltyLion's timestamp shape (ISO 8601, milliseconds, Z).
TIME_FORMAT = "YYYY-MM-DDTHH:mm:ss.SSS[Z]"
FIRST_CUSTOMER_ID = 100_000
FIRST_TRANSACTION_ID = 5_000_000
PERSON_STRIDE = 3  # customer i is person 3*i: every third FlexPOS customer is a member
# [EMULATED] The programme's tiers (the API returns a member's tier with these fields; the list
# itself has no endpoint). Bounds are points earned within the tier period, as strings.
TIER_PERIOD_DAYS = 365
TIERS: tuple[dict[str, Any], ...] = (
    {"id": 901, "name": "Bronze", "number": 1, "default": True, "hidden": False,
     "lower_bound": "0", "upper_bound": "500", "position": 0},
    {"id": 902, "name": "Silver", "number": 2, "default": False, "hidden": False,
     "lower_bound": "500", "upper_bound": "1500", "position": 1},
    {"id": 903, "name": "Gold", "number": 3, "default": False, "hidden": False,
     "lower_bound": "1500", "upper_bound": "4000", "position": 2},
    {"id": 904, "name": "Platinum", "number": 4, "default": False, "hidden": False,
     "lower_bound": "4000", "upper_bound": None, "position": 3},
)  # fmt: skip
TIER_WEIGHTS = (40, 30, 20, 10)
SEGMENTS = ("Loyal", "At Risk", "Win Back", None)
RULES = (
    (1, "purchase", "Make a purchase"),
    (2, "signup", "Join the programme"),
    (3, "birthday", "Birthday bonus"),
    (4, "review", "Write a review"),
)
REWARDS = ((71, "DKK 50 voucher", 200), (72, "Free coffee", 100), (73, "DKK 150 voucher", 500))
SITE = "https://loyalty.example.com"
# The customer fields a transaction carries (their current values, as documented).
_BALANCE_KEYS = ("id", "merchant_id", "email", "points_pending", "points_approved", "points_spent")


@dataclass
class Ledger:
    """One customer's generated history: transactions (without ids) and the sums of them."""

    created: int  # the customer's creation instant (no entry is older)
    entries: list[dict[str, Any]]  # created_at (instant), resource, deltas, sub-object
    approved: int
    pending: int
    spent: int
    claimed: int
    used: int


class LoyaltyLionData(SeededDataset):
    """Customers on the engine (overlay, time filters) plus the materialised transactions."""

    FIELD_KINDS = {
        "customer": {
            "id": INT,
            "merchant_id": STR,
            "email": STR,
            "points_approved": INT,
            "points_pending": INT,
            "points_spent": INT,
            "rewards_claimed": INT,
            "rewards_used": INT,
            "blocked": BOOL,
            "guest": BOOL,
            "enrolled": BOOL,
            "enrolled_at": TS,
            "birthday": STR,
            "insights_segment": STR,
            "created_at": TS,
            "updated_at": TS,
        }
    }
    MODIFIED = "updated_at"
    CREATED = {"customer": "created_at"}
    READ_ONLY = frozenset({"id", "merchant_id", "points_approved", "points_pending"})
    NULLABLE = frozenset({"birthday", "insights_segment"})

    def __init__(self, seed: int, customers: int, now: datetime | None, late_pct: int = 3) -> None:
        super().__init__(
            seed,
            {"customer": customers},
            now=now,
            time=TimeFormat(TIME_FORMAT, "UTC"),
            spaces=("ledger", "late"),
        )
        self.people = People(seed)
        self.generators["customer"] = self._customer
        self._tx_lock = threading.Lock()
        self.transactions: list[dict[str, Any]] = []  # in id order
        self.late: set[int] = set()  # ids not visible yet
        self._visible: tuple[tuple[int, int], list[dict[str, Any]], list[int]] | None = None
        self._balances: tuple[int, dict[int, dict[str, Any]]] = (-1, {})
        self._build_transactions(customers, late_pct)

    # ----- customers ---------------------------------------------------------------------
    def customer_index(self, customer_id: int) -> int:
        return customer_id - FIRST_CUSTOMER_ID

    def customer_uid(self, customer_id: int) -> str:
        return self.uid("customer", self.customer_index(customer_id))

    def ledger(self, i: int) -> Ledger:
        """Customer i's generated transactions, oldest first, and their sums."""
        d = self.draw("ledger", i)
        updated = self.base_ts("customer", i)
        created = updated - (1 + d.below(380)) * DAY
        n = d.below(9)
        times = sorted(created + d.below(max(1, updated - created)) for _ in range(n))
        entries: list[dict[str, Any]] = []
        approved = pending = spent = claimed = used = 0
        for k, at in enumerate(times):
            roll = d.below(100)
            if roll < 55 or k == 0:
                rule = d.pick(RULES)
                value = 10 + d.below(390)
                is_pending = d.pct(25)
                sub = {
                    "rule": rule,
                    "value": value,
                    "state": "pending" if is_pending else "approved",
                }
                if is_pending:
                    pending += value
                    entries.append(_entry(at, "activity", 0, value, sub))
                    if d.pct(50) and at < updated:  # approved later: pending -> approved
                        later = at + 1 + d.below(updated - at)
                        entries.append(
                            _entry(later, "activity", value, -value, {**sub, "state": "approved"})
                        )
                        pending -= value
                        approved += value
                else:
                    approved += value
                    entries.append(_entry(at, "activity", value, 0, sub))
                    if d.pct(12) and at < updated:  # voided: a second, negative transaction
                        later = at + 1 + d.below(updated - at)
                        entries.append(
                            _entry(later, "activity", -value, 0, {**sub, "state": "void"})
                        )
                        approved -= value
            elif roll < 75:
                reward = d.pick(REWARDS)
                if approved >= reward[2]:
                    is_used = d.pct(60)
                    approved -= reward[2]
                    spent += reward[2]
                    claimed += 1
                    used += is_used
                    sub = {"reward": reward, "state": "used" if is_used else "claimed"}
                    entries.append(_entry(at, "claimed_reward", -reward[2], 0, sub))
            elif roll < 88:
                amount = 10 + d.below(190)
                if d.pct(30) and approved >= amount:
                    amount = -amount
                approved += amount
                note = "Goodwill" if amount > 0 else "Correction"
                entries.append(_entry(at, "adjustment", amount, 0, {"note": note}))
            elif approved > 0:
                amount = min(approved, 50 + d.below(300))
                approved -= amount
                entries.append(_entry(at, "expiry", -amount, 0, {}))
        entries.sort(key=lambda e: e["at"])
        return Ledger(created, entries, approved, pending, spent, claimed, used)

    def _customer(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        d, _uid, ts = self.start("customer", i, gen_ts)
        base = self.base_ts("customer", i)
        person = self.people.person(PERSON_STRIDE * i)
        ledger = self.ledger(i)
        cid = FIRST_CUSTOMER_ID + i
        email = person.email or f"member{cid}@loyalty.example.net"  # LoyaltyLion requires one
        created = ledger.created
        enrolled = not d.pct(8)
        referral_id = f"{(d.word() & 0xFFFFFFFFFF):010x}"
        membership = None
        if enrolled:
            tier = _weighted(d, TIERS, TIER_WEIGHTS)
            started = max(created, base - d.below(TIER_PERIOD_DAYS - 30) * DAY)
            expires = None if tier["default"] else started + TIER_PERIOD_DAYS * DAY
            membership = {
                "started_at": started,
                "expires_at": expires,
                "manual": False,
                "loyalty_tier": dict(tier),
            }
        referrer = d.below(i) if i and d.pct(15) else None
        return {
            "id": cid,
            "merchant_id": str(7_000_000 + 7 * i),
            "email": email,
            "points_approved": ledger.approved,
            "points_pending": ledger.pending,
            "points_spent": ledger.spent,
            "properties": {
                "name": f"{person.first_name} {person.last_name}",
                "first_name": person.first_name,
                "last_name": person.last_name,
            },
            "metadata": {"shopify_source_url": None},
            "rewards_claimed": ledger.claimed,
            "rewards_used": ledger.used,  # [EMULATED]: not in the public API
            "blocked": d.pct(3),
            "guest": not enrolled,
            "enrolled": enrolled,
            "enrolled_at": created if enrolled else None,
            "referral_id": referral_id,
            "referred_by": None
            if referrer is None
            else {"id": FIRST_CUSTOMER_ID + referrer, "merchant_id": str(7_000_000 + 7 * referrer)},
            "loyalty_tier_membership": membership,
            "insights_segment": d.pick(SEGMENTS) if enrolled else None,
            "birthday": None if person.birthday is None else person.birthday.isoformat(),
            "referral_url": f"{SITE}/r/{referral_id}",
            "receipt_upload_url": f"{SITE}/receipts/{referral_id}",  # [EMULATED]
            "linked_merchant_ids": [],
            "created_at": created,
            "updated_at": ts,
        }

    def customer_page(
        self,
        lower: int | None,
        upper: int | None,
        keep: Callable[[dict[str, Any]], bool],
        *,
        descending: bool,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` customers with ``lower <= updated_at <= upper`` (instants; None is
        open) that ``keep``, in updated_at order (newest first when ``descending``), rendered.

        updated_at is unique per customer (the engine's modified times grow strictly), so a
        cursor that remembers the last one served is an exact keyset.
        """
        found: list[dict[str, Any]] = []
        with self._lock:
            lo, hi = 0, self.count("customer")
            if lower is not None:
                lo, hi = self._narrow("customer", lo, hi, "$gte", lower)
            if upper is not None:
                lo, hi = self._narrow("customer", lo, hi, "$lte", upper)
            positions = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
            for pos in positions:
                raw = self._raw("customer", self._index_at("customer", pos))
                if keep(raw):
                    found.append(raw)
                    if len(found) >= limit:
                        break
        return [self.render("customer", raw) for raw in found]

    def render(self, resource: str, rec: dict[str, Any]) -> dict[str, Any]:
        """The engine's rendering plus the nested tier membership's instants."""
        rec = super().render(resource, rec)
        membership = rec.get("loyalty_tier_membership")
        if membership:
            membership = rec["loyalty_tier_membership"] = dict(membership)
            for key in ("started_at", "expires_at"):
                if membership[key] is not None:
                    membership[key] = self.time.render(membership[key])
        return rec

    # ----- transactions ------------------------------------------------------------------
    def _build_transactions(self, customers: int, late_pct: int) -> None:
        """Every customer's ledger, merged into one id sequence in creation order."""
        merged = []
        for i in range(customers):
            for k, entry in enumerate(self.ledger(i).entries):
                merged.append((entry["at"], i, k, entry))
        merged.sort(key=lambda m: m[:3])
        newest = len(merged) - len(merged) // 4
        for n, (_at, i, _k, entry) in enumerate(merged):
            tid = FIRST_TRANSACTION_ID + n
            self.transactions.append(self._transaction(tid, i, entry))
            # A few of the newest quarter commit late: served only after release_late().
            if n >= newest and n < len(merged) - 1 and self.draw("late", n).pct(late_pct):
                self.late.add(tid)

    def _transaction(self, tid: int, i: int, entry: dict[str, Any]) -> dict[str, Any]:
        """A transaction as stored: instants raw; ``customer`` is filled in when served."""
        resource = entry["resource"]
        sub = entry["sub"]
        tx: dict[str, Any] = {
            "id": tid,
            "customer_index": i,
            "points_approved": entry["approved"],
            "points_pending": entry["pending"],
            "created_at": entry["at"],
            "resource": resource,
        }
        if resource == "activity":
            rule_id, rule_name, title = sub["rule"]
            tx["activity"] = {
                "id": tid * 10 + 1,
                "merchant_id": f"order-{tid}" if rule_name == "purchase" else None,
                "value": sub["value"],
                "state": sub["state"],
                "rule": {"id": rule_id, "name": rule_name, "title": title},
                "created_at": entry["at"],
            }
        elif resource == "claimed_reward":
            reward_id, title, cost = sub["reward"]
            tx["claimed_reward"] = {
                "id": tid * 10 + 2,
                "claimed_at": entry["at"],
                "point_cost": cost,
                "state": sub["state"],
                "reward": {"id": reward_id, "title": title},
                "expires_at": None,
            }
        elif resource == "adjustment":
            tx["adjustment"] = {"note": sub["note"]}
        else:
            tx["expiry"] = {"points": -entry["approved"]}
        return tx

    def visible_transactions(self) -> list[dict[str, Any]]:
        """Transactions the API serves now, in id order (late ones excluded)."""
        return self.visible()[0]

    def visible(self) -> tuple[list[dict[str, Any]], list[int]]:
        """Transactions the API serves now, in id order (late ones excluded), and their ids.

        Built once per change of the ledger: a listing asks for it on every page.
        """
        with self._tx_lock:
            key = (len(self.transactions), len(self.late))
            if self._visible is None or self._visible[0] != key:
                shown = [t for t in self.transactions if t["id"] not in self.late]
                self._visible = (key, shown, [t["id"] for t in shown])
            return self._visible[1], self._visible[2]

    def release_late(self) -> list[int]:
        """Make the late transactions visible (ids lower than ones already served)."""
        with self._tx_lock:
            released, self.late = sorted(self.late), set()
        return released

    def adjust_points(self, customer_id: int, points: int, note: str = "Sandbox") -> dict[str, Any]:
        """Add an adjustment transaction and move the customer's balance (and updated_at)."""
        uid = self.customer_uid(customer_id)
        i = self.customer_index(customer_id)

        def apply(raw: dict[str, Any], at: int) -> dict[str, Any]:
            if raw["points_approved"] + points < 0:
                raise ValueError(f"customer {customer_id} has only {raw['points_approved']} points")
            with self._tx_lock:
                tid = self.transactions[-1]["id"] + 1 if self.transactions else FIRST_TRANSACTION_ID
                entry = _entry(at, "adjustment", points, 0, {"note": note})
                self.transactions.append(self._transaction(tid, i, entry))
            return {"points_approved": raw["points_approved"] + points}

        return self.change("customer", uid, apply)

    def serve_transaction(self, tx: dict[str, Any]) -> dict[str, Any]:
        """The API's shape: rendered instants and the customer's *current* balances."""
        out = {k: v for k, v in tx.items() if k != "customer_index"}
        out["customer"] = self._balance(tx["customer_index"])
        out["created_at"] = self.time.render(tx["created_at"])
        sub = out.get(tx["resource"])
        if isinstance(sub, dict):
            sub = out[tx["resource"]] = dict(sub)
            for key in ("created_at", "claimed_at"):
                if sub.get(key) is not None:
                    sub[key] = self.time.render(sub[key])
        return out

    def _balance(self, i: int) -> dict[str, Any]:
        """Customer i's ids and balances now, cached per data version (rendering a customer
        generates its whole ledger; a page of transactions names hundreds of them)."""
        version = self.version
        if self._balances[0] != version:
            self._balances = (version, {})
        cache = self._balances[1]
        found = cache.get(i)
        if found is None:
            customer = self.record_at_index(i)
            found = cache[i] = {k: customer[k] for k in _BALANCE_KEYS}
        return dict(found)

    def record_at_index(self, i: int) -> dict[str, Any]:
        """Customer i as the API shows it now (overlay included)."""
        found = self.get("customer", self.uid("customer", i))
        assert found is not None
        return found


def _entry(
    at: int, resource: str, approved: int, pending: int, sub: dict[str, Any]
) -> dict[str, Any]:
    return {"at": at, "resource": resource, "approved": approved, "pending": pending, "sub": sub}


def _weighted(
    d: Draw, items: tuple[dict[str, Any], ...], weights: tuple[int, ...]
) -> dict[str, Any]:
    roll = d.below(sum(weights))
    for item, weight in zip(items, weights, strict=True):
        if roll < weight:
            return item
        roll -= weight
    return items[-1]
