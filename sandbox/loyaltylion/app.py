"""The LoyaltyLion API v2 emulator: customers and transactions behind API keys with scopes.

It follows the LoyaltyLion section of `docs/emulated-contracts.md`; where this file and that
document disagree, the document wins and this file is the bug.
"""

from __future__ import annotations

import base64
import bisect
import re
import secrets
from collections.abc import Callable
from typing import Any

import orjson
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.http import CONTROL_PREFIX, BadControlRequest, EmulatorServer, control_json
from sandbox.loyaltylion.data import LoyaltyLionData
from singer_kit.dates import parse_instant

# Fixed sandbox credentials: fake, they only open this local emulator.
API_KEY = "pat_sandbox_loyaltylion"
CUSTOMERS_ONLY_KEY = "pat_sandbox_customers_only"  # lacks read_transactions: a 403 to try
LEGACY_TOKEN = "sandbox-ll-token"
LEGACY_SECRET = "sandbox-ll-secret"
# [EMULATED] The scope each resource needs (read_customers is documented; the transactions
# scope name is not).
SCOPES = {"customers": "read_customers", "transactions": "read_transactions"}
KEYS = {
    API_KEY: frozenset(SCOPES.values()),
    CUSTOMERS_ONLY_KEY: frozenset({"read_customers"}),
}
RATE_LIMIT = 20.0  # requests per second on all endpoints (documented)
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
AUTH_REQUIRED = {"error": {"message": "Authentication is required"}}
# The legacy token + secret keep working until this date; answers say so in headers.
SUNSET = "Sun, 10 Jan 2027 00:00:00 GMT"
DEPRECATION_LINK = (
    '<https://developers.loyaltylion.com/api/authentication/token-secret>; rel="deprecation"'
)
_CUSTOMER_FILTERS = ("updated_at_min", "updated_at_max", "created_at_min", "created_at_max")
_TX_FILTERS = ("created_at_min", "created_at_max")


class _BadParam(ValueError):
    """A query parameter the API answers with 400 (``details`` names it)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class LoyaltyLionEmulator(EmulatorServer):
    """Serves ``data`` the way LoyaltyLion's API v2 would (see the module docstring)."""

    name = "loyaltylion"

    def __init__(
        self, data: LoyaltyLionData, *, rate_limit_per_second: float | None = RATE_LIMIT
    ) -> None:
        self.data = data
        super().__init__(rate_limit_per_second=rate_limit_per_second)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v2"

    def rules(self) -> list[Rule]:
        return [
            Rule("/v2/customers", endpoint="customers", methods=["GET"]),
            Rule("/v2/transactions", endpoint="transactions", methods=["GET"]),
        ]

    def control_rules(self) -> list[Rule]:
        p = f"{CONTROL_PREFIX}/loyaltylion"
        return [
            Rule(p, endpoint="ctl_loyaltylion", methods=["GET"]),
            Rule(f"{p}/release-late", endpoint="ctl_release_late", methods=["POST"]),
            Rule(f"{p}/customers/<int:cid>/points", endpoint="ctl_points", methods=["POST"]),
            Rule(f"{p}/customers/<int:cid>", endpoint="ctl_update", methods=["PATCH", "POST"]),
        ]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        if status == 404:
            return {"error": {"code": "not_found", "message": message}}
        return {"error": {"message": message}}

    def client_key(self, request: Request) -> str:
        """The rate limit counts per API key (or legacy token)."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[7:]
        return super().client_key(request)

    def info(self) -> dict[str, Any]:
        d = self.data
        return {
            **super().info(),
            "api_url": self.api_url,
            "seed": d.seed,
            "now": d.now.isoformat(),
            "rate_limit_per_second": self.rate_limit,
            "counts": {"customer": d.count("customer"), "transaction": len(d.transactions)},
            "late": sorted(d.late),
        }

    # ----- auth ------------------------------------------------------------------------------
    def _scopes(self, request: Request) -> tuple[frozenset[str] | None, bool]:
        """(the credentials' scopes or None when not authenticated, whether legacy Basic)."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return KEYS.get(header[7:]), False
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            ok = secrets.compare_digest(auth.username or "", LEGACY_TOKEN) and (
                secrets.compare_digest(auth.password or "", LEGACY_SECRET)
            )
            return (frozenset(SCOPES.values()) if ok else None), True
        return None, False

    def _serve(
        self, request: Request, resource: str, list_page: Callable[[], Response]
    ) -> Response:
        """Authenticate, check the scope, answer; legacy Basic answers carry a deprecation."""
        scopes, legacy = self._scopes(request)
        if scopes is None:
            response = _json(AUTH_REQUIRED, 401)
        elif SCOPES[resource] not in scopes:
            response = _json(AUTH_REQUIRED, 403)  # the documented body does not name the scope
        else:
            try:
                response = list_page()
            except _BadParam as exc:
                body = {"error": {"message": "Invalid request", "details": {exc.name: exc.problem}}}
                response = _json(body, 400)
        if legacy:
            response.headers["Deprecation"] = "true"
            response.headers["Sunset"] = SUNSET
            response.headers["Link"] = DEPRECATION_LINK
        return response

    # ----- API -------------------------------------------------------------------------------
    def on_customers(self, request: Request) -> Response:
        return self._serve(request, "customers", lambda: self._customers(request))

    def on_transactions(self, request: Request) -> Response:
        return self._serve(request, "transactions", lambda: self._transactions(request))

    def _query(self, request: Request, names: tuple[str, ...]) -> tuple[dict[str, Any], int]:
        """The listing's query (from the cursor when there is one: it carries the filters and
        the position, everything but ``limit`` is then ignored) and the page size."""
        limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cursor = request.args.get("cursor")
        if cursor:
            return _decode_cursor(cursor), limit
        query: dict[str, Any] = {}
        for name in names:
            raw = request.args.get(name)
            if raw is not None:
                query[name] = self._instant(name, raw)
        since = request.args.get("since_id")
        if since is not None:
            query["since_id"] = _int(request, "since_id", 0, 0, None)
        return query, limit

    def _instant(self, name: str, raw: str) -> int:
        try:
            return int(parse_instant(raw, name).timestamp())
        except ValueError:
            raise _BadParam(name, f"{raw!r} is not an ISO 8601 date-time") from None

    def _customers(self, request: Request) -> Response:
        query, limit = self._query(request, _CUSTOMER_FILTERS)
        if "cursor" not in request.args:
            email = request.args.get("email")
            if email:
                query["email"] = email
            query["sort"] = request.args.get("sort_field", "updated_at")
            query["desc"] = request.args.get("sort_direction", "desc") == "desc"
            if query["sort"] not in ("updated_at", "id"):
                raise _BadParam("sort_field", "must be id or updated_at")
            if request.args.get("sort_direction", "desc") not in ("asc", "desc"):
                raise _BadParam("sort_direction", "must be asc or desc")
        keep = _customer_filter(query)
        desc = bool(query.get("desc", True))
        lower, upper = query.get("updated_at_min"), query.get("updated_at_max")
        after = query.get("after")
        if query.get("sort") == "id":
            rows = self.data.customer_page(lower, upper, keep, descending=False, limit=1 << 62)
            rows.sort(key=lambda r: r["id"], reverse=desc)
            if after is not None:
                rows = [r for r in rows if (r["id"] < after if desc else r["id"] > after)]
            page = rows[:limit]
            last = page[-1]["id"] if page else None
        else:
            if after is not None and desc:
                upper = after - 1 if upper is None else min(upper, after - 1)
            elif after is not None:
                lower = after + 1 if lower is None else max(lower, after + 1)
            page = self.data.customer_page(lower, upper, keep, descending=desc, limit=limit)
            last = self.data.time.parse(page[-1]["updated_at"]) if page else None
        return self._page(request, "customers", page, query, last, limit)

    def _transactions(self, request: Request) -> Response:
        query, limit = self._query(request, _TX_FILTERS)
        if "cursor" not in request.args and request.args.get("customer_id") is not None:
            query["customer_id"] = _int(request, "customer_id", 0, 0, None)
        txs, ids = self.data.visible()
        before = query.get("after")  # newest first: the next page holds lower ids
        end = len(txs) if before is None else bisect.bisect_left(ids, before)
        start = bisect.bisect_right(ids, query.get("since_id", -1))
        lo_at, hi_at = query.get("created_at_min"), query.get("created_at_max")
        customer = query.get("customer_id")
        index = None if customer is None else self.data.customer_index(customer)
        page = []
        for tx in reversed(txs[start:end]):
            at = tx["created_at"]
            if (lo_at is not None and at < lo_at) or (hi_at is not None and at > hi_at):
                continue
            if index is not None and tx["customer_index"] != index:
                continue
            page.append(tx)
            if len(page) >= limit:
                break
        last = page[-1]["id"] if page else None
        served = [self.data.serve_transaction(tx) for tx in page]
        return self._page(request, "transactions", served, query, last, limit)

    def _page(
        self,
        request: Request,
        key: str,
        items: list[dict[str, Any]],
        query: dict[str, Any],
        last: int | None,
        limit: int,
    ) -> Response:
        """``{key: items, "cursor": {"prev", "next"}}`` plus the ``Link`` header; a full page
        gets a next cursor (it may lead to an empty page, as cursors do)."""
        following = None
        if len(items) >= limit and last is not None:
            following = _encode_cursor({**query, "after": last})
        previous = request.args.get("cursor")
        body = {key: items, "cursor": {"prev": previous or None, "next": following}}
        response = _json(body, 200)
        if following is not None:
            response.headers["Link"] = f'<{self.api_url}/{key}?cursor={following}>; rel="next"'
        return response

    # ----- control API -----------------------------------------------------------------------
    def on_ctl_loyaltylion(self, request: Request) -> Response:
        return _json(self.info(), 200)

    def on_ctl_release_late(self, request: Request) -> Response:
        return _json({"released": self.data.release_late()}, 200)

    def on_ctl_points(self, request: Request, cid: int) -> Response:
        spec = control_json(request)
        points = spec.get("points")
        if not isinstance(points, int) or isinstance(points, bool):
            raise BadControlRequest("points must be an integer")
        try:
            return _json(
                self.data.adjust_points(cid, points, str(spec.get("note", "Sandbox"))), 200
            )
        except KeyError as exc:
            return _json(self.error_body(404, str(exc.args[0])), 404)
        except ValueError as exc:
            raise BadControlRequest(str(exc)) from exc

    def on_ctl_update(self, request: Request, cid: int) -> Response:
        try:
            uid = self.data.customer_uid(cid)
            return _json(self.data.update("customer", uid, **control_json(request)), 200)
        except KeyError as exc:
            return _json(self.error_body(404, str(exc.args[0])), 404)
        except ValueError as exc:
            raise BadControlRequest(str(exc)) from exc


def _json(body: Any, status: int) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _customer_filter(query: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """The non-updated_at filters of a customers query as one predicate on raw records."""
    lo, hi = query.get("created_at_min"), query.get("created_at_max")
    since = query.get("since_id")
    email = (query.get("email") or "").lower()

    def keep(raw: dict[str, Any]) -> bool:
        created = raw["created_at"]
        return (
            (lo is None or created >= lo)
            and (hi is None or created <= hi)
            and (since is None or raw["id"] > since)
            and (not email or email in (raw["email"] or "").lower())
        )

    return keep


def _encode_cursor(state: dict[str, Any]) -> str:
    """[EMULATED] An opaque cursor: the query's filters and where the last page ended."""
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        state = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise _BadParam("cursor", "is not a cursor this API issued") from None
    if not isinstance(state, dict):
        raise _BadParam("cursor", "is not a cursor this API issued")
    return state


def _int(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw):
        raise _BadParam(name, f"must be a non-negative integer, got {raw!r}")
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise _BadParam(name, f"must be between {low} and {high}" if high else f">= {low}")
    return value


__all__ = ["API_KEY", "CUSTOMERS_ONLY_KEY", "LEGACY_SECRET", "LEGACY_TOKEN", "LoyaltyLionEmulator"]
