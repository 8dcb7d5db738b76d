"""The incremental stream base (singer_kit.streams) through a minimal tap over a fake API.

The fake API holds records in key order and answers ``request_records(start, end)`` exactly as
a REST API filtered with ``$gte start`` and ``$lt end`` would; each call is recorded, so the
tests see which windows were asked for. The tap runs in-process with stdout captured as bytes,
the way its Singer output reaches a target.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import io
import json
import logging
import typing as t

import msgspec
import pytest
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import AbortedSyncPausedException

from singer_kit.sdk_compat import RecordSyncHook
from singer_kit.singer_io import FastWriter
from singer_kit.streams import IncrementalStream, StreamError

UTC = dt.UTC
SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType),
    th.Property("updated_at", th.DateTimeType),
    th.Property("points", th.IntegerType),
).to_dict()


def at(day: int, hour: int = 0) -> str:
    return dt.datetime(2026, 1, day, hour, tzinfo=UTC).isoformat()


# Nine customers over five days; day 3 has none (an empty window).
ROWS = [
    {"id": f"c{i}", "updated_at": stamp, "points": i}
    for i, stamp in enumerate(
        [at(1), at(1, 6), at(2), at(2, 12), at(4), at(4, 1), at(5), at(5, 5), at(5, 23)]
    )
]


class Customers(IncrementalStream):
    """A cursor-paged API's customers, as a new tap would declare them."""

    name = "customers"
    primary_keys: t.ClassVar[list[str]] = ["id"]  # type: ignore[misc]
    replication_key = "updated_at"

    def __init__(self, tap: Tap) -> None:
        super().__init__(tap, SCHEMA)
        self.calls: list[tuple[str | None, str | None]] = []

    def request_records(self, start, end, context):
        self.calls.append((start and start.isoformat(), end and end.isoformat()))
        for row in self.tap_rows:
            moment = dt.datetime.fromisoformat(row["updated_at"])
            if (start is None or moment >= start) and (end is None or moment < end):
                yield dict(row)


class WindowedCustomers(Customers):
    window_size = dt.timedelta(days=1)


class FakeTap(Tap):
    name = "tap-fake"
    message_writer_class = FastWriter
    config_jsonschema = th.PropertiesList(
        th.Property("start_date", th.DateTimeType),
        th.Property("end_date", th.DateTimeType),
    ).to_dict()
    stream_class: type[Customers] = Customers
    rows: t.ClassVar[list[dict]] = ROWS

    def discover_streams(self):
        stream = self.stream_class(self)
        stream.tap_rows = self.rows
        return [stream]


class Run(t.NamedTuple):
    messages: list[dict]
    stream: Customers
    error: BaseException | None

    @property
    def records(self) -> list[dict]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD"]

    @property
    def bookmarks(self) -> list[str]:
        """The replication key value of each STATE, in order."""
        return [
            m["value"]["bookmarks"]["customers"]["replication_key_value"]
            for m in self.messages
            if m["type"] == "STATE"
        ]


def run(stream_class=Customers, state=None, rows=ROWS, **config) -> Run:
    tap_class = type("Tap", (FakeTap,), {"stream_class": stream_class, "rows": rows})
    tap = tap_class(config=config, state=state, parse_env_config=False)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    error = None
    with contextlib.redirect_stdout(out):
        try:
            tap.sync_all()
        except (StreamError, AbortedSyncPausedException) as exc:
            error = exc
        out.flush()
    lines = out.buffer.getvalue().decode().splitlines()
    return Run([json.loads(line) for line in lines], tap.streams["customers"], error)


def ids(records: list[dict]) -> list[str]:
    return [r["id"] for r in records]


# --- windows -------------------------------------------------------------------------------


def test_windows_are_requested_one_by_one_with_a_state_after_each():
    result = run(WindowedCustomers, start_date=at(2), end_date=at(5))
    assert result.stream.calls == [(at(2), at(3)), (at(3), at(4)), (at(4), at(5))]
    assert ids(result.records) == ["c2", "c3", "c4", "c5"]
    # A STATE after every finished window, the empty day-3 window included: a killed run
    # resumes at the first unfinished window, not at the last record seen.
    assert result.bookmarks == [at(3), at(4), at(5), at(5)]
    # c2 c3 | day 3: none | c4 c5 | the final STATE of the stream
    types = " ".join(m["type"] for m in result.messages)
    assert types == "SCHEMA RECORD RECORD STATE STATE RECORD RECORD STATE STATE"


def test_without_end_date_the_last_window_stays_open(monkeypatch):
    monkeypatch.setenv("LOYALTY_NOW", at(5, 12))
    result = run(WindowedCustomers, start_date=at(4))
    assert result.stream.calls == [(at(4), at(5)), (at(5), None)]
    assert ids(result.records) == ["c4", "c5", "c6", "c7", "c8"]
    # The open window ends at its last record, not at "now": nothing later is skipped.
    assert result.bookmarks[-1] == at(5, 23)


def test_a_second_run_resumes_from_the_saved_window_end():
    first = run(WindowedCustomers, start_date=at(1), end_date=at(3))
    state = {
        "bookmarks": {
            "customers": {
                "replication_key": "updated_at",
                "replication_key_value": first.bookmarks[-1],
            }
        }
    }
    second = run(WindowedCustomers, state=state, start_date=at(1), end_date=at(6))
    assert second.stream.calls[0] == (at(3), at(4))
    assert ids(second.records) == ["c4", "c5", "c6", "c7", "c8"]


# --- the bookmark --------------------------------------------------------------------------


def _state(value: str) -> dict:
    return {
        "bookmarks": {
            "customers": {"replication_key": "updated_at", "replication_key_value": value}
        }
    }


def test_the_bookmark_is_inclusive_so_records_at_its_instant_come_again():
    result = run(state=_state(at(4, 1)), start_date=at(1))
    assert result.stream.calls == [(at(4, 1), None)]
    assert ids(result.records) == ["c5", "c6", "c7", "c8"]
    assert result.bookmarks[-1] == at(5, 23)


def test_start_date_wins_over_an_older_bookmark_and_the_default_start_applies_alone():
    assert run(state=_state(at(1)), start_date=at(5)).stream.calls == [(at(5), None)]

    class Recent(Customers):
        def default_start(self):
            return dt.datetime(2026, 1, 5, tzinfo=UTC)

    assert run(Recent).stream.calls == [(at(5), None)]
    assert run(Recent, start_date=at(2)).stream.calls == [(at(2), None)]


@pytest.mark.parametrize("config", [{}, {"start_date": at(1)}])
def test_a_bookmark_that_is_no_date_time_is_one_line_naming_stream_and_value(config):
    result = run(state=_state("yesterday"), **config)
    assert str(result.error) == (
        "stream 'customers': the bookmark 'yesterday' in the state (--state) is not an "
        "ISO 8601 date-time; correct or remove it"
    )
    assert result.records == []


# --- fields --------------------------------------------------------------------------------


def test_unknown_fields_are_dropped_with_one_warning(caplog):
    rows = [dict(row, secret_score=1, tier="gold") for row in ROWS[:3]]
    with caplog.at_level(logging.WARNING):
        result = run(rows=rows)
    assert [sorted(r) for r in result.records] == [["id", "points", "updated_at"]] * 3
    warnings = [r.getMessage() for r in caplog.records if "ignoring fields" in r.getMessage()]
    assert warnings == ["customers: ignoring fields not in the schema: ['secret_score', 'tier']"]


class RawPoints(Customers):
    """A parser that left ``points`` as the API's JSON text (``classify.json_records``)."""

    def request_records(self, start, end, context):
        for row in super().request_records(start, end, context):
            row["points"] = msgspec.Raw(b" %d " % row["points"])
            yield row


def test_values_left_as_json_text_are_written_as_values_and_decoded_for_stream_maps():
    plain = run(RawPoints, start_date=at(1))
    assert [r["points"] for r in plain.records] == list(range(9))
    mapped = run(RawPoints, start_date=at(1), stream_maps={"customers": {"twice": "points * 2"}})
    assert [r["twice"] for r in mapped.records] == [2 * i for i in range(9)]


# --- the fast path against singer-sdk's own loop -------------------------------------------


class SdkLoop(Customers):
    """post_process is the SDK's per-record hook: its presence sends the stream the SDK's way."""

    def post_process(self, row, context=None):
        return row


class SdkLoopWindowed(SdkLoop):
    window_size = dt.timedelta(days=1)


class Limited(Customers):
    ABORT_AT_RECORD_COUNT = 3


class SdkLimited(SdkLoop):
    ABORT_AT_RECORD_COUNT = 3


def _without_times(messages: list[dict]) -> list[dict]:
    """The messages without the clock's readings (extraction time, signpost)."""
    out = [{k: v for k, v in m.items() if k != "time_extracted"} for m in messages]
    for message in out:
        if message["type"] == "STATE":
            message["value"]["bookmarks"]["customers"].pop("replication_key_signpost", None)
    return out


@pytest.mark.parametrize(
    ("fast", "sdk", "config", "synced"),
    [
        (Customers, SdkLoop, {"start_date": at(1)}, 9),
        (WindowedCustomers, SdkLoopWindowed, {"start_date": at(1), "end_date": at(6)}, 9),
        (Limited, SdkLimited, {}, 3),
    ],
    ids=["plain", "windows", "record-limit"],
)
def test_the_fast_path_writes_what_the_sdk_loop_writes(monkeypatch, fast, sdk, config, synced):
    expected = run(sdk, **config)

    def refuse(*_a, **_k):
        raise AssertionError("the fast path fell back to the SDK's loop")

    monkeypatch.setattr(RecordSyncHook, "sdk_sync_records", refuse)
    thresholds = gc.get_threshold()
    got = run(fast, **config)
    assert gc.get_threshold() == thresholds  # the collector is as it was, after an abort too
    assert len(got.records) == synced
    assert type(got.error) is type(expected.error)
    assert _without_times(got.messages) == _without_times(expected.messages)
    assert all(m["time_extracted"].endswith("Z") for m in got.messages if m["type"] == "RECORD")


@pytest.mark.parametrize("stream_class", [Customers, SdkLoop], ids=["fast", "sdk"])
def test_the_record_count_metric_counts_every_record(caplog, stream_class):
    with caplog.at_level(logging.INFO, logger="singer_sdk.metrics"):
        result = run(stream_class, start_date=at(1))
    counts = [
        json.loads(r.getMessage().split("METRIC: ", 1)[1])
        for r in caplog.records
        if "METRIC: " in r.getMessage() and '"record_count"' in r.getMessage()
    ]
    assert sum(c["value"] for c in counts) == len(result.records) == len(ROWS)
    assert {(c["tags"]["stream"], str(c["tags"]["context"])) for c in counts} == {
        ("customers", "{}")
    }


def test_batch_mode_with_windows_writes_state_only_after_the_file_that_covers_it(tmp_path):
    batch = {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": tmp_path.as_uri()},
        "batch_size": 3,
    }
    result = run(WindowedCustomers, start_date=at(1), end_date=at(6), batch_config=batch)
    types = [m["type"] for m in result.messages]
    assert types == ["SCHEMA"] + ["BATCH", "STATE"] * 3 + ["STATE"]
    in_files = []
    for message in result.messages:
        if message["type"] == "BATCH":
            (url,) = message["manifest"]
            lines = (tmp_path / url.rsplit("/", 1)[1]).read_text().splitlines()
            in_files.extend(json.loads(line)["id"] for line in lines)
    assert in_files == ids(ROWS)
    # Files of 3: c0-c2 | c3-c5 | c6-c8. Each STATE covers exactly the files announced before
    # it (the last record's value; day 3's empty window passes inside the second file), and
    # only the end of the stream moves the bookmark to the last window's end.
    assert result.bookmarks == [at(2), at(4, 1), at(5, 23), at(6)]
