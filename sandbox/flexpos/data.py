"""Seeded, deterministic FlexPOS data at any size, in O(1) memory: the FlexPOS vendor module.

The generic machinery (seeded draws, people, time spreading before a pinned "now", the
mutation overlay, filters and paging) is ``sandbox.engine``; this module is FlexPOS's fields.
Record ``i`` of a resource is a pure function of ``(seed, i)`` and its ModifiedDate grows
strictly with ``i``, so the API order (ModifiedDate, then Uid) *is* index order. A FlexPOS
customer is person ``i`` of the seed (``engine.People``), so another vendor's record of person
``i`` shares the customer's name, e-mail and mobile.

Mutations (``update_customer``, ``add_customers``, ``add_journals``, ``cancel_ticket``) live in
the engine's overlay: a changed record leaves its base position and reappears at the end with a
ModifiedDate later than everything else, exactly as an incremental client expects.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sandbox.engine import (
    ARRAY,
    BOOL,
    DATE,
    DAY,
    INT,
    NUM,
    STR,
    TS,
    Draw,
    People,
    SeededDataset,
    check_sizes,
    guid,
    kind_ok,
    space_key,
    street_address,
    year_later_less_a_day,
)
from sandbox.timefmt import TimeFormat

CARDS_SHAPES = ("array", "object")  # how a customer's `cards` is sent (see FlexposData)

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
        "PromotionCode": STR,
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
# The POS promotion of the Voyado guide's welcome offer ("Welcome 10%: 10 % off the first
# purchase", code WELCOME10). Of the sales that are a customer's very first, this share used it.
WELCOME_CODE = "WELCOME10"
WELCOME_PERCENT = 40
_WELCOME_DISCOUNT_STEP = 2  # _line's 10 % off
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
_ORDER_SIZES = (1, 2, 2, 2, 2, 3, 3, 4, 4, 5, 6)
_MEMBERSHIPS = (
    ("Årskort", 895.0),
    ("Årskort Plus", 1295.0),
    ("Familiekort", 2195.0),
    ("Studiekort", 495.0),
)


class FlexposData(SeededDataset):
    """FlexPOS's customers, journals, tickets and memberships; thread-safe."""

    FIELD_KINDS = FIELD_KINDS
    CREATED = {"customer": "CreatedDate", "journal": "Date", "ticket": "CreatedDate"}
    # Identity and bookkeeping the overlay owns.
    READ_ONLY = frozenset({"Uid", "CustomerNumber", "CreatedDate", "ModifiedDate"})
    NULLABLE = frozenset(
        {"Email", "Mobile", "Birthday", "Address", "ZipCode", "City", "PreferredStore"}
    )

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
        check_sizes(sizes)  # first: a negative count is the clearer message
        if customers == 0 and (tickets or memberships):
            raise ValueError("tickets and memberships need at least one customer")
        if cards_shape not in CARDS_SHAPES:
            shapes = ", ".join(CARDS_SHAPES)
            raise ValueError(f"cards_shape must be one of {shapes}, got {cards_shape!r}")
        super().__init__(
            seed,
            sizes,
            now=now,
            time=TimeFormat(date_format, timezone),
            spaces=("orderblock", "order", "event"),
        )
        # The guide shows `cards` as one object, the emulator's default is an array: a
        # setting, so a test can feed the mapping the guide's shape too.
        self.cards_shape = cards_shape
        self.people = People(seed)
        self._stores = [
            (guid(Draw(space_key(seed, "store"), k).bits(82), 0x5700 + k), name)
            for k, name in enumerate(_STORES)
        ]
        self._products = []
        for k, (name, group) in enumerate(_PRODUCTS):
            d = Draw(space_key(seed, "product"), k)
            price = float(d.below(40) * 5 + 15)
            uid = guid(d.bits(82), 0x9000 + k)
            self._products.append((uid, f"{1000 + k}", name, group, price))
        self._lines: dict[tuple[str, bool], dict[int, tuple[dict[str, Any], float, float]]] = {
            (currency, is_return): {} for currency in _CURRENCY_RATE for is_return in (False, True)
        }
        self.generators.update(
            customer=self._customer,
            journal=self._journal,
            ticket=self._ticket,
            membership=self._membership,
        )

    # ----- mutations -------------------------------------------------------------------
    def update_customer(self, uid: str, **fields: Any) -> dict[str, Any]:
        """Change fields of one customer; it gets a ModifiedDate later than all others."""
        return self.update("customer", uid, **fields)

    def add_customers(self, n: int) -> list[str]:
        """Append n new customers (created now); returns their Uids."""
        return self.add("customer", n)

    def add_journals(self, n: int) -> list[str]:
        """Append n new sales (made now); returns their Uids."""
        return self.add("journal", n)

    def cancel_ticket(self, uid: str) -> dict[str, Any]:
        """Cancel one seat: Status Cancelled, CancelledDate = its new ModifiedDate."""

        def cancelled(raw: dict[str, Any], ts: int) -> dict[str, Any]:
            if raw["Status"] == "Cancelled":
                raise ValueError(f"ticket {uid} is already cancelled")
            return {"Status": "Cancelled", "CancelledDate": ts}

        return self.change("ticket", uid, cancelled)

    def check_items(self, resource: str, name: str, items: list[Any]) -> None:
        for card in items:
            if not (
                isinstance(card, dict)
                and set(card) == {"Cardnumber", "Cardname"}
                and kind_ok(INT, card["Cardnumber"])
                and isinstance(card["Cardname"], str)
            ):
                raise ValueError(
                    f"cards entries must be {{Cardnumber: int, Cardname: str}}: {card!r}"
                )

    def render(self, resource: str, rec: dict[str, Any]) -> dict[str, Any]:
        rec = super().render(resource, rec)
        if resource == "customer" and self.cards_shape == "object":
            cards = rec["cards"]
            rec["cards"] = cards[0] if cards else None
        return rec

    # ----- generators ----------------------------------------------------------------------
    def _customer(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        # Hot path (a million records per tap run): inline divmods on 64-bit words instead of
        # one method call per choice. Customer i is person i; FlexPOS's own choices come from
        # the bits the person's draw left over.
        d, uid, ts = self.start("customer", i, gen_ts)
        p = self.people.read(d, i)
        v, club = divmod(p.traits, 100)
        v, news = divmod(v, 100)
        w, n_cards = divmod(p.more, 100)
        w, card1 = divmod(w, len(_CARD_NAMES))
        w, card2 = divmod(w, len(_CARD_NAMES))
        address, w = street_address(w)
        w, active = divmod(w, 100)
        w, preferred = divmod(w, len(_STORES) + 1)  # the last choice: earlier ones unchanged
        created = ts - d.word() % (90 * DAY)
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
            "FirstName": p.first_name,
            "LastName": p.last_name,
            "Email": p.email,
            "Mobile": p.mobile,
            "Birthday": p.birthday,
            "Address": address,
            "ZipCode": p.zip_code,
            "City": p.city,
            "CountryCode": p.country_code,
            "IsActive": active < 90,
            "IsClubMember": club,
            "GetsNewsletter": 1 if news < (70 if club else 20) else 0,
            "cards": cards,
            "CreatedDate": created,
            "ModifiedDate": ts,
            "PreferredStore": _STORES[preferred] if preferred < len(_STORES) else None,
        }

    def _journal(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        d, uid, ts = self.start("journal", i, gen_ts)
        v = d.word()
        v, store = divmod(v, len(self._stores))
        v, cur = divmod(v, 100)
        v, ret = divmod(v, 100)
        v, anon = divmod(v, 100)
        v, n_lines = divmod(v, 5)
        v, welcome = divmod(v, 100)  # the last choice: earlier ones unchanged
        store_uid, store_name = self._stores[store]
        currency = "DKK" if cur < 86 else ("EUR" if cur < 96 else "SEK")
        rate = _CURRENCY_RATE[currency]
        is_return = ret < 5
        customer = code = None  # anonymous sale
        if anon >= 30 and self.size("customer"):
            customer = self.ref(d, i, "journal", "customer")
            # A customer who just joined makes their first purchase with the welcome offer:
            # the only sale that may name them first, so the code is never on a later one.
            if not is_return and welcome < WELCOME_PERCENT:
                newcomer = self.first_to_refer(i, "journal", "customer")
                if newcomer is not None:
                    customer, code = newcomer, WELCOME_CODE
        lines = []
        total = discount = 0.0
        n_products = len(self._products)
        # A line is one of a few hundred (product, quantity, discount) choices per currency and
        # sale kind: each is built once, then copied with its line number (the hot path).
        built = self._lines[currency, is_return]
        for ln in range(1, n_lines + 2):
            w = d.word()
            w, prod = divmod(w, n_products)
            w, qty = divmod(w, 6)
            w, has_disc = divmod(w, 100)
            disc_level = w % 4
            if code:
                step = _WELCOME_DISCOUNT_STEP
            else:
                step = 0 if is_return or has_disc >= 15 else 1 + disc_level
            choice = prod * 10 + qty // 4 * 5 + step
            line = built.get(choice)
            if line is None:
                line = built[choice] = self._line(prod, 1 + qty // 4, choice % 5, rate, is_return)
            body, line_total, disc = line
            total += line_total
            discount += disc
            lines.append({"LineNumber": ln, **body})
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
            "PromotionCode": code,
            "Lines": lines,
        }

    def _line(
        self, prod: int, qty: int, disc_step: int, rate: float, is_return: bool
    ) -> tuple[dict[str, Any], float, float]:
        """(a journal line without its number, its total, its discount); disc_step 0 = none,
        1..4 = 5..20 % off."""
        p_uid, p_no, p_name, p_group, p_price = self._products[prod]
        if is_return:
            qty = -qty
        unit = round(p_price / rate, 2)
        disc = 0.0
        if disc_step:
            disc = round(unit * qty * (5 * disc_step) / 100, 2)
        line_total = round(unit * qty - disc, 2)
        body = {
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
        return body, line_total, disc

    def _ticket(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        d, uid, ts = self.start("ticket", i, gen_ts)
        # Orders are carved out of fixed blocks of 6 tickets, so an order is found from i alone.
        g, k = divmod(i, 6)
        od = self.draw("orderblock", g)
        part_start, left = 0, 6
        while True:
            size = min(left, od.pick(_ORDER_SIZES))
            if k < part_start + size:
                break
            part_start += size
            left -= size
        first = g * 6 + part_start
        o = self.draw("order", first)
        order_uid = guid(o.bits(82), o.bits(48))
        cancelled = o.pct(6)
        lead = (1 + o.below(20)) * DAY if cancelled else 0
        created = (ts if first == i else self.base_ts("ticket", first)) - lead
        customer = self.ref(o, first, "ticket", "customer")
        zone, factor = o.pick(_ZONES)
        row = 1 + o.below(20)
        seat0 = 1 + o.below(24)
        channel = "Online" if o.pct(70) else "Desk"
        span_start = self.span_start("ticket")
        ev = (created - span_start) // (2 * DAY) + 1 + o.below(45)
        ev_day = self.time.local_date(span_start) + timedelta(days=2 * ev)
        event_date = self.time.epoch(ev_day.year, ev_day.month, ev_day.day, 19, 30)
        ev_draw = self.draw("event", ev)
        product, price = d.pick(_TICKET_PRODUCTS)
        return {
            "Uid": uid,
            "OrderUid": order_uid,
            "OrderNumber": 800_000 + first,
            "CustomerUid": customer,
            "EventUid": guid(ev_draw.bits(82), ev_draw.bits(48)),
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
        d, uid, ts = self.start("membership", i, gen_ts)
        kind, price = d.pick(_MEMBERSHIPS)
        created = ts - d.below(14 * DAY)
        valid_from = self.time.local_date(created)
        return {
            "Uid": uid,
            "CustomerUid": self.ref(d, i, "membership", "customer"),
            "MembershipType": kind,
            "ValidFrom": valid_from,
            "ValidTo": year_later_less_a_day(valid_from),
            "PriceInclVat": price,
            "Currency": "DKK",
            "CreatedDate": created,
            "ModifiedDate": ts,
        }
