"""Property-based: mapping never loses or invents records; date formats agree with pendulum."""

from __future__ import annotations

import datetime as dt

import pendulum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapper_helpers import compile_text, rec, records, run_messages

from singer_kit.dates import compile_format

MAPPING = """
streams:
  journals:
    to: lines
    key: [line_id]
    filter: {path: Kind, ne: skip}
    explode: {path: Lines, as: line}
    fields:
      line_id: {template: "{Uid}:{line.N}"}
      order_id: Uid
      qty: {path: line.Q, type: number}
      day: {path: Day, type: date, format: DD-MM-YYYY}
  customers:
    to: contacts
    key: [id]
    filter: {path: Active, eq: true}
    fields:
      id: Uid
      n: {path: N, type: integer}
"""

quantities = st.one_of(
    st.integers(-5, 5),
    st.floats(-100, 100, allow_nan=False),
    st.sampled_from(["3", "1.5", "x", "", None]),
)
days = st.one_of(
    st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)).map(lambda d: d.strftime("%d-%m-%Y")),
    st.sampled_from(["2024-01-31", "31/01/2024", "32-01-2024", None]),
)
journal = st.fixed_dictionaries(
    {
        "Kind": st.sampled_from(["sale", "skip", None]),
        "Day": days,
        "Lines": st.one_of(
            st.none(), st.lists(st.fixed_dictionaries({"Q": quantities}), max_size=4)
        ),
    }
)
customer = st.fixed_dictionaries(
    {
        "Active": st.sampled_from([True, False, None]),
        "N": st.sampled_from([1, "2", "3.5", "z", None]),
    }
)


def _number_ok(q: object) -> bool:
    if q is None or isinstance(q, (int, float)):
        return True
    try:
        float(q)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _day_ok(day: str | None) -> bool:
    if day is None:
        return True
    try:
        dt.datetime.strptime(day, "%d-%m-%Y")
    except ValueError:
        return False
    return len(day) == 10


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    stream=st.lists(
        st.one_of(journal.map(lambda j: ("journals", j)), customer.map(lambda c: ("customers", c))),
        max_size=25,
    )
)
def test_every_input_record_is_output_filtered_or_rejected(tmp_path, stream):
    mapping = compile_text(tmp_path, MAPPING)
    messages = []
    for i, (name, row) in enumerate(stream):
        row = dict(row, Uid=f"{name[0]}{i}")
        if name == "journals" and row["Lines"] is not None:
            row["Lines"] = [dict(line, N=n) for n, line in enumerate(row["Lines"])]
        messages.append(rec(name, row))
    out, runner = run_messages(mapping, messages)

    # Counts add up for every input stream.
    for name, stats in runner.stats.items():
        sent = sum(1 for m in messages if m["stream"] == name)
        assert stats.records_in == sent
        assert stats.emitted + stats.filtered + stats.empty + stats.rejected == sent

    lines, contacts = records(out, "lines"), records(out, "contacts")
    rejects = records(out, "_rejects")
    assert len(lines) == runner.stats["journals"].records_out
    assert len(contacts) == runner.stats["customers"].records_out
    assert len(rejects) == sum(s.rejected for s in runner.stats.values())

    # Each input record is accounted for exactly once, and the outcome is the expected one.
    produced = {line["order_id"] for line in lines} | {c["id"] for c in contacts}
    rejected = [r["record"]["Uid"] for r in rejects]
    assert len(rejected) == len(set(rejected))
    for m in messages:
        row = m["record"]
        uid = row["Uid"]
        if m["stream"] == "journals":
            if row["Kind"] == "skip":
                expected = "filtered"
            elif not row["Lines"]:
                expected = "empty"
            elif not _day_ok(row["Day"]) or not all(_number_ok(x["Q"]) for x in row["Lines"]):
                expected = "rejected"
            else:
                expected = "output"
                own = [line for line in lines if line["order_id"] == uid]
                assert [line["line_id"] for line in own] == [
                    f"{uid}:{n}" for n in range(len(row["Lines"]))
                ]
        else:
            n_ok = row["N"] in (1, "2", None)
            expected = (
                "filtered" if row["Active"] is not True else ("output" if n_ok else "rejected")
            )
        actual = "output" if uid in produced else "rejected" if uid in rejected else "other"
        assert actual == (expected if expected in ("output", "rejected") else "other"), (
            row,
            expected,
        )


FORMATS = [
    "DD-MM-YYYY",
    "YYYY-MM-DD",
    "DD/MM/YYYY HH:mm",
    "YYYY-MM-DDTHH:mm:ss",
    "D.M.YYYY",
    "DD-MM-YYYY hh:mm A",
    "MMMM D, YYYY",
]


@settings(max_examples=80, deadline=None, database=None)
@given(
    moment=st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2080, 1, 1)).map(
        lambda d: d.replace(microsecond=0)
    ),
    fmt=st.sampled_from(FORMATS),
)
def test_compiled_date_formats_agree_with_pendulum(moment, fmt):
    text = pendulum.instance(moment, tz="UTC").format(fmt)
    ours = compile_format(fmt)(text)
    theirs = pendulum.from_format(text, fmt, tz="UTC")
    ours_dt = (
        ours if isinstance(ours, dt.datetime) else dt.datetime(ours.year, ours.month, ours.day)
    )
    assert ours_dt.replace(tzinfo=None) == theirs.naive()
