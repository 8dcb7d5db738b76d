"""The two streams target-voyado takes, on the kit's push sink: contacts, then receipts.

One record is one call (Voyado has no batch endpoint for either); the kit sends the calls of a
batch on its workers under one rate limit, keeps a ledger of what Voyado accepted (an unchanged
contact costs no call on the next run) and files rejects with their reason.
"""

from __future__ import annotations

import logging
import typing as t

from singer_kit.dates import now
from singer_kit.push import PushItem, PushSink, Skip
from target_voyado.client import Refused, VoyadoClient
from target_voyado.contacts import ContactMapper, ContactPayload, ContactSync
from target_voyado.promotions import redeem
from target_voyado.receipts import ReceiptBuilder

log = logging.getLogger("target-voyado")


class VoyadoSink(PushSink):
    """A Voyado stream: one record per call, the shared client, a rejection's code kept."""

    max_records_per_call = 1

    def __init__(self, *args: t.Any, client: VoyadoClient, **kwargs: t.Any) -> None:
        """The PushSink's arguments, and the client every Voyado stream shares (one limiter)."""
        super().__init__(*args, **kwargs)
        self.client = client
        self.welcome_id = self.config.get("welcome_promotion_id")

    def send(self, items: list[PushItem]) -> list[str | None]:
        outcomes: list[str | None] = []
        for item in items:
            try:
                self.deliver(item)
            except Refused as exc:  # Voyado's documented refusal: a reject with its code
                outcomes.append(str(exc))
            else:
                outcomes.append(None)
        return outcomes

    def deliver(self, item: PushItem) -> None:
        raise NotImplementedError


class ContactSink(VoyadoSink):
    """Contacts: found → PATCH what changed; not found → created (and welcomed)."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.mapper = ContactMapper(self.config)
        self.sync = ContactSync(self.client, self.config)

    def build_payload(self, record: dict) -> dict[str, t.Any]:
        return self.mapper.payload(record).as_json()

    def deliver(self, item: PushItem) -> None:
        outcome = self.sync.sync(ContactPayload(**item.payload))
        if outcome.created and self.welcome_id:
            try:
                self.client.assign_promotion(outcome.contact_id, str(self.welcome_id))
            except Refused as exc:
                raise Refused(
                    exc.status, exc.code, "contact created; welcome promotion not assigned"
                ) from exc


class ReceiptSink(VoyadoSink):
    """Receipts (purchases and RETURN receipts); the welcome code redeems its assignment."""

    after_earlier_streams = True  # a receipt's contact is created first

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.builder = ReceiptBuilder(self.config, now())
        self.welcome_code = self.config.get("welcome_promotion_code")

    def build_payload(self, record: dict) -> dict[str, t.Any]:
        if self.builder.too_old(record):
            raise Skip(f"older than the {self.builder.months}-month history window")
        return self.builder.build(record)

    def deliver(self, item: PushItem) -> None:
        receipt = item.payload
        self.client.post_receipt(receipt)
        if self.welcome_id and self.welcome_code and self._used_welcome(receipt):
            match = receipt["contact"]
            try:
                contact_id = self.client.find_contact(match["matchKeyType"], match["matchKey"])
                if contact_id is None:
                    raise Refused(404, "ContactNotFound", "for the welcome promotion")
                redeem(self.client, contact_id, str(self.welcome_id), "POS")
            except Refused as exc:
                raise Refused(
                    exc.status, exc.code, "receipt registered; welcome promotion not redeemed"
                ) from exc

    def _used_welcome(self, receipt: dict[str, t.Any]) -> bool:
        if receipt["items"][0]["type"] != "PURCHASE":
            return False
        codes = {p.get("couponId") for p in receipt.get("usedPromotions", [])}
        ids = {p.get("promotionId") for p in receipt.get("usedPromotions", [])}
        return self.welcome_code in codes or self.welcome_id in ids
