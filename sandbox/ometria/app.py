"""The Ometria Data API v2 push endpoint (`../shared/api-contracts.md`, section 5).

`POST /v2/push` with `X-Ometria-Auth`: a JSON array even for one record, at most 100 records
and one `@type` per call, at most 60 KB per record, 8 requests/s then 429. The answer is
`{"status": "OK", "request_id", "accepted", "rejected"}`; Ometria validates the contents
*after* answering, so a record can be accepted in the answer and still fail later: those
failures are listed at `GET /v2/push/_errors`. Records are upserted by `@type` + `id`, and a
partial record is merged into the stored one. What is our guess is marked in
docs/emulated-contracts.md.
"""

from __future__ import annotations

import collections
import threading
import uuid
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.http import json_response
from sandbox.push import PushEmulator

API_KEY = "sandbox-ometria-key"  # fake; opens only this local emulator
RATE_PER_SECOND = 8.0
ERRORS_KEPT = 100  # GET /v2/push/_errors: "the 100 most recent"
OPTIN = ("EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED")
ORDER_STATUS = ("complete", "pending", "shipped", "cancelled")
TYPES = ("contact", "order", "product", "custom_event")


class OmetriaEmulator(PushEmulator):
    """Ometria's push API; tests read `stored`, `received`, `errors` and `calls`."""

    name = "ometria"
    push_path = "/v2/push"
    auth_header = "X-Ometria-Auth"
    max_records_per_call = 100
    max_record_bytes = 60 * 1024

    def __init__(
        self, *, api_key: str = API_KEY, rate_limit_per_second: float | None = RATE_PER_SECOND
    ) -> None:
        self._local = threading.local()
        self._errors: collections.deque[dict] = collections.deque(maxlen=ERRORS_KEPT)
        self._calls: list[dict] = []  # one per answered call: request_id, @type, records
        self.account = uuid.uuid4().hex[:12]  # a fresh emulator is a new, empty account
        super().__init__(api_key=api_key, rate_limit_per_second=rate_limit_per_second)

    # ----- the push call ----------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        return [*super().rules(), Rule("/v2/push/_errors", endpoint="errors", methods=["GET"])]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"status": "ERROR", "message": message}

    def record_key(self, record: dict) -> str:
        return f"{record.get('@type')}:{record.get('id')}"

    def on_push(self, request: Request) -> Response:
        self._local.request_id = str(uuid.uuid4())
        return super().on_push(request)

    def check_call(self, records: list) -> str | None:
        types = {r.get("@type") for r in records if isinstance(r, dict)}
        self._local.call = (sorted(map(str, types)), len(records))
        if len(types) > 1:
            named = ", ".join(sorted(map(str, types)))
            return f"Payload invalid: only one object type per call (got {named})"
        return None

    def validate(self, record: Any) -> str | None:
        """What is refused in the answer itself (counted in `rejected`): the record's shape."""
        if not isinstance(record, dict):
            return "record must be an object"
        if record.get("@type") not in TYPES:
            return f"unknown @type {record.get('@type')!r}"
        if not isinstance(record.get("id"), str) or not record["id"]:
            return "record needs a string 'id'"
        return None

    def accept(self, record: dict) -> None:
        """Validate the contents (later, as Ometria does), then merge into the stored record."""
        request_id = self._local.request_id
        self._received.append(record)
        problem = self.check_fields(record)
        if problem is not None:
            path, message = problem
            self._errors.appendleft(
                {
                    "error_message": message,
                    "error_path": path,
                    "request_id": request_id,
                    "@type": record["@type"],
                    "id": record["id"],
                }
            )
            return
        key = self.record_key(record)
        old = self._stored.get(key, {})
        merged = {**old, **record}
        if isinstance(old.get("properties"), dict) and isinstance(record.get("properties"), dict):
            merged["properties"] = {**old["properties"], **record["properties"]}
        self._stored[key] = merged

    def accepted_body(self, accepted: int, rejected: list[dict]) -> dict[str, Any]:
        request_id = self._local.request_id
        types, size = self._local.call
        with self._store_lock:
            self._calls.append({"request_id": request_id, "types": types, "records": size})
        return {
            "status": "OK",
            "request_id": request_id,
            "accepted": accepted,
            "rejected": len(rejected),
        }

    def on_errors(self, request: Request) -> Response:
        if request.headers.get(self.auth_header) != self.api_key:
            return json_response(self.error_body(401, f"missing or wrong {self.auth_header}"), 401)
        with self._store_lock:
            return json_response(list(self._errors))

    @staticmethod
    def check_fields(record: dict) -> tuple[str, str] | None:
        """(error_path, error_message) of the first field Ometria would not take, or None."""
        if record["@type"] == "contact":
            email = record.get("email")
            if email is not None and (not isinstance(email, str) or "@" not in email):
                return "root > email", "not a valid email address"
            optin = record.get("marketing_optin")
            if optin is not None and optin not in OPTIN:
                return "root > marketing_optin", "not a valid value"
            if "properties" in record and not isinstance(record["properties"], dict):
                return "root > properties", "must be an object"
            for name, value in (record.get("properties") or {}).items():
                if value is None or value == "" or isinstance(value, dict | list):
                    return f"root > properties > {name}", "not a valid value"
        if record["@type"] == "order":
            if record.get("status") is not None and record["status"] not in ORDER_STATUS:
                return "root > status", "not a valid value"
            currency = record.get("currency")
            if currency is not None and (not isinstance(currency, str) or len(currency) != 3):
                return "root > currency", "not a valid currency code"
            if not isinstance(record.get("lineitems", []), list):
                return "root > lineitems", "must be an array"
        return None

    # ----- what tests read ----------------------------------------------------------------------
    @property
    def errors(self) -> list[dict]:
        """What `GET /v2/push/_errors` lists, newest first."""
        with self._store_lock:
            return list(self._errors)

    def of_type(self, kind: str) -> dict[str, dict]:
        """Stored records of one @type by id."""
        return {r["id"]: r for r in self.stored.values() if r.get("@type") == kind}

    def clear_received(self) -> None:
        with self._store_lock:
            self._errors.clear()
            self._calls.clear()
        super().clear_received()

    @property
    def calls(self) -> list[dict]:
        """Every answered push call: its request_id, @types and record count, in order."""
        with self._store_lock:
            return list(self._calls)
