"""The FlexPOS / Amero emulator: auth server, POS API and Attraction API on one port.

It follows `docs/emulated-contracts.md` exactly; where this file and that document disagree,
the document wins and this file is the bug.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.engine import (
    ARRAY,
    BOOL,
    DATE,
    INT,
    NUM,
    OPS,
    TS,
    Filter,
)
from sandbox.flexpos.data import FIELD_KINDS, FlexposData
from sandbox.http import (
    CONTROL_PREFIX,
    BadControlRequest,
    EmulatorServer,
    control_json,
    json_response,
)
from sandbox.timefmt import DateFormatError, parse_date

# Fixed sandbox credentials. They are fake and only open this local emulator.
POS_CLIENT_ID = "sandbox-pos"
POS_CLIENT_SECRET = "sandbox-pos-secret"
ATTRACTION_CLIENT_ID = "sandbox-attraction"
ATTRACTION_CLIENT_SECRET = "sandbox-attraction-secret"

API_RESOURCES = {"pos": ("customer", "journal"), "attraction": ("ticket", "membership")}
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
REFRESH_TTL_SECONDS = 7 * 24 * 3600
DENIED = {"Message": "Authorization has been denied for this request."}
# [EMULATED] The audience a token must be asked for (the contract's example) and the scope
# each resource needs; both APIs share the audience because they share the auth server.
AUDIENCE = "https://api.flexpos.com"
SCOPES = {r: f"{r}:read" for res in API_RESOURCES.values() for r in res}
# [EMULATED] Order data is served one year back (the guide: "one year prior"), counted as 366
# days so a client asking for 365 days is never refused for a leap day or a little clock skew.
HISTORY_DAYS = 366
ORDER_RESOURCES = frozenset({"journal", "ticket", "membership"})
_FILTER_RE = re.compile(r"^filters\[([^\[\]]+)\]\[([^\[\]]+)\]$")


@dataclass
class _Token:
    client_id: str
    api: str  # "pos" | "attraction"
    expires_at: float  # time.monotonic()
    audience: str | None = None
    scopes: frozenset[str] = frozenset()


class FlexposEmulator(EmulatorServer):
    """Serves `data` the way FlexPOS would; see the module docstring and the contract."""

    name = "flexpos"

    def __init__(
        self,
        data: FlexposData,
        *,
        token_ttl_seconds: int = 300,
        rate_limit_per_second: float | None = None,
        history_days: int | None = HISTORY_DAYS,
    ) -> None:
        if token_ttl_seconds < 1:
            raise ValueError("token_ttl_seconds must be >= 1")
        if history_days is not None and history_days < 1:
            raise ValueError("history_days must be >= 1, or None for all history")
        self.history_days = history_days
        self.data = data
        self.token_ttl_seconds = token_ttl_seconds
        self._clients = {
            POS_CLIENT_ID: (POS_CLIENT_SECRET, "pos"),
            ATTRACTION_CLIENT_ID: (ATTRACTION_CLIENT_SECRET, "attraction"),
        }
        self._token_lock = threading.Lock()
        self._access: dict[str, _Token] = {}
        self._refresh: dict[str, _Token] = {}
        self._prefetch = _Prefetcher(self._pages)
        super().__init__(rate_limit_per_second=rate_limit_per_second)

    # ----- URLs ------------------------------------------------------------------------------
    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/auth"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/pos/api/v1.0"

    @property
    def attraction_url(self) -> str:
        return f"{self.base_url}/attraction/api/v1.0"

    # ----- routes ----------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        api = "/<any(pos, attraction):api>/api/v1.0"
        return [
            Rule("/auth/api/v2/auth/login", endpoint="login", methods=["POST"]),
            Rule("/auth/api/v2.0/auth/login", endpoint="login", methods=["POST"]),
            Rule("/auth/api/v2/auth/refresh", endpoint="refresh", methods=["POST"]),
            Rule("/auth/api/v2.0/auth/refresh", endpoint="refresh", methods=["POST"]),
            Rule(f"{api}/<resource>", endpoint="list", methods=["GET"]),
            Rule(f"{api}/<resource>/<uid>", endpoint="one", methods=["GET"]),
        ]

    def control_rules(self) -> list[Rule]:
        p = f"{CONTROL_PREFIX}/flexpos"
        return [
            Rule(p, endpoint="ctl_flexpos", methods=["GET"]),
            Rule(f"{p}/expire-tokens", endpoint="ctl_expire", methods=["POST"]),
            Rule(f"{p}/customers", endpoint="ctl_add_customers", methods=["POST"]),
            Rule(f"{p}/customers/<uid>", endpoint="ctl_update_customer", methods=["PATCH", "POST"]),
            Rule(f"{p}/journals", endpoint="ctl_add_journals", methods=["POST"]),
            Rule(f"{p}/tickets/<uid>/cancel", endpoint="ctl_cancel_ticket", methods=["POST"]),
        ]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"Message": message}

    def client_key(self, request: Request) -> str:
        """Rate limits count per API client (its client id), as a real gateway would."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            with self._token_lock:
                token = self._access.get(header[7:])
            if token is not None:
                return token.client_id
        return super().client_key(request)

    def info(self) -> dict[str, Any]:
        d = self.data
        return {
            **super().info(),
            "auth_url": self.auth_url,
            "api_url": self.api_url,
            "attraction_url": self.attraction_url,
            "seed": d.seed,
            "now": d.now.isoformat(),
            "date_format": d.time.fmt,
            "timezone": d.time.timezone,
            "token_ttl_seconds": self.token_ttl_seconds,
            "rate_limit_per_second": self.rate_limit,
            "history_days": self.history_days,
            "history_start": None if self.history_start is None else self.history_start.isoformat(),
            "counts": {r: d.count(r) for res in API_RESOURCES.values() for r in res},
        }

    # ----- auth ------------------------------------------------------------------------------
    def _issue(
        self, client_id: str, api: str, audience: str | None, scopes: frozenset[str]
    ) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._token_lock:
            if len(self._access) > 10_000:  # a long-running sandbox must not grow forever
                self._access = {k: t for k, t in self._access.items() if t.expires_at > now}
                self._refresh = {k: t for k, t in self._refresh.items() if t.expires_at > now}
            ttl = now + self.token_ttl_seconds
            self._access[access] = _Token(client_id, api, ttl, audience, scopes)
            self._refresh[refresh] = _Token(
                client_id, api, now + REFRESH_TTL_SECONDS, audience, scopes
            )
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.token_ttl_seconds,
            "token_type": "Bearer",
        }

    def on_login(self, request: Request) -> Response:
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username:
            return json_response(
                {
                    "error": "invalid_client",
                    "error_description": "Basic client_id:client_secret authorization required",
                },
                401,
            )
        known = self._clients.get(auth.username)
        if known is None or not secrets.compare_digest(known[0], auth.password or ""):
            # Never echo the secret back.
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                401,
            )
        grant = request.form.get("grant_type")
        if grant is not None and grant != "client_credentials":
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "only client_credentials is supported",
                },
                400,
            )
        scope = request.form.get("scope", "")
        audience = request.args.get("audience")  # checked when the token is used, as a JWT's aud
        body = self._issue(auth.username, known[1], audience, frozenset(scope.split()))
        body["scope"] = scope
        return json_response(body)

    def on_refresh(self, request: Request) -> Response:
        presented = request.form.get("refresh_token", "")
        with self._token_lock:
            token = self._refresh.pop(presented, None)  # rotated: each refresh token works once
        if token is None or token.expires_at < time.monotonic():
            return json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "Refresh token is invalid or expired",
                },
                401,
            )
        return json_response(self._issue(token.client_id, token.api, token.audience, token.scopes))

    def expire_all_tokens(self, include_refresh_tokens: bool = False) -> None:
        """Every access token issued so far now gets 401 (refresh tokens keep working)."""
        with self._token_lock:
            for token in self._access.values():
                token.expires_at = 0.0
            if include_refresh_tokens:
                self._refresh.clear()

    def _denied(self, request: Request, api: str, resource: str) -> Response | None:
        """None if the bearer token may read ``resource``; else the API's 401 or 403.

        [EMULATED] A token asked for another audience is as good as no token (401); a token
        without the resource's scope is recognised but forbidden (403, naming the scope).
        """
        header = request.headers.get("Authorization", "")
        token = None
        if header.startswith("Bearer "):
            with self._token_lock:
                token = self._access.get(header[7:])
        if (
            token is None
            or token.api != api
            or token.expires_at <= time.monotonic()
            or token.audience != AUDIENCE
        ):
            return json_response(DENIED, 401)
        needed = SCOPES[resource] if resource in API_RESOURCES[api] else None  # else a 404
        if needed is not None and needed not in token.scopes:
            message = f"The access token lacks the scope {needed!r} needed to read {resource}."
            return json_response({"Message": message}, 403)
        return None

    # ----- API -------------------------------------------------------------------------------
    def on_list(self, request: Request, api: str, resource: str) -> Response:
        denied = self._denied(request, api, resource)
        if denied is not None:
            return denied
        if resource not in API_RESOURCES[api]:
            return self._no_resource(request)
        try:
            offset = _int_param(request, "offset", 0, 0, None)
            limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            client_filters = self._filters(request, resource)
            filters = self._within_history(resource, client_filters)
            fields = self._fields(request, resource)
        except _BadParam as exc:
            return json_response({"Message": str(exc)}, 400)
        query = (resource, _canonical(filters), tuple(fields), limit)
        version = self.data.version
        page = self._prefetch.take(query, offset, version)
        if page is None:
            page = self._pages([(query, offset)])[0]
        if page.full:  # a client paging on will ask for the next page: build it meanwhile
            following = [(query, offset + limit)]
            keyset = self._keyset_next(request, resource, client_filters, query, offset, page)
            if keyset is not None and keyset != following[0]:
                following.append(keyset)
            self._prefetch.schedule(following, version)
        return Response(page.body, mimetype="application/json")

    def _pages(self, requests: list[tuple[tuple, int]]) -> list[_Page]:
        """Encoded pages of one query family; requests that hit the same records share one."""
        resource, _filters, fields, limit = requests[0][0]
        lists = self.data.select_pages(resource, [(list(q[1]), off) for q, off in requests], limit)
        built: dict[int, _Page] = {}
        for items in lists:
            if id(items) not in built:
                built[id(items)] = _Page.of(items, fields, limit, self.data.MODIFIED)
        return [built[id(items)] for items in lists]

    def _keyset_next(
        self,
        request: Request,
        resource: str,
        client_filters: list[Filter],
        query: tuple,
        offset: int,
        page: _Page,
    ) -> tuple[tuple, int] | None:
        """The request a keyset pager sends after ``page``, or None if it cannot be told.

        A keyset pager (tap-flexpos) moves ``filters[ModifiedDate][$gte]`` to the page's last
        value and skips only the ties at it (``singer_kit.http.paging.KeysetPaginator``), so
        the look-ahead prepares that request as well as ``offset + limit``: the emulator must
        help both paging styles alike. Usually both name the same records, built once.
        """
        modified = self.data.MODIFIED
        last = page.last
        lowers = [f for f in client_filters if f[0] == modified and f[1] == "$gte"]
        if not isinstance(last, str) or len(lowers) > 1:
            return None
        key = f"filters[{modified}][$gte]"
        if last == request.args.get(key):  # a whole page at one value: skip within it
            return query, offset + page.ties
        rest = [f for f in client_filters if not (f[0] == modified and f[1] == "$gte")]
        try:
            lower = (modified, "$gte", self._typed(key, TS, last))
            filters = self._within_history(resource, [*rest, lower])
        except _BadParam:
            return None
        return (resource, _canonical(filters), query[2], query[3]), page.ties

    def stop(self) -> None:
        self._prefetch.stop()
        super().stop()

    def on_one(self, request: Request, api: str, resource: str, uid: str) -> Response:
        denied = self._denied(request, api, resource)
        if denied is not None:
            return denied
        if resource not in API_RESOURCES[api]:
            return self._no_resource(request)
        item = self.data.get(resource, uid)
        if item is None:
            return json_response({"Message": f"No {resource} with Uid {uid}"}, 404)
        return json_response(item)

    def _no_resource(self, request: Request) -> Response:
        message = f"No HTTP resource was found that matches the request URI '{request.url}'."
        return json_response({"Message": message}, 404)

    def _filters(self, request: Request, resource: str) -> list[Filter]:
        kinds = FIELD_KINDS[resource]
        out: list[Filter] = []
        for key in request.args:
            if not key.startswith("filters"):
                continue
            m = _FILTER_RE.match(key)
            if m is None:
                raise _BadParam(f"{key}: filters take the form filters[<Field>][$<op>]=<value>")
            field, op = m.groups()
            kind = kinds.get(field)
            if kind is None:
                raise _BadParam(f"{key}: unknown field {field!r} for {resource}")
            if op not in OPS:
                raise _BadParam(f"{key}: unknown operator {op!r}; use one of {', '.join(OPS)}")
            if kind == ARRAY:
                raise _BadParam(f"{key}: cannot filter on the array field {field!r}")
            for raw in request.args.getlist(key):
                out.append((field, op, self._typed(key, kind, raw)))
        return out

    @property
    def history_start(self) -> datetime | None:
        """The oldest ModifiedDate of order data served (None: everything is served)."""
        if self.history_days is None:
            return None
        return self.data.now.replace(microsecond=0) - timedelta(days=self.history_days)

    def _within_history(self, resource: str, filters: list[Filter]) -> list[Filter]:
        """Order data only from ``history_start``: a lower bound before it is a 400, a query
        without one is clipped to it (as a retention limit would)."""
        start = self.history_start
        if resource not in ORDER_RESOURCES or start is None:
            return filters
        time_ = self.data.time
        limit = time_.comparable(time_.from_datetime(start))
        for field, op, value in filters:
            lower = field == "ModifiedDate" and op in ("$gte", "$gt") and value is not None
            if lower and value < limit:
                raise _BadParam(
                    f"filters[ModifiedDate][{op}]: {resource} history is kept for one "
                    f"year; the earliest ModifiedDate served is "
                    f"{time_.render(time_.from_datetime(start))}"
                )
        return [*filters, ("ModifiedDate", "$gte", limit)]

    def _typed(self, key: str, kind: str, raw: str) -> Any:
        if raw == "null":
            return None
        try:
            if kind == BOOL:
                if raw not in ("true", "false"):
                    raise ValueError("expected true or false")
                return raw == "true"
            if kind == INT:
                if not re.fullmatch(r"-?\d+", raw):
                    raise ValueError("expected an integer")
                return int(raw)
            if kind == NUM:
                return float(raw)
            if kind == TS:
                return self.data.time.comparable(self.data.time.parse(raw))
            if kind == DATE:
                return parse_date(raw)
        except DateFormatError as exc:
            raise _BadParam(f"{key}: {exc}") from exc
        except ValueError as exc:
            raise _BadParam(f"{key}: {raw!r} is not valid ({exc})") from exc
        return raw

    def _fields(self, request: Request, resource: str) -> list[str]:
        fields = request.args.getlist("fields")
        unknown = [f for f in fields if f not in FIELD_KINDS[resource]]
        if unknown:
            raise _BadParam(f"fields: unknown field(s) {', '.join(unknown)} for {resource}")
        return fields

    # ----- FlexPOS control API ---------------------------------------------------------------
    def on_ctl_flexpos(self, request: Request) -> Response:
        return json_response(self.info())

    def on_ctl_expire(self, request: Request) -> Response:
        spec = control_json(request)
        self.expire_all_tokens(bool(spec.get("include_refresh_tokens", False)))
        return json_response({"expired": True})

    def on_ctl_add_customers(self, request: Request) -> Response:
        return json_response({"uids": self.data.add_customers(_count(request))}, 201)

    def on_ctl_add_journals(self, request: Request) -> Response:
        return json_response({"uids": self.data.add_journals(_count(request))}, 201)

    def on_ctl_update_customer(self, request: Request, uid: str) -> Response:
        fields = control_json(request)
        try:
            return json_response(self.data.update_customer(uid, **fields))
        except KeyError as exc:
            return json_response({"Message": exc.args[0]}, 404)
        except ValueError as exc:
            raise BadControlRequest(str(exc)) from exc

    def on_ctl_cancel_ticket(self, request: Request, uid: str) -> Response:
        try:
            return json_response(self.data.cancel_ticket(uid))
        except KeyError as exc:
            return json_response({"Message": exc.args[0]}, 404)
        except ValueError as exc:
            return json_response({"Message": str(exc)}, 409)


def _canonical(filters: list[Filter]) -> tuple[Filter, ...]:
    """A query's filters in one order: they are ANDed, so the order a client sends them in does
    not change the page, and the look-ahead must recognise a request however it is spelled."""
    return tuple(sorted(filters, key=repr))


@dataclass(frozen=True)
class _Page:
    """One encoded page, and what a client learns from it to ask for the next one."""

    body: bytes
    full: bool  # as many records as the limit: another page may follow
    last: Any  # the last record's modified time, as rendered (a keyset pager's next bound)
    ties: int  # records at the end of the page sharing that value

    @classmethod
    def of(
        cls, items: list[dict[str, Any]], fields: tuple[str, ...], limit: int, key: str
    ) -> _Page:
        seen = not fields or key in fields  # else the client never sees the value
        last = items[-1].get(key) if items and seen else None
        ties = 0
        for item in reversed(items):
            if item.get(key) != last:
                break
            ties += 1
        if fields:
            items = [{f: item[f] for f in fields} for item in items]
        return cls(orjson.dumps({"Items": items}), len(items) == limit, last, ties)


class _Prefetcher:
    """Builds the page(s) a client may ask for next, in a background thread.

    The tap is another process: while it parses and emits page k, this emulator prepares page
    k+1, so a million-record read costs about max(tap, emulator) instead of their sum. One job
    holds every likely next request (as an offset pager and as a keyset pager would send it);
    they are built together, so requests naming the same records share one page. Pages are
    keyed by the data version, so a mutation never serves a stale page. At most a few pages
    are held.
    """

    _KEEP = 8

    def __init__(self, build: Callable[[list[tuple[tuple, int]]], list[_Page]]) -> None:
        self._build = build
        self._cond = threading.Condition()
        self._ready: OrderedDict[tuple, _Page] = OrderedDict()
        self._wanted: tuple[list[tuple[tuple, int]], int] | None = None
        self._building: set[tuple] = set()
        self._stopped = False
        self._thread: threading.Thread | None = None

    @staticmethod
    def _keys(job: tuple[list[tuple[tuple, int]], int] | None) -> set[tuple]:
        if job is None:
            return set()
        requests, version = job
        return {(query, offset, version) for query, offset in requests}

    def take(self, query: tuple, offset: int, version: int) -> _Page | None:
        key = (query, offset, version)
        with self._cond:
            # If that very page is being built, waiting is cheaper than building it twice.
            while key in self._building or key in self._keys(self._wanted):
                if not self._cond.wait(timeout=30):
                    break
            return self._ready.pop(key, None)

    def schedule(self, requests: list[tuple[tuple, int]], version: int) -> None:
        with self._cond:
            if self._stopped:
                return
            self._wanted = (requests, version)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flexpos-prefetch", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._wanted = None
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._wanted is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                job, self._wanted = self._wanted, None
                self._building = self._keys(job)
            requests, version = job
            try:
                pages: list[_Page] | None = self._build(requests)
            except Exception:  # the request itself will rebuild and report it
                pages = None
            with self._cond:
                self._building = set()
                if pages is not None:
                    for (query, offset), page in zip(requests, pages, strict=True):
                        self._ready[(query, offset, version)] = page
                    while len(self._ready) > self._KEEP:
                        self._ready.popitem(last=False)
                self._cond.notify_all()


class _BadParam(ValueError):
    """A query parameter the API rejects with 400."""


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw):
        raise _BadParam(f"{name} must be a non-negative integer, got {raw!r}")
    value = int(raw)
    if value < low or (high is not None and value > high):
        if high is None:
            raise _BadParam(f"{name} must be at least {low}")
        raise _BadParam(f"{name} must be between {low} and {high}")
    return value


def _count(request: Request) -> int:
    count = control_json(request).get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1_000_000:
        raise BadControlRequest("count must be an integer between 0 and 1000000")
    return count
