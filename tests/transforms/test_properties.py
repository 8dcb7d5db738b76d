"""Property-based: mapping never loses or invents records; date formats agree with pendulum;
the generated record functions map exactly like the plain interpreter of the same rules."""

from __future__ import annotations

import datetime as dt
import typing as t

import msgspec
import orjson
import pendulum
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapper_helpers import (
    FLEXPOS_MAPPING,
    REPO,
    compile_text,
    rec,
    records,
    run_messages,
    write_mapping,
)

from mapper_loyalty import CompiledMapping, RuleFailure, compile_mapping, interpret
from mapper_loyalty.compiler import FieldRule
from mapper_loyalty.rules import CAST_TYPES, Segment
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


# --- the generated record functions against the plain interpreter (the oracle) ----------------
#
# For any record, a stream's generated ``map_record`` and ``interpret.map_record`` walking the
# same compiled rules give the same output (same fields, order, values and JSON types) or
# reject it with the same rule, line and reason.

ODD_TEXT = [
    "",
    " ",
    "x",
    "  MiXed Case ",
    "\u00a0nbsp\u00a0",
    "İstanbul",
    "STRASSE ß",
    "ǅungla",
    "😀 emoji",
    "a\u2028b",
    "\u0301combining",
    "yes",
    "NO",
    "1",
    "0",
    "2.5",
    "1e3",
    "12.0",
    "31-01-2020",
    "29-02-2021",
    "2020-01-31",
    "2020-01-31 10:11",
    "2026-03-29 02:21",
    "2020-01-31T10:11:00+01:00",
    "2020-01-31T10:11:00",
    "{Uid}",
]
padding = st.sampled_from(["", " ", "\t", "\u00a0", "\n "])
texts = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.text(max_size=8),
    st.builds(lambda a, b, c: a + b + c, padding, st.sampled_from(ODD_TEXT), padding),
)
# Text weighs most: that is where trim, lower, maps, formats and casts differ.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    texts,
    texts,
)
# Keys the paths read and keys no rule reads (for unmapped: extra).
noise_keys = st.one_of(
    st.sampled_from(["a", "b", "0", "ü", "Uid", "other", "Ünread"]), st.text(max_size=4)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(noise_keys, inner, max_size=4)
    ),
    max_leaves=10,
)


def _deep(depth: int) -> t.Any:
    value: t.Any = "bottom"
    for n in range(depth):
        value = {"a": value, "0": n} if n % 3 else [value]
    return value


leaves = st.one_of(scalars, scalars, scalars, json_values, st.integers(20, 400).map(_deep))


def _along(draw: st.DrawFn, segments: list[Segment], leaf: t.Any) -> t.Any:
    """A value that holds ``leaf`` at the path, in one of the shapes the path rule reads
    (an object's key, a list's index, an object read as a one-element list, a wildcard)."""
    if not segments:
        return leaf
    seg, inner = segments[0], _along(draw, segments[1:], leaf)
    if seg.wildcard:
        return draw(st.permutations([inner, draw(json_values)]))
    if seg.index is None:
        return {seg.key: inner}
    shapes: list[t.Any] = [{seg.key: inner}]
    if seg.index >= 0:
        shapes.append([*(draw(json_values) for _ in range(seg.index)), inner])
    else:
        shapes.append([inner, *(draw(json_values) for _ in range(-seg.index - 1))])
    if seg.index in (0, -1) and type(inner) is dict:
        shapes.append(inner)
    return draw(st.sampled_from(shapes))


moments = st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2080, 1, 1)).map(
    lambda d: d.replace(microsecond=0)
)
zones = st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=2))])


def _plausible(rule: FieldRule | None, clean: bool) -> st.SearchStrategy[t.Any]:
    """Leaves for the path a rule reads; in a clean record only values the rule accepts (a
    map key, text in its date format): in a record with any bad value, the first reject hides
    what every other field became."""
    if rule is None or (rule.vmap is None and rule.cast is None):
        return scalars if clean else leaves
    if rule.vmap is not None:
        accepted = st.sampled_from(list(rule.vmap))
    elif rule.cast in ("date", "datetime") and rule.fmt is not None:
        accepted = moments.map(lambda d, fmt=rule.fmt: pendulum.instance(d).format(fmt))
    elif rule.cast == "date":
        accepted = moments.map(lambda d: d.date().isoformat())
    elif rule.cast == "datetime":
        accepted = st.builds(lambda d, z: d.replace(tzinfo=z).isoformat(), moments, zones)
    else:
        accepted = st.sampled_from(CAST_VALUES[rule.cast])
    return accepted if clean else st.one_of(leaves, accepted)


@st.composite
def records_for(draw: st.DrawFn, mapping: CompiledMapping) -> dict[str, t.Any]:
    """Random records that reach the mapping's paths: at each path (or not) a random value —
    null, a wrong type, odd Unicode, padded text, a very deep value — amid random other keys;
    half of them clean (a value at every path, one each rule accepts)."""
    record = draw(st.dictionaries(noise_keys, st.one_of(st.none(), json_values), max_size=3))
    elements = draw(st.lists(st.dictionaries(noise_keys, json_values, max_size=2), max_size=3))
    clean = draw(st.booleans())
    for stream in mapping.streams.values():
        rules = {rule.name: rule for rule in stream.fields}
        for name, ref in stream.all_refs():
            if name == "explode" or not (clean or draw(st.booleans())):
                continue
            placed = _along(draw, ref.segments, draw(_plausible(rules.get(name), clean)))
            if type(placed) is not dict:
                continue  # a path that starts with an index: the record is an object
            if not ref.on_element:
                record.update(placed)
            elif elements:
                draw(st.sampled_from(elements)).update(placed)
        if stream.explode is not None and draw(st.integers(0, 4)):
            items = draw(st.sampled_from([elements, elements, None, {}, "x", [None, 1]]))
            placed = _along(draw, stream.explode.segments, items)
            if type(placed) is dict:
                record.update(placed)
    return record


def _outcome(fn: t.Callable[[t.Any], t.Any], record: dict) -> tuple[t.Any, ...]:
    try:
        return ("output", msgspec.json.encode(fn(record)))
    except RuleFailure as failure:
        return ("rejected", failure.rule, failure.line, failure.reason)


def _assert_same_as_interpreted(mapping: CompiledMapping, record: dict) -> None:
    for stream in mapping.streams.values():
        generated = _outcome(stream.map_record, record)
        interpreted = _outcome(lambda r, s=stream: interpret.map_record(s, r), record)
        assert generated == interpreted, (stream.input, record, stream.map_record.source)


SHIPPED_MAPPINGS = [
    compile_mapping(FLEXPOS_MAPPING),
    compile_mapping(REPO / "bench" / "mappings" / "journal_lines.yaml"),
]


@pytest.mark.parametrize("mapping", SHIPPED_MAPPINGS, ids=["flexpos_to_store", "bench"])
@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data())
def test_generated_code_maps_like_the_interpreter_on_the_shipped_mappings(mapping, data):
    for _ in range(3):
        _assert_same_as_interpreted(mapping, data.draw(records_for(mapping)))


# Random mappings: every rule kind and modifier, two input streams into one output stream.
CAST_VALUES: dict[str | None, list[t.Any]] = {
    None: ["x", 1, True, 2.5],
    "string": ["x", 1, True],
    "integer": [1, "2", 3.0],
    "number": [1.5, "2", 3],
    "boolean": [True, "yes", 0],
    "date": ["2020-01-31"],
    "datetime": ["2020-01-31T10:11:00+01:00", "2020-01-31 10:11"],
}
FORMATS_FOR = {"date": ("DD-MM-YYYY", ["31-01-2020"]), "datetime": ("YYYY-MM-DD HH:mm", [])}
PATH_KEYS = ["a", "b", "Uid", "ü", "L"]
MAP_KEYS = [0, 1, True, False, "a", "x", "YES", 2.5]


def _yaml(value: t.Any) -> str:
    """YAML flow text (JSON scalars are YAML; map keys keep their type)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml(k)}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return orjson.dumps(value).decode()


@st.composite
def paths(draw: st.DrawFn, *, wildcard: bool, element: bool) -> str:
    steps = [draw(st.sampled_from(PATH_KEYS))]
    tail = [*PATH_KEYS, "0", "1", "-1", *(["*"] if wildcard else [])]
    steps += draw(st.lists(st.sampled_from(tail), max_size=3))
    if element and draw(st.booleans()):
        steps.insert(0, "it")
    return ".".join(steps)


@st.composite
def field_rules(draw: st.DrawFn, element: bool) -> t.Any:
    kind = draw(st.sampled_from(["short", "path", "path", "coalesce", "const", "template"]))
    if kind == "short":
        return draw(paths(wildcard=True, element=element))
    if kind == "const":
        return {"const": draw(st.sampled_from(["Flex", 1, 2.5, True, None]))}
    if kind == "template":
        a, b = (
            draw(paths(wildcard=False, element=element)),
            draw(paths(wildcard=False, element=element)),
        )
        return {"template": f"{{{a}}}:{{{{lit}}}}:{{{b}}}"}
    rule: dict[str, t.Any] = {}
    if kind == "path":
        rule["path"] = draw(paths(wildcard=True, element=element))
    else:
        rule["coalesce"] = draw(
            st.lists(paths(wildcard=False, element=element), min_size=2, max_size=3)
        )
    cast = draw(st.sampled_from([None, *CAST_TYPES]))
    values = CAST_VALUES[cast]
    if cast is not None:
        rule["type"] = cast
        if cast in FORMATS_FOR and draw(st.booleans()):
            rule["format"], formatted = FORMATS_FOR[cast]
            values = formatted or ["2020-01-31 10:11"]
    for flag in ("lower", "trim"):
        if draw(st.booleans()):
            rule[flag] = True
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(MAP_KEYS), min_size=1, max_size=4, unique_by=repr))
        rule["map"] = {k: draw(st.sampled_from([*values, None])) for k in keys}
    if draw(st.booleans()):
        rule["default"] = draw(st.sampled_from(values))
    elif draw(st.booleans()):
        rule["required"] = True
    return rule


@st.composite
def mappings_text(draw: st.DrawFn) -> str:
    explode = draw(st.booleans())
    first: dict[str, t.Any] = {"to": "out"}
    if explode:
        first["explode"] = {"path": "L", "as": "it"}
    first["unmapped"] = draw(st.sampled_from(["drop", "extra"]))
    second: dict[str, t.Any] = {"to": "out"}
    key = draw(st.sampled_from([[], ["k"], ["k", "k2"], ["k2", "k"]]))
    for stream, on_element in ((first, explode), (second, False)):
        names = draw(st.lists(st.sampled_from(["f0", "f1", "f2", "f3", "f4"]), unique=True))
        stream["key"] = key
        stream["fields"] = {name: draw(field_rules(on_element)) for name in ["k", "k2", *names]}
    return _yaml({"streams": {"s1": first, "s2": second}})


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mappings_text(), data=st.data())
def test_generated_code_maps_like_the_interpreter_on_random_mappings(tmp_path, text, data):
    mapping = compile_mapping(write_mapping(tmp_path, text))
    for _ in range(4):
        _assert_same_as_interpreted(mapping, data.draw(records_for(mapping)))
