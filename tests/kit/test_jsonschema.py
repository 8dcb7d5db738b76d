"""The kit's JSON-Schema type walker: one reading of type lists and anyOf/oneOf for the mapper's
checks and output schemas and the store's column types."""

from __future__ import annotations

import pytest

from singer_kit.jsonschema import (
    branches,
    declared_types,
    json_types,
    not_null,
    nullable,
    string_formats,
    types_text,
)
from target_loyalty_store.store import duckdb_type

NESTED = {
    "anyOf": [
        {"type": "null"},
        {"oneOf": [{"type": "string", "format": "date"}, {"type": ["integer", "null"]}]},
        "not a schema",
    ]
}


def test_branches_flatten_nested_any_of_and_one_of():
    assert branches(NESTED) == [
        {"type": "null"},
        {"type": "string", "format": "date"},
        {"type": ["integer", "null"]},
    ]
    assert branches({"type": "string"}) == [{"type": "string"}]


def test_json_types_leave_out_null_and_say_nothing_for_an_open_schema():
    assert json_types(NESTED) == {"string", "integer"}
    assert json_types({"type": ["null", "boolean"]}) == {"boolean"}
    assert json_types({}) == set()
    assert json_types("not a schema") == set()


def test_declared_types_are_open_when_any_branch_does_not_say():
    assert declared_types(NESTED) == {"null", "string", "integer"}
    assert declared_types({"anyOf": [{"type": "string"}, {}]}) is None
    assert declared_types({"description": "anything"}) is None


def test_string_formats_come_from_the_string_branches():
    assert string_formats(NESTED) == {"date"}
    assert string_formats({"type": ["string", "null"]}) == {""}
    assert string_formats({"type": "integer", "format": "date"}) == set()


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, {"type": ["string", "null"]}),
        ({"type": ["string", "null"]}, {"type": ["string", "null"]}),
        ({}, {}),
    ],
)
def test_nullable(schema, expected):
    assert nullable(schema) == expected


def test_not_null_and_types_text():
    assert not_null({"type": ["integer", "null"], "x": 1}) == {"type": ["integer"], "x": 1}
    assert not_null({"type": "integer"}) == {"type": "integer"}
    assert types_text({"string", "integer"}) == "integer/string"
    assert types_text(set()) == "null"


@pytest.mark.parametrize(
    ("prop", "column"),
    [
        ({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}, "TIMESTAMPTZ"),
        ({"oneOf": [{"type": "string", "format": "date"}]}, "DATE"),
        ({"type": ["integer", "null"]}, "BIGINT"),
        ({"anyOf": [{"type": "integer"}, {"type": "number"}]}, "DOUBLE"),
        ({"anyOf": [{"type": "string"}, {"type": "string", "format": "date"}]}, "VARCHAR"),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "JSON"),
        ({}, "JSON"),
    ],
)
def test_the_store_types_columns_through_the_kit(prop, column):
    assert duckdb_type(prop) == column


def test_an_any_of_that_is_not_a_list_is_not_a_branch():
    # Not valid JSON Schema; both readers fall back to the property's own type.
    prop = {"type": "string", "anyOf": {"type": "integer"}}
    assert branches(prop) == [prop]
    assert duckdb_type(prop) == "VARCHAR"
