"""A push-API emulator base: the receiving end of a push target (Ometria, Voyado).

A vendor emulator subclasses :class:`PushEmulator` and sets its path, auth header, limits and
response shape; the base serves ``POST <push_path>`` with a JSON array of records and gives,
the same way for each vendor:

- an auth header check (``401`` without the right key);
- a batch-size limit (``413``) and a record-size limit (``400``), each body naming the limit;
- a rate limit with ``429`` + ``Retry-After`` (the EmulatorServer base's, counted per API key);
- a call-level check (``check_call``: a reason refuses the whole call, ``400``);
- per-record validation (``validate``: a reason rejects that record, the others are kept);
- idempotency: records are upserted by ``record_key`` (``@type`` + ``id`` for Ometria), in
  ``accept`` (override it to merge a partial record into the stored one);
- a log of every record it accepted, in order, for tests to read: in process
  (``received``, ``stored``) or over HTTP (``GET /_sandbox/push/received``, ``/stored``;
  ``DELETE /_sandbox/push/received`` clears both).
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.http import CONTROL_PREFIX, EmulatorServer, json_response

API_KEY = "sandbox-push-key"  # fake; opens only this local emulator


class PushEmulator(EmulatorServer):
    """Serves one push endpoint; subclasses shape it after their vendor (see module doc)."""

    name = "push"
    push_path = "/push"
    auth_header = "X-Api-Key"
    max_records_per_call = 100
    max_record_bytes = 60 * 1024

    def __init__(
        self, *, api_key: str = API_KEY, rate_limit_per_second: float | None = None
    ) -> None:
        self.api_key = api_key
        self._store_lock = threading.Lock()
        self._received: list[dict] = []
        self._stored: dict[str, dict] = {}
        super().__init__(rate_limit_per_second=rate_limit_per_second)

    # ----- what a vendor subclass shapes -------------------------------------------------------
    def record_key(self, record: dict) -> str:
        """The key records are upserted by (default: ``id``)."""
        return str(record.get("id"))

    def validate(self, record: Any) -> str | None:
        """Why the remote refuses this record, or None (default: it must be an object with id)."""
        if not isinstance(record, dict) or record.get("id") in (None, ""):
            return "record must be an object with an 'id'"
        return None

    def check_call(self, records: list) -> str | None:
        """Why the whole call is refused (400), or None (default: nothing beyond the limits)."""
        return None

    def accept(self, record: dict) -> None:
        """Keep a valid record (under the store lock; default: replace the stored version)."""
        self._received.append(record)
        self._stored[self.record_key(record)] = record

    def accepted_body(self, accepted: int, rejected: list[dict]) -> dict[str, Any]:
        """The answer to a call; ``rejected`` holds ``{"index", "reason"}`` per refused record."""
        return {"status": "OK", "accepted": accepted, "rejected": len(rejected), "errors": rejected}

    # ----- the API ----------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        return [Rule(self.push_path, endpoint="push", methods=["POST"])]

    def control_rules(self) -> list[Rule]:
        p = f"{CONTROL_PREFIX}/push"
        return [
            Rule(f"{p}/received", endpoint="ctl_received", methods=["GET", "DELETE"]),
            Rule(f"{p}/stored", endpoint="ctl_stored", methods=["GET"]),
        ]

    def client_key(self, request: Request) -> str:
        """Rate limits count per API key, as the vendors document."""
        return request.headers.get(self.auth_header) or super().client_key(request)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "push_url": self.base_url + self.push_path,
            "auth_header": self.auth_header,
            "max_records_per_call": self.max_records_per_call,
            "max_record_bytes": self.max_record_bytes,
            "rate_limit_per_second": self.rate_limit,
        }

    def on_push(self, request: Request) -> Response:
        if request.headers.get(self.auth_header) != self.api_key:
            return json_response(self.error_body(401, f"missing or wrong {self.auth_header}"), 401)
        try:
            records = orjson.loads(request.get_data())
        except orjson.JSONDecodeError as exc:
            return json_response(self.error_body(400, f"Payload invalid: not JSON ({exc})"), 400)
        if not isinstance(records, list):
            return json_response(self.error_body(400, "Payload invalid: expected an array"), 400)
        limit = self.max_records_per_call
        if len(records) > limit:
            message = f"Payload too large: {len(records)} records, the limit is {limit} per call"
            return json_response(self.error_body(413, message), 413)
        for index, record in enumerate(records):
            size = len(orjson.dumps(record))
            if size > self.max_record_bytes:
                message = (
                    f"Payload invalid: Record is too large (record {index}: {size} bytes, "
                    f"the limit is {self.max_record_bytes} bytes per record)"
                )
                return json_response(self.error_body(400, message), 400)
        refused = self.check_call(records)
        if refused is not None:
            return json_response(self.error_body(400, refused), 400)
        rejected: list[dict] = []
        with self._store_lock:
            for index, record in enumerate(records):
                reason = self.validate(record)
                if reason is not None:
                    rejected.append({"index": index, "reason": reason})
                    continue
                self.accept(record)
        return json_response(self.accepted_body(len(records) - len(rejected), rejected))

    # ----- what tests read ----------------------------------------------------------------------
    @property
    def received(self) -> list[dict]:
        """Every record accepted, in arrival order (a re-sent record appears again)."""
        with self._store_lock:
            return list(self._received)

    @property
    def stored(self) -> dict[str, dict]:
        """The records as the remote holds them: the last accepted version per key."""
        with self._store_lock:
            return dict(self._stored)

    def clear_received(self) -> None:
        with self._store_lock:
            self._received.clear()
            self._stored.clear()

    def on_ctl_received(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_received()
            return json_response({"cleared": True})
        return json_response({"received": self.received})

    def on_ctl_stored(self, request: Request) -> Response:
        return json_response({"stored": self.stored})


__all__ = ["API_KEY", "PushEmulator"]
