"""Billetten streams: buyers, order lines (one per seat), cancellations and tracking events.

All four are incremental on ``updated_at`` with primary key ``id``, on the kit's
``IncrementalStream`` (window, bookmark, unknown fields, BATCH files, the fast record path).
What is Billetten's lives here: the resources, the permission fields (their names are
configuration, because the Heyloyalty list may call them something else than the guide's
``10_2`` and ``consent_email``) and which permission groups of buyers are transferred.
"""

from __future__ import annotations

import copy
import typing as t
from pathlib import Path

import msgspec

from singer_kit.http.errors import ApiDataError
from singer_kit.streams import IncrementalStream

if t.TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.helpers.types import Context

    from tap_billetten.client import BillettenAPI
    from tap_billetten.tap import TapBilletten

SCHEMAS_DIR = Path(__file__).parent / "schemas"
GIVEN = "yes"  # the permission field's text when the box was ticked (the contract)
# A buyer's permission group, from (10_2 given, consent_email given).
GROUPS = {
    (True, True): "both",
    (False, True): "newsletter_only",
    (True, False): "related_only",
    (False, False): "terms_only",
}
TEXT = {"type": ["string", "null"]}


def load_schema(name: str) -> dict[str, t.Any]:
    """Read a stream's JSON schema from ``schemas/<name>.json``."""
    return msgspec.json.decode((SCHEMAS_DIR / f"{name}.json").read_bytes())


class BillettenStream(IncrementalStream):
    """One Billetten list resource read incrementally by ``updated_at``."""

    path: t.ClassVar[str]
    primary_keys: t.ClassVar[list[str]] = ["id"]  # type: ignore[misc]
    replication_key = "updated_at"

    def __init__(self, tap: TapBilletten) -> None:
        """The schema comes from the package, so discovery never needs the network."""
        super().__init__(tap, self.schema_for(tap.config))
        self._billetten = tap

    @classmethod
    def schema_for(cls, config: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The stream's schema (buyers: with the configured permission field names)."""
        return load_schema(cls.name)

    @property
    def api(self) -> BillettenAPI:
        """The tap's one client (one rate limit for all streams)."""
        return self._billetten.api

    def request_records(
        self, start: dt.datetime | None, end: dt.datetime | None, context: Context | None
    ) -> t.Iterator[dict[str, t.Any]]:
        """The resource's records changed in ``[start, end)``."""
        return self.api.changed(self.path, start, end)


class BuyersStream(BillettenStream):
    """Ticket buyers with their permissions, filtered to the configured permission groups."""

    name = "buyers"
    path = "buyers"

    @classmethod
    def schema_for(cls, config: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The permission fields, under their configured names, in ``permissions`` and in
        each ``permission_history`` entry."""
        schema = copy.deepcopy(load_schema(cls.name))
        fields = {config.get("related_field", "10_2"): TEXT}
        fields[config.get("newsletter_field", "consent_email")] = TEXT
        props = schema["properties"]
        props["permissions"]["properties"].update(fields)
        props["permission_history"]["items"]["properties"].update(fields)
        return schema

    def request_records(
        self, start: dt.datetime | None, end: dt.datetime | None, context: Context | None
    ) -> t.Iterator[dict[str, t.Any]]:
        """The buyers whose current permissions fall in one of ``permission_groups``."""
        related = self.config["related_field"]
        newsletter = self.config["newsletter_field"]
        wanted = set(self.config["permission_groups"])
        skipped = 0
        for buyer in super().request_records(start, end, context):
            perms = buyer.get("permissions")
            if not isinstance(perms, dict) or related not in perms or newsletter not in perms:
                raise ApiDataError(self._no_field(buyer, related, newsletter))
            group = GROUPS[perms[related] == GIVEN, perms[newsletter] == GIVEN]
            if group in wanted:
                yield buyer
            else:
                skipped += 1
        if skipped:
            self.logger.info("buyers: %d not transferred (permission_groups)", skipped)

    @staticmethod
    def _no_field(buyer: dict[str, t.Any], related: str, newsletter: str) -> str:
        perms = buyer.get("permissions")
        sent = ", ".join(map(repr, perms)) if isinstance(perms, dict) else "none"
        return (
            f"stream buyers: buyer id={buyer.get('id')!r} has no permission field "
            f"{related!r} and {newsletter!r} (it sends {sent}); set related_field and "
            "newsletter_field to the names of the fields in your Heyloyalty list"
        )


class OrderLinesStream(BillettenStream):
    """One line per seat: event, performance, zone/row/seat, price incl. VAT, fee apart."""

    name = "order_lines"
    path = "order-lines"


class CancellationsStream(BillettenStream):
    """Single-ticket cancellations (the line itself also turns ``cancelled``)."""

    name = "cancellations"
    path = "cancellations"


class TrackingEventsStream(BillettenStream):
    """Session, visit, add-to-cart, purchase and pairing events of browsers."""

    name = "tracking_events"
    path = "tracking-events"


STREAM_TYPES: list[type[BillettenStream]] = [
    BuyersStream,
    OrderLinesStream,
    CancellationsStream,
    TrackingEventsStream,
]
