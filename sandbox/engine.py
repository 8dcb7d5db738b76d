"""The generic seeded data engine every emulator's data module builds on.

Vendor-neutral pieces, so the next emulators (LoyaltyLion, Billetten, Voyado, Ometria) write
only their own fields:

- ``Draw`` / ``space_key`` / ``guid``: a seeded random stream per record, so record ``i`` of a
  resource is a pure function of ``(seed, i)`` and costs well under a microsecond to start;
- ``People``: person ``i`` of a seed (name, e-mail, mobile, birthday, city; Danish with
  Unicode names), the same for every vendor built on that seed, so a LoyaltyLion or Billetten
  record can be the same person (same e-mail) as a FlexPOS customer;
- ``SeededDataset``: resources spread over the history before a pinned "now" in index order
  (so a modified-time range is a binary search and a million records are never in memory),
  a mutation overlay (a changed record moves to the end with a later modified time), filters
  and paging, field-kind checks for caller-supplied values.

A vendor module subclasses ``SeededDataset`` with its field kinds and one generator per
resource; see ``sandbox/flexpos/data.py`` and ``docs/kit/sandbox.md``.
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
from typing import Any, ClassVar

from sandbox.timefmt import TimeFormat, default_now, parse_date, render_date

# ----- seeded random streams ------------------------------------------------------------------
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def space_key(seed: int, space: str) -> int:
    """64-bit key of one (seed, kind of thing) pair; records mix their index into it."""
    return int.from_bytes(blake2b(f"{seed}:{space}".encode(), digest_size=8).digest(), "little")


class Draw:
    """A deterministic stream of choices for one thing (splitmix64 sequence).

    BLAKE2 per record cost ~3 us; this costs well under 1 us per record and keeps record i a
    pure function of (seed, i).
    """

    __slots__ = ("_s", "_s_first", "_v")

    def __init__(self, space_key: int, i: int) -> None:
        self._s = self._s_first = _mix((space_key + i * _GOLDEN) & _M64)
        self._v = 0

    def _next(self) -> int:
        self._s = s = (self._s + _GOLDEN) & _M64
        return _mix(s)

    def word(self) -> int:
        """64 fresh random bits; hot paths carve several choices out of one word."""
        self._s = s = (self._s + _GOLDEN) & _M64
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


def guid(bits: int, suffix: int) -> str:
    """A version-4-looking GUID; the last 12 hex digits carry `suffix` (48 bits)."""
    x = f"{bits & ((1 << 80) - 1):020x}"
    variant = "89ab"[(bits >> 80) & 3]
    return f"{x[:8]}-{x[8:12]}-4{x[13:16]}-{variant}{x[17:20]}-{suffix & 0xFFFFFFFFFFFF:012x}"


def year_later_less_a_day(d: date) -> date:
    """The last day of a one-year validity starting on `d` (29 February runs to 28 February)."""
    try:
        nxt = d.replace(year=d.year + 1)
    except ValueError:  # 29 February
        nxt = date(d.year + 1, 3, 1)
    return nxt - timedelta(days=1)


# ----- people ---------------------------------------------------------------------------------
FIRST_NAMES = (
    *("Anna", "Mette", "Sofie", "Ida", "Emma", "Freja", "Karen", "Lone", "Maja", "Signe"),
    *("Søren", "Jens", "Lars", "Mikkel", "Rasmus", "Frederik", "Mads", "Jørgen", "Niels"),
    *("Peter", "Henrik", "Anders", "Åse", "Bjørn", "Kirsten", "Louise", "Camilla", "Oliver"),
    *("William", "Noah", "Lucas", "Astrid", "Ellen", "Jakob", "Thomas", "Line", "Julie"),
    *("Morten", "Hanne", "Zoë"),
)
LAST_NAMES = (
    *("Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen"),
    *("Sørensen", "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen"),
    *("Thomsen", "Christiansen", "Poulsen", "Johansen", "Møller", "Mortensen", "Østergaard"),
    *("Lund", "Holm", "Schmidt", "Kjær", "Dahl", "Bach", "Friis", "Vestergaard", "Ærenlund"),
)
_ASCII_TABLE = str.maketrans(
    {"æ": "ae", "ø": "oe", "å": "aa", "ë": "e", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"}
)
_FIRST_ASCII = tuple(n.lower().translate(_ASCII_TABLE) for n in FIRST_NAMES)
_LAST_ASCII = tuple(n.lower().translate(_ASCII_TABLE) for n in LAST_NAMES)
EMAIL_DOMAINS = ("example.dk", "example.com", "mail.example.org", "post.example.net")
STREETS = (
    *("Vestergade", "Østergade", "Nørregade", "Søndergade", "Algade", "Strandvejen"),
    *("Bredgade", "Kongensgade", "Skolevej", "Møllevej", "Kirkevej", "Havnegade"),
)
CITIES = {
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
_BIRTH_FIRST = date(1940, 1, 1).toordinal()
_BIRTH_SPAN = date(2008, 12, 31).toordinal() - _BIRTH_FIRST
# The people's draw space. FlexPOS customers were the first people, so the space keeps their
# name: changing it would change every FlexPOS record for every seed.
PEOPLE_SPACE = "customer"


@dataclass(frozen=True, slots=True)
class Person:
    """Who person ``index`` of a seed is, the same in every vendor's data.

    ``traits`` and ``more`` are the random bits left over in the person's draw, so a vendor's
    own per-person choices (FlexPOS: club member, newsletter, cards, street address) are a pure
    function of the person too.
    """

    index: int
    first_name: str
    last_name: str
    email: str | None  # ~12% have none
    mobile: str | None  # ~22% have none
    birthday: date | None  # ~20% have none
    country_code: str  # ~92% DK, then SE, DE
    zip_code: str
    city: str
    traits: int
    more: int


class People:
    """Person ``i`` of a seed: the identity every vendor module built on that seed shares.

    Two vendors that call ``person(i)`` for the same ``i`` describe one person (same name,
    e-mail, mobile), which is how the loyalty store meets FlexPOS, Billetten and LoyaltyLion
    records as one contact.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.key = space_key(seed, PEOPLE_SPACE)

    def person(self, i: int) -> Person:
        """Person i on its own (another vendor's record of the same person)."""
        d = Draw(self.key, i)
        d.head()  # the first words are the person's FlexPOS Uid and time jitter
        return self.read(d, i)

    def read(self, d: Draw, i: int) -> Person:
        """Person i from its draw, positioned after ``head()``; takes the next two words."""
        v = d.word()
        v, fi = divmod(v, len(FIRST_NAMES))
        v, la = divmod(v, len(LAST_NAMES))
        v, has_email = divmod(v, 100)
        v, dom = divmod(v, len(EMAIL_DOMAINS))
        v, has_mobile = divmod(v, 100)
        v, has_bday = divmod(v, 100)
        v, ctry = divmod(v, 100)
        v, city = divmod(v, 10)
        w, bday = divmod(d.word(), _BIRTH_SPAN)
        country = "DK" if ctry < 92 else ("SE" if ctry < 96 else "DE")
        cities = CITIES[country]
        zip_code, city_name = cities[city % len(cities)]
        return Person(
            i,
            FIRST_NAMES[fi],
            LAST_NAMES[la],
            f"{_FIRST_ASCII[fi]}.{_LAST_ASCII[la]}{i}@{EMAIL_DOMAINS[dom]}"
            if has_email < 88
            else None,
            f"+45{20_000_000 + (i * 7919 + self.seed) % 80_000_000:08d}"
            if has_mobile < 78
            else None,
            date.fromordinal(_BIRTH_FIRST + bday) if has_bday < 80 else None,
            country,
            zip_code,
            city_name,
            v,
            w,
        )


def street_address(bits: int) -> tuple[str, int]:
    """("Vestergade 12", the bits left) from random bits (a person's ``more``)."""
    bits, street = divmod(bits, len(STREETS))
    bits, house = divmod(bits, 120)
    return f"{STREETS[street]} {1 + house}", bits


# ----- field kinds and filters ----------------------------------------------------------------
# Field kinds, used for filters, rendering and mutation checks.
STR, INT, BOOL, NUM, TS, DATE, ARRAY = "str", "int", "bool", "num", "ts", "date", "array"

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
Filter = tuple[str, str, Any]  # (field, "$op", typed value)


def kind_ok(kind: str, value: object) -> bool:
    """Whether a caller-supplied value fits a field kind (bool is not a number here)."""
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


def check_sizes(sizes: dict[str, int]) -> None:
    """Refuse a negative or absurd record count (ValueError naming the resource)."""
    for name, n in sizes.items():
        if n < 0 or n >= 1 << 40:
            raise ValueError(f"{name} count must be between 0 and 2**40, got {n}")


def _fields_of_kind(kinds: dict[str, dict[str, str]], kind: str) -> dict[str, list[str]]:
    return {r: [f for f, k in fields.items() if k == kind] for r, fields in kinds.items()}


# ----- the dataset ----------------------------------------------------------------------------
DAY = 86_400
SPAN_DAYS = 410  # a little over 13 months, so a one-year backfill has older data to skip
_SCAN_CACHE_SIZE = 16
_REF_CACHE_SIZE = 100_000


@dataclass(frozen=True)
class _Layout:
    """Where a resource's base records sit in time: ts(i) = start + i*step + jitter(i)."""

    size: int
    start: int
    step: int
    mask: int


def _positions_key(positions: range | array[int]) -> range | tuple[int, ...]:
    """Equal for two page requests that hit the same records (ranges hash by their bounds)."""
    return positions if isinstance(positions, range) else tuple(positions)


@dataclass
class _Scan:
    """Positions matching a non-time filter set, found lazily and kept for paging."""

    next_pos: int
    matches: array[int]  # 8 bytes per match, not a list of int objects


class SeededDataset:
    """Seeded records of a vendor's resources plus a mutation overlay; thread-safe.

    A subclass sets the class attributes and registers one generator per resource in
    ``self.generators`` (``(index, generation time or None) -> raw record``). Raw records hold
    timestamps as instants (epoch seconds) and dates as ``date``; ``render`` turns them into the
    API's shape. Every resource has a Uid (``uid``) and a modified time (``MODIFIED``) that
    grows strictly with the index: the API order.
    """

    # resource -> field -> kind (STR, INT, ...), in the API's field order
    FIELD_KINDS: ClassVar[dict[str, dict[str, str]]] = {}
    MODIFIED: ClassVar[str] = "ModifiedDate"
    # resource -> the field a record added by ``add`` gets its creation time in
    CREATED: ClassVar[dict[str, str]] = {}
    READ_ONLY: ClassVar[frozenset[str]] = frozenset()  # fields ``update`` refuses
    NULLABLE: ClassVar[frozenset[str]] = frozenset()  # fields ``update`` may set to null
    # The vendor's date-only format (FlexPOS: DD-MM-YYYY).
    render_date: ClassVar[Callable[[date], str]] = staticmethod(render_date)
    parse_date: ClassVar[Callable[[str], date]] = staticmethod(parse_date)

    def __init__(
        self,
        seed: int,
        sizes: dict[str, int],
        *,
        now: datetime | None,
        time: TimeFormat,
        spaces: tuple[str, ...] = (),
        span_days: int = SPAN_DAYS,
    ) -> None:
        check_sizes(sizes)
        self.seed = seed
        self.time = time
        now = now or default_now()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        self.now = now
        now_ts = self.time.from_datetime(now)  # an instant in epoch seconds, like every value
        end = now_ts - 3600
        # One draw space per resource plus the vendor's own (orders, events, ...).
        self._keys = {s: space_key(seed, s) for s in (*sizes, *spaces)}
        self._layout: dict[str, _Layout] = {}
        for name, n in sizes.items():
            start = end - span_days * DAY
            if n > end - start:
                start = end - n
            step = max(1, (end - start) // max(n, 1))
            mask = Draw(space_key(seed, "mask"), len(self._layout)).bits(48)
            self._layout[name] = _Layout(n, start, step, mask)
        self.generators: dict[str, Callable[[int, int | None], dict[str, Any]]] = {}
        self._ts_fields = {
            r: [f for f, k in kinds.items() if k == TS] for r, kinds in self.FIELD_KINDS.items()
        }
        self._date_fields = {
            r: [f for f, k in kinds.items() if k == DATE] for r, kinds in self.FIELD_KINDS.items()
        }
        self._lock = threading.RLock()
        self._version = 0
        self._clock = now_ts  # mutations happen "after" every base record
        # overlay[resource]: index -> (modified time, generation time, overrides); insertion
        # order is modified-time order because the clock only moves forward.
        self._overlay: dict[str, dict[int, tuple[int, int, dict[str, Any]]]] = {
            r: {} for r in sizes
        }
        self._moved: dict[str, list[int]] = {r: [] for r in sizes}
        self._next_index = dict(sizes)
        self._overlay_keys: dict[str, list[int]] = {r: [] for r in sizes}
        self._scans: OrderedDict[tuple, _Scan] = OrderedDict()
        self._ref_uids: dict[str, dict[int, str]] = {r: {} for r in sizes}

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

    def base_records(self, resource: str, start: int = 0) -> Iterator[dict[str, Any]]:
        """The generated records from index `start` on, raw and without the overlay.

        The fast path for bulk consumers (the bench writes millions): no lock, no rendering.
        """
        generate = self.generators[resource]
        for i in range(start, self._layout[resource].size):
            yield generate(i, None)

    def record_at(self, resource: str, pos: int) -> dict[str, Any]:
        """The record at an API-order position, rendered."""
        with self._lock:
            rec = self._raw(resource, self._index_at(resource, pos))
        return self.render(resource, rec)

    def get(self, resource: str, uid: str) -> dict[str, Any] | None:
        """One record by Uid, rendered, or None."""
        with self._lock:
            idx = self._index_of(resource, uid)
            return None if idx is None else self.render(resource, self._raw(resource, idx))

    def select(
        self, resource: str, filters: list[Filter], offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """One page of rendered records matching all filters, in API order.

        Modified-time bounds are binary searches; other filters are answered from a lazily
        built, cached list of matching positions, so paging through N records costs O(N).
        """
        return self.select_pages(resource, [(filters, offset)], limit)[0]

    def select_pages(
        self, resource: str, requests: list[tuple[list[Filter], int]], limit: int
    ) -> list[list[dict[str, Any]]]:
        """Several pages ``(filters, offset)`` of one resource, read at one data version.

        Requests that resolve to the same records share one rendered list: an emulator's
        look-ahead asks for the next page as an offset pager and as a keyset pager would ask
        for it, and those are usually the same records, built once.
        """
        with self._lock:
            located = [self._locate(resource, f, offset, limit) for f, offset in requests]
            raws: dict[Any, list[dict[str, Any]]] = {}
            for positions in located:
                key = _positions_key(positions)
                if key not in raws:
                    raws[key] = [
                        self._raw(resource, self._index_at(resource, p)) for p in positions
                    ]
        rendered = {k: [self.render(resource, r) for r in v] for k, v in raws.items()}
        return [rendered[_positions_key(p)] for p in located]

    def _locate(
        self, resource: str, filters: list[Filter], offset: int, limit: int
    ) -> range | array[int]:
        """The API-order positions of one page (under the lock)."""
        lo, hi = 0, self.count(resource)
        rest: list[Filter] = []
        for f in filters:
            if f[0] == self.MODIFIED:
                if f[2] is None:  # no record lacks a modified time
                    return range(0)
                lo, hi = self._narrow(resource, lo, hi, f[1], f[2])
            else:
                rest.append(f)
        if hi <= lo:
            return range(0)
        if not rest:
            return range(min(hi, lo + offset), min(hi, lo + offset + limit))
        return self._scan(resource, lo, hi, rest, offset + limit)[offset : offset + limit]

    def render(self, resource: str, rec: dict[str, Any]) -> dict[str, Any]:
        """Turn a raw record into the API shape, in place (it is always a fresh dict)."""
        render = self.time.render
        for f in self._ts_fields[resource]:
            v = rec[f]
            if v is not None:
                rec[f] = render(v)
        render_day = self.render_date
        for f in self._date_fields[resource]:
            v = rec[f]
            if v is not None:
                rec[f] = render_day(v)
        return rec

    # ----- mutations -------------------------------------------------------------------
    def update(self, resource: str, uid: str, **fields: Any) -> dict[str, Any]:
        """Change fields of one record; it gets a modified time later than all others."""
        overrides = self.check_fields(resource, fields)
        return self.change(resource, uid, lambda _raw, _ts: overrides)

    def change(
        self,
        resource: str,
        uid: str,
        overrides: Callable[[dict[str, Any], int], dict[str, Any]],
    ) -> dict[str, Any]:
        """Apply ``overrides(raw record, its new modified time)`` to one record, rendered.

        Raises KeyError for an unknown Uid; ``overrides`` may raise ValueError to refuse.
        """
        with self._lock:
            idx = self._index_of(resource, uid)
            if idx is None:
                raise KeyError(f"no {resource} with Uid {uid}")
            old = self._overlay[resource].get(idx)
            new = overrides(self._raw(resource, idx), self._clock + 1)
            gen_ts = old[1] if old else self._base_ts(resource, idx)
            self._put(resource, idx, gen_ts, {**(old[2] if old else {}), **new})
            return self.render(resource, self._raw(resource, idx))

    def add(self, resource: str, n: int) -> list[str]:
        """Append n new records (created now); returns their Uids."""
        if n < 0:
            raise ValueError(f"count must be >= 0, got {n}")
        uids = []
        created = self.CREATED[resource]
        with self._lock:
            for _ in range(n):
                idx = self._next_index[resource]
                self._next_index[resource] += 1
                ts = self._clock + 1
                self._put(resource, idx, ts, {created: ts})
                uids.append(self.uid(resource, idx))
        return uids

    def check_fields(self, resource: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Validate caller-supplied field values; return them in raw (internal) form."""
        kinds = self.FIELD_KINDS[resource]
        out: dict[str, Any] = {}
        for name, value in fields.items():
            kind = kinds.get(name)
            if kind is None:
                raise ValueError(f"unknown {resource} field {name!r}")
            if name in self.READ_ONLY or kind == TS:
                raise ValueError(f"{resource} field {name!r} is read-only")
            if value is None:
                if name not in self.NULLABLE:
                    raise ValueError(f"{resource} field {name!r} cannot be null")
            elif kind == DATE:
                value = self.parse_date(value) if isinstance(value, str) else value
                if not isinstance(value, date):
                    raise ValueError(f"{resource} field {name!r} must be a DD-MM-YYYY date")
            elif not kind_ok(kind, value):
                raise ValueError(f"{resource} field {name!r} must be of type {kind}, got {value!r}")
            elif kind == ARRAY:
                self.check_items(resource, name, value)
            out[name] = value
        return out

    def check_items(self, resource: str, name: str, items: list[Any]) -> None:
        """Refuse malformed entries of an array field (ValueError); the vendor knows their shape."""

    # ----- building blocks for the vendor's generators ---------------------------------
    def uid(self, resource: str, i: int) -> str:
        """The Uid of record i (base or added)."""
        return guid(Draw(self._keys[resource], i).head()[0], i ^ self._layout[resource].mask)

    def start(self, resource: str, i: int, gen_ts: int | None) -> tuple[Draw, str, int]:
        """Draw stream, Uid and own timestamp of record i (base or added)."""
        lay = self._layout[resource]
        d = Draw(self._keys[resource], i)
        uid_bits, jitter = d.head()
        uid = guid(uid_bits, i ^ lay.mask)
        ts = lay.start + i * lay.step + (jitter % lay.step if lay.step > 1 else 0)
        return d, uid, ts if gen_ts is None else gen_ts

    def draw(self, space: str, i: int) -> Draw:
        """The draw of thing i in one of the vendor's own spaces (orders, events, ...)."""
        return Draw(self._keys[space], i)

    def span_start(self, resource: str) -> int:
        """The instant a resource's generated history starts."""
        return self._layout[resource].start

    def size(self, resource: str) -> int:
        """How many records were generated (before any were added)."""
        return self._layout[resource].size

    def base_ts(self, resource: str, i: int) -> int:
        """The generated modified time of record i."""
        return self._base_ts(resource, i)

    def ref(self, d: Draw, i: int, resource: str, to: str) -> str:
        """The Uid of a record of `to` that already existed around the time of record i of
        `resource` (a sale's customer joined before the sale)."""
        j = d.below(self._ref_limit(i, resource, to))
        cache = self._ref_uids[to]
        uid = cache.get(j)
        if uid is None:  # neighbouring records share references: a small cache saves a hash
            if len(cache) > _REF_CACHE_SIZE:
                cache.clear()
            uid = cache[j] = self.uid(to, j)
        return uid

    def first_to_refer(self, i: int, resource: str, to: str) -> str | None:
        """The Uid of a record of `to` that record i of `resource` is the first able to refer
        to (it joined just before), or None: a record that gives it to i is its first one (a
        customer's first sale), known from i alone."""
        limit = self._ref_limit(i, resource, to)
        if i >= self._layout[resource].size or (
            i and self._ref_limit(i - 1, resource, to) == limit
        ):
            return None
        return self.uid(to, limit - 1)

    def _ref_limit(self, i: int, resource: str, to: str) -> int:
        """Record i of `resource` refers to records [0, limit) of `to`: those that existed by
        then (growing with i, so record j of `to` is first referable at one i)."""
        n_c = self._layout[to].size
        n_r = self._layout[resource].size
        return n_c if i >= n_r else max(1, min(n_c, (i + 1) * n_c // max(n_r, 1) + 1))

    # ----- internals: positions ----------------------------------------------------------
    def _base_ts(self, resource: str, i: int) -> int:
        lay = self._layout[resource]
        if lay.step == 1:
            return lay.start + i
        return lay.start + i * lay.step + Draw(self._keys[resource], i).head()[1] % lay.step

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
        """Apply one modified-time comparison to the position range [lo, hi) by bisection."""

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
        is_ts = self.FIELD_KINDS[resource][field] == TS
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
        if not exists or self.uid(resource, idx) != uid:
            return None
        return idx

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

    def _raw(self, resource: str, idx: int) -> dict[str, Any]:
        """Fresh dict: timestamps as instants (epoch seconds), dates as `date` (for filtering)."""
        entry = self._overlay[resource].get(idx)
        gen_ts = entry[1] if entry else None
        rec = self.generators[resource](idx, gen_ts)
        if entry:
            rec.update(entry[2])
            rec[self.MODIFIED] = entry[0]
        return rec
