"""LoyaltyLion streams on the kit's ``IncrementalStream``.

``customers`` are read incrementally on ``updated_at`` in time windows (``window_days``), asked
for oldest first (``sort_field=updated_at&sort_direction=asc``) so the bookmark is the last
record read and a STATE after each window makes a long first run resumable. ``transactions``
are immutable and read by id: from ``since_id`` = the highest id seen minus
``transactions_lookback_ids``, because an id can become visible after higher ones were served;
the re-read ones are upserted on ``id`` downstream, so nothing is duplicated.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import msgspec

from singer_kit.streams import IncrementalStream, StreamError

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_loyaltylion.tap import TapLoyaltyLion

SCHEMAS_DIR = Path(__file__).parent / "schemas"


def load_schema(name: str) -> dict[str, t.Any]:
    """Read a stream's JSON schema from ``schemas/<name>.json``."""
    return msgspec.json.decode((SCHEMAS_DIR / f"{name}.json").read_bytes())


class LoyaltyLionStream(IncrementalStream):
    """One LoyaltyLion listing; the tap's client does auth, rate limit, retries and paging."""

    primary_keys: t.ClassVar[list[str]] = ["id"]  # type: ignore[misc]

    def __init__(self, tap: TapLoyaltyLion) -> None:
        """Load the schema from the package so discovery never needs the network."""
        super().__init__(tap, load_schema(self.name))
        self._ll_tap = tap


class CustomersStream(LoyaltyLionStream):
    """Members with their points, tier membership and referral details."""

    name = "customers"
    replication_key = "updated_at"

    @property
    def window_size(self) -> dt.timedelta:  # type: ignore[override]
        """``window_days`` per request window, a STATE after each."""
        return dt.timedelta(days=float(self.config["window_days"]))

    def request_records(
        self, start: dt.datetime | None, end: dt.datetime | None, context: Context | None
    ) -> t.Iterator[dict[str, t.Any]]:
        """The customers updated in ``[start, end]``, oldest first (the API's bound is
        inclusive: one at exactly ``end`` is read again by the next window, harmlessly)."""
        first: dict[str, t.Any] = {"sort_field": "updated_at", "sort_direction": "asc"}
        if start is not None:
            first["updated_at_min"] = start.isoformat()
        if end is not None:
            first["updated_at_max"] = end.isoformat()
        self.logger.info("customers: updated_at from %s to %s", start, end or "now")
        return self._ll_tap.api.list("customers", first)


class TransactionsStream(LoyaltyLionStream):
    """The points ledger: signed deltas, never changed (a void is a new transaction)."""

    name = "transactions"
    replication_key = "id"
    is_sorted = False  # newest first; the bookmark is the highest id, set at the end

    def windows(self, context: Context | None) -> t.Iterator[tuple[None, None]]:
        """One pass: the window is an id range, not a time range."""
        yield None, None

    def request_records(
        self, start: dt.datetime | None, end: dt.datetime | None, context: Context | None
    ) -> t.Iterator[dict[str, t.Any]]:
        """Transactions above the bookmark less the look-back, within start/end_date."""
        # The saved id itself: the SDK's starting value falls back to start_date, a date.
        bookmark = self.stream_state.get("replication_key_value")
        first: dict[str, t.Any] = {}
        if bookmark is not None:
            if isinstance(bookmark, bool) or not isinstance(bookmark, int):
                raise StreamError(
                    f"stream 'transactions': the bookmark {bookmark!r} in the state (--state) "
                    "is not a transaction id; correct or remove it"
                )
            lookback = int(self.config["transactions_lookback_ids"])
            first["since_id"] = max(0, bookmark - lookback)
        for key, param in (("start_date", "created_at_min"), ("end_date", "created_at_max")):
            bound = self._config_instant(key)
            if bound is not None:
                first[param] = bound.isoformat()
        self.logger.info("transactions: since_id %s", first.get("since_id", "(all)"))
        return self._ll_tap.api.list("transactions", first)


STREAM_TYPES: list[type[LoyaltyLionStream]] = [CustomersStream, TransactionsStream]
