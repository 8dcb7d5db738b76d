"""target-voyado's own arithmetic and shaping (the flows run against the emulator elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from target_voyado.contacts import ContactMapper
from target_voyado.receipts import ReceiptBuilder, cents, spread

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CONFIG = {
    "default_store_external_id": "store01",
    "group_currency": "DKK",
    "exchange_rates": {"SEK": 0.65},
}


def row(**fields):
    return {
        "receipt_id": "flexpos:journal:1",
        "kind": "PURCHASE",
        "email": "ann@example.com",
        "created_at": "2026-03-29T01:30:00+00:00",
        "currency": "DKK",
        "items": [
            {"sku": "A", "quantity": 1, "amount": 10.00},
            {"sku": "B", "quantity": 1, "amount": 10.00},
            {"sku": "C", "quantity": 1, "amount": 10.00},
        ],
        **fields,
    }


def test_100_over_three_equal_lines_adds_up_to_the_cent():
    assert spread(10000, [3000, 3000, 3000]) == [3334, 3333, 3333]
    assert sum(spread(10000, [3000, 3000, 3000])) == 10000


@pytest.mark.parametrize(
    ("discount", "lines"),
    [(10000, [1, 1, 1]), (999, [333, 333, 334]), (1, [5000, 5000]), (12345, [1999, 7, 0, 86421])],
)
def test_spreading_is_proportional_and_exact(discount, lines):
    shares = spread(discount, lines)

    assert sum(shares) == discount
    for share, line in zip(shares, lines, strict=True):
        assert abs(share - discount * line / sum(lines)) < 1  # off by less than a cent


def test_a_receipt_discount_of_100_over_three_lines_is_on_the_lines_not_a_line_of_its_own():
    receipt = ReceiptBuilder(CONFIG, NOW).build(
        row(
            discount="100.00",
            items=[{"sku": s, "quantity": 1, "amount": "100.00"} for s in "ABC"],
        )
    )

    assert [i["grossPaidPrice"] for i in receipt["items"]] == [66.66, 66.67, 66.67]
    assert [i["discounts"] for i in receipt["items"]] == [
        [{"type": "RECEIPT", "value": -33.34}],
        [{"type": "RECEIPT", "value": -33.33}],
        [{"type": "RECEIPT", "value": -33.33}],
    ]
    assert receipt["totalGrossPrice"] == 200.0
    assert cents(sum(i["grossPaidPrice"] for i in receipt["items"])) == 20000
    assert receipt["paymentMethods"] == [{"type": "OTHER", "value": 200.0}]


def test_a_return_has_negative_quantities_and_total_and_positive_line_prices():
    receipt = ReceiptBuilder(CONFIG, NOW).build(
        row(kind="RETURN", items=[{"sku": "A", "quantity": -2, "amount": -59.90, "vat_rate": 25}])
    )

    assert receipt["totalGrossPrice"] == -59.9
    assert receipt["items"] == [
        {
            "type": "RETURN",
            "sku": "A",
            "quantity": -2,
            "grossPaidPrice": 59.9,
            "taxPercent": 25.0,
            "taxAmount": 11.98,
        }
    ]


def test_local_time_with_offset_currency_and_exchange_rate():
    builder = ReceiptBuilder(CONFIG, NOW)

    dkk = builder.build(row())
    sek = builder.build(row(currency="sek"))

    assert dkk["createdDate"] == "2026-03-29T03:30:00+02:00"  # after the spring change
    assert "exchangeRateToGroupCurrency" not in dkk
    assert (sek["currency"], sek["exchangeRateToGroupCurrency"]) == ("SEK", 0.65)
    with pytest.raises(ValueError, match="no currency"):
        builder.build(row(currency=None))
    with pytest.raises(ValueError, match="no exchange rate for EUR"):
        builder.build(row(currency="EUR"))


def test_payments_from_the_source_else_the_configured_default():
    config = {**CONFIG, "default_payment_method": {"type": "CARD", "description": "Terminal"}}
    builder = ReceiptBuilder(config, NOW)
    paid = [{"type": "CASH", "value": 10}, {"type": "CARD", "value": "20.00"}]

    assert builder.build(row())["paymentMethods"] == [
        {"type": "CARD", "description": "Terminal", "value": 30.0}
    ]
    assert [p["value"] for p in builder.build(row(payment_methods=paid))["paymentMethods"]] == [
        10.0,
        20.0,
    ]


def test_history_window_is_24_months_by_default():
    builder = ReceiptBuilder(CONFIG, NOW)

    assert builder.too_old(row(created_at="2024-05-31T23:59:59+00:00"))
    assert not builder.too_old(row(created_at="2024-06-01T00:00:00+00:00"))
    assert not ReceiptBuilder({**CONFIG, "history_months": 0}, NOW).too_old(
        row(created_at="2001-01-01T00:00:00+00:00")
    )


def test_a_contact_never_carries_an_empty_value_and_gets_country_language_and_store():
    mapper = ContactMapper({"markets": {"DK": "dk-online"}, "stores": {}})

    contact = mapper.payload(
        {
            "contact_id": "email:ann@example.com",
            "email": "ann@example.com",
            "first_name": "Ann",
            "last_name": "  ",
            "city": None,
            "country_code": "dk",
            "newsletter": False,
            "consent_related": None,
        }
    )

    assert contact.attributes == {
        "email": "ann@example.com",
        "firstName": "Ann",
        "countryCode": "DK",
        "language": "da",
    }
    assert contact.preferences == {"acceptsEmail": False}
    assert contact.store_external_id == "dk-online"
    with pytest.raises(ValueError, match="no email to identify it by"):
        mapper.payload({"contact_id": "mobile:+45", "mobile": "+4512345678"})
