"""Ometria's push API as two push sinks: contacts and orders (`../shared/api-contracts.md` 5).

Each stream is one record type, so a call never mixes two `@type`s. The kit's loop batches to
Ometria's limits (100 records per call, 60 KB per record), keeps the ledger that skips
unchanged records, and moves STATE only after Ometria answered; the sinks shape records and
read Ometria's answers. Ometria checks contents *after* answering: `late_rejects` reads
`GET /v2/push/_errors` when the input has ended and reports what it lists for this run's calls.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import typing as t

from singer_kit.http.classify import json_array, json_object
from singer_kit.http.client import HttpClient
from singer_kit.push import PushItem, PushSink, Reject

log = logging.getLogger("target-ometria")

OPTED_IN, OPTED_OUT, NOT_SPECIFIED = "EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"
# Every field of the LoyaltyLion -> Ometria sync list (the guide, `../shared/seeds/003_*`): the
# model's column -> the Ometria custom field id it goes to by default. Ometria creates the
# custom fields ("LoyaltyLion Fields"), so the ids are configuration (`property_keys`).
DEFAULT_PROPERTY_KEYS: dict[str, str] = {
    "points_total": "loyalty_points_total",
    "points_approved": "loyalty_points_approved",
    "points_pending": "loyalty_points_pending",
    "points_spent": "loyalty_points_spent",
    "points_lifetime": "loyalty_points_lifetime",
    "rewards_claimed": "loyalty_rewards_claimed",
    "rewards_used": "loyalty_rewards_used",
    "blocked": "loyalty_blocked",
    "enrolled_at": "loyalty_enrolled_at",
    "referral_url": "loyalty_referral_url",
    "tier_name": "loyalty_tier",
    "birthday": "loyalty_birthday",
    "insights_segment": "loyalty_insights_segment",
    "tier_expires_at": "loyalty_tier_expires_at",
    "tier_progress": "loyalty_tier_progress",
    "tier_progress_projected": "loyalty_tier_progress_projected",
    "tier_progress_to_renew": "loyalty_tier_progress_to_renew",
    "tier_progress_to_upgrade": "loyalty_tier_progress_to_upgrade",
    "next_tier_name": "loyalty_next_tier",
    "forecast_tier_name": "loyalty_forecast_tier",
    "receipt_upload_url": "loyalty_receipt_upload_url",
}
# Model column -> Ometria contact field (the contact's own fields, not custom ones).
CONTACT_FIELDS = {
    "email": "email",
    "mobile": "phone_number",
    "first_name": "firstname",
    "last_name": "lastname",
    "date_of_birth": "date_of_birth",
    "country_code": "country_id",
    "first_seen_at": "timestamp_acquired",
    "unsubscribed_at": "timestamp_unsubscribed",
}
ORDER_FIELDS = (
    "timestamp",
    "grand_total",
    "subtotal",
    "discount",
    "shipping",
    "tax",
    "currency",
    "status",
    "is_valid",
    "channel",
    "store",
)


def present(value: t.Any) -> bool:
    """A value worth sending: Ometria keeps what it has for a field left out, and an empty
    value would overwrite it with nothing."""
    return value is not None and value != "" and value != [] and value != {}


def compact(fields: dict[str, t.Any]) -> dict[str, t.Any]:
    return {k: v for k, v in fields.items() if present(v)}


def marketing_optin(record: dict) -> str:
    """From the store's consent (`newsletter`, `unsubscribed_at`): an unsubscribed person, or
    one whose sources say no, is opted out whatever else says yes; no statement at all is
    NOT_SPECIFIED."""
    if record.get("unsubscribed_at") or record.get("newsletter") is False:
        return OPTED_OUT
    return OPTED_IN if record.get("newsletter") is True else NOT_SPECIFIED


class Pseudonym:
    """The id Ometria gets for a store contact: a keyed hash, so no e-mail or phone number
    (the store's contact_id is `email:<address>`) reaches Ometria's ids, and the same person
    keeps the same id on every run as long as the key (`id_salt`) stays the same."""

    def __init__(self, salt: str) -> None:
        self._key = salt.encode()

    def __call__(self, contact_id: str) -> str:
        digest = hmac.new(self._key, contact_id.encode(), hashlib.sha256).hexdigest()
        return f"lp-{digest[:32]}"


class OmetriaSink(PushSink):
    """One record type to `POST /v2/push`; the calls go through the kit's HttpClient, which
    retries 429/5xx and waits for the loop's rate limiter on every attempt."""

    max_records_per_call = 100  # "max 100 records per request"
    max_record_bytes = 60 * 1024  # "max 60KB per record"
    paced_by_transport = True
    record_type = ""

    def __init__(self, *args: t.Any, api: HttpClient, ids: Pseudonym) -> None:
        super().__init__(*args)
        self.api = api
        self.pseudonym = ids
        self._lock = threading.Lock()
        self._request_ids: set[str] = set()
        self._keys: dict[str, str] = {}  # Ometria id -> ledger key, for _errors

    def send(self, items: list[PushItem]) -> list[str | None]:
        body = b"[" + b",".join(i.body for i in items) + b"]"
        answer = self.api.request(
            "POST",
            "push",
            what=f"Ometria push of {len(items)} {self.record_type}s",
            parse=json_object,
            data=body,
            headers={"Content-Type": "application/json"},
        )
        request_id = str(answer.get("request_id") or "?")
        accepted, rejected = answer.get("accepted"), answer.get("rejected") or 0
        log.info(
            "Ometria push %s: request_id %s, %s accepted, %s rejected",
            self.stream,
            request_id,
            accepted,
            rejected,
        )
        with self._lock:
            self._request_ids.add(request_id)
            self._keys.update((i.payload["id"], i.key) for i in items)
        if not rejected:
            return [None] * len(items)
        # The answer does not say which records were refused: none is taken as sent, so the
        # next run offers them all again (upserts, so the accepted ones are not duplicated).
        why = f"Ometria refused {rejected} of {len(items)} records of request {request_id}"
        return [why] * len(items)

    def late_rejects(self) -> list[Reject]:
        """This run's records that `GET /v2/push/_errors` lists (it keeps the 100 newest)."""
        if not self._request_ids:
            return []
        time.sleep(float(self.config.get("errors_wait_seconds") or 0))
        errors = self.api.request(
            "GET", "push/_errors", what="Ometria GET /v2/push/_errors", parse=json_array
        )
        rejects: list[Reject] = []
        for error in errors:
            if not isinstance(error, dict) or error.get("@type") != self.record_type:
                continue
            if error.get("request_id") not in self._request_ids:
                continue  # another run's record, reported by that run
            reason = f"{error.get('error_message')} ({error.get('error_path')})"
            ident = str(error.get("id"))
            record = {"@type": self.record_type, "id": ident, "request_id": error["request_id"]}
            rejects.append(Reject(self.stream, record, self._keys.get(ident, ""), reason))
        if len(errors) >= 100 and rejects:
            log.warning("Ometria lists only its 100 newest errors: this run may have more")
        return rejects


class ContactSink(OmetriaSink):
    """Store contacts (model `ometria_contacts`) as Ometria contacts with loyalty properties."""

    record_type = "contact"

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.property_keys: dict[str, str] = {
            **DEFAULT_PROPERTY_KEYS,
            **(self.config.get("property_keys") or {}),
        }
        self.collection = self.config.get("collection")

    def build_payload(self, record: dict) -> dict:
        ident = self.pseudonym(str(record["contact_id"]))
        fields = {ometria: record.get(column) for column, ometria in CONTACT_FIELDS.items()}
        properties = {key: record.get(column) for column, key in self.property_keys.items() if key}
        payload = {
            "@type": "contact",
            "id": ident,
            "customer_id": ident,
            **({"@collection": self.collection} if self.collection else {}),
            **compact(fields),
            "marketing_optin": marketing_optin(record),
        }
        if props := compact(properties):
            payload["properties"] = props
        return payload


class OrderSink(OmetriaSink):
    """Store orders (model `ometria_orders`): totals, status and line items per order."""

    record_type = "order"

    def build_payload(self, record: dict) -> dict:
        customer = compact(
            {
                "id": self.pseudonym(str(record["contact_id"]))
                if record.get("contact_id")
                else None,
                "email": record.get("email"),
            }
        )
        lines = [compact(line) for line in record.get("lineitems") or [] if isinstance(line, dict)]
        return {
            "@type": "order",
            "id": str(record["order_id"]),
            **compact({f: record.get(f) for f in ORDER_FIELDS}),
            **({"customer": customer} if customer else {}),
            **({"lineitems": lines} if lines else {}),
        }


SINKS: dict[str, type[OmetriaSink]] = {"contact": ContactSink, "order": OrderSink}

__all__ = ["SINKS", "ContactSink", "OrderSink", "Pseudonym", "marketing_optin"]
