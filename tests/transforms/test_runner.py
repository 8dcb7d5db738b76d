"""Run-time behaviour: rejects, on_error: fail, STATE order, unmapped streams."""

from __future__ import annotations

import pytest
from mapper_helpers import compile_text, rec, records, run_messages

from mapper_loyalty.runner import RunError

MAPPING = """
{top}
streams:
  customers:
    to: contacts
    key: [id]
    fields:
      id: Uid
      born: {{path: Birthday, type: date, format: DD-MM-YYYY}}
      points: {{path: Points, type: number}}
"""


def mapping(tmp_path, top: str = ""):
    return compile_text(tmp_path, MAPPING.format(top=top))


def test_unconvertible_records_go_to_rejects_and_the_run_goes_on(tmp_path):
    rows = [
        {"Uid": "u1", "Birthday": "31-01-1990", "Points": "10"},
        {"Uid": "u2", "Birthday": "1990-01-31", "Points": "10"},  # wrong date format
        {"Uid": "u3", "Birthday": None, "Points": "ten"},  # non-numeric amount
        {"Uid": None, "Birthday": None, "Points": 1},  # key is null
        {"Uid": "u5", "Birthday": "01-02-2000", "Points": 2.5},
    ]
    out, runner = run_messages(mapping(tmp_path), [rec("customers", r) for r in rows])
    assert records(out, "contacts") == [
        {"id": "u1", "born": "1990-01-31", "points": 10},
        {"id": "u5", "born": "2000-02-01", "points": 2.5},
    ]
    rejects = records(out, "_rejects")
    assert [(r["stream"], r["rule"], r["record"]) for r in rejects] == [
        ("customers", "born", rows[1]),
        ("customers", "points", rows[2]),
        ("customers", "id", rows[3]),
    ]
    assert "does not match date format DD-MM-YYYY" in rejects[0]["reason"]
    assert "not a number: 'ten'" in rejects[1]["reason"]
    assert "key property id is null" in rejects[2]["reason"]
    assert all(r["rejected_at"].endswith("+00:00") for r in rejects)
    # The _rejects SCHEMA comes once, before the first reject.
    kinds = [(m["type"], m["stream"]) for m in out if m.get("stream") == "_rejects"]
    assert kinds[0] == ("SCHEMA", "_rejects") and kinds.count(("SCHEMA", "_rejects")) == 1
    schema = next(m for m in out if m["type"] == "SCHEMA" and m["stream"] == "_rejects")
    assert schema["key_properties"] == ["reject_id"]
    assert runner.stats["customers"].rejected == 3
    assert "5 records in, 2 out, 0 filtered, 0 empty, 3 rejected" in runner.summary()


def test_reject_id_is_stable_across_runs_and_distinct_per_record(tmp_path):
    rows = [{"Uid": "u2", "Birthday": "x"}, {"Uid": "u3", "Birthday": "x"}]
    first, _ = run_messages(mapping(tmp_path), [rec("customers", r) for r in rows])
    second, _ = run_messages(mapping(tmp_path), [rec("customers", r) for r in reversed(rows)])
    ids_first = {r["record"]["Uid"]: r["reject_id"] for r in records(first, "_rejects")}
    ids_second = {r["record"]["Uid"]: r["reject_id"] for r in records(second, "_rejects")}
    assert ids_first == ids_second
    assert len(set(ids_first.values())) == 2


def test_on_error_fail_stops_with_file_line_rule_and_record(tmp_path):
    m = mapping(tmp_path, top="on_error: fail")
    messages = [
        {
            "type": "SCHEMA",
            "stream": "customers",
            "schema": {"type": "object"},
            "key_properties": ["Uid"],
        },
        rec("customers", {"Uid": "u1", "Birthday": "31-01-1990"}),
        rec("customers", {"Uid": "u2", "Birthday": "1990-01-31"}),
        rec("customers", {"Uid": "u3", "Birthday": "31-01-1990"}),
    ]
    with pytest.raises(RunError) as info:
        run_messages(m, messages)
    message = str(info.value).replace(str(m.path), "m.yaml")
    assert message.startswith("m.yaml:8: stream 'customers' record 2 (Uid='u2'): rule 'born':")
    assert "does not match date format DD-MM-YYYY" in message


def test_state_passes_through_in_order_after_the_records_before_it(tmp_path):
    messages = [
        rec("customers", {"Uid": "u1"}),
        {"type": "STATE", "value": {"bookmarks": {"customers": "a"}}},
        rec("customers", {"Uid": "u2"}),
        rec("customers", {"Uid": "u3", "Points": "bad"}),
        {"type": "STATE", "value": {"bookmarks": {"customers": "b"}}},
    ]
    out, _ = run_messages(mapping(tmp_path), messages)
    sequence = [
        m["record"].get("id") or m["record"].get("stream") if m["type"] == "RECORD" else m["type"]
        for m in out
        if m["type"] in ("RECORD", "STATE")
    ]
    assert sequence == ["u1", "STATE", "u2", "customers", "STATE"]
    assert [m["value"] for m in out if m["type"] == "STATE"] == [
        {"bookmarks": {"customers": "a"}},
        {"bookmarks": {"customers": "b"}},
    ]


def test_other_streams_are_dropped_or_passed(tmp_path):
    other = [rec("tickets", {"Uid": "t"}), rec("customers", {"Uid": "u"})]
    out, runner = run_messages(mapping(tmp_path), other)
    assert [m["stream"] for m in out if m["type"] == "RECORD"] == ["contacts"]
    assert "1 dropped from unmapped streams" in runner.summary()
    out, _ = run_messages(mapping(tmp_path, top="other_streams: pass"), other)
    assert [m["stream"] for m in out if m["type"] == "RECORD"] == ["tickets", "contacts"]


def test_record_version_and_activate_version_follow_the_output_stream(tmp_path):
    messages = [
        {**rec("customers", {"Uid": "u"}), "version": 7},
        {"type": "ACTIVATE_VERSION", "stream": "customers", "version": 7},
    ]
    out, _ = run_messages(mapping(tmp_path), messages)
    assert out[-2] == {
        "type": "RECORD",
        "stream": "contacts",
        "record": {"id": "u", "born": None, "points": None},
        "version": 7,
    }
    assert out[-1] == {"type": "ACTIVATE_VERSION", "stream": "contacts", "version": 7}


def test_schema_message_with_unknown_path_stops_the_run(tmp_path):
    schema = {"type": "object", "properties": {"Uid": {"type": "string"}}}
    with pytest.raises(RunError) as info:
        run_messages(
            mapping(tmp_path), [{"type": "SCHEMA", "stream": "customers", "schema": schema}]
        )
    assert "field 'born': unknown input path 'Birthday'" in str(info.value)


def test_invalid_input_line_is_named(tmp_path):
    from mapper_loyalty.runner import Runner

    runner = Runner(mapping(tmp_path), lambda _b: None)
    with pytest.raises(RunError, match="input line 2: invalid JSON"):
        runner.run([b'{"type":"STATE","value":{}}\n', b"{not json\n"])
