"""Billetten's seeded data: buyers with checkout permissions, tickets at item level (one line
per seat), cancellations of single tickets, later permission changes, and tracking events.

Billetten publishes no API, so the shapes are the emulated contract in
docs/emulated-contracts.md (*Billetten*). The data is small (tens of buyers) and built whole at
start from the seed and the pinned clock, so every buyer, seat and event is the same on every
run. People come from ``sandbox.engine.People``: buyer ``i`` is person ``3*i`` (a FlexPOS
customer while ``3*i`` is below FlexPOS's customer count) except every fourth buyer, who is a
person FlexPOS does not know (online only). The first eight buyers are fixed scenarios (below)
the tests and the demo rely on; the rest draw their permissions and purchases at random.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.engine import Draw, People, space_key
from singer_kit.dates import load_zone

# The text values of a permission field (contract-fixed): ticked at checkout, withdrawn later
# (unsubscribe or update form), and not ticked (says nothing: not a withdrawal).
YES, NO, NOT_GIVEN = "yes", "no", ""
RELATED, NEWSLETTER = "10_2", "consent_email"  # the guide's recommended field names
RESOURCES = ("buyers", "order_lines", "cancellations", "tracking_events")
ZONE = load_zone("Europe/Copenhagen")
EVENTS = (
    ("EV01", "Hamlet", 395),
    ("EV02", "Svanesøen", 545),
    ("EV03", "Nøddeknækkeren", 445),
    ("EV04", "Jazz i Haven", 245),
    ("EV05", "Stand-up Aften", 195),
    ("EV06", "Carmen", 495),
    ("EV07", "Les Misérables", 645),
    ("EV08", "Rock på Havnen", 345),
)
ZONES = (("Parket", 1.0), ("Balkon", 0.8), ("Loge", 1.5), ("Galleri", 0.6))
FEES = (15, 25)  # ticket fee per seat, DKK incl. VAT; never part of the price
# The fixed scenarios: buyer index -> (10_2, consent_email, what happens later).
SCENARIOS: dict[int, tuple[str, str, str]] = {
    0: (YES, YES, "both; logs in with cookies accepted (paired)"),
    1: (NOT_GIVEN, YES, "consent_email only; pays without accepting cookies (never paired)"),
    2: (YES, NOT_GIVEN, "10_2 only"),
    3: (NOT_GIVEN, NOT_GIVEN, "terms only"),
    4: (YES, YES, "full unsubscribe later"),
    5: (YES, YES, "partial unsubscribe later (withdraws consent_email, keeps 10_2)"),
    6: (YES, NOT_GIVEN, "10_2 only, full unsubscribe later"),
    7: (YES, NOT_GIVEN, "five seats in one order, one cancelled later"),
}
PAIRED_BUYER, UNPAIRED_BUYER, FIVE_SEATS_BUYER = 0, 1, 7
DAY = 86_400


def iso(ts: int) -> str:
    """An instant (epoch seconds) as the API writes it: UTC, ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_iso(ts: int) -> str:
    """A performance's date and time as the venue shows it: local time with its offset."""
    return datetime.fromtimestamp(ts, ZONE).isoformat()


def encode_cursor(updated_at: str, rid: str) -> str:
    """An opaque cursor: the last record's place in (updated_at, id) order."""
    return base64.urlsafe_b64encode(f"{updated_at}|{rid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (updated_at, id) a cursor names; ValueError for one we did not issue."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"cursor {cursor!r} is not one this API issued") from None
    updated_at, sep, rid = text.partition("|")
    if not sep:
        raise ValueError(f"cursor {cursor!r} is not one this API issued")
    return updated_at, rid


@dataclass
class _Browser:
    """One browser with the tracking script: whose it is and whether cookies were accepted."""

    browser_id: str
    buyer_id: str | None
    cookies: bool
    paired: bool = False


class BillettenData:
    """Every record of the four resources, in (updated_at, id) order; thread-safe mutations.

    A mutation (a cancellation, an unsubscribe, a purchase) happens one second after the
    previous one, starting at the clock, so it sorts after every generated record and an
    incremental reader finds it after its bookmark.
    """

    def __init__(
        self,
        seed: int,
        buyers: int,
        now: datetime,
        *,
        related_field: str = RELATED,
        newsletter_field: str = NEWSLETTER,
        anonymous_browsers: int = 6,
    ) -> None:
        if buyers < len(SCENARIOS):
            raise ValueError(f"buyers must be at least {len(SCENARIOS)} (the fixed scenarios)")
        self.seed = seed
        self.now = now if now.tzinfo else now.replace(tzinfo=UTC)
        self.related_field = related_field
        self.newsletter_field = newsletter_field
        self.people = People(seed)
        self._key = space_key(seed, "billetten")
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in RESOURCES}
        self._browsers: dict[str, _Browser] = {}
        self._counters = dict.fromkeys(("order", "line", "cancel", "event", "session"), 0)
        self._clock = int(self.now.timestamp())
        self._high = 0  # the latest instant written
        end = self._clock - 3600
        start = end - 120 * DAY
        step = (end - start) // (buyers + 3)  # a buyer's later orders and changes fit too
        for i in range(buyers):
            self._generate_buyer(i, start + i * step, step)
        for k in range(anonymous_browsers):
            self._anonymous_browser(k, start + k * (end - start) // max(1, anonymous_browsers))

    # ----- reading ---------------------------------------------------------------------
    def count(self, resource: str) -> int:
        """How many records the resource holds."""
        return len(self._records[resource])

    def get(self, resource: str, rid: str) -> dict[str, Any] | None:
        """One record by id (a copy), or None."""
        with self._lock:
            rec = self._records[resource].get(rid)
            return None if rec is None else _copy(rec)

    def all(self, resource: str) -> list[dict[str, Any]]:
        """Every record, in API order (copies)."""
        with self._lock:
            return [_copy(r) for r in sorted(self._records[resource].values(), key=_order)]

    def page(
        self,
        resource: str,
        *,
        since: str | None,
        before: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page in (updated_at, id) order: ``since <= updated_at < before``, after the
        cursor's record; and the cursor of the next page (None after the last)."""
        with self._lock:
            rows = [
                r
                for r in self._records[resource].values()
                if (since is None or r["updated_at"] >= since)
                and (before is None or r["updated_at"] < before)
                and (after is None or _order(r) > after)
            ]
            rows.sort(key=_order)
            page = [_copy(r) for r in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(*_order(page[-1])) if more and page else None

    # ----- mutations (the control API and tests) ------------------------------------------
    def cancel_line(self, line_id: str, reason: str = "customer request") -> dict[str, Any]:
        """Cancel one ticket: its line is kept with status ``cancelled``; a cancellation is
        recorded. KeyError for an unknown line, ValueError when it is cancelled already."""
        with self._lock:
            line = self._records["order_lines"].get(line_id)
            if line is None:
                raise KeyError(f"no order line {line_id!r}")
            if line["status"] == "cancelled":
                raise ValueError(f"order line {line_id!r} is cancelled already")
            self._cancel(line, self._tick(), reason)
            return _copy(line)

    def unsubscribe(self, buyer_id: str, kind: str) -> dict[str, Any]:
        """A later permission change: ``full`` withdraws both permissions (the unsubscribe
        form), ``partial`` withdraws consent_email and keeps 10_2 (the update form)."""
        if kind not in ("full", "partial"):
            raise ValueError(f"kind must be 'full' or 'partial', got {kind!r}")
        with self._lock:
            buyer = self._buyer(buyer_id)
            self._unsubscribe(buyer, kind, self._tick())
            return _copy(buyer)

    def purchase(
        self, buyer_id: str, seats: int = 1, *, related: bool = True, newsletter: bool = True
    ) -> list[dict[str, Any]]:
        """A new order of ``seats`` tickets at the clock; the checkout's boxes as ticked.

        The buyer's permissions are what this checkout says, as Billetten sends them (it does
        not know of an unsubscribe in Heyloyalty): the store decides what a later yes means.
        """
        if not 1 <= seats <= 20:
            raise ValueError(f"seats must be 1 to 20, got {seats}")
        with self._lock:
            buyer = self._buyer(buyer_id)
            ts = self._tick()
            browser = self._browsers.get(buyer["id"]) or self._browser_of(buyer["id"], True)
            lines = self._order(buyer, Draw(self._key, 1_000_000 + ts), ts, seats, browser)
            bought = _ts(lines[-1]["purchased_at"])
            ticked = (YES if related else NOT_GIVEN, YES if newsletter else NOT_GIVEN)
            self._set_permissions(buyer, *ticked, "checkout", bought)
            return [_copy(x) for x in lines]

    # ----- generation ------------------------------------------------------------------
    def _generate_buyer(self, i: int, t0: int, step: int) -> None:
        d = Draw(self._key, i)
        person = self.people.person(10_000 + i if i % 4 == 3 else 3 * i)
        email = person.email or f"buyer{i}@billetten.example.dk"
        created = t0 + d.below(max(1, step // 4))
        if i in SCENARIOS:
            related, newsletter, _ = SCENARIOS[i]
        else:
            group = d.below(100)
            related = YES if group < 60 else NOT_GIVEN
            newsletter = YES if group < 35 or 60 <= group < 75 else NOT_GIVEN
        buyer = {
            "id": f"B{100_000 + i}",
            "email": email,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "phone": person.mobile,
            "zip_code": person.zip_code,
            "city": person.city,
            "country_code": person.country_code,
            "permissions": {},
            "permission_history": [],
            "terms_accepted": True,
            "created_at": iso(created),
            "updated_at": iso(created),
        }
        self._records["buyers"][buyer["id"]] = buyer
        cookies = i != UNPAIRED_BUYER and (i == PAIRED_BUYER or d.pct(75))
        browser = self._browser_of(buyer["id"], cookies)
        ts = created
        if i == PAIRED_BUYER:  # visits anonymously first, then logs in: earlier events pair too
            ts = self._session(browser, d, ts, login=False)
            ts = self._session(browser, d, ts + 3600, login=True)
        orders = 1 if i in SCENARIOS else 1 + d.below(3)
        for k in range(orders):
            seats = 5 if i == FIVE_SEATS_BUYER else 1 + d.below(4)
            lines = self._order(buyer, d, ts if k == 0 else ts + d.below(step // 2), seats, browser)
            ts = _ts(lines[-1]["purchased_at"]) + 60
        # The checkout's boxes, as ticked at the first purchase.
        self._set_permissions(
            buyer,
            related,
            newsletter,
            "checkout",
            _ts(self._lines_of(buyer["id"])[0]["purchased_at"]),
        )
        late = ts + step // 2  # later changes come after the buyer's purchases
        if i not in SCENARIOS and d.pct(40):  # puts a show in the cart and leaves
            ts = self._session(browser, d, ts + DAY, login=False)
            event_id, _name, price = EVENTS[d.below(len(EVENTS))]
            self._event(browser, "add_to_cart", ts + 30, event_id=event_id, quantity=2, price=price)
        if i == FIVE_SEATS_BUYER:
            first = sorted(self._lines_of(buyer["id"]), key=lambda x: x["id"])[1]
            self._cancel(first, late, "customer request")
        elif i == 4:
            self._unsubscribe(buyer, "full", late)
        elif i == 5:
            self._unsubscribe(buyer, "partial", late)
        elif i == 6:
            self._unsubscribe(buyer, "full", late)
        elif i not in SCENARIOS:
            roll = d.below(100)
            if roll < 8:
                line = next(iter(self._lines_of(buyer["id"])))
                self._cancel(line, late, "customer request")
            elif roll < 14 and newsletter == YES:
                self._unsubscribe(buyer, "full" if roll < 11 else "partial", late)

    def _set_permissions(
        self, buyer: dict[str, Any], related: str, newsletter: str, by: str, ts: int
    ) -> None:
        """The buyer's permissions from now on, and one more entry in its history (each
        statement with its time, so a reader loading the buyer once still sees an unsubscribe
        that a later checkout followed)."""
        perms = {self.related_field: related, self.newsletter_field: newsletter}
        buyer["permissions"] = perms
        buyer["permission_history"].append({"changed_at": iso(ts), "changed_by": by, **perms})
        buyer["updated_at"] = iso(ts)
        self._seen(ts)

    def _browser_of(self, buyer_id: str, cookies: bool) -> _Browser:
        browser = _Browser(f"br-{buyer_id.lower()}", buyer_id, cookies)
        self._browsers[buyer_id] = browser
        return browser

    def _anonymous_browser(self, k: int, ts: int) -> None:
        """A visitor who never logs in or pays: never paired, whatever the cookies say."""
        d = Draw(self._key, 500_000 + k)
        browser = _Browser(f"br-anon{k:03d}", None, d.pct(70))
        self._browsers[browser.browser_id] = browser
        ts = self._session(browser, d, ts, login=False)
        event_id, _name, price = EVENTS[d.below(len(EVENTS))]
        self._event(browser, "add_to_cart", ts + 30, event_id=event_id, quantity=2, price=price)

    def _session(self, browser: _Browser, d: Draw, ts: int, *, login: bool) -> int:
        """A session with one to three page visits (and a login); returns its last time."""
        self._counters["session"] += 1
        session = f"s{self._counters['session']:06d}"
        self._event(browser, "session", ts, session=session)
        for v in range(1 + d.below(3)):
            event_id = EVENTS[d.below(len(EVENTS))][0]
            ts += 20 + d.below(200)
            self._event(
                browser,
                "visit",
                ts,
                session=session,
                event_id=event_id,
                url=f"/event/{event_id}/{v}",
            )
        if login:
            ts += 10
            self._pair(browser, ts, "login", session)
        return ts

    def _pair(self, browser: _Browser, ts: int, trigger: str, session: str) -> None:
        """The pairing event: the first time a logged-in or paying buyer with cookies accepted
        is seen on this browser (the guide's *Pairing event*)."""
        if browser.paired or not browser.cookies or browser.buyer_id is None:
            return
        browser.paired = True
        self._event(
            browser, "pairing", ts, session=session, buyer_id=browser.buyer_id, trigger=trigger
        )

    def _order(
        self,
        buyer: dict[str, Any],
        d: Draw,
        ts: int,
        seats: int,
        browser: _Browser,
    ) -> list[dict[str, Any]]:
        """One order of ``seats`` tickets for one performance: its lines and its events."""
        ts = self._session(browser, d, ts, login=False)
        session = f"s{self._counters['session']:06d}"
        event_id, name, base = EVENTS[d.below(len(EVENTS))]
        zone, factor = ZONES[d.below(len(ZONES))]
        price = round(base * factor / 5) * 5
        fee = FEES[d.below(len(FEES))]
        perf_day = datetime.fromtimestamp(ts + (3 + d.below(60)) * DAY, ZONE).date()
        performance = int(
            datetime(perf_day.year, perf_day.month, perf_day.day, 19, 30, tzinfo=ZONE).timestamp()
        )
        row, first_seat = 1 + d.below(20), 1 + d.below(20)
        self._counters["order"] += 1
        order_id = f"O{200_000 + self._counters['order']}"
        self._event(
            browser,
            "add_to_cart",
            ts + 40,
            session=session,
            event_id=event_id,
            quantity=seats,
            price=price,
        )
        self._pair(browser, ts + 50, "checkout", session)  # "Continue to payment"
        bought = ts + 60
        lines = []
        for s in range(seats):
            self._counters["line"] += 1
            line = {
                "id": f"T{300_000 + self._counters['line']}",
                "order_id": order_id,
                "buyer_id": buyer["id"],
                "event_id": event_id,
                "event_name": name,
                "performance_at": local_iso(performance),
                "zone": zone,
                "row": str(row),
                "seat": str(first_seat + s),
                "price": float(price),
                "fee": float(fee),
                "currency": "DKK",
                "vat_rate": 25.0,
                "status": "active",
                "purchased_at": iso(bought),
                "cancelled_at": None,
                "updated_at": iso(bought),
            }
            self._records["order_lines"][line["id"]] = line
            self._event(
                browser,
                "purchase",
                bought,
                session=session,
                event_id=event_id,
                order_id=order_id,
                line_id=line["id"],
                quantity=1,
                price=price,
            )
            lines.append(line)
        return lines

    def _lines_of(self, buyer_id: str) -> list[dict[str, Any]]:
        return [x for x in self._records["order_lines"].values() if x["buyer_id"] == buyer_id]

    def _cancel(self, line: dict[str, Any], ts: int, reason: str) -> None:
        line["status"] = "cancelled"
        line["cancelled_at"] = line["updated_at"] = iso(ts)
        self._counters["cancel"] += 1
        cancellation = {
            "id": f"C{400_000 + self._counters['cancel']}",
            "order_line_id": line["id"],
            "order_id": line["order_id"],
            "buyer_id": line["buyer_id"],
            "reason": reason,
            "refund_amount": line["price"],
            "cancelled_at": iso(ts),
            "updated_at": iso(ts),
        }
        self._records["cancellations"][cancellation["id"]] = cancellation
        self._seen(ts)

    def _unsubscribe(self, buyer: dict[str, Any], kind: str, ts: int) -> None:
        related = NO if kind == "full" else buyer["permissions"][self.related_field]
        by = "unsubscribe_form" if kind == "full" else "update_form"
        self._set_permissions(buyer, related, NO, by, ts)

    def _event(self, browser: _Browser, kind: str, ts: int, **fields: Any) -> None:
        self._counters["event"] += 1
        event = {
            "id": f"E{500_000 + self._counters['event']}",
            "type": kind,
            "browser_id": browser.browser_id,
            "session_id": fields.get("session"),
            "cookies_accepted": browser.cookies,
            "buyer_id": fields.get("buyer_id"),
            "trigger": fields.get("trigger"),
            "url": fields.get("url"),
            "event_id": fields.get("event_id"),
            "order_id": fields.get("order_id"),
            "order_line_id": fields.get("line_id"),
            "quantity": fields.get("quantity"),
            "price": None if fields.get("price") is None else float(fields["price"]),
            "occurred_at": iso(ts),
            "updated_at": iso(ts),
        }
        self._records["tracking_events"][event["id"]] = event
        self._seen(ts)

    def _buyer(self, buyer_id: str) -> dict[str, Any]:
        buyer = self._records["buyers"].get(buyer_id)
        if buyer is None:
            raise KeyError(f"no buyer {buyer_id!r}")
        return buyer

    def _seen(self, ts: int) -> None:
        """A record was written at ``ts``: the next mutation comes after it."""
        self._high = max(self._high, ts)

    def _tick(self) -> int:
        self._clock = max(self._clock, self._high) + 1
        return self._clock


def _order(rec: dict[str, Any]) -> tuple[str, str]:
    return rec["updated_at"], rec["id"]


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _copy(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in rec.items()}


__all__ = ["BillettenData", "decode_cursor", "encode_cursor"]
