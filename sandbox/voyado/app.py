"""The Voyado Engage v3 emulator: contacts, receipts and promotion assignments.

Faithful to `../shared/api-contracts.md` (section 4) where the public docs fix a behaviour;
where they do not (error body, success status of a receipt, a duplicate create), the choice is
marked [EMULATED] in docs/emulated-contracts.md. Built on the push-emulator base: the API key
header, the per-key rate limit with 429, and ``received``/``stored`` (the receipts, by
``uniqueReceiptId``) come from there; contacts and promotions are Voyado's own.

Test hooks beyond the base's: ``contacts`` (id -> contact), ``log`` (every create, patch,
assignment and redemption with its body, in order), ``assignments``, ``add_contact`` (seed one
directly, e.g. two with one mobile number for ``MultipleMatches``), ``add_assignment`` (seed a
promotion of one), and the base's faults with
``lose_response=True`` (the request is served, then its answer is lost on the wire).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import shutil
import tempfile
import threading
import typing as t
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.http import CONTROL_PREFIX, json_response
from sandbox.push import PushEmulator

API_KEY = "sandbox-voyado-key"  # fake; opens only this local emulator
CHANNELS = ("ECOM", "POS", "OTHER")
CONTACT_TYPES = ("Member", "Contact")
# Receipt fields the docs call required (/en/receipts/receipts---field-definitions.html).
RECEIPT_REQUIRED = (
    "contact",
    "uniqueReceiptId",
    "createdDate",
    "storeExternalId",
    "currency",
    "totalGrossPrice",
    "paymentMethods",
    "items",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Body fields a contact stores; anything else in a create or PATCH is silently ignored.
CONTACT_FIELDS = frozenset(
    {
        "firstName",
        "lastName",
        "email",
        "mobilePhone",
        "memberNumber",
        "externalId",
        "socialSecurityNumber",
        "street",
        "zipCode",
        "city",
        "countryCode",
        "language",
        "birthDay",
        "gender",
        "preferences",
    }
)
# Lookup parameters and the contact attribute each one searches.
LOOKUP_KEYS = {
    "email": "email",
    "mobilePhone": "mobilePhone",
    "socialSecurityNumber": "socialSecurityNumber",
    "customKey": "memberNumber",  # the tenant's custom key is the member number here
}


class VoyadoError(Exception):
    """A documented refusal: HTTP status and Voyado's error code."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.status = status
        self.code = code


def _answers(handler: t.Callable[..., Response]) -> t.Callable[..., Response]:
    """A handler whose ``VoyadoError`` becomes Voyado's error answer (status and code)."""

    @functools.wraps(handler)
    def wrapped(self: VoyadoEmulator, request: Request, **values: Any) -> Response:
        try:
            return handler(self, request, **values)
        except VoyadoError as exc:
            return _error(exc.status, exc.code, str(exc))

    return wrapped


@dataclass
class Promotion:
    """A promotion defined in Engage; ``external_id`` is the POS promotion code."""

    id: str
    external_id: str
    name: str
    valid_to: dt.datetime | None = None
    channels: tuple[str, ...] = CHANNELS


@dataclass
class Assignment:
    """One promotion made personal to one contact."""

    id: str
    promotion: Promotion
    contact_id: str
    redeemed_on: str | None = None
    channel: str | None = None

    def body(self) -> dict[str, Any]:
        p = self.promotion
        return {
            "id": self.id,
            "promotionId": p.id,
            "contactId": self.contact_id,
            "externalId": p.external_id,
            "name": p.name,
            "expiresOn": p.valid_to.isoformat() if p.valid_to else None,
            "redeemed": self.redeemed_on is not None,
            "redeemedOn": self.redeemed_on,
            "redemptionChannel": self.channel,
        }


@dataclass
class Contact:
    id: str
    contact_type: str
    attributes: dict[str, Any]
    source: str | None = None
    store_external_id: str | None = None
    unapproved: bool = False
    created: str = ""
    promotions: list[str] = field(default_factory=list)  # assignment ids


def default_promotions(now: dt.datetime) -> list[Promotion]:
    """The sandbox's promotions: the guide's welcome offer, an expired one, an ECOM-only one."""
    return [
        Promotion(
            "9b0f1c6e-0000-4000-8000-000000000010",
            "WELCOME10",
            "Welcome 10%",
            now + dt.timedelta(days=365),
        ),
        Promotion(
            "9b0f1c6e-0000-4000-8000-000000000020",
            "SUMMER20",
            "Summer 20% (ended)",
            now - dt.timedelta(days=30),
        ),
        Promotion(
            "9b0f1c6e-0000-4000-8000-000000000030",
            "WEB5",
            "5% online",
            now + dt.timedelta(days=365),
            ("ECOM",),
        ),
    ]


class VoyadoEmulator(PushEmulator):
    """Voyado Engage API v3 on 127.0.0.1 (module doc)."""

    name = "voyado"
    push_path = "/api/v3/receipts"
    auth_header = "apikey"

    def __init__(
        self,
        *,
        now: dt.datetime,
        api_key: str = API_KEY,
        rate_limit_per_second: float | None = None,
        promotions: list[Promotion] | None = None,
    ) -> None:
        self.now = now
        self._voyado_lock = threading.RLock()  # add_assignment also runs inside on_assign
        self.contacts: dict[str, Contact] = {}
        self.assignments: dict[str, Assignment] = {}
        self.promotions = {p.id: p for p in promotions or default_promotions(now)}
        self.log: list[dict[str, Any]] = []
        self.duplicate_receipts = 0
        super().__init__(api_key=api_key, rate_limit_per_second=rate_limit_per_second)

    # ----- routes --------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        v3 = "/api/v3"
        return [
            Rule(f"{v3}/contacts/id", endpoint="contact_id", methods=["GET"]),
            Rule(f"{v3}/contacts", endpoint="create_contact", methods=["POST"]),
            Rule(f"{v3}/contacts/<contact_id>", endpoint="patch_contact", methods=["PATCH"]),
            Rule(f"{v3}/contactoverview", endpoint="overview", methods=["GET"]),
            Rule(f"{v3}/receipts", endpoint="receipt", methods=["POST"]),
            Rule(f"{v3}/promotion-assignments", endpoint="assign", methods=["POST"]),
            Rule(
                f"{v3}/promotion-assignments/<assignment_id>/redeem",
                endpoint="redeem",
                methods=["POST"],
            ),
        ]

    def control_rules(self) -> list[Rule]:
        return [
            *super().control_rules(),
            Rule(f"{CONTROL_PREFIX}/voyado/state", endpoint="ctl_state", methods=["GET"]),
        ]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        # [EMULATED] the docs name codes only; this shape is the contract's guess.
        return {"errorCode": _CODES.get(status, "Error"), "message": message}

    def info(self) -> dict[str, Any]:
        return {**super().info(), "api_url": self.api_url, "contacts": len(self.contacts)}

    @property
    def api_url(self) -> str:
        return self.base_url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> t.Self:
        """Serve; also a folder for the target's ledger that lives as long as this account."""
        self.ledger_dir = Path(tempfile.mkdtemp(prefix="voyado-sandbox-"))
        return super().start(host, port)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(getattr(self, "ledger_dir", ""), ignore_errors=True)

    @property
    def ledger_path(self) -> str:
        """Where target-voyado remembers what this emulator accepted: a fresh emulator is a
        fresh account, so a ledger of an earlier one must not make the target skip records."""
        return str(self.ledger_dir / "ledger.sqlite")

    # ----- every API request ---------------------------------------------------------------
    def _dispatch(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            return super()._dispatch(request)
        if request.headers.get(self.auth_header) != self.api_key:
            return _error(401, "Unauthorized", "missing or wrong apikey header")
        if not request.headers.get("User-Agent", "").strip():
            return _error(400, "UserAgentRequired", "the User-Agent header is required")
        if request.mimetype != "application/json":
            # As the real API: no JSON content type, no useful answer.
            return json_response({"message": "An error has occurred"}, 500)
        return super()._dispatch(request)

    # ----- contacts ------------------------------------------------------------------------
    @_answers
    def on_contact_id(self, request: Request) -> Response:
        return json_response(self._find(request.args).id)

    def _find(self, args: Any) -> Contact:
        """The one contact matching the lookup parameters (``any`` scans the keys in order)."""
        given = {k: args[k] for k in (*LOOKUP_KEYS, "any") if args.get(k)}
        contact_type = args.get("contactType")
        if contact_type is not None and contact_type not in CONTACT_TYPES:
            raise VoyadoError(400, "InvalidContactType")
        if len(given) != 1:
            raise VoyadoError(400, "InvalidSearchQuery", "give exactly one lookup parameter")
        ((key, value),) = given.items()
        keys = list(LOOKUP_KEYS) if key == "any" else [key]
        if key == "email" and not _EMAIL.match(value):
            raise VoyadoError(400, "InvalidEmailAddress")
        if key == "mobilePhone" and not _PHONE.match(_digits(value)):
            raise VoyadoError(400, "InvalidPhoneNumber")
        with self._voyado_lock:
            for k in keys:
                attr = LOOKUP_KEYS[k]
                found = [
                    c
                    for c in self.contacts.values()
                    if _same(attr, c.attributes.get(attr), value)
                    and (contact_type is None or c.contact_type == contact_type)
                ]
                if len(found) > 1:
                    raise VoyadoError(409, "MultipleMatches", f"{len(found)} contacts match")
                if found:
                    return found[0]
        raise VoyadoError(404, "ContactNotFound")

    @_answers
    def on_create_contact(self, request: Request) -> Response:
        body = _body(request)
        contact_type = body.get("contactType", "Member")
        if contact_type not in CONTACT_TYPES:
            raise VoyadoError(400, "InvalidContactType")
        email = body.get("email")
        if email and not _EMAIL.match(str(email)):
            raise VoyadoError(400, "InvalidEmailAddress")
        mobile = body.get("mobilePhone")
        if mobile and not _PHONE.match(_digits(str(mobile))):
            raise VoyadoError(400, "InvalidPhoneNumber")
        if not email and not mobile:
            raise VoyadoError(400, "MissingContactKey", "an email or mobilePhone is required")
        attributes = {k: v for k, v in body.items() if k in CONTACT_FIELDS}
        with self._voyado_lock:
            # [EMULATED] the e-mail is the tenant's unique key: a second create is a 409.
            if email and any(
                _same("email", c.attributes.get("email"), email) for c in self.contacts.values()
            ):
                raise VoyadoError(409, "ContactAlreadyExists")
            contact = Contact(
                str(uuid.uuid4()),
                contact_type,
                attributes,
                source=request.args.get("source"),
                store_external_id=request.args.get("storeExternalId"),
                unapproved=request.args.get("createAsUnapproved", "false").lower() == "true",
                created=self.now.isoformat(),
            )
            self.contacts[contact.id] = contact
            self.log.append(
                {
                    "op": "create",
                    "contactId": contact.id,
                    "query": request.args.to_dict(),
                    "body": body,
                }
            )
        return json_response(self._overview(contact), 201)

    @_answers
    def on_patch_contact(self, request: Request, contact_id: str) -> Response:
        body = _body(request)
        with self._voyado_lock:
            contact = self.contacts.get(contact_id)
            if contact is None:
                raise VoyadoError(404, "ContactNotFound")
            for key, value in body.items():
                if key in CONTACT_FIELDS:  # null and "" overwrite, as the docs warn
                    contact.attributes[key] = value
            self.log.append({"op": "patch", "contactId": contact_id, "body": body})
        return json_response(self._overview(contact))

    @_answers
    def on_overview(self, request: Request) -> Response:
        contact_id = request.args.get("contactId")
        if contact_id:
            with self._voyado_lock:
                contact = self.contacts.get(contact_id)
            if contact is None:
                raise VoyadoError(404, "ContactNotFound")
        else:
            contact = self._find(request.args)
        return json_response(self._overview(contact))

    def _overview(self, contact: Contact) -> dict[str, Any]:
        return {
            "id": contact.id,
            "contactType": contact.contact_type,
            "attributes": {k: v for k, v in contact.attributes.items() if k != "preferences"},
            "preferences": contact.attributes.get("preferences") or {},
            "promotions": [self.assignments[a].body() for a in contact.promotions],
        }

    def add_contact(self, **attributes: Any) -> str:
        """Seed a contact directly (no checks): tests make duplicates with it."""
        contact = Contact(str(uuid.uuid4()), "Member", attributes, created=self.now.isoformat())
        with self._voyado_lock:
            self.contacts[contact.id] = contact
        return contact.id

    # ----- receipts ------------------------------------------------------------------------
    @_answers
    def on_receipt(self, request: Request) -> Response:
        receipt = _body(request)
        missing = [k for k in RECEIPT_REQUIRED if receipt.get(k) in (None, "", [])]
        if missing:
            raise VoyadoError(400, "MissingRequiredField", f"missing {', '.join(missing)}")
        problem = _receipt_problem(receipt)
        if problem:
            raise VoyadoError(400, problem[0], problem[1])
        match = receipt["contact"]
        key_type = match.get("matchKeyType")
        if key_type == "contactId":
            with self._voyado_lock:
                known = match.get("matchKey") in self.contacts
            if not known:
                raise VoyadoError(404, "ContactNotFound")
        else:
            param = {"email": "email", "mobilePhone": "mobilePhone", "memberNumber": "customKey"}
            if key_type not in param:
                raise VoyadoError(400, "InvalidMatchKeyType")
            self._find({param[key_type]: match.get("matchKey")})
        rid = str(receipt["uniqueReceiptId"])
        with self._store_lock:
            if rid in self._stored:  # "seen as a duplicate and ignored"
                self.duplicate_receipts += 1
            else:
                self._received.append(receipt)
                self._stored[rid] = receipt
        # [EMULATED] 202: receipts are processed asynchronously (batched every ~15 minutes).
        return Response(status=202)

    # ----- promotions ----------------------------------------------------------------------
    @_answers
    def on_assign(self, request: Request) -> Response:
        body = _body(request)
        contact_id, promotion_id = body.get("contactId"), body.get("promotionId")
        if not _is_guid(contact_id):
            raise VoyadoError(400, "InvalidContactId")
        if not _is_guid(promotion_id):
            raise VoyadoError(400, "InvalidPromotionId")
        with self._voyado_lock:
            contact = self.contacts.get(contact_id)
            if contact is None:
                raise VoyadoError(404, "ContactNotFound")
            promotion = self.promotions.get(promotion_id)
            if promotion is None:
                raise VoyadoError(404, "PromotionNotFound")
            if promotion.valid_to is not None and promotion.valid_to <= self.now:
                raise VoyadoError(409, "PromotionExpired")
            assignment = self.add_assignment(contact_id, promotion_id)
            self.log.append({"op": "assign", "contactId": contact_id, "body": body})
        return json_response(assignment.body())

    def add_assignment(self, contact_id: str, promotion_id: str) -> Assignment:
        """Assign a promotion to a contact without checks or a log entry: the API's assign,
        and a seed (a contact Engage welcomed before the sandbox started)."""
        with self._voyado_lock:
            assignment = Assignment(str(uuid.uuid4()), self.promotions[promotion_id], contact_id)
            self.assignments[assignment.id] = assignment
            self.contacts[contact_id].promotions.append(assignment.id)
        return assignment

    @_answers
    def on_redeem(self, request: Request, assignment_id: str) -> Response:
        body = _body(request)
        channel = body.get("redemptionChannel")
        if channel not in CHANNELS:
            raise VoyadoError(400, "NotAValidRedemptionChannel")
        with self._voyado_lock:
            assignment = self.assignments.get(assignment_id)
            if assignment is None:
                raise VoyadoError(404, "PromotionNotFound")
            if channel not in assignment.promotion.channels:
                raise VoyadoError(409, "PromotionNotValidForRedemptionChannel")
            if assignment.redeemed_on is not None:
                raise VoyadoError(409, "PromotionAlreadyRedeemed")
            assignment.redeemed_on = self.now.isoformat()
            assignment.channel = channel
            self.log.append(
                {"op": "redeem", "contactId": assignment.contact_id, "assignmentId": assignment_id}
            )
        return json_response(assignment.body())

    # ----- what tests read -----------------------------------------------------------------
    def ops(self, op: str) -> list[dict[str, Any]]:
        """The log entries of one kind (create, patch, assign, redeem), in order."""
        with self._voyado_lock:
            return [e for e in self.log if e["op"] == op]

    def on_ctl_state(self, request: Request) -> Response:
        with self._voyado_lock:
            contacts = [self._overview(c) for c in self.contacts.values()]
            log = list(self.log)
        return json_response(
            {"contacts": contacts, "log": log, "receipts": self.received},
        )


_CODES = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests"}


def _error(status: int, code: str, message: str) -> Response:
    return json_response({"errorCode": code, "message": message}, status)


def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(request.get_data())
    except orjson.JSONDecodeError:
        raise VoyadoError(400, "InvalidJson") from None
    if not isinstance(body, dict):
        raise VoyadoError(400, "InvalidJson", "expected a JSON object")
    return body


def _digits(value: str) -> str:
    return re.sub(r"[\s-]", "", value)


def _same(attr: str, stored: Any, value: str) -> bool:
    if stored is None:
        return False
    if attr == "email":
        return str(stored).strip().lower() == value.strip().lower()
    if attr == "mobilePhone":
        return _digits(str(stored)) == _digits(value)
    return str(stored) == value


def _is_guid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _receipt_problem(receipt: dict[str, Any]) -> tuple[str, str] | None:
    """Why a receipt is invalid (code, message), or None: the checks the docs describe."""
    if not _CURRENCY.match(str(receipt["currency"])):
        return "InvalidCurrency", f"currency {receipt['currency']!r} is not ISO 4217"
    try:
        created = dt.datetime.fromisoformat(str(receipt["createdDate"]))
    except ValueError:
        return "InvalidCreatedDate", "createdDate is not ISO 8601"
    if created.tzinfo is None:
        return "InvalidCreatedDate", "createdDate needs its offset (local time with offset)"
    items = receipt["items"]
    total = 0.0
    for n, item in enumerate(items):
        kind, qty, price = item.get("type"), item.get("quantity"), item.get("grossPaidPrice")
        if kind not in ("PURCHASE", "RETURN", "ADJUSTMENT"):
            return "InvalidItemType", f"items[{n}].type {kind!r}"
        if (
            not item.get("sku")
            or not isinstance(qty, int | float)
            or not isinstance(price, int | float)
        ):
            return "InvalidItem", f"items[{n}] needs sku, quantity and grossPaidPrice"
        if kind == "RETURN" and qty >= 0:
            return "InvalidItem", f"items[{n}]: a RETURN has a negative quantity"
        total += -price if kind == "RETURN" else price
    # [EMULATED] the receipt's total must be the sum of its lines (the Orders API checks it).
    if abs(total - float(receipt["totalGrossPrice"])) > 0.005:
        return (
            "TotalMismatch",
            f"items add up to {total:.2f}, totalGrossPrice is {receipt['totalGrossPrice']}",
        )
    return None


__all__ = ["API_KEY", "Promotion", "VoyadoEmulator", "default_promotions"]
