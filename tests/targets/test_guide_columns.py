"""The columns issue 11 added (member number, sku, VAT, receipt, store, event, order, status):
typed by schema.sql, and added in place to a store an older target wrote."""

from __future__ import annotations

from decimal import Decimal

import duckdb
from store_helpers import CONTACT_SCHEMA, LINE_SCHEMA, record, schema

NEW_CONTACT = {"member_number": "VARCHAR"}
NEW_LINE = {
    "sku": "VARCHAR",
    "unit_price": "DECIMAL(18,4)",
    "vat_rate": "DECIMAL(9,4)",
    "receipt_number": "VARCHAR",
    "store_id": "VARCHAR",
    "event_id": "VARCHAR",
    "order_number": "VARCHAR",
    "status": "VARCHAR",
}
TEXT = {"type": ["string", "null"]}
NUMBER = {"type": ["number", "null"]}  # what mapper-loyalty declares for `type: number`
CONTACTS = schema(
    "contacts",
    {**CONTACT_SCHEMA, "properties": {**CONTACT_SCHEMA["properties"], "member_number": TEXT}},
    ["source", "source_id"],
)
LINES = schema(
    "order_lines",
    {
        **LINE_SCHEMA,
        "properties": {
            **LINE_SCHEMA["properties"],
            **{k: NUMBER if k in ("unit_price", "vat_rate") else TEXT for k in NEW_LINE},
        },
    },
    ["line_id"],
)
TIMES = {"created_at": "2024-01-01T10:00:00+00:00", "updated_at": "2024-01-01T10:00:00+00:00"}
LINE = {
    "order_id": "o1",
    "source": "flexpos",
    "source_customer_id": "c1",
    "line_type": "purchase",
    "quantity": 2,
    "amount": 40.2,
    "currency": "DKK",
    "occurred_at": "2024-03-01T12:00:00+01:00",
    "updated_at": "2024-03-01T12:00:00+01:00",
}


def _columns(db, table: str) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def _load_new_fields(store) -> None:
    store.load(
        [
            CONTACTS,
            record(
                "contacts",
                {
                    "source": "flexpos",
                    "source_id": "c1",
                    "email": "a@x.dk",
                    "member_number": "10007",
                    **TIMES,
                },
            ),
            LINES,
            record(
                "order_lines",
                {
                    "line_id": "l1",
                    **LINE,
                    "sku": "1004",
                    "unit_price": 20.1,
                    "vat_rate": 25.0,
                    "receipt_number": "500007",
                    "store_id": "st-1",
                },
            ),
            record(
                "order_lines",
                {
                    "line_id": "t1",
                    **LINE,
                    "line_type": "ticket",
                    "event_id": "ev-1",
                    "order_number": "800003",
                    "status": "cancelled",
                },
            ),
        ]
    )


def _check_new_fields(store) -> None:
    assert store.query("SELECT member_number FROM contacts WHERE email = 'a@x.dk'") == [("10007",)]
    assert store.query(
        "SELECT line_id, sku, unit_price, vat_rate, receipt_number, store_id, event_id, "
        "order_number, status FROM order_lines WHERE line_id IN ('l1', 't1') ORDER BY 1"
    ) == [
        ("l1", "1004", Decimal("20.1000"), Decimal("25.0000"), "500007", "st-1", None, None, None),
        ("t1", None, None, None, None, None, "ev-1", "800003", "cancelled"),
    ]


def test_a_new_store_has_the_columns_with_their_types(store):
    _load_new_fields(store)
    contacts, lines = _columns(store.db, "contacts"), _columns(store.db, "order_lines")
    assert {k: contacts[k] for k in NEW_CONTACT} == NEW_CONTACT
    assert {k: lines[k] for k in NEW_LINE} == NEW_LINE
    _check_new_fields(store)


def test_a_store_from_before_the_columns_gains_them_in_place(store):
    # A store as the previous target left it: same tables without the new columns, one row each.
    store.load(
        [
            CONTACTS,
            record(
                "contacts", {"source": "flexpos", "source_id": "c0", "email": "old@x.dk", **TIMES}
            ),
        ]
    )
    con = duckdb.connect(str(store.db))
    con.execute("DROP VIEW orders")
    con.execute("DROP VIEW order_lines_by_contact")
    for table, cols in (("contacts", NEW_CONTACT), ("order_lines", NEW_LINE)):
        for col in cols:
            con.execute(f'ALTER TABLE {table} DROP COLUMN "{col}"')
    con.execute(
        "INSERT INTO order_lines (line_id, order_id, source, amount) "
        "VALUES ('old-1', 'o0', 'flexpos', 5)"
    )
    con.close()
    assert not set(NEW_LINE) & set(_columns(store.db, "order_lines"))

    _load_new_fields(store)
    contacts, lines = _columns(store.db, "contacts"), _columns(store.db, "order_lines")
    # schema.sql's types, not the SCHEMA's (number would have made vat_rate a DOUBLE).
    assert {k: contacts[k] for k in NEW_CONTACT} == NEW_CONTACT
    assert {k: lines[k] for k in NEW_LINE} == NEW_LINE
    _check_new_fields(store)
    assert store.query("SELECT email, member_number FROM contacts WHERE email = 'old@x.dk'") == [
        ("old@x.dk", None)
    ]
    assert store.query("SELECT amount::DOUBLE, sku FROM order_lines WHERE line_id = 'old-1'") == [
        (5.0, None)
    ]
    assert store.scalar("SELECT count(*) FROM orders") == 2  # the views are back
