"""Seeded, deterministic FlexPOS data at any size, in O(1) memory.

Record ``i`` of a resource is a pure function of ``(seed, i)``: its fields come from a BLAKE2
digest of ``"<seed>:<resource>:<i>"``, and its ModifiedDate grows strictly with ``i``. So the
API order (ModifiedDate, then Uid) *is* index order, a ModifiedDate range is a binary search
over indices, and a million customers never exist as a million dicts.

Mutations (``update_customer``, ``add_customers``, ``add_journals``, ``cancel_ticket``) live in a
small overlay: a changed record leaves its base position and reappears at the end with a
ModifiedDate later than everything else, exactly as an incremental client expects.
"""

from __future__ import annotations

import operator
import threading
from array import array
from bisect import bisect_right, insort
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from hashlib import blake2b
from typing import Any

from sandbox.timefmt import TimeFormat, default_now, parse_date, render_date

RESOURCES = ("customer", "journal", "ticket", "membership")
CARDS_SHAPES = ("array", "object")  # how a customer's `cards` is sent (see FlexposData)

# Field kinds, used for filters, rendering and mutation checks.
STR, INT, BOOL, NUM, TS, DATE, ARRAY = "str", "int", "bool", "num", "ts", "date", "array"

FIELD_KINDS: dict[str, dict[str, str]] = {
    "customer": {
        "Uid": STR,
        "CustomerNumber": INT,
        "FirstName": STR,
        "LastName": STR,
        "Email": STR,
        "Mobile": STR,
        "Birthday": DATE,
        "Address": STR,
        "ZipCode": STR,
        "City": STR,
        "CountryCode": STR,
        "IsActive": BOOL,
        "IsClubMember": INT,
        "GetsNewsletter": INT,
        "cards": ARRAY,
        "CreatedDate": TS,
        "ModifiedDate": TS,
        # Not in tap-flexpos's packaged schema: the field a user adds by catalog (issue 11.4).
        "PreferredStore": STR,
    },
    "journal": {
        "Uid": STR,
        "JournalNumber": INT,
        "Date": TS,
        "ModifiedDate": TS,
        "StoreUid": STR,
        "StoreName": STR,
        "CustomerUid": STR,
        "Currency": STR,
        "TotalInclVat": NUM,
        "DiscountInclVat": NUM,
        "IsReturn": BOOL,
        "Lines": ARRAY,
    },
    "ticket": {
        "Uid": STR,
        "OrderUid": STR,
        "OrderNumber": INT,
        "CustomerUid": STR,
        "EventUid": STR,
        "EventName": STR,
        "EventDate": TS,
        "Zone": STR,
        "Row": STR,
        "Seat": STR,
        "ProductName": STR,
        "PriceInclVat": NUM,
        "Currency": STR,
        "SalesChannel": STR,
        "Status": STR,
        "CancelledDate": TS,
        "CreatedDate": TS,
        "ModifiedDate": TS,
    },
    "membership": {
        "Uid": STR,
        "CustomerUid": STR,
        "MembershipType": STR,
        "ValidFrom": DATE,
        "ValidTo": DATE,
        "PriceInclVat": NUM,
        "Currency": STR,
        "CreatedDate": TS,
        "ModifiedDate": TS,
    },
}
_TS_FIELDS = {r: [f for f, k in kinds.items() if k == TS] for r, kinds in FIELD_KINDS.items()}
_DATE_FIELDS = {r: [f for f, k in kinds.items() if k == DATE] for r, kinds in FIELD_KINDS.items()}
_CUSTOMER_NULLABLE = {"Email", "Mobile", "Birthday", "Address", "ZipCode", "City", "PreferredStore"}
# Fields a caller may not set: identity and bookkeeping the overlay owns.
_READ_ONLY = {"Uid", "CustomerNumber", "CreatedDate", "ModifiedDate"}

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}

DAY = 86_400
HISTORY_DAYS = 410  # a little over 13 months, so a one-year backfill has older data to skip
_SCAN_CACHE_SIZE = 16
_UID_CACHE_SIZE = 100_000

_FIRST = [
    "Anna",
    "Mette",
    "Sofie",
    "Ida",
    "Emma",
    "Freja",
    "Karen",
    "Lone",
    "Maja",
    "Signe",
    "Søren",
    "Jens",
    "Lars",
    "Mikkel",
    "Rasmus",
    "Frederik",
    "Mads",
    "Jørgen",
    "Niels",
    "Peter",
    "Henrik",
    "Anders",
    "Åse",
    "Bjørn",
    "Kirsten",
    "Louise",
    "Camilla",
    "Oliver",
    "William",
    "Noah",
    "Lucas",
    "Astrid",
    "Ellen",
    "Jakob",
    "Thomas",
    "Line",
    "Julie",
    "Morten",
    "Hanne",
    "Zoë",
]
_LAST = [
    "Nielsen",
    "Jensen",
    "Hansen",
    "Pedersen",
    "Andersen",
    "Christensen",
    "Larsen",
    "Sørensen",
    "Rasmussen",
    "Jørgensen",
    "Petersen",
    "Madsen",
    "Kristensen",
    "Olsen",
    "Thomsen",
    "Christiansen",
    "Poulsen",
    "Johansen",
    "Møller",
    "Mortensen",
    "Østergaard",
    "Lund",
    "Holm",
    "Schmidt",
    "Kjær",
    "Dahl",
    "Bach",
    "Friis",
    "Vestergaard",
    "Ærenlund",
]
_ASCII_TABLE = str.maketrans(
    {"æ": "ae", "ø": "oe", "å": "aa", "ë": "e", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"}
)
_FIRST_ASCII = [n.lower().translate(_ASCII_TABLE) for n in _FIRST]
_LAST_ASCII = [n.lower().translate(_ASCII_TABLE) for n in _LAST]
_DOMAINS = ("example.dk", "example.com", "mail.example.org", "post.example.net")
_STREETS = [
    "Vestergade",
    "Østergade",
    "Nørregade",
    "Søndergade",
    "Algade",
    "Strandvejen",
    "Bredgade",
    "Kongensgade",
    "Skolevej",
    "Møllevej",
    "Kirkevej",
    "Havnegade",
]
_CITIES = {
    "DK": (
        ("1050", "København K"),
        ("2100", "København Ø"),
        ("8000", "Aarhus C"),
        ("5000", "Odense C"),
        ("9000", "Aalborg"),
        ("6700", "Esbjerg"),
        ("7100", "Vejle"),
        ("4000", "Roskilde"),
        ("3000", "Helsingør"),
        ("2800", "Kongens Lyngby"),
    ),
    "SE": (("21119", "Malmö"), ("41101", "Göteborg")),
    "DE": (("24937", "Flensburg"), ("20095", "Hamburg")),
}
_CARD_NAMES = ("Medlemskort", "Klubkort", "Gavekort", "Årskort")
_STORES = ("Butik Strøget", "Butik Aarhus", "Café Havnen", "Museumsbutikken", "Webshop Pickup")
# (name, product group): the group lets a segment ask "booked an event, then dining".
_PRODUCTS = [
    ("Kaffe", "Dining"),
    ("Latte", "Dining"),
    ("Croissant", "Dining"),
    ("Kage", "Dining"),
    ("Sandwich", "Dining"),
    ("Plakat", "Merchandise"),
    ("Bog", "Merchandise"),
    ("Krus", "Merchandise"),
    ("T-shirt", "Merchandise"),
    ("Hættetrøje", "Merchandise"),
    ("Postkort", "Merchandise"),
    ("Nøglering", "Merchandise"),
    ("Paraply", "Merchandise"),
    ("Taske", "Merchandise"),
    ("Is", "Kiosk"),
    ("Sodavand", "Bar"),
    ("Vand", "Bar"),
    ("Øl", "Bar"),
    ("Vin", "Bar"),
    ("Slik", "Kiosk"),
]
_CURRENCY_RATE = {"DKK": 1.0, "EUR": 7.46, "SEK": 0.68}  # DKK per unit
_EVENTS = (
    "Svanesøen",
    "Nøddeknækkeren",
    "Hamlet",
    "Cirkusrevyen",
    "Jazz i Haven",
    "Rock i Parken",
    "Juleshow",
    "Standup Aften",
    "Symfoni Nr. 9",
    "Musicalgalla",
)
_ZONES = (("Parket", 1.0), ("Balkon", 0.8), ("1. sal", 0.7), ("Loge", 1.5))
_TICKET_PRODUCTS = (
    ("Voksen", 295.0),
    ("Barn", 150.0),
    ("Pensionist", 225.0),
    ("Studerende", 195.0),
)
_BIRTH_FIRST = date(1940, 1, 1).toordinal()
_BIRTH_SPAN = date(2008, 12, 31).toordinal() - _BIRTH_FIRST
_ORDER_SIZES = (1, 2, 2, 2, 2, 3, 3, 4, 4, 5, 6)
_MEMBERSHIPS = (
    ("Årskort", 895.0),
    ("Årskort Plus", 1295.0),
    ("Familiekort", 2195.0),
    ("Studiekort", 495.0),
)


_M64 = (1 << 64) - 1


def _mix(z: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _space_key(seed: int, space: str) -> int:
    """64-bit key of one (seed, kind of thing) pair; records mix their index into it."""
    return int.from_bytes(blake2b(f"{seed}:{space}".encode(), digest_size=8).digest(), "little")


class _Draw:
    """A deterministic stream of choices for one thing (splitmix64 sequence).

    BLAKE2 per record cost ~3 us; this costs well under 1 us per record and keeps record i a
    pure function of (seed, i).
    """

    __slots__ = ("_s", "_s_first", "_v")

    def __init__(self, space_key: int, i: int) -> None:
        self._s = self._s_first = _mix((space_key + i * 0x9E3779B97F4A7C15) & _M64)
        self._v = 0

    def _next(self) -> int:
        self._s = s = (self._s + 0x9E3779B97F4A7C15) & _M64
        return _mix(s)

    def word(self) -> int:
        """64 fresh random bits; hot paths carve several choices out of one word."""
        self._s = s = (self._s + 0x9E3779B97F4A7C15) & _M64
        return _mix(s)

    def below(self, n: int) -> int:
        """Integer in [0, n), bias below 2**-20."""
        if self._v < n << 20:
            self._v = self._next()
        self._v, r = divmod(self._v, n)
        return r

    def head(self) -> tuple[int, int]:
        """(82 bits for the Uid, 46 bits for the timestamp jitter): the first two words."""
        w = self._next()
        return self._s_first | ((w & 0x3FFFF) << 64), w >> 18

    def bits(self, n: int) -> int:
        """n fresh random bits (n <= 128)."""
        v = self._next() | (self._next() << 64)
        return v & ((1 << n) - 1)

    def pct(self, p: int) -> bool:
        """True with probability p percent."""
        return self.below(100) < p

    def pick(self, seq: tuple | list) -> Any:
        return seq[self.below(len(seq))]


def _guid(bits: int, suffix: int) -> str:
    """A version-4-looking GUID; the last 12 hex digits carry `suffix` (48 bits)."""
    x = f"{bits & ((1 << 80) - 1):020x}"
    variant = "89ab"[(bits >> 80) & 3]
    return f"{x[:8]}-{x[8:12]}-4{x[13:16]}-{variant}{x[17:20]}-{suffix & 0xFFFFFFFFFFFF:012x}"


def _plus_one_year_minus_a_day(d: date) -> date:
    try:
        nxt = d.replace(year=d.year + 1)
    except ValueError:  # 29 February
        nxt = date(d.year + 1, 3, 1)
    return nxt - timedelta(days=1)


@dataclass(frozen=True)
class _Layout:
    """Where a resource's base records sit in time: ts(i) = start + i*step + jitter(i)."""

    size: int
    start: int
    step: int
    mask: int


@dataclass
class _Scan:
    """Positions matching a non-ModifiedDate filter set, found lazily and kept for paging."""

    next_pos: int
    matches: array[int]  # 8 bytes per match, not a list of int objects


Filter = tuple[str, str, Any]  # (field, "$op", typed value)


class FlexposData:
    """The generator plus its mutation overlay; thread-safe (the emulator serves threads)."""

    def __init__(
        self,
        seed: int = 42,
        customers: int = 200,
        journals: int = 600,
        tickets: int = 400,
        memberships: int = 80,
        *,
        now: datetime | None = None,
        date_format: str = "YYYY-MM-DDTHH:mm:ss",
        timezone: str = "Europe/Copenhagen",
        cards_shape: str = "array",
    ) -> None:
        sizes = {
            "customer": customers,
            "journal": journals,
            "ticket": tickets,
            "membership": memberships,
        }
        for name, n in sizes.items():
            if n < 0 or n >= 1 << 40:
                raise ValueError(f"{name} count must be between 0 and 2**40, got {n}")
        if customers == 0 and (tickets or memberships):
            raise ValueError("tickets and memberships need at least one customer")
        if cards_shape not in CARDS_SHAPES:
            shapes = ", ".join(CARDS_SHAPES)
            raise ValueError(f"cards_shape must be one of {shapes}, got {cards_shape!r}")
        self.seed = seed
        # The guide shows `cards` as one object, the emulator's default is an array: a
        # setting, so a test can feed the mapping the guide's shape too.
        self.cards_shape = cards_shape
        self.time = TimeFormat(date_format, timezone)
        now = now or default_now()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        self.now = now
        now_ts = self.time.from_datetime(now)  # an instant in epoch seconds, like every value
        end = now_ts - 3600
        self._keys = {s: _space_key(seed, s) for s in (*RESOURCES, "orderblock", "order", "event")}
        self._layout: dict[str, _Layout] = {}
        for name, n in sizes.items():
            start = end - HISTORY_DAYS * DAY
            if n > end - start:
                start = end - n
            step = max(1, (end - start) // max(n, 1))
            mask = _Draw(_space_key(seed, "mask"), len(self._layout)).bits(48)
            self._layout[name] = _Layout(n, start, step, mask)
        self._stores = [
            (_guid(_Draw(_space_key(seed, "store"), k).bits(82), 0x5700 + k), name)
            for k, name in enumerate(_STORES)
        ]
        self._products = []
        for k, (name, group) in enumerate(_PRODUCTS):
            d = _Draw(_space_key(seed, "product"), k)
            price = float(d.below(40) * 5 + 15)
            uid = _guid(d.bits(82), 0x9000 + k)
            self._products.append((uid, f"{1000 + k}", name, group, price))
        self._lock = threading.RLock()
        self._version = 0
        self._clock = now_ts  # mutations happen "after" every base record
        # overlay[resource]: index -> (ModifiedDate, generation time, overrides); insertion
        # order is ModifiedDate order because the clock only moves forward.
        self._overlay: dict[str, dict[int, tuple[int, int, dict[str, Any]]]] = {
            r: {} for r in RESOURCES
        }
        self._moved: dict[str, list[int]] = {r: [] for r in RESOURCES}
        self._next_index = dict(sizes)
        self._overlay_keys: dict[str, list[int]] = {r: [] for r in RESOURCES}
        self._scans: OrderedDict[tuple, _Scan] = OrderedDict()
        self._customer_uids: dict[int, str] = {}

    # ----- public read API -------------------------------------------------------------
    @property
    def version(self) -> int:
        """Bumped by every mutation (caches key on it)."""
        return self._version

    def count(self, resource: str) -> int:
        """How many records the resource holds now (base + added)."""
        with self._lock:
            lay = self._layout[resource]
            return lay.size - len(self._moved[resource]) + len(self._overlay[resource])

    def iter_records(self, resource: str) -> Iterator[dict[str, Any]]:
        """Every current record in API order, rendered as the API returns it (O(1) memory)."""
        for pos in range(self.count(resource)):
            yield self.record_at(resource, pos)

    def record_at(self, resource: str, pos: int) -> dict[str, Any]:
        """The record at an API-order position, rendered."""
        with self._lock:
            rec = self._raw(resource, self._index_at(resource, pos))
        return self._render(resource, rec)

    def get(self, resource: str, uid: str) -> dict[str, Any] | None:
        """One record by Uid, rendered, or None."""
        with self._lock:
            idx = self._index_of(resource, uid)
            return None if idx is None else self._render(resource, self._raw(resource, idx))

    def select(
        self, resource: str, filters: list[Filter], offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """One page of rendered records matching all filters, in API order.

        ModifiedDate bounds are binary searches; other filters are answered from a lazily built,
        cached list of matching positions, so paging through N records costs O(N) in total.
        """
        with self._lock:
            lo, hi = 0, self.count(resource)
            rest: list[Filter] = []
            for f in filters:
                if f[0] == "ModifiedDate":
                    if f[2] is None:  # no record lacks a ModifiedDate
                        return []
                    lo, hi = self._narrow(resource, lo, hi, f[1], f[2])
                else:
                    rest.append(f)
            if hi <= lo:
                return []
            if not rest:
                positions: array[int] | range = range(
                    min(hi, lo + offset), min(hi, lo + offset + limit)
                )
            else:
                positions = self._scan(resource, lo, hi, rest, offset + limit)[offset:]
            raws = [self._raw(resource, self._index_at(resource, p)) for p in positions]
        return [self._render(resource, r) for r in raws]

    # ----- mutations -------------------------------------------------------------------
    def update_customer(self, uid: str, **fields: Any) -> dict[str, Any]:
        """Change fields of one customer; it gets a ModifiedDate later than all others."""
        overrides = _check_fields("customer", fields)
        with self._lock:
            idx = self._index_of("customer", uid)
            if idx is None:
                raise KeyError(f"no customer with Uid {uid}")
            old = self._overlay["customer"].get(idx)
            gen_ts = old[1] if old else self._base_ts("customer", idx)
            merged = {**(old[2] if old else {}), **overrides}
            self._put("customer", idx, gen_ts, merged)
            return self._render("customer", self._raw("customer", idx))

    def add_customers(self, n: int) -> list[str]:
        """Append n new customers (created now); returns their Uids."""
        return self._add("customer", n)

    def add_journals(self, n: int) -> list[str]:
        """Append n new sales (made now); returns their Uids."""
        return self._add("journal", n)

    def cancel_ticket(self, uid: str) -> dict[str, Any]:
        """Cancel one seat: Status Cancelled, CancelledDate = its new ModifiedDate."""
        with self._lock:
            idx = self._index_of("ticket", uid)
            if idx is None:
                raise KeyError(f"no ticket with Uid {uid}")
            raw = self._raw("ticket", idx)
            if raw["Status"] == "Cancelled":
                raise ValueError(f"ticket {uid} is already cancelled")
            old = self._overlay["ticket"].get(idx)
            gen_ts = old[1] if old else self._base_ts("ticket", idx)
            ts = self._clock + 1
            self._put("ticket", idx, gen_ts, {"Status": "Cancelled", "CancelledDate": ts})
            return self._render("ticket", self._raw("ticket", idx))

    # ----- internals: positions ----------------------------------------------------------
    def _base_ts(self, resource: str, i: int) -> int:
        lay = self._layout[resource]
        if lay.step == 1:
            return lay.start + i
        return lay.start + i * lay.step + _Draw(self._keys[resource], i).head()[1] % lay.step

    def _base_index(self, resource: str, pos: int) -> int:
        """Base index of the pos-th base record that has not moved to the overlay."""
        moved = self._moved[resource]
        idx = pos
        while moved:
            nxt = pos + bisect_right(moved, idx)
            if nxt == idx:
                break
            idx = nxt
        return idx

    def _index_at(self, resource: str, pos: int) -> int:
        base = self._layout[resource].size - len(self._moved[resource])
        if pos < base:
            return self._base_index(resource, pos)
        return self._overlay_keys[resource][pos - base]

    def _mod_ts_at(self, resource: str, pos: int) -> int:
        idx = self._index_at(resource, pos)
        entry = self._overlay[resource].get(idx)
        return entry[0] if entry else self._base_ts(resource, idx)

    def _narrow(self, resource: str, lo: int, hi: int, op: str, value: int) -> tuple[int, int]:
        """Apply one ModifiedDate comparison to the position range [lo, hi) by bisection."""

        def first(pred: Callable[[int], bool]) -> int:
            a, b = lo, hi
            while a < b:
                mid = (a + b) // 2
                if pred(self.time.comparable(self._mod_ts_at(resource, mid))):
                    b = mid
                else:
                    a = mid + 1
            return a

        if op in ("$gte", "$eq"):
            lo2 = first(lambda t: t >= value)
            hi2 = first(lambda t: t > value) if op == "$eq" else hi
            return lo2, hi2
        if op == "$gt":
            return first(lambda t: t > value), hi
        if op == "$lt":
            return lo, first(lambda t: t >= value)
        return lo, first(lambda t: t > value)  # $lte

    def _scan(self, resource: str, lo: int, hi: int, rest: list[Filter], need: int) -> array[int]:
        key = (resource, self._version, lo, hi, tuple(sorted(rest, key=repr)))
        scan = self._scans.get(key)
        if scan is None:
            scan = self._scans[key] = _Scan(lo, array("q"))
            while len(self._scans) > _SCAN_CACHE_SIZE:
                self._scans.popitem(last=False)
        else:
            self._scans.move_to_end(key)
        preds = [self._predicate(resource, f) for f in rest]
        while len(scan.matches) < need and scan.next_pos < hi:
            raw = self._raw(resource, self._index_at(resource, scan.next_pos))
            if all(p(raw) for p in preds):
                scan.matches.append(scan.next_pos)
            scan.next_pos += 1
        return scan.matches

    def _predicate(self, resource: str, f: Filter) -> Callable[[dict[str, Any]], bool]:
        field, op, value = f
        cmp = OPS[op]
        is_ts = FIELD_KINDS[resource][field] == TS
        comparable = self.time.comparable

        def pred(raw: dict[str, Any]) -> bool:
            v = raw[field]
            if v is None or value is None:
                return op == "$eq" and v is value
            if is_ts:
                v = comparable(v)
            return cmp(v, value)

        return pred

    def _index_of(self, resource: str, uid: str) -> int | None:
        try:
            idx = int(uid[-12:], 16) ^ self._layout[resource].mask
        except (ValueError, TypeError):
            return None
        exists = idx < self._layout[resource].size or idx in self._overlay[resource]
        if not exists or self._uid(resource, idx) != uid:
            return None
        return idx

    def _uid(self, resource: str, i: int) -> str:
        return _guid(_Draw(self._keys[resource], i).head()[0], i ^ self._layout[resource].mask)

    def _put(self, resource: str, idx: int, gen_ts: int, overrides: dict[str, Any]) -> None:
        overlay = self._overlay[resource]
        if idx in overlay:
            del overlay[idx]
        elif idx < self._layout[resource].size:
            insort(self._moved[resource], idx)
        self._clock += 1
        overlay[idx] = (self._clock, gen_ts, overrides)
        self._overlay_keys[resource] = list(overlay)
        self._version += 1

    def _add(self, resource: str, n: int) -> list[str]:
        if n < 0:
            raise ValueError(f"count must be >= 0, got {n}")
        uids = []
        with self._lock:
            for _ in range(n):
                idx = self._next_index[resource]
                self._next_index[resource] += 1
                ts = self._clock + 1
                created = "Date" if resource == "journal" else "CreatedDate"
                self._put(resource, idx, ts, {created: ts})
                uids.append(self._uid(resource, idx))
        return uids

    # ----- internals: records ------------------------------------------------------------
    def _raw(self, resource: str, idx: int) -> dict[str, Any]:
        """Fresh dict: timestamps as instants (epoch seconds), dates as `date` (for filtering)."""
        entry = self._overlay[resource].get(idx)
        gen_ts = entry[1] if entry else None
        rec = _GENERATORS[resource](self, idx, gen_ts)
        if entry:
            rec.update(entry[2])
            rec["ModifiedDate"] = entry[0]
        return rec

    def _render(self, resource: str, rec: dict[str, Any]) -> dict[str, Any]:
        """Turn a raw record into the API shape, in place (it is always a fresh dict)."""
        render = self.time.render
        for f in _TS_FIELDS[resource]:
            v = rec[f]
            if v is not None:
                rec[f] = render(v)
        for f in _DATE_FIELDS[resource]:
            v = rec[f]
            if v is not None:
                rec[f] = render_date(v)
        if resource == "customer" and self.cards_shape == "object":
            cards = rec["cards"]
            rec["cards"] = cards[0] if cards else None
        return rec

    def _start(self, resource: str, i: int, gen_ts: int | None) -> tuple[_Draw, str, int]:
        """Draw stream, Uid and own timestamp of record i (base or added)."""
        lay = self._layout[resource]
        d = _Draw(self._keys[resource], i)
        uid_bits, jitter = d.head()
        uid = _guid(uid_bits, i ^ lay.mask)
        ts = lay.start + i * lay.step + (jitter % lay.step if lay.step > 1 else 0)
        return d, uid, ts if gen_ts is None else gen_ts

    def _customer_ref(self, d: _Draw, i: int, resource: str) -> str:
        """A customer who already existed around the time of record i of `resource`."""
        n_c = self._layout["customer"].size
        n_r = self._layout[resource].size
        limit = n_c if i >= n_r else max(1, min(n_c, (i + 1) * n_c // max(n_r, 1) + 1))
        j = d.below(limit)
        uid = self._customer_uids.get(j)
        if uid is None:  # neighbouring sales share customers: a small cache saves a hash
            if len(self._customer_uids) > _UID_CACHE_SIZE:
                self._customer_uids.clear()
            uid = self._customer_uids[j] = self._uid("customer", j)
        return uid

    def _customer(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        # Hot path (a million records per tap run): inline divmods on 64-bit words instead of
        # one method call per choice.
        d, uid, ts = self._start("customer", i, gen_ts)
        v = d.word()
        v, fi = divmod(v, len(_FIRST))
        v, la = divmod(v, len(_LAST))
        v, has_email = divmod(v, 100)
        v, dom = divmod(v, len(_DOMAINS))
        v, has_mobile = divmod(v, 100)
        v, has_bday = divmod(v, 100)
        v, ctry = divmod(v, 100)
        v, city = divmod(v, 10)
        v, club = divmod(v, 100)
        v, news = divmod(v, 100)
        w = d.word()
        w, bday = divmod(w, _BIRTH_SPAN)
        w, n_cards = divmod(w, 100)
        w, card1 = divmod(w, len(_CARD_NAMES))
        w, card2 = divmod(w, len(_CARD_NAMES))
        w, street = divmod(w, len(_STREETS))
        w, house = divmod(w, 120)
        w, active = divmod(w, 100)
        w, preferred = divmod(w, len(_STORES) + 1)  # the last choice: earlier ones unchanged
        created = ts - d.word() % (90 * DAY)
        first, last = _FIRST[fi], _LAST[la]
        email = None
        if has_email < 88:
            email = f"{_FIRST_ASCII[fi]}.{_LAST_ASCII[la]}{i}@{_DOMAINS[dom]}"
        country = "DK" if ctry < 92 else ("SE" if ctry < 96 else "DE")
        cities = _CITIES[country]
        zip_code, city_name = cities[city % len(cities)]
        club = 1 if club < 65 else 0
        n_cards = 0 if n_cards < 35 else (1 if n_cards < 85 else 2)
        cards = []
        if n_cards:
            cards.append({"Cardnumber": 7_000_000_000 + i * 3, "Cardname": _CARD_NAMES[card1]})
            if n_cards == 2:
                cards.append({"Cardnumber": 7_000_000_001 + i * 3, "Cardname": _CARD_NAMES[card2]})
        return {
            "Uid": uid,
            "CustomerNumber": 10_000 + i,
            "FirstName": first,
            "LastName": last,
            "Email": email,
            "Mobile": (
                f"+45{20_000_000 + (i * 7919 + self.seed) % 80_000_000:08d}"
                if has_mobile < 78
                else None
            ),
            "Birthday": date.fromordinal(_BIRTH_FIRST + bday) if has_bday < 80 else None,
            "Address": f"{_STREETS[street]} {1 + house}",
            "ZipCode": zip_code,
            "City": city_name,
            "CountryCode": country,
            "IsActive": active < 90,
            "IsClubMember": club,
            "GetsNewsletter": 1 if news < (70 if club else 20) else 0,
            "cards": cards,
            "CreatedDate": created,
            "ModifiedDate": ts,
            "PreferredStore": _STORES[preferred] if preferred < len(_STORES) else None,
        }

    def _journal(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        d, uid, ts = self._start("journal", i, gen_ts)
        v = d.word()
        v, store = divmod(v, len(self._stores))
        v, cur = divmod(v, 100)
        v, ret = divmod(v, 100)
        v, anon = divmod(v, 100)
        v, n_lines = divmod(v, 5)
        store_uid, store_name = self._stores[store]
        currency = "DKK" if cur < 86 else ("EUR" if cur < 96 else "SEK")
        rate = _CURRENCY_RATE[currency]
        is_return = ret < 5
        customer = None  # anonymous sale
        if anon >= 30 and self._layout["customer"].size:
            customer = self._customer_ref(d, i, "journal")
        lines = []
        total = discount = 0.0
        products = self._products
        for ln in range(1, n_lines + 2):
            w = d.word()
            w, prod = divmod(w, len(products))
            w, qty = divmod(w, 6)
            w, has_disc = divmod(w, 100)
            w, disc_level = divmod(w, 4)
            p_uid, p_no, p_name, p_group, p_price = products[prod]
            qty = 1 + qty // 4  # mostly 1, some 2
            if is_return:
                qty = -qty
            unit = round(p_price / rate, 2)
            disc = 0.0
            if not is_return and has_disc < 15:
                disc = round(unit * qty * (5 + 5 * disc_level) / 100, 2)
            line_total = round(unit * qty - disc, 2)
            total += line_total
            discount += disc
            lines.append(
                {
                    "LineNumber": ln,
                    "ProductUid": p_uid,
                    "ProductNumber": p_no,
                    "ProductName": p_name,
                    "ProductGroup": p_group,
                    "Quantity": qty,
                    "UnitPriceInclVat": unit,
                    "DiscountInclVat": disc,
                    "TotalInclVat": line_total,
                    "VatRate": 25.0,
                }
            )
        return {
            "Uid": uid,
            "JournalNumber": 500_000 + i,
            "Date": ts,
            "ModifiedDate": ts,
            "StoreUid": store_uid,
            "StoreName": store_name,
            "CustomerUid": customer,
            "Currency": currency,
            "TotalInclVat": round(total, 2),
            "DiscountInclVat": round(discount, 2),
            "IsReturn": is_return,
            "Lines": lines,
        }

    def _ticket(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        d, uid, ts = self._start("ticket", i, gen_ts)
        # Orders are carved out of fixed blocks of 6 tickets, so an order is found from i alone.
        g, k = divmod(i, 6)
        od = _Draw(self._keys["orderblock"], g)
        part_start, left = 0, 6
        while True:
            size = min(left, od.pick(_ORDER_SIZES))
            if k < part_start + size:
                break
            part_start += size
            left -= size
        first = g * 6 + part_start
        o = _Draw(self._keys["order"], first)
        order_uid = _guid(o.bits(82), o.bits(48))
        cancelled = o.pct(6)
        lead = (1 + o.below(20)) * DAY if cancelled else 0
        created = (ts if first == i else self._base_ts("ticket", first)) - lead
        customer = self._customer_ref(o, first, "ticket")
        zone, factor = o.pick(_ZONES)
        row = 1 + o.below(20)
        seat0 = 1 + o.below(24)
        channel = "Online" if o.pct(70) else "Desk"
        span_start = self._layout["ticket"].start
        ev = (created - span_start) // (2 * DAY) + 1 + o.below(45)
        ev_day = self.time.local_date(span_start) + timedelta(days=2 * ev)
        event_date = self.time.epoch(ev_day.year, ev_day.month, ev_day.day, 19, 30)
        ev_draw = _Draw(self._keys["event"], ev)
        product, price = d.pick(_TICKET_PRODUCTS)
        return {
            "Uid": uid,
            "OrderUid": order_uid,
            "OrderNumber": 800_000 + first,
            "CustomerUid": customer,
            "EventUid": _guid(ev_draw.bits(82), ev_draw.bits(48)),
            "EventName": _EVENTS[ev % len(_EVENTS)],
            "EventDate": event_date,
            "Zone": zone,
            "Row": str(row),
            "Seat": str(seat0 + k - part_start),
            "ProductName": product,
            "PriceInclVat": round(price * factor, 2),
            "Currency": "DKK",
            "SalesChannel": channel,
            "Status": "Cancelled" if cancelled else "Active",
            "CancelledDate": ts if cancelled else None,
            "CreatedDate": created,
            "ModifiedDate": ts,
        }

    def _membership(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        d, uid, ts = self._start("membership", i, gen_ts)
        kind, price = d.pick(_MEMBERSHIPS)
        created = ts - d.below(14 * DAY)
        valid_from = self.time.local_date(created)
        return {
            "Uid": uid,
            "CustomerUid": self._customer_ref(d, i, "membership"),
            "MembershipType": kind,
            "ValidFrom": valid_from,
            "ValidTo": _plus_one_year_minus_a_day(valid_from),
            "PriceInclVat": price,
            "Currency": "DKK",
            "CreatedDate": created,
            "ModifiedDate": ts,
        }


_GENERATORS: dict[str, Callable[[FlexposData, int, int | None], dict[str, Any]]] = {
    "customer": FlexposData._customer,
    "journal": FlexposData._journal,
    "ticket": FlexposData._ticket,
    "membership": FlexposData._membership,
}


def _check_fields(resource: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Validate caller-supplied field values; return them in raw (internal) form."""
    kinds = FIELD_KINDS[resource]
    out: dict[str, Any] = {}
    for name, value in fields.items():
        kind = kinds.get(name)
        if kind is None:
            raise ValueError(f"unknown {resource} field {name!r}")
        if name in _READ_ONLY or kind == TS:
            raise ValueError(f"{resource} field {name!r} is read-only")
        if value is None:
            if name not in _CUSTOMER_NULLABLE:
                raise ValueError(f"{resource} field {name!r} cannot be null")
        elif kind == DATE:
            value = parse_date(value) if isinstance(value, str) else value
            if not isinstance(value, date):
                raise ValueError(f"{resource} field {name!r} must be a DD-MM-YYYY date")
        elif not _kind_ok(kind, value):
            raise ValueError(f"{resource} field {name!r} must be of type {kind}, got {value!r}")
        elif name == "cards":
            for card in value:
                if not (
                    isinstance(card, dict)
                    and set(card) == {"Cardnumber", "Cardname"}
                    and _kind_ok(INT, card["Cardnumber"])
                    and isinstance(card["Cardname"], str)
                ):
                    raise ValueError(
                        f"cards entries must be {{Cardnumber: int, Cardname: str}}: {card!r}"
                    )
        out[name] = value
    return out


def _kind_ok(kind: str, value: object) -> bool:
    if kind == STR:
        return isinstance(value, str)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == NUM:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == ARRAY:
        return isinstance(value, list)
    return False
