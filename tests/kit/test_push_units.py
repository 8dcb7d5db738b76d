"""The push loop in process, with a send that records its calls: how records become calls."""

from __future__ import annotations

import json
import time
from pathlib import Path

from singer_kit.push import PushItem, PushLoop, PushSettings, PushSink, Skip


class RecordingSink(PushSink):
    max_records_per_call = 3
    max_call_bytes = 100
    calls: list[list[PushItem]]

    def send(self, items: list[PushItem]) -> list[str | None]:
        self.calls.append(items)
        return [None] * len(items)


def push(
    tmp_path: Path,
    records: list[dict],
    keys: list[str],
    retry=None,
    sink_class=RecordingSink,
    **settings,
) -> list[list[PushItem]]:
    calls: list[list[PushItem]] = []

    def make_sink(stream: str, schema: dict, key_properties: list[str]) -> PushSink:
        sink = sink_class(stream, schema, key_properties, {})
        sink.calls = calls
        return sink

    options = {"ledger_path": tmp_path / "l.sqlite", "rejects_path": tmp_path / "r.jsonl"}
    loop = PushLoop(make_sink, PushSettings(**{**options, **settings}), retry=retry)
    schema = {"type": "SCHEMA", "stream": "s", "schema": {"properties": {}}, "key_properties": keys}
    rows = [{"type": "RECORD", "stream": "s", "record": r} for r in records]
    loop.process([json.dumps(m).encode() for m in [schema, *rows]])
    loop.finish()
    return calls


def test_calls_are_cut_by_records_per_call_and_by_bytes_per_call(tmp_path):
    small = [{"id": n} for n in range(7)]
    assert [len(c) for c in push(tmp_path / "a", small, ["id"])] == [3, 3, 1]
    big = [{"id": n, "pad": "x" * 30} for n in range(4)]  # ~40 bytes each, 100 per call
    assert [len(c) for c in push(tmp_path / "b", big, ["id"])] == [2, 2]


def test_the_last_version_of_a_key_in_a_batch_is_the_one_sent(tmp_path):
    calls = push(tmp_path, [{"id": 1, "v": "old"}, {"id": 2}, {"id": 1, "v": "new"}], ["id"])
    assert [i.payload for c in calls for i in c] == [{"id": 2}, {"id": 1, "v": "new"}]


def test_keys_name_the_entity_and_idempotency_keys_its_content(tmp_path):
    first = push(tmp_path / "a", [{"id": 1, "v": 1}, {"id": 2, "v": 1}], ["id"])[0]
    again = push(tmp_path / "b", [{"v": 1, "id": 1}], ["id"])[0]
    changed = push(tmp_path / "c", [{"id": 1, "v": 2}], ["id"])[0]
    assert again[0].key == first[0].key != first[1].key
    assert again[0].idempotency_key == first[0].idempotency_key  # key order does not matter
    assert changed[0].key == first[0].key
    assert changed[0].idempotency_key != first[0].idempotency_key
    keyless = push(tmp_path / "d", [{"id": 1, "v": 1}, {"id": 1, "v": 2}], [])[0]
    assert len({i.key for i in keyless}) == 2  # without key properties, content is identity


def test_a_batch_older_than_max_batch_seconds_is_sent_when_the_next_record_arrives(tmp_path):
    calls = push(tmp_path, [{"id": n} for n in range(3)], ["id"], max_batch_seconds=0)
    assert [len(c) for c in calls] == [1, 1, 1]


def test_a_record_without_its_key_is_a_reject_not_one_entity_for_all_of_them(tmp_path):
    calls = push(tmp_path, [{"id": 1}, {"name": "a"}, {"name": "b"}, {"id": None}], ["id"])
    assert [i.payload for c in calls for i in c] == [{"id": 1}]
    rejects = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["record"], r["reason"]) for r in rejects] == [
        ({"name": "a"}, "missing key properties ['id']"),
        ({"name": "b"}, "missing key properties ['id']"),
        ({"id": None}, "missing key properties ['id']"),
    ]


class FlakySink(RecordingSink):
    """The remote answers its first call with a 429 (as the HTTP layer would raise it)."""

    def send(self, items: list[PushItem]) -> list[str | None]:
        if not self.calls:
            self.calls.append([])
            raise ConnectionError("429 Too Many Requests")
        return super().send(items)


def test_the_retry_hook_gets_each_call_and_every_attempt_waits_for_the_rate_limit(tmp_path):
    attempts: list[float] = []

    def retry_once(attempt):  # stands in for the HTTP layer's retrier
        try:
            return attempt()
        except ConnectionError:
            attempts.append(time.monotonic())
            return attempt()

    started = time.monotonic()
    calls = push(
        tmp_path,
        [{"id": 1}],
        ["id"],
        retry=retry_once,
        sink_class=FlakySink,
        requests_per_second=5,
    )
    assert [[i.payload for i in c] for c in calls] == [[], [{"id": 1}]]
    assert len(attempts) == 1
    assert time.monotonic() - started >= 0.2  # the second attempt waited for its slot


class LateRefusingSink(RecordingSink):
    """Accepts every call, then (as Ometria's _errors) refuses record 2 after the input ended."""

    def late_rejects(self) -> list:
        from singer_kit.push import Reject

        item = next(i for c in self.calls for i in c if i.record["id"] == 2)
        return [Reject(self.stream, {"id": 2}, item.key, "not a valid value (root > email)")]


def test_late_rejects_are_filed_and_leave_the_ledger_so_the_next_run_sends_them(tmp_path):
    records = [{"id": n} for n in range(3)]
    first = push(tmp_path, records, ["id"], sink_class=LateRefusingSink)
    assert sum(map(len, first)) == 3
    rejects = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["record"], r["reason"]) for r in rejects] == [
        ({"id": 2}, "not a valid value (root > email)")
    ]
    again = push(tmp_path, records, ["id"])  # same ledger: only the refused one goes again
    assert [i.record for c in again for i in c] == [{"id": 2}]


class PacedSink(RecordingSink):
    paced_by_transport = True  # its transport takes the loop's slots itself


def test_a_sink_paced_by_its_transport_takes_no_second_slot_per_call(tmp_path):
    records = [{"id": n} for n in range(6)]  # two calls
    start = time.monotonic()
    push(tmp_path / "a", records, ["id"], requests_per_second=1)
    paced_by_loop = time.monotonic() - start
    start = time.monotonic()
    push(tmp_path / "b", records, ["id"], sink_class=PacedSink, requests_per_second=1)
    assert paced_by_loop >= 0.9 and time.monotonic() - start < 0.5


class SkippingSink(RecordingSink):
    def build_payload(self, record: dict) -> dict:
        if record.get("old"):
            raise Skip("older than the window")
        return record


def test_a_skipped_record_is_neither_sent_nor_rejected_and_is_counted(tmp_path, caplog):
    caplog.set_level("INFO")
    records = [{"id": 1}, {"id": 2, "old": True}, {"id": 3, "old": True}]
    calls = push(tmp_path, records, ["id"], sink_class=SkippingSink)
    assert [i.payload["id"] for c in calls for i in c] == [1]
    assert not (tmp_path / "r.jsonl").exists()
    assert "s: 1 sent, 0 unchanged, 0 rejected, 2 skipped (older than the window)" in caplog.text


class SlowSink(RecordingSink):
    def send(self, items: list[PushItem]) -> list[str | None]:
        time.sleep(0.2)  # the earlier stream is slow: without the knob, receipts overtake it
        return super().send(items)


class AfterSink(RecordingSink):
    after_earlier_streams = True


def test_a_stream_after_earlier_streams_is_sent_once_they_were_confirmed(tmp_path):
    calls: list[list[PushItem]] = []

    def make_sink(stream: str, schema: dict, key_properties: list[str]) -> PushSink:
        kind = AfterSink if stream == "receipts" else SlowSink
        sink = kind(stream, schema, key_properties, {})
        sink.calls = calls
        return sink

    options = {"ledger_path": tmp_path / "l.sqlite", "rejects_path": tmp_path / "r.jsonl"}
    loop = PushLoop(make_sink, PushSettings(**options, workers=4))
    lines = []
    for stream in ("contacts", "receipts"):
        lines.append({"type": "SCHEMA", "stream": stream, "schema": {}, "key_properties": ["id"]})
        lines += [{"type": "RECORD", "stream": stream, "record": {"id": n}} for n in range(5)]
    loop.process([json.dumps(m).encode() for m in lines])
    loop.finish()
    # Without the knob the two streams' calls would share one batch (and race on the workers).
    streams = [c[0].stream for c in calls]
    assert streams == sorted(streams, key=["contacts", "receipts"].index)
