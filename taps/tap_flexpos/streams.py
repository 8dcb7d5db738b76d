"""FlexPOS streams: customers and journals (POS API), tickets and memberships (Attraction API).

All four are incremental on ``ModifiedDate`` with primary key ``Uid``, on the kit's
``IncrementalStream`` (singer_kit/streams.py: window, bookmark, unknown fields, BATCH files, the
fast record path). What is FlexPOS lives here: the resources, their timestamp fields and the
codec that converts them, the customer filters, and the check that pages come in ModifiedDate
order. The window is filtered with ``$gte``/``$lt``: records that share the bookmark's exact
timestamp are fetched again (at-least-once; downstream upserts on ``Uid``).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import msgspec

from singer_kit.dates import DateFormatError, TimestampCodec
from singer_kit.streams import IncrementalStream
from tap_flexpos.client import FlexposAPI, FlexposDataError

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_flexpos.tap import TapFlexPOS

SCHEMAS_DIR = Path(__file__).parent / "schemas"


def load_schema(name: str) -> dict[str, t.Any]:
    """Read a stream's JSON schema from ``schemas/<name>.json``."""
    return msgspec.json.decode((SCHEMAS_DIR / f"{name}.json").read_bytes())


class FlexposStream(IncrementalStream):
    """One FlexPOS list resource read incrementally by ``ModifiedDate``."""

    resource: t.ClassVar[str]
    api_name: t.ClassVar[str] = "pos"
    limited_history: t.ClassVar[bool] = True  # order data: the API serves one year of it
    timestamp_fields: t.ClassVar[tuple[str, ...]] = ("CreatedDate", "ModifiedDate")
    primary_keys: t.ClassVar[list[str]] = ["Uid"]  # type: ignore[misc]
    replication_key = "ModifiedDate"
    # The API orders by ModifiedDate, then Uid. One that orders by instant sends the repeated
    # autumn hour's wall-clock times out of order; the bookmark then briefly steps back (safe:
    # more is re-read) instead of aborting; real disorder is caught in request_records.
    check_sorted = False

    def __init__(self, tap: TapFlexPOS) -> None:
        """Load the schema from the package so discovery never needs the network."""
        super().__init__(tap, load_schema(self.name))
        self._flexpos_tap = tap

    @property
    def codec(self) -> TimestampCodec:
        """The tap's compiled timestamp codec (one per run, shared by all streams)."""
        return self._flexpos_tap.codec

    @property
    def api(self) -> FlexposAPI:
        """The client for this stream's API (POS or Attraction)."""
        return self._flexpos_tap.api(self.api_name)

    def extra_filters(self) -> dict[str, dict[str, str]]:
        """Resource-specific filters (the customer switches); none by default."""
        return {}

    def default_start(self) -> dt.datetime | None:
        """Where a first run starts without ``start_date``: order data goes back as far as the
        API serves it (one year)."""
        return self._flexpos_tap.history_start

    def request_records(
        self, start: dt.datetime | None, end: dt.datetime | None, context: Context | None
    ) -> t.Iterator[dict[str, t.Any]]:
        """Page through the resource and convert timestamps to UTC ISO 8601."""
        fmt = self.codec.format_filter
        key_filter = {} if start is None else {"$gte": fmt(start)}
        if end is not None:
            key_filter["$lt"] = fmt(end)
        filters = {"ModifiedDate": key_filter, **self.extra_filters()}
        bounds = " and ".join(f"{op} {value}" for op, value in key_filter.items()) or "any"
        self.logger.info("%s: ModifiedDate %s", self.name, bounds)
        to_iso = self.codec.to_iso
        fields = self.timestamp_fields
        latest, latest_raw = "", None  # the highest ModifiedDate so far (UTC ISO) and as sent
        # The last value converted: a journal's Date is mostly its ModifiedDate, and the
        # conversion is the largest per-record cost left.
        last_raw: object = None
        last_iso = ""
        for item in self.api.iter_items(self.resource, filters, decoded=fields):
            raw = item.get("ModifiedDate")
            for name in fields:
                value = item.get(name)
                if value is None:
                    continue
                if value != last_raw:
                    try:
                        last_iso = to_iso(value)
                    except (DateFormatError, TypeError):
                        raise FlexposDataError(self._bad_date(item, name, value)) from None
                    last_raw = value
                item[name] = last_iso
            modified = item.get("ModifiedDate")
            if isinstance(modified, str):
                if modified < latest and self.codec.latest_iso(raw) < latest:
                    raise FlexposDataError(self._out_of_order(item, raw, latest_raw))
                if modified > latest:
                    latest, latest_raw = modified, raw
            yield item

    def _out_of_order(self, item: dict[str, t.Any], raw: object, before: object) -> str:
        return (
            f"stream {self.name}: record Uid={item.get('Uid')!r} ModifiedDate={raw!r} came "
            f"after one modified at {before!r}: the API does not return {self.resource} in "
            "ModifiedDate order, which paging relies on (docs/emulated-contracts.md); "
            "stopping rather than skipping records"
        )

    def _bad_date(self, item: dict[str, t.Any], name: str, value: object) -> str:
        return (
            f"stream {self.name}: record Uid={item.get('Uid')!r} field {name}={value!r} does not "
            f"match date_format {self.codec.fmt!r} (timezone {self.codec.zone.key}); "
            f"set date_format to the API's format"
        )


class CustomersStream(FlexposStream):
    """POS customers; the three config switches narrow them server-side."""

    name = "customers"
    resource = "customer"
    limited_history = False

    def default_start(self) -> dt.datetime | None:
        """All members by default (the guide): a member unchanged for years still buys."""
        return None

    def extra_filters(self) -> dict[str, dict[str, str]]:
        """Map the only_* switches to the API's filters (IsActive is boolean, the others 0/1)."""
        config = self.config
        filters: dict[str, dict[str, str]] = {}
        if config.get("only_active"):
            filters["IsActive"] = {"$eq": "true"}
        if config.get("only_club_members"):
            filters["IsClubMember"] = {"$eq": "1"}
        if config.get("only_newsletter"):
            filters["GetsNewsletter"] = {"$eq": "1"}
        return filters


class JournalsStream(FlexposStream):
    """POS sales and returns, each with its ``Lines`` array."""

    name = "journals"
    resource = "journal"
    timestamp_fields = ("Date", "ModifiedDate")


class TicketsStream(FlexposStream):
    """Attraction API tickets, one per seat."""

    name = "tickets"
    resource = "ticket"
    api_name = "attraction"
    timestamp_fields = ("EventDate", "CancelledDate", "CreatedDate", "ModifiedDate")


class MembershipsStream(FlexposStream):
    """Attraction API memberships (ValidFrom/ValidTo stay as the API's date strings)."""

    name = "memberships"
    resource = "membership"
    api_name = "attraction"


STREAM_TYPES: list[type[FlexposStream]] = [
    CustomersStream,
    JournalsStream,
    TicketsStream,
    MembershipsStream,
]
