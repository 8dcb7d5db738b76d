"""The incremental stream base a tap fills in (docs/kit/streams.md).

A tap declares its streams' names, schemas and replication key, and writes one method,
``request_records(start, end, context)``: the records whose key lies in ``[start, end)``, in key
order, as the API sends them (converted as the tap must). Everything else is here: the window
(bookmark, ``start_date``, ``end_date``, a stream's default start), optional time windows with a
STATE after each, unknown fields dropped with one warning, fields the catalog adds kept, BATCH
files, and a fast record path that writes RECORD lines a page at a time instead of singer-sdk's
per-record message objects, which made a tap half as fast as a plain pager.

The window's start is inclusive (``$gte``): records that share the bookmark's exact value are
read again rather than risk missing one written in the same second after the previous run
stopped. Delivery is at least once; targets upsert on the primary key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import gzip
import itertools
import sys
import typing as t
import uuid

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform

from singer_kit.dates import now, parse_instant
from singer_kit.sdk_compat import (
    RecordSyncHook,
    check_max_record_limit,
    finalize_state,
    increment_stream_state,
    pop_deselected_record_properties,
    stream_version,
    utc_now,
    write_starting_replication_value,
    write_state_message,
)
from singer_kit.singer_io import ENCODER, FastWriter, decode_raw, dumps_line

if t.TYPE_CHECKING:
    import singer_sdk.singerlib as singer
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from singer_kit.sdk_compat import BaseBatchFileEncoding, BatchConfig

Window = tuple[dt.datetime | None, dt.datetime | None]
# Records per bulk write on the fast path: large enough that the per-write cost vanishes,
# small enough that a page's lines stay a few hundred KB.
FAST_PAGE = 500
# Net container allocations between two young-generation collections on the fast path
# (Python's default is 700). A decoded page of nested records is thousands of containers that
# all die together, so the default collects many times per page, promotes the page's records
# and sweeps every live object now and then: ~30 % of the record path. Records hold no
# cycles, reference counting frees them; the collector still runs past this many.
FAST_GC_THRESHOLD = 100_000


class StreamError(Exception):
    """A stream cannot go on (a bad bookmark or record); the message is one line for the user."""


def _compressed(raw: t.BinaryIO, gzipped: bool) -> t.ContextManager[t.BinaryIO]:
    """The file itself, or a gzip writer over it."""
    if gzipped:
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1)  # type: ignore[return-value]
    return contextlib.nullcontext(raw)


@contextlib.contextmanager
def _fewer_collections() -> t.Iterator[None]:
    """Raise the young generation's threshold to ``FAST_GC_THRESHOLD`` meanwhile."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], FAST_GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _pages(records: t.Iterable[dict], size: int) -> t.Iterator[list[dict]]:
    """Consecutive lists of ``size`` records (the last one shorter)."""
    it = iter(records)
    while page := list(itertools.islice(it, size)):
        yield page


def _record_lines(
    records: list[dict], alias: str, version: int | None, extracted: dt.datetime
) -> bytes:
    """The RECORD lines of one page, byte for byte what ``dumps_line`` writes per message.

    One ``encode_lines`` call for the page: msgspec then fills one buffer instead of returning
    (and the caller joining) a bytes object per message.
    """
    if version is None:
        messages = [
            {"type": "RECORD", "stream": alias, "record": r, "time_extracted": extracted}
            for r in records
        ]
    else:
        messages = [
            {
                "type": "RECORD",
                "stream": alias,
                "record": r,
                "version": version,
                "time_extracted": extracted,
            }
            for r in records
        ]
    return ENCODER.encode_lines(messages)


class IncrementalStream(RecordSyncHook, Stream):
    """A stream read incrementally on a date-time replication key, window by window."""

    replication_key: str
    # A REST API that filters on the key also orders by it, which makes the state resumable.
    is_sorted = True
    # The API's JSON already has the schema's types; the SDK's per-field conformance walk
    # cost a third of a run. Fields the schema does not declare are dropped instead.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    # Split [start, end) into windows of this length, with a STATE after each; None = one.
    window_size: dt.timedelta | None = None

    def __init__(self, tap: Tap, schema: dict[str, t.Any], name: str | None = None) -> None:
        """A stream of ``tap`` with the packaged ``schema``."""
        super().__init__(tap=tap, name=name or self.name, schema=schema)
        self._kit_tap = tap
        self._known = frozenset(self.schema["properties"])
        self._warned_unknown = False
        self._all_selected: bool | None = None
        self._window_states = True
        self._keep_raw = False  # see sync_records

    # --- what a tap fills in -------------------------------------------------------------

    def request_records(
        self, start: dt.datetime | None, end: dt.datetime | None, context: Context | None
    ) -> t.Iterable[dict[str, t.Any]]:
        """The records with ``start <= key < end`` (None = unbounded), in key order."""
        raise NotImplementedError

    def default_start(self) -> dt.datetime | None:
        """Where a first run starts without ``start_date``; None = all the API has."""
        return None

    # --- the window ----------------------------------------------------------------------

    def _config_instant(self, key: str) -> dt.datetime | None:
        raw = self.config.get(key)
        return parse_instant(raw, key) if raw else None

    def compare_start_date(self, value: str, start_date_value: str) -> str:
        """singer-sdk's max(bookmark, start_date); a bookmark that is no date-time (a state
        edited by hand) is one line naming the stream and the value, not a traceback."""
        try:
            return super().compare_start_date(value, start_date_value)
        except ValueError:
            raise StreamError(self._bad_bookmark(value)) from None

    def _bad_bookmark(self, value: object) -> str:
        return (
            f"stream {self.name!r}: the bookmark {value!r} in the state (--state) is not an "
            "ISO 8601 date-time; correct or remove it"
        )

    def window(self, context: Context | None) -> Window:
        """The ``[start, end)`` to read: the later of the bookmark and ``start_date`` (or the
        stream's default start) up to ``end_date``; None = unbounded."""
        start = self._config_instant("start_date")
        if start is None:
            start = self.default_start()
        bookmark = self.get_starting_replication_key_value(context)
        if bookmark:
            try:  # without start_date the SDK has not parsed it (compare_start_date)
                mark = parse_instant(str(bookmark), "bookmark")
            except ValueError:
                raise StreamError(self._bad_bookmark(bookmark)) from None
            start = mark if start is None else max(start, mark)
        return start, self._config_instant("end_date")

    def windows(self, context: Context | None) -> t.Iterator[Window]:
        """The window cut into ``window_size`` pieces; the last one keeps the window's end
        (open when there is none, so nothing written during the run is cut off)."""
        start, end = self.window(context)
        size = self.window_size
        if size is None or start is None:
            yield start, end
            return
        if size <= dt.timedelta(0):
            raise StreamError(f"stream {self.name!r}: window size {size} is not positive")
        stop = end if end is not None else now()
        while start + size < stop:
            yield start, start + size
            start += size
        yield start, end

    def _window_records(
        self, start: dt.datetime | None, end: dt.datetime | None, context: Context | None
    ) -> t.Iterator[dict[str, t.Any]]:
        """One window's records, fields the schema does not declare removed, values left as
        JSON text by the tap's parser decoded unless ``sync_records`` found nothing reads them."""
        known = self._known
        keep_raw = self._keep_raw
        for record in self.request_records(start, end, context):
            if not record.keys() <= known:
                self._drop_unknown(record)
            if not keep_raw:
                decode_raw(record)
            yield record

    def _finish_window(self, end: dt.datetime | None, context: Context | None) -> None:
        """A bounded window was read whole: the bookmark moves to its end even when it held
        no record (the next run does not re-read it), and a STATE says so at once."""
        if end is None or self.window_size is None:
            return
        increment_stream_state(self, {self.replication_key: end.isoformat()}, context)
        self.state_manager.is_flushed = False  # an empty window's STATE is news too
        if self._window_states:
            write_state_message(self)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Every window's records (singer-sdk's record path, used when the fast one is not).

        The SDK has written and counted each record before asking for the next, so when the
        generator moves past a window every record of it is out and the STATE may follow.
        """
        for start, end in self.windows(context):
            yield from self._window_records(start, end, context)
            self._finish_window(end, context)

    # --- fields --------------------------------------------------------------------------

    def apply_catalog(self, catalog: singer.Catalog) -> None:
        """Keep the fields the catalog's schema declares beyond the packaged one.

        The SDK writes the catalog's schema in the SCHEMA message, so a field added there (one
        the API already sends) must reach the record too instead of being dropped as unknown.
        """
        super().apply_catalog(catalog)
        entry = catalog.get_stream(self.name)
        declared = (entry.schema.to_dict().get("properties") or {}) if entry else {}
        added = {k: v for k, v in declared.items() if k not in self.schema["properties"]}
        if added:
            self._schema = {**self.schema, "properties": {**self.schema["properties"], **added}}
            self._known = frozenset(self.schema["properties"])
            self._all_selected = None

    def _drop_unknown(self, record: dict[str, t.Any]) -> None:
        """Remove fields the schema does not declare (the API may grow); warn once."""
        extra = sorted(set(record) - self._known)
        for name in extra:
            del record[name]
        if not self._warned_unknown:
            self._warned_unknown = True
            self.logger.warning("%s: ignoring fields not in the schema: %s", self.name, extra)

    def _selects_all(self) -> bool:
        """Whether the catalog selects every field (then records need no projection)."""
        if self._all_selected is None:
            mask = self.mask
            self._all_selected = all(mask[("properties", name)] for name in self._known)
        return self._all_selected

    def _without_deselected(self, records: t.Iterable[dict]) -> t.Iterator[dict]:
        """What the RECORD path pops from a partly selected stream, files must not hold."""
        for record in records:
            pop_deselected_record_properties(record, self.schema, self.mask)
            yield record

    # --- the record loop -----------------------------------------------------------------

    def sync_records(
        self, context: Context | None, *, write_messages: bool
    ) -> t.Iterator[dict[str, t.Any]]:
        """The fast record path when nothing needs the SDK's per-record machinery.

        Values a tap's parser left as the API's JSON text (``msgspec.Raw``) stay so where
        only the encoder sees them: on the fast path and in BATCH files (no stream maps there)
        of a stream whose every field is selected. Anywhere else they are decoded first.
        """
        self._window_states = write_messages
        fast = write_messages and self._fast_path_applies(context)
        self._keep_raw = (fast or not write_messages) and self._plain() and self._selects_all()
        if fast:
            return self._fast_sync_records()
        return self.sdk_sync_records(context, write_messages=write_messages)

    def _plain(self) -> bool:
        """No child streams, stream maps, flattening or post-processing read the records."""
        maps = self.stream_maps
        return (
            not self.child_streams
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and type(self).post_process is Stream.post_process
        )

    def _fast_path_applies(self, context: Context | None) -> bool:
        """No partitions, nothing but the writer reads the records (``_plain``), and a
        writer that puts messages on ``sys.stdout.buffer`` (where the fast path writes)."""
        return (
            context is None
            and self.partitions is None
            and self.state_partitioning_keys is None
            and self.selected
            and self._plain()
            and isinstance(self._kit_tap.message_writer, FastWriter)
        )

    def _fast_sync_records(self) -> t.Iterator[dict[str, t.Any]]:
        """singer-sdk's ``_sync_records`` for one unpartitioned stream, a page at a time.

        Per page: one bulk write of its RECORD lines, one bookmark update (the page's last
        record, for a sorted stream), one counter increment. STATE follows the SDK's cadence
        (every ``STATE_MSG_FREQUENCY`` records, after each finished window, at the end); the
        record counter's METRIC lines are the SDK's own. ``ABORT_AT_RECORD_COUNT`` (the
        standard tests' dry-run limit) stops after exactly as many records as the SDK's loop.
        """
        out = sys.stdout.buffer
        alias = self.stream_maps[0].stream_alias
        version = stream_version(self)
        project = not self._selects_all()
        per_record_state = not self.is_sorted or self.check_sorted
        limit = self.ABORT_AT_RECORD_COUNT
        every = self.STATE_MSG_FREQUENCY
        state = self.state_manager
        count = 0
        with (
            self.get_record_counter() as counter,
            self.get_sync_timer() as timer,
            _fewer_collections(),
        ):
            counter.with_context({})  # the SDK's tags for an unpartitioned stream
            timer.with_context({})
            write_starting_replication_value(self, None)
            for start, end in self.windows(None):
                for page in _pages(self._window_records(start, end, None), FAST_PAGE):
                    over = limit is not None and count + len(page) > limit
                    if over:
                        page = page[: limit - count]
                    if project:
                        for record in page:
                            pop_deselected_record_properties(record, self.schema, self.mask)
                    out.write(_record_lines(page, alias, version, utc_now()))
                    state.is_flushed = False
                    for record in page if per_record_state else page[-1:]:
                        increment_stream_state(self, record, None)
                    counter.increment(len(page))
                    if (count + len(page)) // every > count // every:
                        write_state_message(self)
                    count += len(page)
                    yield from page
                    if over:
                        check_max_record_limit(self, count)
                self._finish_window(end, None)
        finalize_state(self, self.stream_state)
        write_state_message(self)

    # --- BATCH ---------------------------------------------------------------------------

    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> t.Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """Write records as JSONL batch files (``batch_config``): one BATCH per file.

        Unlike the SDK's batcher this streams each file (the SDK keeps a whole chunk as a
        list), encodes with the kit's encoder and honours ``compression`` (gzip at level 1: the
        files are transient and speed beats size). A file is closed right after its last
        record, before the next is read, so the STATE the SDK writes after each BATCH never
        covers a record that is not in a file already announced.
        """
        encoding = batch_config.encoding
        if encoding.format != "jsonl":
            raise StreamError(
                f"batch_config: format {encoding.format!r} is not supported (only 'jsonl')"
            )
        gzipped = encoding.compression != "none"
        storage = batch_config.storage
        size = max(1, batch_config.batch_size or 10_000)
        sync_id = f"{self.tap_name}--{self.name}-{uuid.uuid4()}"
        records = iter(self.sync_records(context, write_messages=False))
        if not self._selects_all():
            records = self._without_deselected(records)
        for part, first in enumerate(records, start=1):  # the inner islice drains the rest
            name = f"{storage.prefix or ''}{sync_id}-{part}.jsonl" + (".gz" if gzipped else "")
            with storage.open(name, "wb") as raw, _compressed(raw, gzipped) as out:
                buffer: list[bytes] = []
                for record in itertools.chain((first,), itertools.islice(records, size - 1)):
                    buffer.append(dumps_line(record))
                    if len(buffer) >= 1_000:
                        out.write(b"".join(buffer))
                        buffer.clear()
                if buffer:
                    out.write(b"".join(buffer))
            yield encoding, [storage.get_url(name)]
