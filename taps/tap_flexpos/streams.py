"""FlexPOS streams: customers and journals (POS API), tickets and memberships (Attraction API).

All four are incremental on ``ModifiedDate`` with primary key ``Uid``. The window starts at the
later of the bookmark and ``start_date`` and is filtered with ``$gte``: records that share the
bookmark's exact timestamp are fetched again rather than risk missing one that was written in the
same second after the previous run stopped (at-least-once; downstream upserts on ``Uid``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import itertools
import typing as t
import uuid
from pathlib import Path

import msgspec
import singer_sdk.singerlib as singer
from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from singer_kit.dates import DateFormatError, TimestampCodec
from singer_kit.sdk_compat import pop_deselected_record_properties, utc_now
from singer_kit.singer_io import dumps_line
from tap_flexpos.client import FlexposAPI, FlexposDataError, FlexposError

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from singer_kit.sdk_compat import BaseBatchFileEncoding, BatchConfig
    from tap_flexpos.tap import TapFlexPOS

SCHEMAS_DIR = Path(__file__).parent / "schemas"


def load_schema(name: str) -> dict[str, t.Any]:
    """Read a stream's JSON schema from ``schemas/<name>.json``."""
    return msgspec.json.decode((SCHEMAS_DIR / f"{name}.json").read_bytes())


def _compressed(raw: t.BinaryIO, gzipped: bool) -> t.ContextManager[t.BinaryIO]:
    """The file itself, or a gzip writer over it."""
    if gzipped:
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1)  # type: ignore[return-value]
    return contextlib.nullcontext(raw)


class FlexposStream(Stream):
    """One FlexPOS list resource read incrementally by ``ModifiedDate``."""

    resource: t.ClassVar[str]
    api_name: t.ClassVar[str] = "pos"
    limited_history: t.ClassVar[bool] = True  # order data: the API serves one year of it
    timestamp_fields: t.ClassVar[tuple[str, ...]] = ("CreatedDate", "ModifiedDate")
    primary_keys: t.ClassVar[list[str]] = ["Uid"]  # type: ignore[misc]
    replication_key = "ModifiedDate"
    is_sorted = True  # the API orders by ModifiedDate, then Uid: state is resumable
    # An API that orders by instant sends the repeated autumn hour's wall-clock times out of
    # order; the bookmark then briefly steps back (safe: more is re-read) instead of aborting.
    check_sorted = False
    # The API's JSON already has the schema's types; the SDK's per-field conformance walk was
    # a third of the run time. Unknown top-level fields are dropped in get_records instead.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapFlexPOS) -> None:
        """Load the schema from the package so discovery never needs the network."""
        super().__init__(tap=tap, name=self.name, schema=load_schema(self.name))
        self._flexpos_tap = tap
        self._known = frozenset(self.schema["properties"])
        self._warned_unknown = False
        self._all_selected: bool | None = None

    def apply_catalog(self, catalog: singer.Catalog) -> None:
        """Keep the fields the catalog's schema declares beyond the packaged one.

        Adding a field the API already sends is configuration (README: Adding a field): the
        SDK already writes the catalog's schema in the SCHEMA message, so the record must
        carry the field too instead of losing it in `_drop_unknown`.
        """
        super().apply_catalog(catalog)
        entry = catalog.get_stream(self.name)
        declared = (entry.schema.to_dict().get("properties") or {}) if entry else {}
        added = {k: v for k, v in declared.items() if k not in self.schema["properties"]}
        if added:
            self._schema = {**self.schema, "properties": {**self.schema["properties"], **added}}
            self._known = frozenset(self.schema["properties"])
            self._all_selected = None

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

    def compare_start_date(self, value: str, start_date_value: str) -> str:
        """singer-sdk's max(bookmark, start_date); a bookmark that is no date-time (a state
        edited by hand) is one line naming the stream and the value, not a traceback."""
        try:
            return super().compare_start_date(value, start_date_value)
        except ValueError:
            raise FlexposError(self._bad_bookmark(value)) from None

    def _bad_bookmark(self, value: object) -> str:
        return (
            f"stream {self.name!r}: the bookmark {value!r} in the state (--state) is not an "
            "ISO 8601 date-time; correct or remove it"
        )

    def default_start(self) -> dt.datetime | None:
        """Where a first run starts without ``start_date``: order data goes back as far as the
        API serves it (one year)."""
        return self._flexpos_tap.history_start

    def window(self, context: Context | None) -> tuple[dt.datetime | None, dt.datetime | None]:
        """Return the ``[start, end)`` window: the later of the bookmark and ``start_date``
        (or the stream's default start) up to ``end_date``; None = unbounded."""
        tap = self._flexpos_tap
        start = tap.start_date if tap.start_date is not None else self.default_start()
        bookmark = self.get_starting_replication_key_value(context)
        if bookmark:
            try:  # without start_date the SDK has not parsed it (compare_start_date)
                mark = dt.datetime.fromisoformat(str(bookmark))
            except ValueError:
                raise FlexposError(self._bad_bookmark(bookmark)) from None
            if mark.tzinfo is None:
                mark = mark.replace(tzinfo=dt.UTC)
            start = mark if start is None else max(start, mark)
        return start, tap.end_date

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Page through the resource and convert timestamps to UTC ISO 8601."""
        start, end = self.window(context)
        fmt = self.codec.format_filter
        key_filter = {} if start is None else {"$gte": fmt(start)}
        if end is not None:
            key_filter["$lt"] = fmt(end)
        filters = {"ModifiedDate": key_filter, **self.extra_filters()}
        bounds = " and ".join(f"{op} {value}" for op, value in key_filter.items()) or "any"
        self.logger.info("%s: ModifiedDate %s", self.name, bounds)
        to_iso = self.codec.to_iso
        fields = self.timestamp_fields
        known = self._known
        latest, latest_raw = "", None  # the highest ModifiedDate so far (UTC ISO) and as sent
        for item in self.api.iter_items(self.resource, filters):
            if not item.keys() <= known:
                self._drop_unknown(item)
            raw = item.get("ModifiedDate")
            for name in fields:
                value = item.get(name)
                if value is None:
                    continue
                try:
                    item[name] = to_iso(value)
                except (DateFormatError, TypeError):
                    raise FlexposDataError(self._bad_date(item, name, value)) from None
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

    def _generate_record_messages(self, record: dict[str, t.Any]) -> t.Iterator[t.Any]:
        """singer-sdk's record-message step without its per-record selection walk.

        The SDK copies every record to pop deselected fields; when the catalog selects every
        field (the usual case, and what `catalogs/flexpos.json` does) there is nothing to pop.
        Partial selections keep the SDK's own path.
        """
        if not self._selects_all():
            yield from super()._generate_record_messages(record)
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield singer.RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=utc_now(),
                )

    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> t.Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """Write records as JSONL batch files (``batch_config``): one BATCH per file.

        Unlike the SDK's batcher this streams each file (the SDK keeps a whole chunk as a
        list), encodes with msgspec and honours ``compression`` (gzip at level 1: the files
        are transient and speed beats size). A file is closed right after its last record,
        before the next is read, so the STATE the SDK writes after each BATCH never covers a
        record that is not in a file already announced.
        """
        encoding = batch_config.encoding
        if encoding.format != "jsonl":
            raise FlexposDataError(
                f"batch_config: format {encoding.format!r} is not supported (only 'jsonl')"
            )
        gzipped = encoding.compression != "none"
        storage = batch_config.storage
        size = max(1, batch_config.batch_size or 10_000)
        sync_id = f"{self.tap_name}--{self.name}-{uuid.uuid4()}"
        records = iter(self._sync_records(context, write_messages=False))
        if not self._selects_all():
            records = self._without_deselected(records)
        for part, first in enumerate(records, start=1):  # the inner islice drains the rest
            name = f"{storage.prefix or ''}{sync_id}-{part}.jsonl" + (".gz" if gzipped else "")
            with storage.open(name, "wb") as raw, _compressed(raw, gzipped) as out:
                buffer: list[bytes] = []
                for record in itertools.chain((first,), itertools.islice(records, size - 1)):
                    buffer.append(dumps_line(record))  # the encoder of RECORD messages
                    if len(buffer) >= 1_000:
                        out.write(b"".join(buffer))
                        buffer.clear()
                if buffer:
                    out.write(b"".join(buffer))
            yield encoding, [storage.get_url(name)]

    def _without_deselected(self, records: t.Iterator[dict]) -> t.Iterator[dict]:
        """What the RECORD path pops from a partly selected stream, files must not hold."""
        for record in records:
            pop_deselected_record_properties(record, self.schema, self.mask)
            yield record

    def _selects_all(self) -> bool:
        """Whether the catalog selects every field (then records need no projection)."""
        if self._all_selected is None:
            mask = self.mask
            self._all_selected = all(mask[("properties", name)] for name in self._known)
        return self._all_selected

    def _drop_unknown(self, item: dict[str, t.Any]) -> None:
        """Remove fields the schema does not declare (the contract may grow); warn once."""
        extra = sorted(set(item) - self._known)
        for name in extra:
            del item[name]
        if not self._warned_unknown:
            self._warned_unknown = True
            self.logger.warning("%s: ignoring fields not in the schema: %s", self.name, extra)

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
