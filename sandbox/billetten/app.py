"""The Billetten API as the emulator defines it (docs/emulated-contracts.md, *Billetten*):
an API key in ``X-API-Key``, four list resources under ``/v1`` paged by an opaque cursor in
(updated_at, id) order, ``updated_since`` (inclusive) / ``updated_before`` (exclusive) as ISO
8601 instants, errors as ``{"error": {"code", "message"}}`` and 429 with ``Retry-After`` from
the base's rate limit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.billetten.data import RESOURCES, BillettenData, decode_cursor
from sandbox.http import BadControlRequest, EmulatorServer, control_json, json_response

API_KEY = "sandbox-billetten-key"
MAX_LIMIT = 200
DEFAULT_LIMIT = 100
# URL path of each resource.
PATHS = {
    "buyers": "buyers",
    "order_lines": "order-lines",
    "cancellations": "cancellations",
    "tracking_events": "tracking-events",
}


class BillettenEmulator(EmulatorServer):
    """Serves ``BillettenData`` read-only to API clients; the control API changes it."""

    name = "billetten"

    def __init__(self, data: BillettenData, *, rate_limit_per_second: float | None = None) -> None:
        self.data = data
        super().__init__(rate_limit_per_second=rate_limit_per_second)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def rules(self) -> list[Rule]:
        return [
            Rule(f"/v1/{path}", endpoint="list", methods=["GET"], defaults={"resource": r})
            for r, path in PATHS.items()
        ]

    def control_rules(self) -> list[Rule]:
        prefix = "/_sandbox/billetten"
        return [
            Rule(f"{prefix}/cancel", endpoint="ctl_cancel", methods=["POST"]),
            Rule(f"{prefix}/unsubscribe", endpoint="ctl_unsubscribe", methods=["POST"]),
            Rule(f"{prefix}/purchase", endpoint="ctl_purchase", methods=["POST"]),
        ]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message}}

    def client_key(self, request: Request) -> str:
        """The rate limit counts per API key."""
        return request.headers.get("X-API-Key") or request.remote_addr or "?"

    def info(self) -> dict[str, Any]:
        counts = {r: self.data.count(r) for r in RESOURCES}
        return {**super().info(), "counts": counts, "now": self.data.now.isoformat()}

    def on_list(self, request: Request, resource: str) -> Response:
        key = request.headers.get("X-API-Key")
        if key != API_KEY:
            why = "missing X-API-Key header" if key is None else "invalid API key"
            return json_response(self.error_body(401, why), 401)
        try:
            limit = _limit(request.args.get("limit"))
            since = _instant(request.args, "updated_since")
            before = _instant(request.args, "updated_before")
            cursor = request.args.get("cursor")
            after = decode_cursor(cursor) if cursor else None
        except ValueError as exc:
            return json_response(self.error_body(400, str(exc)), 400)
        page, next_cursor = self.data.page(
            resource, since=since, before=before, after=after, limit=limit
        )
        return json_response({"data": page, "next_cursor": next_cursor})

    # ----- control API -----------------------------------------------------------------
    def on_ctl_cancel(self, request: Request) -> Response:
        body = control_json(request)
        return self._mutate(lambda: self.data.cancel_line(str(body.get("line_id"))))

    def on_ctl_unsubscribe(self, request: Request) -> Response:
        body = control_json(request)
        return self._mutate(
            lambda: self.data.unsubscribe(str(body.get("buyer_id")), str(body.get("kind")))
        )

    def on_ctl_purchase(self, request: Request) -> Response:
        body = control_json(request)
        return self._mutate(
            lambda: self.data.purchase(
                str(body.get("buyer_id")),
                int(body.get("seats", 1)),
                related=bool(body.get("related", True)),
                newsletter=bool(body.get("newsletter", True)),
            )
        )

    @staticmethod
    def _mutate(change: Any) -> Response:
        try:
            return json_response(change(), 201)
        except KeyError as exc:
            return json_response({"error": str(exc.args[0])}, 404)
        except (TypeError, ValueError) as exc:
            raise BadControlRequest(str(exc)) from exc


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


def _instant(args: Any, name: str) -> str | None:
    """A filter bound as the records' own text (UTC, ``Z``), so it compares as text."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 date-time, got {raw!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"{name} must carry a UTC offset (e.g. Z), got {raw!r}")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
