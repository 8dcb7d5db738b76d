"""target-loyalty-store end to end: the real executable, real Singer input, the real store
(a DuckDB file, and a PostgreSQL database)."""

from __future__ import annotations

import re

import orjson
import pytest
from store_helpers import CONTACT_SCHEMA, LINE_SCHEMA, record, schema, singer_bytes, state


def contact(source: str, sid: str, **fields: object) -> dict:
    """A contacts RECORD with sensible timestamps."""
    rec = {
        "source": source,
        "source_id": sid,
        "created_at": "2024-01-01T10:00:00+00:00",
        "updated_at": "2024-01-01T10:00:00+00:00",
    }
    rec.update(fields)
    return record("contacts", rec)


def line(line_id: str, order_id: str, customer: str | None, **fields: object) -> dict:
    """An order_lines RECORD."""
    rec = {
        "line_id": line_id,
        "order_id": order_id,
        "source": "flexpos",
        "source_customer_id": customer,
        "line_type": "purchase",
        "quantity": 1,
        "amount": 10.5,
        "currency": "DKK",
        "occurred_at": "2024-03-01T12:00:00+01:00",
        "updated_at": "2024-03-01T12:00:00+01:00",
    }
    rec.update(fields)
    return record("order_lines", rec)


CONTACTS = schema("contacts", CONTACT_SCHEMA, ["source", "source_id"])
LINES = schema("order_lines", LINE_SCHEMA, ["line_id"])

pytestmark = pytest.mark.both_backends


def test_contacts_merge_across_sources_on_normalised_email(store):
    store.load(
        [
            CONTACTS,
            contact("flexpos", "F1", email="  Ann@Example.COM ", first_name="Ann", city=None),
            contact(
                "billetten",
                "B7",
                email="ann@example.com",
                city="Aarhus",
                first_name="Anna",
                updated_at="2024-02-01T10:00:00+00:00",
            ),
            contact("flexpos", "F2", email="bo@example.com", first_name="Bo"),
        ]
    )
    assert store.query(
        "SELECT contact_id, email, first_name, city FROM contacts ORDER BY contact_id"
    ) == [
        ("email:ann@example.com", "ann@example.com", "Anna", "Aarhus"),
        ("email:bo@example.com", "bo@example.com", "Bo", None),
    ]
    assert store.query("SELECT source, source_id, contact_id FROM contact_ids ORDER BY 1, 2") == [
        ("billetten", "B7", "email:ann@example.com"),
        ("flexpos", "F1", "email:ann@example.com"),
        ("flexpos", "F2", "email:bo@example.com"),
    ]
    # An older record from another source fills gaps but does not overwrite newer values.
    store.load(
        [CONTACTS, contact("pos2", "X", email="ANN@example.com", first_name="Old", last_name="Lee")]
    )
    assert store.query(
        "SELECT first_name, last_name FROM contacts WHERE email = 'ann@example.com'"
    ) == [("Anna", "Lee")]


def test_contacts_match_on_mobile_and_reject_records_without_it(store):
    run = store.load(
        [
            CONTACTS,
            contact("flexpos", "F1", mobile="+45 12 34-56 78", email="a@x.dk"),
            contact("billetten", "B1", mobile="+4512345678", email="other@x.dk"),
            contact("billetten", "B2", mobile=None, email="nomobile@x.dk"),
        ],
        match_field="mobile",
    )
    assert store.query("SELECT contact_id, mobile FROM contacts") == [
        ("mobile:+4512345678", "+4512345678")
    ]
    assert store.scalar("SELECT count(*) FROM contact_ids") == 2
    assert store.query("SELECT stream, reason FROM _rejects") == [("contacts", "no mobile")]
    assert "contacts" in run.stderr and "source_id='B2'" in run.stderr and "no mobile" in run.stderr


@pytest.mark.duckdb_only("consent on both backends: test_consent.py")
def test_unsubscribed_contact_is_not_resubscribed_unless_allowed(store):
    store.load([CONTACTS, contact("flexpos", "F1", email="a@x.dk", newsletter=True)])
    store.load(
        [
            CONTACTS,
            contact(
                "flexpos", "F1", email="a@x.dk", newsletter=False, updated_at="2024-05-01T08:00:00Z"
            ),
        ]
    )
    assert store.query("SELECT newsletter, unsubscribed_at::VARCHAR FROM contacts") == [
        (False, "2024-05-01 08:00:00+00")
    ]
    # A later import (e.g. another source) says newsletter=true: still unsubscribed.
    later = contact(
        "billetten", "B1", email="A@x.dk", newsletter=True, updated_at="2024-06-01T00:00:00Z"
    )
    store.load([CONTACTS, later])
    assert store.query("SELECT newsletter, unsubscribed_at IS NOT NULL FROM contacts") == [
        (False, True)
    ]
    # The pipeline may allow it explicitly.
    store.load([CONTACTS, later], resubscribe_unsubscribed=True)
    assert store.query("SELECT newsletter, unsubscribed_at FROM contacts") == [(True, None)]


@pytest.mark.duckdb_only("consent on both backends: test_consent.py")
def test_never_subscribed_contact_can_subscribe(store):
    store.load([CONTACTS, contact("flexpos", "F1", email="a@x.dk", newsletter=False)])
    assert store.query("SELECT newsletter, unsubscribed_at FROM contacts") == [(False, None)]
    # Later than the false (at the same instant a false would win: README, Consent).
    opt_in = contact("flexpos", "F1", email="a@x.dk", newsletter=True, updated_at="2024-03-01")
    store.load([CONTACTS, opt_in])
    assert store.query("SELECT newsletter FROM contacts") == [(True,)]


def _snapshot(store) -> dict:
    tables = ["contacts", "contact_ids", "order_lines", "_rejects", "visits"]
    return {t: store.rows_as_text(t) for t in tables}


def test_loading_the_same_window_twice_adds_nothing(store):
    visits = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "page": {"type": "string"}},
    }
    window = [
        CONTACTS,
        LINES,
        schema("visits", visits, ["id"]),
        contact("flexpos", "F1", email="a@x.dk", newsletter=True),
        contact(
            "flexpos", "F1", email="a@x.dk", newsletter=False, updated_at="2024-02-01T00:00:00Z"
        ),
        line("l1", "o1", "F1"),
        line("l2", "o1", "F1", amount="not a number"),
        record("visits", {"id": 1, "page": "/"}),
        record("visits", {"id": 2, "page": "/shop"}),
        state({"bookmarks": {"contacts": "2024-02-01"}}),
    ]
    first = store.load(window)
    before = _snapshot(store)
    second = store.load(window)
    assert _snapshot(store) == before
    assert before["order_lines"] and before["_rejects"] and before["visits"]
    assert first.states == second.states == [{"bookmarks": {"contacts": "2024-02-01"}}]
    assert store.query("SELECT outcome, rejects FROM _runs ORDER BY started_at") == [
        ("input_ended", 1),
        ("input_ended", 1),
    ]


def test_unknown_stream_lands_in_a_plain_table_typed_from_its_schema(store):
    props = {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "seen_at": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": "object", "properties": {"a": {"type": "integer"}}},
    }
    rec = {
        "id": 7,
        "name": "x",
        "score": 1.5,
        "active": True,
        "seen_at": "2024-01-02T03:04:05Z",
        "tags": ["a", "b"],
        "meta": {"a": 1},
    }
    store.load(
        [
            schema("loyaltylion_customers", {"type": "object", "properties": props}, ["id"]),
            record("loyaltylion_customers", rec),
        ]
    )
    cols = store.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'loyaltylion_customers' ORDER BY ordinal_position"
    )
    assert (
        cols
        == {
            "duckdb": [
                ("id", "BIGINT"),
                ("name", "VARCHAR"),
                ("score", "DOUBLE"),
                ("active", "BOOLEAN"),
                ("seen_at", "TIMESTAMP WITH TIME ZONE"),
                ("tags", "JSON"),
                ("meta", "JSON"),
            ],
            "postgres": [
                ("id", "bigint"),
                ("name", "text"),
                ("score", "double precision"),
                ("active", "boolean"),
                ("seen_at", "timestamp with time zone"),
                ("tags", "json"),
                ("meta", "json"),
            ],
        }[store.backend]
    )
    assert store.query(
        "SELECT id, name, score, active, seen_at::VARCHAR, tags::VARCHAR, meta->>'a' "
        "FROM loyaltylion_customers"
    ) == [(7, "x", 1.5, True, "2024-01-02 03:04:05+00", '["a","b"]', "1")]


def test_later_schema_with_new_column_adds_it(store):
    v1 = {"type": "object", "properties": {"id": {"type": "integer"}, "a": {"type": "string"}}}
    v2 = {"type": "object", "properties": {**v1["properties"], "b": {"type": "integer"}}}
    store.load([schema("things", v1, ["id"]), record("things", {"id": 1, "a": "x"})])
    store.load(
        [
            schema("things", v2, ["id"]),
            record("things", {"id": 2, "a": "y", "b": 5}),
            LINES,
            line("l1", "o1", None, gift_wrap=True),
        ]
    )
    assert store.query("SELECT id, a, b FROM things ORDER BY id") == [(1, "x", None), (2, "y", 5)]
    # Known streams evolve too: a field the store did not know becomes a column.
    extended = schema(
        "order_lines",
        {
            **LINE_SCHEMA,
            "properties": {**LINE_SCHEMA["properties"], "gift_wrap": {"type": "boolean"}},
        },
        ["line_id"],
    )
    store.load([extended, line("l2", "o2", None, gift_wrap=True)])
    assert store.query("SELECT line_id, gift_wrap FROM order_lines ORDER BY 1") == [
        ("l1", None),
        ("l2", True),
    ]


def test_bad_records_go_to_rejects_with_reason_and_the_rest_loads(store):
    run = store.load(
        [
            LINES,
            line("l1", "o1", None),
            line("l2", "o1", None, amount="12,50 kr"),
            line("l3", "o1", None, occurred_at="yesterday"),
            record("order_lines", {"order_id": "o9", "amount": 1}),  # no key
            line("l4", "o1", None, quantity=2),
        ]
    )
    assert store.query("SELECT line_id FROM order_lines ORDER BY 1") == [("l1",), ("l4",)]
    reasons = store.query("SELECT stream, reason, record->>'line_id' FROM _rejects ORDER BY 3")
    assert reasons == [
        (
            "order_lines",
            "field 'amount' must be a number that fits DECIMAL(18,4) exactly, got \"12,50 kr\"",
            "l2",
        ),
        (
            "order_lines",
            "field 'occurred_at' must be a date-time string, got \"yesterday\"",
            "l3",
        ),
        ("order_lines", "missing key property 'line_id'", None),
    ]
    assert "stream 'order_lines', key line_id='l2': field 'amount'" in run.stderr
    assert "missing key property 'line_id'" in run.stderr


def test_mapper_rejects_are_stored(store):
    rejects_schema = {
        "type": "object",
        "properties": {
            "reject_id": {"type": "string"},
            "stream": {"type": "string"},
            "rule": {"type": "string"},
            "reason": {"type": "string"},
            "record": {"type": "object"},
            "rejected_at": {"type": "string", "format": "date-time"},
        },
    }
    rej = {
        "reject_id": "r1",
        "stream": "customers",
        "rule": "birthday",
        "reason": "cannot parse '31-02-1990' as DD-MM-YYYY",
        "record": {"Uid": "u1", "Birthday": "31-02-1990"},
        "rejected_at": "2024-01-01T00:00:00Z",
    }
    store.load([schema("_rejects", rejects_schema, ["reject_id"]), record("_rejects", rej)])
    # The mapper re-run stamps a new rejected_at on the same reject: the stored row stays.
    again = {**rej, "rejected_at": "2024-06-01T00:00:00Z"}
    store.load([schema("_rejects", rejects_schema, ["reject_id"]), record("_rejects", again)])
    assert store.query(
        "SELECT reject_id, stream, rule, record->>'Uid', rejected_at::VARCHAR FROM _rejects"
    ) == [("r1", "customers", "birthday", "u1", "2024-01-01 00:00:00+00")]


def test_record_before_schema_is_a_clear_error_and_nothing_of_the_batch_is_written(store):
    messages = [
        LINES,
        line("l1", "o1", None),
        state({"n": 1}),
        record("visits", {"id": 1}),
        line("l2", "o1", None),
    ]
    run = store.run(messages)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last == (
        "target-loyalty-store: error: input line 4: RECORD for stream 'visits' arrived before its "
        "SCHEMA (a Singer protocol error); nothing of the current batch was written"
    )
    assert "Traceback" not in run.stderr
    assert run.states == []  # l1 was never committed, so its STATE was never confirmed
    assert store.scalar("SELECT count(*) FROM order_lines") == 0
    assert store.query("SELECT outcome FROM _runs") == [("failed",)]


def test_duplicate_keys_in_one_batch_keep_the_last_record(store):
    store.load(
        [
            LINES,
            line("l1", "o1", None, amount=1),
            line("l1", "o1", None, amount=2),
            line("l1", "o1", None, amount=3),
        ]
    )
    assert store.query("SELECT amount::FLOAT8 FROM order_lines") == [(3.0,)]


def test_a_first_load_that_cannot_go_direct_is_loaded_again_whole_and_once(store):
    """A new table (or a stream without keys) is loaded straight from the batch's files; a
    reject or a repeated key in any stream of the batch rolls the whole transaction back and
    loads it again through staging. Nothing may then be there twice, or missing."""
    props = {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}

    def rows(stream: str, ids: list[object]) -> list[dict]:
        return [record(stream, {"id": i, "v": f"{stream} {n}"}) for n, i in enumerate(ids)]

    messages = [
        schema("clean", props, ["id"]),
        schema("keyless", props, []),
        schema("twice", props, ["id"]),
        schema("bad", props, ["id"]),
        *rows("clean", [1, 2, 3]),
        *rows("keyless", [1, 1, 2]),
        *rows("twice", [1, 2, 1]),
        *rows("bad", [1, "two", 3]),
        state({"at": 1}),
    ]
    run = store.load(messages)
    assert run.states == [{"at": 1}]
    assert store.query("SELECT id, v FROM clean ORDER BY id") == [
        (1, "clean 0"),
        (2, "clean 1"),
        (3, "clean 2"),
    ]
    assert store.query("SELECT id, v FROM keyless ORDER BY v") == [
        (1, "keyless 0"),
        (1, "keyless 1"),
        (2, "keyless 2"),
    ]
    assert store.query("SELECT id, v FROM twice ORDER BY id") == [(1, "twice 2"), (2, "twice 1")]
    assert store.query("SELECT id, v FROM bad ORDER BY id") == [(1, "bad 0"), (3, "bad 2")]
    assert store.scalar("SELECT count(*) FROM _rejects WHERE stream = 'bad'") == 1
    # A second load finds the keyed tables filled (staged upserts); the keyless one appends.
    store.load(messages)
    assert store.query("SELECT count(*) FROM clean") == [(3,)]
    assert store.query("SELECT count(*) FROM keyless") == [(6,)]
    assert store.query("SELECT count(*) FROM twice") == [(2,)]
    assert store.scalar("SELECT count(*) FROM _rejects WHERE stream = 'bad'") == 1


@pytest.mark.duckdb_only("the direct load is the DuckDB file's; a PostgreSQL commit stages all")
def test_a_batch_bigger_than_memory_is_inserted_directly_with_the_same_outcome(store, tmp_path):
    """A batch whose files are over twice memory_limit would spill its staged copy: into an
    empty table (or a stream without keys) it is inserted straight from the files. The rows,
    rejects and STATE are those of a staged load, and it falls back to staging on a reject."""
    # ~135 MB of lines: over twice memory_limit, which must hold DuckDB's 32 MiB JSON buffer
    # and a row group being inserted.
    n = 360_000
    props = {"type": "object", "properties": {"id": {"type": "integer"}, "pad": {"type": "string"}}}
    rows = [{"id": i, "pad": f"{i:06d}" + "p" * 300} for i in range(n)]
    messages = [schema("numbers", props, ["id"]), *(record("numbers", r) for r in rows)]
    tight = {"memory_limit": "64MB", "threads": 1, "batch_size_rows": n}
    first = store.load([*messages, state({"at": 1})], **tight)
    assert f"numbers: {n} loaded directly, 0 rejected" in first.stderr
    assert first.states == [{"at": 1}]
    expected = [(n, n, 0, n - 1, f"{n - 1:06d}" + "p" * 300)]
    stats = "SELECT count(*), count(DISTINCT id), min(id), max(id), max(pad) FROM numbers"
    assert store.query(stats) == expected
    again = store.load([*messages, state({"at": 2})], **tight)  # now there is something to replace
    assert "loaded directly" not in again.stderr and again.states == [{"at": 2}]
    assert store.query(stats) == expected

    # The same records as a BATCH file for a stream without keys, one of them bad: the direct
    # insert stops at it, and the staged load keeps the rest and rejects that one.
    path = tmp_path / "events-1.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*rows, {"id": "x", "pad": ""}]))
    batch = {
        "type": "BATCH",
        "stream": "events",
        "encoding": {"format": "jsonl", "compression": "none"},
        "manifest": [path.as_uri()],
    }
    mixed = store.load([schema("events", props, []), batch, state({"at": 3})], **tight)
    assert f"events: {n} loaded, 1 rejected" in mixed.stderr
    assert store.query(stats.replace("numbers", "events")) == expected
    assert store.query("SELECT reason FROM _rejects WHERE stream = 'events'") == [
        ("""field 'id' must be an integer (BIGINT), got "x\"""",)
    ]


def test_multi_batch_load_loses_no_row(store):
    n = 10_537
    props = {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}
    messages = [schema("numbers", props, ["id"])]
    for i in range(1, n + 1):
        messages.append(record("numbers", {"id": i, "v": f"v{i}"}))
        if i % 1000 == 0:
            messages.append(state({"upto": i}))
    # Lines in another layout (spaces, other key order) take the slow path; they must load too.
    tail = b'{"record": {"v": "late", "id": 999999}, "stream": "numbers", "type": "RECORD"}\n'
    run = store.load(singer_bytes(messages) + tail, batch_size_rows=1000)
    assert store.query(
        "SELECT count(*), count(DISTINCT id), min(id), max(id), sum(id) FROM numbers"
    ) == [(n + 1, n + 1, 1, 999999, n * (n + 1) // 2 + 999999)]
    assert run.states[-1] == {"upto": 10_000}
    assert len(run.states) == 10  # one per committed batch, each after its commit


def test_orders_view_counts_an_order_once_and_each_seat(store):
    seats = [
        line(
            f"t{i}",
            "order-1",
            "F1",
            line_type="ticket",
            event_name="Hamlet",
            zone="A",
            row="3",
            seat=str(i),
        )
        for i in range(1, 6)
    ]
    store.load(
        [
            LINES,
            *seats,
            line("p1", "journal-9", "F1", amount=99.5),
            line("p2", "journal-9", "F1", amount=0.5),
            line("x1", "journal-10", None),
        ]
    )
    # The lines arrived before their contact: resolved through contact_ids at query time.
    store.load([CONTACTS, contact("flexpos", "F1", email="ann@x.dk")])
    rows = store.query(
        "SELECT order_id, contact_id, lines, tickets, amount::DOUBLE PRECISION FROM orders "
        "ORDER BY order_id"
    )
    assert rows == [
        ("journal-10", None, 1, 0, 10.5),
        ("journal-9", "email:ann@x.dk", 2, 0, 100.0),
        ("order-1", "email:ann@x.dk", 5, 5, 52.5),
    ]
    per_contact = store.query(
        "SELECT count(*) AS orders, sum(tickets) AS tickets FROM orders "
        "WHERE contact_id = 'email:ann@x.dk' AND tickets > 0"
    )
    assert per_contact == [(1, 5)]
    assert store.query("SELECT \"row\", seat FROM order_lines WHERE line_id = 't5'") == [("3", "5")]


@pytest.mark.duckdb_only("refused at the SCHEMA, before either backend is written")
def test_reserved_stream_name_is_refused(store):
    run = store.run(
        [schema("orders", {"type": "object", "properties": {"id": {"type": "integer"}}}, ["id"])]
    )
    assert run.returncode == 2
    assert "stream 'orders' would overwrite the store's own 'orders'" in run.stderr.splitlines()[-1]


@pytest.mark.duckdb_only("the input reader and batching, the same code before either backend")
def test_batches_never_exceed_batch_size_rows(store):
    props = {"type": "object", "properties": {"id": {"type": "integer"}}}
    messages = [schema("numbers", props, ["id"])]
    messages += [record("numbers", {"id": i}) for i in range(500)]
    messages.append(state({"upto": 500}))  # a STATE mid-batch must not let it overfill
    messages += [record("numbers", {"id": i}) for i in range(500, 3_500)]
    run = store.load(messages, batch_size_rows=1000)
    commits = [ln for ln in run.stderr.splitlines() if "committed numbers:" in ln]
    assert [c.split("committed numbers: ")[1].split(" loaded")[0] for c in commits] == [
        "1000",
        "1000",
        "1000",
        "500",
    ]
    assert store.scalar("SELECT count(DISTINCT id) FROM numbers") == 3_500


@pytest.mark.duckdb_only("the input reader and batching, the same code before either backend")
def test_interleaved_streams_and_states_in_large_input_all_land_in_order(store):
    # Enough bytes for many 1 MiB reads: whole blocks of one stream, blocks with a STATE or
    # a second stream inside, and lines split across reads must all give the same rows.
    wide = {"type": "object", "properties": {"id": {"type": "integer"}, "pad": {"type": "string"}}}
    messages = [schema("numbers", wide, ["id"]), schema("other", wide, ["id"])]
    n = 40_000
    for i in range(n):
        messages.append(record("numbers", {"id": i, "pad": "x" * (i % 97)}))
        if i % 977 == 0:
            messages.append(record("other", {"id": i, "pad": "o"}))
        if i % 5_000 == 4_999:
            messages.append(state({"upto": i}))
    run = store.load(messages, batch_size_rows=7_000)
    assert store.query("SELECT count(*), count(DISTINCT id), sum(id) FROM numbers") == [
        (n, n, n * (n - 1) // 2)
    ]
    assert store.query("SELECT count(*) FROM other") == [(len(range(0, n, 977)),)]
    assert store.scalar("SELECT sum(length(pad)) FROM numbers") == sum(i % 97 for i in range(n))
    commits = [ln for ln in run.stderr.splitlines() if "committed " in ln]
    sizes = [sum(int(k) for k in re.findall(r"(\d+) loaded", ln)) for ln in commits]
    assert max(sizes) <= 7_000 and sum(sizes) == n + len(range(0, n, 977))
    # Each commit emits the latest STATE before it: in order, none invented, the last one last.
    upto = [st["upto"] for st in run.states]
    assert upto == sorted(set(upto)) and set(upto) <= set(range(4_999, n, 5_000))
    assert upto[-1] == n - 1


@pytest.mark.duckdb_only("an older DuckDB file is migrated; PostgreSQL: pgschema.install")
def test_an_older_store_is_migrated_in_place(store):
    import duckdb

    old = duckdb.connect(str(store.db))
    old.execute("CREATE TABLE order_lines (line_id VARCHAR NOT NULL, amount DECIMAL(18, 4))")
    old.execute("INSERT INTO order_lines VALUES ('old-1', 5)")
    old.close()
    store.load([LINES, line("l1", "o1", None, row="7", seat="12")])
    assert store.query(
        'SELECT line_id, amount::DOUBLE, "row", seat FROM order_lines ORDER BY 1'
    ) == [
        ("l1", 10.5, "7", "12"),
        ("old-1", 5.0, None, None),
    ]
    assert store.scalar("SELECT count(*) FROM orders") == 2


@pytest.mark.duckdb_only("config validation, before either backend is opened")
def test_bad_config_is_one_clear_line(store):
    run = store.run([LINES], match_field="phone")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "target-loyalty-store: error: config is invalid: "
        "'phone' is not one of ['email', 'mobile'] in config['match_field']"
    )
    assert "Traceback" not in run.stderr


@pytest.mark.duckdb_only("DuckDB's memory_limit and threads, the same code on both")
def test_out_of_memory_is_one_line_with_advice_and_threads_setting_loads(store):
    props = {"type": "object", "properties": {"id": {"type": "integer"}, "pad": {"type": "string"}}}
    messages = [schema("numbers", props, ["id"])]
    messages += [record("numbers", {"id": i, "pad": "p" * 200}) for i in range(30_000)]
    messages.append(state({"upto": 30_000}))
    starved = store.run(messages, memory_limit="8MB")
    assert starved.returncode == 2
    assert "DuckDB ran out of its memory_limit reading a batch" in starved.stderr
    assert "raise memory_limit, or lower batch_size_rows or threads" in starved.stderr
    assert "Traceback" not in starved.stderr and starved.states == []
    ok = store.load(messages, memory_limit="100MB", threads=1)
    assert ok.states == [{"upto": 30_000}]
    assert store.scalar("SELECT count(DISTINCT id) FROM numbers") == 30_000


@pytest.mark.duckdb_only("DuckDB's memory_limit and threads, the same code on both")
def test_a_batch_too_big_for_two_threads_loads_on_one_instead_of_failing(store):
    # Each DuckDB thread reading JSON holds its own buffers: 27 MB of records fit 64MB on one
    # thread but not on two. The load goes on, on one thread, and says so; nothing is lost.
    props = {"type": "object", "properties": {"id": {"type": "integer"}, "pad": {"type": "string"}}}
    messages = [schema("numbers", props, ["id"])]
    messages += [record("numbers", {"id": i, "pad": "p" * 200}) for i in range(100_000)]
    messages.append(state({"upto": 100_000}))
    run = store.run(messages, memory_limit="64MB", threads=2)
    assert run.returncode == 0, run.stderr
    assert "did not fit memory_limit on 2 threads; reading on 1 thread" in run.stderr
    assert run.states == [{"upto": 100_000}]
    assert store.scalar("SELECT count(DISTINCT id) FROM numbers") == 100_000


def test_a_bad_line_after_full_batches_keeps_them_and_their_state(store):
    props = {"type": "object", "properties": {"id": {"type": "integer"}}}
    messages = [schema("numbers", props, ["id"])]
    for i in range(1, 30_001):
        messages.append(record("numbers", {"id": i}))
        if i % 10_000 == 9_999:  # so the third batch is still loading when the bad line comes
            messages.append(state({"upto": i}))
    run = store.run(singer_bytes(messages) + b"{not json\n", batch_size_rows=10_000)
    assert run.returncode == 2
    assert "not valid JSON" in run.stderr
    # The three full batches were complete before the bad line: committed, STATE emitted.
    assert run.states[-1] == {"upto": 29_999}
    assert store.scalar("SELECT count(DISTINCT id) FROM numbers") == 30_000
