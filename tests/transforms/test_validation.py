"""Mistakes in a mapping fail at compile time with file:line and the field at fault."""

from __future__ import annotations

import json

import pytest
from mapper_helpers import CATALOG, FLEXPOS_CATALOG, FLEXPOS_MAPPING, write_mapping

from mapper_loyalty import MappingError, compile_mapping

HEADER = """
streams:
  customers:
    to: contacts
    key: [id]
    fields:
      id: Uid
"""


def compile_error(tmp_path, text: str, catalog=CATALOG) -> str:
    path = write_mapping(tmp_path, text)
    with pytest.raises(MappingError) as info:
        compile_mapping(path, catalog=catalog)
    message = str(info.value)
    assert "\n" not in message  # one line for the user
    return message.replace(str(path), "m.yaml")


def test_unknown_input_path_names_file_line_and_field(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      email: Emial\n")
    assert msg.startswith("m.yaml:7: stream 'customers' field 'email': unknown input path 'Emial'")


def test_unknown_nested_path(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      card: cards.0.CardNo\n")
    assert msg.startswith("m.yaml:7: stream 'customers' field 'card': unknown input path")


def test_cast_that_cannot_apply_to_the_source_type(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      born: {path: CustomerNumber, type: date}\n")
    assert msg.startswith("m.yaml:7: stream 'customers' field 'born': cast to date cannot apply")
    assert "integer" in msg


def test_lower_on_a_number_is_an_error(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      n: {path: Amount, lower: true}\n")
    assert msg.startswith("m.yaml:7: stream 'customers' field 'n': lower applies to strings")


def test_duplicate_output_field(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      email: Email\n      email: Uid\n")
    assert msg.startswith("m.yaml:8: duplicate key 'email' (first defined on line 7)")


def test_extra_collides_with_a_declared_field(tmp_path):
    msg = compile_error(tmp_path, "unmapped: extra\n" + HEADER + "      extra: Email\n")
    assert msg.startswith("m.yaml:9: stream 'customers' field 'extra': duplicate output field")


def test_unknown_rule_option_is_named(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      e: {path: Email, lowercase: true}\n")
    assert msg.startswith("m.yaml:7: stream 'customers' field 'e': unknown key 'lowercase'")


def test_unknown_type_and_bad_date_format(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      e: {path: Email, type: text}\n")
    assert "field 'e': unknown type 'text'" in msg
    msg = compile_error(tmp_path, HEADER + "      b: {path: Birthday, type: date, format: abc}\n")
    assert msg.startswith("m.yaml:7: stream 'customers' field 'b': date format 'abc'")


def test_stream_missing_from_catalog(tmp_path):
    msg = compile_error(tmp_path, HEADER.replace("customers:", "customer:"))
    assert msg.startswith("m.yaml:2: stream 'customer': stream not in the catalog")


def test_key_must_be_an_output_field(tmp_path):
    msg = compile_error(tmp_path, HEADER.replace("key: [id]", "key: [uid]"))
    assert msg.startswith("m.yaml:4: stream 'customers' key: key property 'uid' is not")


def test_invalid_yaml_names_the_line(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      e: {path: Email\n")
    assert msg.startswith("m.yaml:8: invalid YAML")


def test_explode_path_must_be_an_array(tmp_path):
    text = """
    streams:
      journals:
        to: lines
        explode: {path: Uid, as: line}
        fields:
          id: Uid
    """
    msg = compile_error(tmp_path, text)
    assert msg.startswith("m.yaml:4: stream 'journals' explode: path 'Uid' is string")


def test_element_paths_are_checked_against_the_item_schema(tmp_path):
    text = """
    streams:
      journals:
        to: lines
        explode: {path: Lines, as: line}
        fields:
          qty: line.Qty
    """
    msg = compile_error(tmp_path, text)
    assert msg.startswith("m.yaml:6: stream 'journals' field 'qty': unknown input path 'line.Qty'")


def test_catalog_file_given_by_path(tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(CATALOG))
    msg = compile_error(tmp_path, HEADER + "      x: Nope\n", catalog=catalog)
    assert f"not in {catalog}" in msg


def test_flexpos_mapping_is_valid_against_the_real_tap_catalog():
    """The shipped mapping compiles against catalogs/flexpos.json (the tap's own catalog)."""
    assert FLEXPOS_CATALOG.exists(), "catalogs/flexpos.json is missing"
    mapping = compile_mapping(FLEXPOS_MAPPING, catalog=FLEXPOS_CATALOG)
    assert {s: m.output for s, m in mapping.streams.items()} == {
        "customers": "contacts",
        "journals": "order_lines",
        "tickets": "order_lines",
        "memberships": "order_lines",
    }
    assert mapping.key_properties("contacts") == ["source", "source_id"]
    assert mapping.key_properties("order_lines") == ["line_id"]


def test_map_keys_that_can_never_match_the_source_type(tmp_path):
    msg = compile_error(tmp_path, HEADER + "      e: {path: Email, map: {1: true, 0: false}}\n")
    assert msg.startswith("m.yaml:7: stream 'customers' field 'e': map keys are integer")
    assert "source is string" in msg


def test_explode_alias_may_not_hide_an_input_field(tmp_path):
    text = """
    streams:
      journals:
        to: lines
        explode: {path: Lines, as: Uid}
        fields:
          n: Uid.LineNumber
    """
    msg = compile_error(tmp_path, text)
    assert msg.startswith("m.yaml:4: stream 'journals' explode: as: 'Uid' hides the input field")


def test_a_catalog_that_declares_cards_as_one_object_accepts_the_index_path(tmp_path):
    """The guide's shape in the catalog: `cards.0.Cardnumber` still validates and is typed."""
    card = {
        "type": ["object", "null"],
        "properties": {"Cardnumber": {"type": ["integer", "null"]}},
    }
    props = {"Uid": {"type": "string"}, "cards": card}
    catalog = {"streams": [{"tap_stream_id": "customers", "schema": {"properties": props}}]}
    text = HEADER + "      card: {path: cards.0.Cardnumber, type: string}\n"
    mapping = compile_mapping(write_mapping(tmp_path, text), catalog=catalog)
    assert mapping.output_schema("contacts", {"customers": {"properties": props}})
    # ... and a cast the source type rules out is still caught through the object.
    bad = HEADER + "      card: {path: cards.0.Cardnumber, type: date}\n"
    assert "cannot apply to source type integer" in compile_error(tmp_path, bad, catalog=catalog)
    # A step that names no field of the object is still an unknown path.
    unknown = HEADER + "      card: cards.0.Nope\n"
    assert "unknown input path 'cards.0.Nope'" in compile_error(tmp_path, unknown, catalog=catalog)
