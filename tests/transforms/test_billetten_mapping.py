"""Billetten's `10_2` permission field survives as a YAML key, as a dot path and as a column
(the store's column: tests/e2e/test_e2e_billetten.py), and the shipped mapping turns each
permission change into its consent statement."""

from __future__ import annotations

from pathlib import Path

from mapper_helpers import compile_text, rec, records, run_messages

from mapper_loyalty import compile_mapping
from mapper_loyalty.rules import make_getter, parse_path
from singer_kit.yamlio import load_mapping

ROOT = Path(__file__).resolve().parents[2]


def test_a_key_written_with_an_underscore_stays_its_text():
    doc = load_mapping("10_2: a\n1_000: b\n'x': 1\n5: c\n0.5: d\n", "m.yaml")
    assert list(doc) == ["10_2", "1_000", "x", 5, 0.5]  # plain numbers stay numbers
    assert doc.line_of("10_2") == 1


def test_10_2_is_a_key_in_a_path_never_an_index():
    (step,) = parse_path("10_2", ".")
    assert step.index is None
    assert make_getter(parse_path("change.10_2", "."))({"change": {"10_2": "yes"}}) == "yes"
    assert make_getter(parse_path("a.1", "."))({"a": ["x", "y"]}) == "y"  # indexes still work
    assert make_getter(parse_path("a.-1", "."))({"a": ["x", "y"]}) == "y"


def test_an_output_field_and_a_path_named_10_2(tmp_path):
    mapping = compile_text(
        tmp_path,
        """
        streams:
          buyers:
            key: [id]
            fields:
              id: id
              10_2: permissions.10_2
              related: {path: permissions.10_2, map: {"yes": true, "no": false, "": null}}
        """,
    )
    out, _ = run_messages(
        mapping,
        [
            {"type": "SCHEMA", "stream": "buyers", "key_properties": ["id"], "schema": {}},
            rec("buyers", {"id": "B1", "permissions": {"10_2": "yes"}}),
            rec("buyers", {"id": "B2", "permissions": {"10_2": ""}}),
        ],
    )
    assert records(out, "buyers") == [
        {"id": "B1", "10_2": "yes", "related": True},
        {"id": "B2", "10_2": "", "related": None},
    ]


def test_the_shipped_mapping_makes_one_statement_per_permission_change():
    mapping = compile_mapping(ROOT / "transforms/mappings/billetten_to_store.yaml")
    buyer = {
        "id": "B100004",
        "email": " Ann@Example.DK ",
        "permissions": {"10_2": "no", "consent_email": "no"},
        "permission_history": [
            {
                "changed_at": "2026-01-01T10:00:00Z",
                "changed_by": "checkout",
                "10_2": "yes",
                "consent_email": "",
            },
            {
                "changed_at": "2026-02-01T10:00:00Z",
                "changed_by": "unsubscribe_form",
                "10_2": "no",
                "consent_email": "no",
            },
        ],
        "created_at": "2026-01-01T09:00:00Z",
        "updated_at": "2026-02-01T10:00:00Z",
    }
    out, _ = run_messages(mapping, [rec("buyers", buyer)])
    statements = [
        (r["updated_at"], r["consent_related"], r["newsletter"], r["10_2"])
        for r in records(out, "contacts")
    ]
    assert statements == [
        ("2026-01-01T10:00:00+00:00", True, None, "yes"),
        ("2026-02-01T10:00:00+00:00", False, False, "no"),
    ]
    assert {r["email"] for r in records(out, "contacts")} == {"ann@example.dk"}
