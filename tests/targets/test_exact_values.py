"""Nothing is stored as something else, or dropped: a value that does not fit its column
exactly is a reject with a reason and the record as received; poison lines are one reject."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import uuid
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import LINE_SCHEMA, Store, record, schema, singer_bytes, state

THINGS = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "n": {"type": ["integer", "null"]},
        "b": {"type": ["boolean", "null"]},
        "x": {"type": ["number", "null"]},
        "s": {"type": ["string", "null"]},
        "o": {"type": ["object", "null"]},
    },
}
THINGS_SCHEMA = schema("things", THINGS, ["id"])

pytestmark = pytest.mark.both_backends


def _rejects(store: Store, stream: str) -> list[tuple[str, object]]:
    rows = store.query(
        "SELECT reason, record FROM _rejects WHERE stream = ? ORDER BY reason", [stream]
    )
    return [(reason, json.loads(rec)) for reason, rec in rows]


def test_values_that_do_not_fit_their_column_are_rejected_with_the_record_as_received(store):
    bad = [
        {"id": 1, "n": "x"},
        {"id": 2, "n": "12abc"},
        {"id": 3, "n": {"a": 1}},
        {"id": 4, "n": True},
        {"id": 5, "n": 1.5},
        {"id": "6", "n": 1},  # a key given as text
        {"id": 7, "b": 7},
        {"id": 8, "x": "1e400"},
        {"id": 9, "s": {"a": 1}, "unknown": [1, {"deep": None}]},
        {"id": 10, "s": 12},
        {"id": 11, "o": "text"},
        {"id": 12, "x": 9007199254740993},  # not a double exactly
    ]
    good = [
        {"id": 20, "n": 9223372036854775807, "b": False, "x": 1e300, "s": "12", "o": {"k": [1]}},
        {"id": 21, "n": 2.0, "x": 7, "s": "", "extra": "not in the SCHEMA"},
    ]
    messages = [THINGS_SCHEMA, *(record("things", r) for r in bad + good)]
    run = store.load(messages)
    assert store.query("SELECT id, n, b, x, s, o FROM things ORDER BY id") == [
        (20, 9223372036854775807, False, 1e300, "12", '{"k":[1]}'),
        (21, 2, None, 7.0, "", None),
    ]
    rejects = _rejects(store, "things")
    as_text = sorted(json.dumps(r, sort_keys=True) for _, r in rejects)
    assert as_text == sorted(json.dumps(r, sort_keys=True) for r in bad)  # as received
    reasons = {rec["id"]: reason for reason, rec in rejects}
    assert reasons[1] == """field 'n' must be an integer (BIGINT), got "x\""""
    assert reasons[3] == """field 'n' must be an integer (BIGINT), got {"a":1}"""
    assert reasons[4] == "field 'n' must be an integer (BIGINT), got true"
    assert reasons[5] == "field 'n' must be an integer (BIGINT), got 1.5"
    assert reasons["6"] == """field 'id' must be an integer (BIGINT), got "6\""""
    assert reasons[7] == "field 'b' must be true or false, got 7"
    assert reasons[8] == """field 'x' must be a finite number, got "1e400\""""
    assert reasons[9] == """field 's' must be a string, got {"a":1}"""
    assert reasons[10] == "field 's' must be a string, got 12"
    assert reasons[11] == """field 'o' must be a JSON object, got "text\""""
    assert reasons[12] == "field 'x' must be a finite number, got 9007199254740993"
    assert "stream 'things', key id='6': field 'id' must be an integer" in run.stderr
    # A reload adds nothing: no NULL key slipped in, and a reject is stored once.
    store.load(messages)
    assert store.scalar("SELECT count(*) FROM things") == 2
    assert store.scalar("SELECT count(*) FROM things WHERE id IS NULL") == 0
    assert store.scalar("SELECT count(*) FROM _rejects") == len(bad)


def test_strings_shaped_like_other_json_values_load_as_strings_and_the_values_do_not(store):
    """String columns are read typed, where a number, boolean, object or array comes out as its
    JSON text: such text, in a real string or not, has the batch read exactly, and the column
    read as JSON text in later batches. The answer must not depend on which read a batch got."""
    shaped = ["2100", "-5", "1e3", "0.50", "true", "false", "{x}", "[1]", "NaN", "-Infinity"]
    shaped += ["inf", "null", "2024-01-01", "+45 1234", " 12", "tr", "1,5", "Nano", "infinite"]
    not_strings = [b"12", b"-0", b"1E5", b"true", b'{"a":1}', b"[1]", b"NaN", b"-Infinity"]

    def line(record_id: int, value: bytes) -> bytes:
        return b'{"type":"RECORD","stream":"things","record":{"id":%d,"s":%s}}' % (record_id, value)

    # Batch 1 (before anything was learned): plain strings with non-strings among them.
    first = [line(i, json.dumps(f"plain {i}").encode()) for i in range(3)]
    first += [line(100 + i, value) for i, value in enumerate(not_strings)]
    # NaN and Infinity inside an object are not JSON either; inside its strings they are text.
    objects = [b'{"a":NaN}', b'{"a":"NaN and info"}', b'{"a":[1,-Infinity]}', b'{"Inf":"\\"inf"}']
    first += [
        b'{"type":"RECORD","stream":"things","record":{"id":%d,"o":%s}}' % (400 + i, o)
        for i, o in enumerate(objects)
    ]
    # Batch 2: only strings shaped like JSON values. Batch 3: the non-strings again, now that
    # the column is read as JSON text.
    second = [line(200 + i, json.dumps(text).encode()) for i, text in enumerate(shaped)]
    third = [line(300 + i, value) for i, value in enumerate(not_strings)]
    batches = [first, second, third]
    data = singer_bytes([THINGS_SCHEMA]) + b"".join(
        b"\n".join(batch) + b"\n" + singer_bytes([state({"batch": n})])
        for n, batch in enumerate(batches)
    )
    result = store.load(data, batch_size_rows=len(second))
    assert result.states == [{"batch": n} for n in range(len(batches))]
    loaded = dict(store.query("SELECT id, coalesce(s, o::VARCHAR) FROM things"))
    assert loaded == {
        **{i: f"plain {i}" for i in range(3)},
        **{200 + i: text for i, text in enumerate(shaped)},
        401: '{"a":"NaN and info"}',
        403: '{"Inf":"\\"inf"}',
    }
    # NaN and Infinity are not JSON: such a record is kept as its text, a JSON string.
    records = [rec for (rec,) in store.query("SELECT record::VARCHAR FROM _rejects")]
    assert all(orjson.loads(rec) is not None for rec in records)
    rejected = {
        (json.loads(rec) if isinstance(rec, str) else rec)["id"]: reason
        for reason, rec in _rejects(store, "things")
    }
    assert sorted(rejected) == [100 + i for i in range(len(not_strings))] + [
        300 + i for i in range(len(not_strings))
    ] + [400, 402]
    assert rejected.pop(400) == "field 'o' must be a JSON object, got {\"a\":NaN}"
    assert rejected.pop(402) == "field 'o' must be a JSON object, got {\"a\":[1,-Infinity]}"
    assert all(r.startswith("field 's' must be a string, got ") for r in rejected.values())
    assert rejected[104] == rejected[304] == """field 's' must be a string, got {"a":1}"""


def test_store_tables_reject_what_does_not_fit_too(store):
    def line(line_id: str, **extra: object) -> dict:
        base = {"line_id": line_id, "order_id": "o1", "source": "pos", "line_type": "sale"}
        return record("order_lines", {**base, "amount": 10, **extra})

    store.load(
        [
            schema("order_lines", LINE_SCHEMA, ["line_id"]),
            line("l1", amount=12.5),
            line("l2", amount=0.00001),  # DECIMAL(18,4) would round it to 0
            line("l3", amount="12.50"),
            line("l4", quantity=True),
            record("order_lines", {"line_id": 7, "amount": 1}),  # key is a number, column text
        ]
    )
    assert store.query("SELECT line_id, amount::VARCHAR FROM order_lines") == [("l1", "12.5000")]
    reasons = sorted(reason for reason, _ in _rejects(store, "order_lines"))
    assert reasons == [
        "field 'amount' must be a number that fits DECIMAL(18,4) exactly, got \"12.50\"",
        "field 'amount' must be a number that fits DECIMAL(18,4) exactly, got 0.00001",
        "field 'line_id' must be a string, got 7",
        "field 'quantity' must be a number that fits DECIMAL(18,4) exactly, got true",
    ]


@pytest.mark.duckdb_only("the staging read; raw rejects on PostgreSQL: the poison lines test")
def test_a_record_that_is_not_an_object_is_one_reject_and_the_rest_loads(store):
    lines = [
        b'{"type":"RECORD","stream":"things","record":null}',
        b'{"type":"RECORD","stream":"things"}',
        b'{"type":"RECORD","stream":"things","record":[1,2]}',
        b'{"type":"RECORD","stream":"things","record":"text"}',
        b'{"stream":"things","type":"RECORD","record":null}',  # not the fast path's layout
        b'{"stream":"things","type":"RECORD"}',
    ]
    data = singer_bytes([THINGS_SCHEMA, record("things", {"id": 1})]) + b"\n".join(lines) + b"\n"
    result = store.load(data + singer_bytes([state({"at": 1})]))
    assert result.states == [{"at": 1}]
    assert store.query("SELECT id FROM things") == [(1,)]
    rejects = _rejects(store, "things")
    assert sorted(json.dumps(r, separators=(",", ":")) for _, r in rejects) == sorted(
        line.decode() for line in lines
    )
    assert sorted(reason for reason, _ in rejects) == [
        *["RECORD has no record object"] * 4,
        "record is not an object but a string",
        "record is not an object but an array",
    ]


@pytest.mark.duckdb_only("refused at the SCHEMA, before either backend is written")
def test_properties_differing_only_in_case_are_refused_with_one_line(store):
    props = {"properties": {"id": {"type": "integer"}, "Id": {"type": "string"}}}
    result = store.run([schema("things", props, ["id"]), record("things", {"id": 1})])
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "target-loyalty-store: error: input line 1: SCHEMA for stream 'things' has properties "
        "'id' and 'Id', which would be one column (the store's column names ignore case); "
        "rename one (e.g. with a stream map)"
    )
    assert "Traceback" not in result.stderr


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_poison_lines_in_valid_json_are_one_reject_each(store):
    head = b'{"type":"RECORD","stream":"things","record":'
    other_layout = b'{"stream":"things","type":"RECORD","record":'
    poison = [
        head + b'{"id":1,"not_in_schema":' + _deep(200) + b"}}",
        head + b'{"id":2,"o":' + _deep(100_000) + b"}}",
        head + b'{"id":3,"s":"a\\ud800b"}}',  # a lone surrogate, escaped: valid JSON
        other_layout + b'{"id":4,"s":' + _deep(200) + b"}}",
        other_layout + b'{"id":5,"o":' + _deep(100_000) + b"}}",
        other_layout + b'{"id":6,"s":"\\udc00"}}',
    ]
    ok = singer_bytes([record("things", {"id": 10, "o": {"a": json.loads(_deep(120))}})])
    data = singer_bytes([THINGS_SCHEMA]) + b"\n".join(poison) + b"\n" + ok
    result = store.load(data + singer_bytes([state({"at": 1})]))
    assert "Traceback" not in result.stderr
    assert result.states == [{"at": 1}]
    assert store.query("SELECT id FROM things") == [(10,)]
    rejects = _rejects(store, "things")
    assert sorted(r.encode() for _, r in rejects) == sorted(poison)  # the line as received
    assert sorted(reason for reason, _ in rejects) == [
        "record cannot be decoded (invalid high surrogate in string)",
        "record cannot be decoded (no low surrogate in string)",
        *["record is nested deeper than 128 levels"] * 4,
    ]


def test_a_batch_file_rejects_the_same_values_and_poison_lines(store, tmp_path):
    lines = [
        b'{"id":1,"n":"12"}',
        b'{"id":2,"x":' + _deep(300) + b"}",
        b'{"id":3,"s":"\\ud800"}',
        b"[1]",
        b'{"id":4,"n":4,"s":"ok"}',
    ]
    path = tmp_path / "things-1.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    batch = {
        "type": "BATCH",
        "stream": "things",
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "manifest": [path.as_uri()],
    }
    store.load([THINGS_SCHEMA, batch])
    assert store.query("SELECT id, n, s FROM things") == [(4, 4, "ok")]
    rejects = _rejects(store, "things")
    assert len(rejects) == 4
    reasons = sorted(reason for reason, _ in rejects)
    assert reasons[0] == """field 'n' must be an integer (BIGINT), got "12\""""
    assert "line is not an object but an array" in reasons
    assert "record is nested deeper than 128 levels" in reasons
    assert path.exists()  # never deleted: whoever wrote it owns it


# -- property: every record is either loaded with its exact values or rejected ---------------

JSON_TYPES = ["integer", "number", "boolean", "string", "date-time", "date", "object"]
_DATE_TIMES = ["2024-02-29T12:30:00+00:00", "2026-03-29T02:30:00+02:00", "1999-12-31T23:59:59Z"]
_DATES = ["2024-02-29", "1970-01-01"]

any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["12", "1e400", "true", "2024-13-01", *_DATE_TIMES, *_DATES]),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
    st.lists(st.integers(0, 9), max_size=2),
)


def _exact_int(value: float) -> int:
    """The integer the record's JSON text says: `4.404728304088806e+16` is 44047283040888060,
    not the double nearest to it (44047283040888064) that Python's reader makes of it."""
    return int(Decimal(json.dumps(value)))


def _fits(kind: str, value: object, backend: str) -> bool:
    """The oracle: what the README promises fits a column of this JSON-schema type."""
    if value is None:
        return True
    if backend == "postgres" and kind == "string" and "\x00" in str(value):
        return False  # PostgreSQL's text cannot hold NUL
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = _exact_int(value)
        return type(value) is int and -(2**63) <= value < 2**63
    if kind == "number":
        if type(value) is int:
            return float(value) == value
        return type(value) is float and math.isfinite(value)
    if kind == "boolean":
        return type(value) is bool
    if kind == "string":
        return type(value) is str
    if kind == "date-time":  # a date is midnight UTC (README: What fits a column)
        return value in _DATE_TIMES or value in _DATES
    if kind == "date":
        return value in _DATES
    return type(value) is dict


def _stored(kind: str, value: object) -> object:
    """What the store must hold for a value that fits."""
    if value is None:
        return None
    if kind == "integer":
        return _exact_int(value) if isinstance(value, float) else value
    if kind == "number":
        return float(value)  # type: ignore[arg-type]
    if kind == "date-time":
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    if kind == "date":
        return dt.date.fromisoformat(str(value))
    return value


SCHEMA_OF = {
    "date-time": {"type": ["string", "null"], "format": "date-time"},
    "date": {"type": ["string", "null"], "format": "date"},
}


@st.composite
def streams(draw: st.DrawFn) -> dict[str, tuple[dict[str, str], list[dict]]]:
    out = {}
    for n in range(draw(st.integers(1, 3))):
        kinds = draw(
            st.dictionaries(st.sampled_from("abcdefg"), st.sampled_from(JSON_TYPES), max_size=5)
        )
        rows = []
        for i in range(draw(st.integers(0, 12))):
            row: dict = {"id": i}
            for name, kind in kinds.items():
                if draw(st.booleans()):
                    row[name] = draw(any_value | _right(kind))
            rows.append(row)
        out[f"s{n}"] = (kinds, rows)
    return out


def _right(kind: str) -> st.SearchStrategy:
    return {
        "integer": st.integers(-(2**63), 2**63 - 1),
        "number": st.floats(allow_nan=False, allow_infinity=False),
        "boolean": st.booleans(),
        "string": st.text(max_size=8),
        "date-time": st.sampled_from(_DATE_TIMES),
        "date": st.sampled_from(_DATES),
        "object": st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
    }[kind]


def test_every_record_is_loaded_exactly_or_rejected(store):
    # Each PostgreSQL example costs a new database: fewer of them.
    examples = 15 if store.backend == "duckdb" else 4
    settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))(
        given(data=streams())(_check_every_record)
    )(store)


def _check_every_record(store: Store, data: dict) -> None:
    store = store.another(f"prop-{uuid.uuid4().hex[:8]}")  # hypothesis reuses the fixture
    lines: list[bytes] = []
    for stream, (kinds, rows) in data.items():
        props = {"id": {"type": "integer"}}
        props |= {n: SCHEMA_OF.get(k, {"type": [k, "null"]}) for n, k in kinds.items()}
        message = schema(stream, {"type": "object", "properties": props}, ["id"])
        lines.append(json.dumps(message).encode())
        for row in rows:  # json, not orjson: integers up to 2**64 - 1 are valid input too
            lines.append(json.dumps(record(stream, row), separators=(",", ":")).encode())
    store.load(b"\n".join(lines) + b"\n")
    for stream, (kinds, rows) in data.items():
        names = list(kinds)
        fitting = [r for r in rows if all(_fits(kinds[n], r.get(n), store.backend) for n in names)]
        rejected = [r for r in rows if r not in fitting]
        cols = "".join(f", {n}" for n in names)
        loaded = [  # objects compared as values: DuckDB writes "\u001F", Python "\u001f"
            (
                row[0],
                *(
                    json.loads(v) if kinds[n] == "object" and v else v
                    for n, v in zip(names, row[1:], strict=True)
                ),
            )
            for row in store.query(f"SELECT id{cols} FROM {stream} ORDER BY id")
        ]
        assert loaded == [(r["id"], *(_stored(kinds[n], r.get(n)) for n in names)) for r in fitting]
        stored_rejects = [rec for _, rec in _rejects(store, stream)]
        assert sorted(r["id"] for r in stored_rejects) == [r["id"] for r in rejected]
        assert all(r in rejected for r in stored_rejects)  # as received
