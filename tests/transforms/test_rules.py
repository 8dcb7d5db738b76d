"""Each mapping rule on its own: what a user writes in YAML and what comes out."""

from __future__ import annotations

import pytest
from mapper_helpers import compile_text, rec, records, run_messages


def test_plain_rename_and_drop_of_unmapped_fields(one_stream):
    out = one_stream("id: Uid\nmail: Email", [{"Uid": "u1", "Email": "a@b.dk", "Secret": 1}])
    assert out == [{"id": "u1", "mail": "a@b.dk"}]


def test_dot_path_index_and_missing_steps_give_null(one_stream):
    rows = [
        {"cards": [{"Cardnumber": 7, "Cardname": "Gold"}, {"Cardnumber": 8}]},
        {"cards": []},
        {"cards": None},
        {},
    ]
    out = one_stream("first: cards.0.Cardnumber\nlast: cards.-1.Cardnumber", rows)
    assert out == [
        {"first": 7, "last": 8},
        {"first": None, "last": None},
        {"first": None, "last": None},
        {"first": None, "last": None},
    ]


def test_cards_as_an_array_or_as_one_object_give_the_same_card(one_stream):
    # The FlexPOS guide shows `cards` as one object; the emulator sends an array. One rule
    # (a numeric step on an object reads it as a one-element list) reads both.
    card = {"Cardnumber": 7000000003, "Cardname": "Pension"}
    rows = [{"cards": [card]}, {"cards": card}, {"cards": {"0": {"Cardnumber": 5}}}]
    fields = """
        number: {path: cards.0.Cardnumber, type: string}
        name: cards.0.Cardname
        last: cards.-1.Cardnumber
        second: cards.1.Cardnumber
        all: cards.*.Cardnumber
        in_text: {template: "card {cards.0.Cardnumber}"}
    """
    out = one_stream(fields, rows)
    same = {"number": "7000000003", "name": "Pension", "last": 7000000003}
    assert out[0] == {**same, "second": None, "all": [7000000003], "in_text": "card 7000000003"}
    assert out[1] == out[0]
    # An object whose key is the step's text keeps meaning that key.
    assert out[2]["number"] == "5" and out[2]["in_text"] == "card 5"


def test_configurable_separator(one_stream):
    rows = [{"cards": [{"Cardnumber": 7}], "a.b": 1}]
    out = one_stream("card: cards/0/Cardnumber\ndotted: a.b", rows, extra='separator: "/"')
    assert out == [{"card": 7, "dotted": 1}]


def test_wildcard_gives_a_list_and_casts_each_element(one_stream):
    rows = [{"cards": [{"Cardnumber": 7}, {"Cardname": "no number"}, {"Cardnumber": 9}]}]
    out = one_stream(
        "numbers: cards.*.Cardnumber\ntexts: {path: cards.*.Cardnumber, type: string}", rows
    )
    assert out == [{"numbers": [7, 9], "texts": ["7", "9"]}]


def test_casts(one_stream):
    rows = [{"n": "12", "f": "12.50", "b": "Yes", "i": 3, "z": 0}]
    fields = """
        as_int: {path: n, type: integer}
        as_num: {path: f, type: number}
        as_bool: {path: b, type: boolean}
        as_text: {path: i, type: string}
        zero_bool: {path: z, type: boolean}
    """
    out = one_stream(fields, rows)
    assert out == [
        {"as_int": 12, "as_num": 12.5, "as_bool": True, "as_text": "3", "zero_bool": False}
    ]


def test_date_with_format_and_datetime_with_zone(one_stream):
    rows = [{"d": "31-01-1990", "ts": "2024-05-01 10:11", "iso": "2024-05-01T10:11:12+02:00"}]
    fields = """
        birthday: {path: d, type: date, format: DD-MM-YYYY}
        local: {path: ts, type: datetime, format: "YYYY-MM-DD HH:mm"}
        iso: {path: iso, type: datetime}
        iso_day: {path: iso, type: date}
    """
    out = one_stream(fields, rows, extra="timezone: Europe/Copenhagen")
    assert out == [
        {
            "birthday": "1990-01-31",
            "local": "2024-05-01T10:11:00+02:00",
            "iso": "2024-05-01T10:11:12+02:00",
            "iso_day": "2024-05-01",
        }
    ]


@pytest.mark.parametrize(
    "fmt", ["YYYY-MM-DD HH:mm", "YYYY-MM-DDTHH:mm", "dddd YYYY-MM-DD HH:mm", None]
)
def test_local_times_in_the_dst_gap_and_repeated_hour_follow_the_shared_rule(one_stream, fmt):
    # Same rule as tap-flexpos and the sandbox (PEP 495 fold=0): a skipped spring time keeps
    # the offset before the gap (so it moves forward an hour), a repeated autumn time is its
    # first, summer-time occurrence. Every value comes out as a local time that exists.
    days = {"2026-03-29": "Sunday", "2026-10-25": "Sunday"}
    cases = {
        "2026-03-29 02:21": "2026-03-29T03:21:00+02:00",
        "2026-03-29 03:21": "2026-03-29T03:21:00+02:00",
        "2026-10-25 02:30": "2026-10-25T02:30:00+02:00",
        "2026-10-25 03:30": "2026-10-25T03:30:00+01:00",
    }

    def text(local: str) -> str:
        if fmt is None:  # no format: ISO text without an offset
            return local.replace(" ", "T")
        if fmt.startswith("dddd"):
            return f"{days[local[:10]]} {local}"
        return local if " " in fmt else local.replace(" ", "T")

    spec = f"{{path: ts, type: datetime{'' if fmt is None else f', format: {fmt!r}'}}}"
    out = one_stream(f"at: {spec}", [{"ts": text(k)} for k in cases], "timezone: Europe/Copenhagen")
    assert [r["at"] for r in out] == list(cases.values())


def test_value_map_and_null_passes_through(one_stream):
    rows = [{"c": 1}, {"c": 0}, {"c": None}]
    out = one_stream("member: {path: c, map: {1: true, 0: false}}", rows)
    assert out == [{"member": True}, {"member": False}, {"member": None}]


def test_lower_and_trim(one_stream):
    out = one_stream("email: {path: e, lower: true, trim: true}", [{"e": "  Anne@Example.DK "}])
    assert out == [{"email": "anne@example.dk"}]


def test_coalesce_skips_null_and_empty(one_stream):
    rows = [{"a": None, "b": "", "c": "x"}, {"a": "first", "c": "x"}, {}]
    out = one_stream("v: {coalesce: [a, b, c]}", rows)
    assert out == [{"v": "x"}, {"v": "first"}, {"v": None}]


def test_const_default_and_template(one_stream):
    rows = [{"Uid": "u1", "n": 2, "x": None}, {"Uid": "u2"}]
    fields = """
        source: {const: flexpos}
        qty: {const: 1, type: number}
        x: {path: x, default: none-given}
        line_id: {template: "flexpos:journal:{Uid}:{n}"}
    """
    out = one_stream(fields, rows)
    assert out == [
        {"source": "flexpos", "qty": 1, "x": "none-given", "line_id": "flexpos:journal:u1:2"},
        {"source": "flexpos", "qty": 1, "x": "none-given", "line_id": None},
    ]


def test_filter_conditions(tmp_path):
    mapping = compile_text(
        tmp_path,
        """
        streams:
          s:
            to: out
            filter:
              all:
                - {path: active, eq: true}
                - {path: email, not_null: true}
                - any:
                    - {path: tier, in: [gold, silver]}
                    - {path: points, gte: 100}
                - not: {path: country, eq: SE}
            fields:
              id: id
        """,
    )
    rows = [
        {"id": 1, "active": True, "email": "a", "tier": "gold", "country": "DK"},  # kept
        {"id": 2, "active": True, "email": "a", "tier": "bronze", "points": 150},  # kept
        {"id": 3, "active": True, "email": "a", "tier": "bronze", "points": 50},  # < 100
        {"id": 4, "active": False, "email": "a", "tier": "gold"},  # inactive
        {"id": 5, "active": True, "email": None, "tier": "gold"},  # no email
        {"id": 6, "active": True, "email": "a", "tier": "gold", "country": "SE"},  # not SE
        {"id": 7, "active": True, "email": "a", "tier": "gold", "points": None},  # kept
    ]
    messages, runner = run_messages(mapping, [rec("s", r) for r in rows])
    assert [r["id"] for r in records(messages, "out")] == [1, 2, 7]
    assert runner.stats["s"].filtered == 4


def test_explode_one_record_per_element_with_parent_fields(tmp_path):
    mapping = compile_text(
        tmp_path,
        """
        streams:
          journals:
            to: order_lines
            key: [line_id]
            explode: {path: Lines, as: line}
            fields:
              line_id: {template: "j:{Uid}:{line.LineNumber}"}
              order_id: Uid
              kind: {path: IsReturn, map: {true: return, false: purchase}}
              qty: line.Quantity
        """,
    )
    rows = [
        {
            "Uid": "j1",
            "IsReturn": False,
            "Lines": [{"LineNumber": 1, "Quantity": 2}, {"LineNumber": 2, "Quantity": 1}],
        },
        {"Uid": "j2", "IsReturn": True, "Lines": []},
    ]
    messages, runner = run_messages(mapping, [rec("journals", r) for r in rows])
    assert records(messages, "order_lines") == [
        {"line_id": "j:j1:1", "order_id": "j1", "kind": "purchase", "qty": 2},
        {"line_id": "j:j1:2", "order_id": "j1", "kind": "purchase", "qty": 1},
    ]
    assert runner.stats["journals"].empty == 1


def test_unmapped_fields_kept_under_extra(tmp_path):
    mapping = compile_text(
        tmp_path,
        """
        unmapped: extra
        streams:
          s:
            to: out
            fields:
              id: Uid
              card: cards.0.Cardnumber
        """,
    )
    messages, _ = run_messages(mapping, [rec("s", {"Uid": "u", "cards": [], "Other": {"x": 1}})])
    assert records(messages, "out") == [{"id": "u", "card": None, "extra": {"Other": {"x": 1}}}]


def test_output_schema_types_come_from_the_rules(tmp_path):
    from mapper_helpers import CATALOG

    mapping = compile_text(
        tmp_path,
        """
        streams:
          customers:
            to: contacts
            key: [id]
            fields:
              id: Uid
              email: Email
              birthday: {path: Birthday, type: date, format: DD-MM-YYYY}
              member: {path: IsClubMember, map: {1: true, 0: false}}
              n: {path: CustomerNumber, type: string}
              source: {const: flexpos}
              cards: cards.*.Cardnumber
              updated: {path: ModifiedDate, type: datetime, required: true}
        """,
        catalog=CATALOG,
    )
    messages, _ = run_messages(
        mapping, [rec("customers", {"Uid": "u", "ModifiedDate": "2024-01-01T00:00:00Z"})]
    )
    schema = next(m for m in messages if m["type"] == "SCHEMA")
    assert schema["stream"] == "contacts"
    assert schema["key_properties"] == ["id"]
    assert schema["schema"]["properties"] == {
        "id": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "birthday": {"type": ["string", "null"], "format": "date"},
        "member": {"type": ["boolean", "null"]},
        "n": {"type": ["string", "null"]},
        "source": {"type": ["string"]},
        "cards": {"type": ["array", "null"], "items": {"type": ["integer", "null"]}},
        "updated": {"type": ["string"], "format": "date-time"},
    }


def test_required_and_strict_casts_reject(one_stream):
    fields = """
        n: {path: n, type: integer}
        b: {path: b, type: boolean}
        at: {path: at, type: datetime, required: true}
    """
    rows = [
        {"n": 2.0, "b": "no", "at": "2024-01-01T00:00:00Z"},
        {"n": 2.5, "b": "no", "at": "2024-01-01T00:00:00Z"},  # fractional integer
        {"n": 1, "b": "maybe", "at": "2024-01-01T00:00:00Z"},  # not a boolean
        {"n": 1, "b": True},  # required missing
        {"n": 1, "b": True, "at": "yesterday"},  # not ISO 8601
    ]
    out = one_stream(fields, rows)
    assert out[0] == {"n": 2, "b": False, "at": "2024-01-01T00:00:00+00:00"}
    assert [(r["rule"], r["reason"].split(" (mapping")[0]) for r in out[1:]] == [
        ("n", "not an integer: 2.5"),
        ("b", "not a boolean: 'maybe'"),
        ("at", "required value is missing or null"),
        ("at", "not an ISO 8601 date-time: 'yesterday'"),
    ]


def test_map_values_are_cast_and_unknown_values_rejected(one_stream):
    rows = [{"s": "A"}, {"s": "C"}, {"s": "B"}]
    out = one_stream("code: {path: s, map: {A: '1', B: '2'}, type: integer}", rows)
    assert out[:2] == [{"code": 1}, {"code": 2}]
    assert out[2]["rule"] == "code" and "value 'C' is not in the map" in out[2]["reason"]


def test_more_filter_operators(tmp_path):
    mapping = compile_text(
        tmp_path,
        """
        streams:
          s:
            to: out
            filter:
              - {path: kind, ne: test}
              - {path: country, not_in: [SE, NO]}
              - {path: amount, lt: 1000}
              - {path: deleted_at, null: true}
            fields:
              id: id
        """,
    )
    rows = [
        {"id": 1, "kind": "sale", "country": "DK", "amount": 10},
        {"id": 2, "kind": "test", "country": "DK", "amount": 10},
        {"id": 3, "kind": "sale", "country": "SE", "amount": 10},
        {"id": 4, "kind": "sale", "country": "DK", "amount": 5000},
        {"id": 5, "kind": "sale", "country": "DK", "amount": 1, "deleted_at": "2024-01-01"},
        {"id": 6, "kind": "sale", "country": "DK", "amount": "lots"},  # cannot compare
    ]
    messages, runner = run_messages(mapping, [rec("s", r) for r in rows])
    assert [r["id"] for r in records(messages, "out")] == [1]
    assert [r["rule"] for r in records(messages, "_rejects")] == ["filter"]
    assert runner.stats["s"].filtered == 4


def test_template_braces_and_number_formatting(one_stream):
    out = one_stream('t: {template: "{{x}}-{n}-{f}-{b}"}', [{"n": 7, "f": 2.0, "b": True}])
    assert out == [{"t": "{x}-7-2-true"}]


def test_python_api_of_the_singer_mapper(tmp_path):
    """LoyaltyMapper's map_*_message hooks give the same result as the CLI loop."""
    from mapper_helpers import write_mapping

    from mapper_loyalty.mapper import LoyaltyMapper

    path = write_mapping(tmp_path, "streams:\n  s:\n    to: out\n    fields:\n      id: Uid\n")
    mapper = LoyaltyMapper(config={"mapping_file": str(path)})
    [schema] = mapper.map_schema_message(
        {"type": "SCHEMA", "stream": "s", "schema": {"type": "object"}, "key_properties": []}
    )
    [record] = mapper.map_record_message(rec("s", {"Uid": "u1", "x": 1}))
    [state] = mapper.map_state_message({"type": "STATE", "value": {"a": 1}})
    assert (schema.stream, record.stream, record.record) == ("out", "out", {"id": "u1"})
    assert state.value == {"a": 1}
