"""A store receipt (the `voyado_receipts` model's row) in Voyado's receipt shape.

Voyado's rules (api-contracts.md, receipts): a currency always; ``createdDate`` in local time
with its offset; ``totalGrossPrice`` incl. VAT, negative for a return; each item's
``grossPaidPrice`` positive and its ``quantity`` negative on a RETURN; a receipt-level discount
spread over the item lines, never a line of its own; ``exchangeRateToGroupCurrency`` when the
POS currency is not the group's. Receipts cannot be changed, so a cancelled ticket or a return
is a receipt of its own (kind RETURN) with its own ``uniqueReceiptId``.

Money is handled in integer cents, so the lines add up to the total exactly.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import orjson

from singer_kit.dates import parse_instant

CENT = Decimal("0.01")
MATCH_KEYS = {"email": "email", "mobilePhone": "mobile", "memberNumber": "member_number"}


def cents(value: t.Any) -> int:
    """An amount (number or numeric text) in integer cents, rounded half up."""
    if value is None or value == "":
        return 0
    return int((Decimal(str(value)) / CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def money(value_cents: int) -> float:
    """Cents as the decimal number Voyado takes (``.`` as the decimal mark)."""
    return float(Decimal(value_cents) * CENT)


def spread(discount_cents: int, line_cents: list[int]) -> list[int]:
    """The discount's share of each line, in proportion to the line's value, in whole cents
    that add up exactly to the discount (largest remainder; ties go to the earlier line).

    100.00 over three lines of equal value is 33.34 + 33.33 + 33.33. Lines of no value share
    nothing unless every line is worth nothing (then the discount is split evenly).
    """
    if not line_cents:
        return []
    weights = [abs(c) for c in line_cents]
    total = sum(weights)
    if total == 0:
        weights, total = [1] * len(line_cents), len(line_cents)
    sign = -1 if discount_cents < 0 else 1
    amount = abs(discount_cents)
    shares = [amount * w // total for w in weights]
    left = amount - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))
    for i in by_remainder[:left]:
        shares[i] += 1
    return [sign * s for s in shares]


class ReceiptBuilder:
    """Builds receipts from model rows with the target's settings (README: Receipts)."""

    def __init__(self, config: t.Mapping[str, t.Any], now: dt.datetime) -> None:
        self.zone = ZoneInfo(str(config.get("timezone") or "Europe/Copenhagen"))
        self.contact_key = str(config.get("contact_key") or "email")
        self.group_currency = str(config.get("group_currency") or "").upper() or None
        self.rates = {str(k).upper(): v for k, v in (config.get("exchange_rates") or {}).items()}
        self.stores = {str(k): str(v) for k, v in (config.get("store_external_ids") or {}).items()}
        self.default_store = config.get("default_store_external_id")
        self.payment = dict(config.get("default_payment_method") or {"type": "OTHER"})
        self.promotion_ids = {
            str(k): str(v) for k, v in (config.get("promotion_ids") or {}).items()
        }
        welcome = config.get("welcome_promotion_code"), config.get("welcome_promotion_id")
        if all(welcome):
            self.promotion_ids.setdefault(str(welcome[0]), str(welcome[1]))
        months = int(config.get("history_months", 24))
        self.months = months
        self.oldest = _months_before(now, months) if months > 0 else None

    def too_old(self, row: t.Mapping[str, t.Any]) -> bool:
        """Before the history window (Voyado recommends at most 24 months of receipts)."""
        created = parse_instant(str(row.get("created_at")), "created_at")
        return self.oldest is not None and created < self.oldest

    def build(self, row: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The receipt; ``ValueError`` says why a row cannot be one (the record is a reject)."""
        currency = str(row.get("currency") or "").strip().upper()
        if not currency:
            raise ValueError("the receipt has no currency (Voyado needs one on every receipt)")
        match_value = row.get(MATCH_KEYS[self.contact_key])
        if match_value in (None, ""):
            raise ValueError(f"the receipt's contact has no {self.contact_key} to match it by")
        returned = str(row.get("kind") or "PURCHASE").upper() == "RETURN"
        items = _items(row.get("items"))
        if not items:
            raise ValueError("the receipt has no item lines")
        lines = [abs(cents(i.get("amount"))) for i in items]
        receipt_discount = abs(cents(row.get("discount")))
        if receipt_discount > sum(lines):
            raise ValueError("the receipt's discount is larger than its lines")
        shares = spread(receipt_discount, lines)
        out_items = []
        for item, line, share in zip(items, lines, shares, strict=True):
            out_items.append(self._item(item, line - share, share, returned))
        total = sum(lines) - receipt_discount
        receipt: dict[str, t.Any] = {
            "contact": {"matchKey": str(match_value), "matchKeyType": self.contact_key},
            "uniqueReceiptId": str(row["receipt_id"]),
            "receiptNumber": _text(row.get("receipt_number")),
            "createdDate": self.local(row.get("created_at")),
            "storeExternalId": self.store(row),
            "currency": currency,
            "totalGrossPrice": money(-total if returned else total),
            "paymentMethods": self.payments(row, -total if returned else total),
            "items": out_items,
        }
        if self.group_currency and currency != self.group_currency:
            rate = self.rates.get(currency)
            if rate is None:
                raise ValueError(
                    f"no exchange rate for {currency} to the group currency "
                    f"{self.group_currency} in exchange_rates"
                )
            receipt["exchangeRateToGroupCurrency"] = float(rate)
        promotions = [
            {
                k: v
                for k, v in {"promotionId": self.promotion_ids.get(c), "couponId": c}.items()
                if v
            }
            for c in _codes(row.get("promotion_codes"))
        ]
        if promotions:
            receipt["usedPromotions"] = promotions
        vouchers = _codes(row.get("voucher_numbers"))
        if vouchers:
            receipt["usedBonusChecks"] = [{"checkNumber": v} for v in vouchers]
        return {k: v for k, v in receipt.items() if v is not None}

    def _item(
        self, item: t.Mapping[str, t.Any], paid: int, share: int, returned: bool
    ) -> dict[str, t.Any]:
        quantity = Decimal(str(item.get("quantity") or 1))
        rate = item.get("vat_rate")
        out: dict[str, t.Any] = {
            "type": "RETURN" if returned else "PURCHASE",
            "sku": _text(item.get("sku")) or _text(item.get("product_id")),
            "articleName": _text(item.get("name")),
            "articleGroup": _text(item.get("product_group")),
            "quantity": _number(-abs(quantity) if returned else abs(quantity)),
            "grossPaidPrice": money(paid),
        }
        if out["sku"] is None:
            raise ValueError("an item line has no sku or product id")
        if rate is not None:
            percent = Decimal(str(rate))
            tax = (Decimal(paid) * percent / (100 + percent)).quantize(1, ROUND_HALF_UP)
            out["taxPercent"] = float(percent)
            out["taxAmount"] = money(int(tax))
        discounts = []
        line_discount = abs(cents(item.get("discount")))
        if line_discount:
            discounts.append({"type": "LINE", "value": money(-line_discount)})
        if share:
            discounts.append({"type": "RECEIPT", "value": money(-share)})
        if discounts:
            out["discounts"] = discounts
        return {k: v for k, v in out.items() if v is not None}

    def local(self, value: t.Any) -> str:
        """An instant as local time with its offset (``2026-03-29T03:21:00+02:00``)."""
        return (
            parse_instant(str(value), "created_at")
            .astimezone(self.zone)
            .isoformat(timespec="seconds")
        )

    def store(self, row: t.Mapping[str, t.Any]) -> str:
        """The receipt's store as Voyado knows it: the store map by id, then by name."""
        for key in (row.get("store_id"), row.get("store")):
            if key is not None and str(key) in self.stores:
                return self.stores[str(key)]
        if self.default_store:
            return str(self.default_store)
        raise ValueError(
            f"no storeExternalId for store {row.get('store_id') or row.get('store')!r} "
            "(add it to store_external_ids or set default_store_external_id)"
        )

    def payments(self, row: t.Mapping[str, t.Any], total: int) -> list[dict[str, t.Any]]:
        """The source's payment methods; where it has none, the configured default for all."""
        given = row.get("payment_methods")
        if isinstance(given, str) and given.strip():
            given = orjson.loads(given)
        if given:
            return [
                {
                    "type": str(p.get("type") or "OTHER"),
                    "description": p.get("description"),
                    "value": money(cents(p.get("value"))),
                }
                for p in given
            ]
        return [{**self.payment, "value": money(total)}]


def _items(value: t.Any) -> list[dict[str, t.Any]]:
    """The model's item lines: a list of objects, or its JSON text."""
    if isinstance(value, str):
        value = orjson.loads(value)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
        raise ValueError("items must be a list of objects")
    return value


def _codes(value: t.Any) -> list[str]:
    """Promotion codes or voucher numbers: a list, JSON text of one, or comma-separated text."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        value = orjson.loads(text) if text.startswith("[") else text.split(",")
    return [str(v).strip() for v in value if v is not None and str(v).strip()]


def _text(value: t.Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _months_before(now: dt.datetime, months: int) -> dt.datetime:
    """The same day and time ``months`` earlier (the month's last day when it is shorter)."""
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    month += 1
    day = now.day
    while True:
        try:
            return now.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1
