"""A small reusable emulator base: a real HTTP server on 127.0.0.1 with test hooks.

Every vendor emulator (FlexPOS now; Billetten, LoyaltyLion, Voyado, Ometria later) subclasses
`EmulatorServer` and only adds its routes. The base gives each of them, the same way:

- a threaded Werkzeug server on a free port, run in a background thread, stopped cleanly;
- a per-client request-rate limit answering ``429`` with ``Retry-After``;
- fault injection for the next N matching requests (a status with a body, a malformed JSON
  body, a delay longer than a client's timeout, a dropped connection, or a lost answer: the
  request is served, then the connection drops before the client reads the response);
- a request log (method, path, query, status) tests can read;
- a JSON control API under ``/_sandbox/`` so another process (the demo, a shell) can do the same.

Vendor-specific behaviour stays in the subclass.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
import typing as t
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Self
from urllib.parse import unquote

import orjson
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sandbox"
_LOG_LIMIT = 200_000
MALFORMED_BODY = b'{"Items": [{"Uid": "truncated'


@dataclass(frozen=True)
class RequestLogEntry:
    """One served request, as tests see it (control API calls are not logged)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    fault: str | None = None  # which injected fault answered, if any


@dataclass
class Fault:
    """Answer the next `times` requests whose path+query contains `path_contains` abnormally."""

    path_contains: str
    status: int | None = None
    times: int = 1
    malformed: bool = False
    delay_seconds: float = 0.0
    body: dict | None = None
    drop: bool = False
    lose_response: bool = False  # served (a create happens), then the answer never arrives

    def describe(self) -> str:
        if self.lose_response:
            return "lose_response"
        if self.drop:
            return "drop"
        if self.malformed:
            return "malformed"
        if self.status is not None:
            return f"status:{self.status}"
        return f"delay:{self.delay_seconds}"


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON body encoded once with orjson."""
    return Response(orjson.dumps(obj), status=status, headers=headers, mimetype="application/json")


class _QuietHandler(WSGIRequestHandler):
    """No per-request access lines on stderr: tests and the CLI read the request log instead."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class EmulatorServer:
    """Base WSGI emulator; subclasses add `rules()` and `on_<endpoint>` handlers."""

    name = "emulator"

    def __init__(self, *, rate_limit_per_second: float | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._log: deque[RequestLogEntry] = deque(maxlen=_LOG_LIMIT)
        self._rate: float | None = None
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last time)
        self.set_rate_limit(rate_limit_per_second)
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        control = [
            Rule(f"{CONTROL_PREFIX}/", endpoint="ctl_info", methods=["GET"]),
            Rule(f"{CONTROL_PREFIX}/requests", endpoint="ctl_requests", methods=["GET", "DELETE"]),
            Rule(
                f"{CONTROL_PREFIX}/faults", endpoint="ctl_faults", methods=["GET", "POST", "DELETE"]
            ),
            Rule(
                f"{CONTROL_PREFIX}/rate-limit",
                endpoint="ctl_rate_limit",
                methods=["GET", "PUT", "POST"],
            ),
        ]
        self._url_map = Map(self.rules() + control + self.control_rules(), strict_slashes=False)

    # ----- what subclasses provide ---------------------------------------------------------
    def rules(self) -> list[Rule]:
        """The vendor API's routes; endpoint ``x`` is served by method ``on_x``."""
        return []

    def control_rules(self) -> list[Rule]:
        """Extra vendor-specific control routes (under /_sandbox/<name>/)."""
        return []

    def client_key(self, request: Request) -> str:
        """Who a request counts against for the rate limit: its HTTP Basic user, else its
        address (override for an API key or a token's client id, then fall back to this)."""
        auth = request.authorization
        if auth is not None and auth.username:
            return auth.username
        return request.remote_addr or "?"

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The vendor's error shape."""
        return {"error": message}

    def info(self) -> dict[str, Any]:
        """What GET /_sandbox/ reports (override to add settings)."""
        return {"name": self.name, "base_url": self.base_url}

    # ----- lifecycle -----------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Bind (port 0 = a free port) and serve in a background thread; ready on return."""
        if self._server is not None:
            raise RuntimeError(f"{self.name} emulator already started")
        self._stopping.clear()
        self._server = make_server(host, port, self, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; in-flight delayed requests end at once."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} emulator is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} emulator is not running")
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    # ----- test hooks (also reachable over HTTP) ---------------------------------------------
    def inject_fault(
        self,
        path_contains: str,
        status: int | None = None,
        times: int = 1,
        malformed: bool = False,
        delay_seconds: float = 0,
        body: dict | None = None,
        drop: bool = False,
        lose_response: bool = False,
    ) -> Fault:
        """Make the next `times` matching requests fail; matches the decoded path?query."""
        if times < 1:
            raise ValueError("times must be >= 1")
        if status is None and not (malformed or drop or lose_response) and delay_seconds <= 0:
            raise ValueError(
                "a fault needs a status, malformed=True, drop=True, lose_response=True or a delay"
            )
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status}")
        fault = Fault(
            path_contains, status, times, malformed, float(delay_seconds), body, drop, lose_response
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Faults still armed."""
        with self._lock:
            return [Fault(**asdict(f)) for f in self._faults]

    def set_rate_limit(self, per_second: float | None) -> None:
        """At most `per_second` requests per second per client (burst of the same size)."""
        if per_second is not None and per_second <= 0:
            raise ValueError("rate limit must be > 0 requests per second, or None")
        with self._lock:
            self._rate = per_second
            self._buckets.clear()

    @property
    def rate_limit(self) -> float | None:
        return self._rate

    @property
    def requests(self) -> list[RequestLogEntry]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # ----- WSGI ----------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        path = request.path
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return self._dispatch(request)(environ, start_response)
        fault = self._take_fault(request)
        fault_name = fault.describe() if fault else None
        response = None
        if fault is not None and not fault.lose_response:
            try:
                response = self._apply_fault(fault, environ)
            except ConnectionError:
                self._record(request, 0, fault_name)  # status 0: no response was sent
                raise
        if response is None:
            response = self._check_rate(request)
        if response is None:
            response = self._dispatch(request)
        self._record(request, response.status_code, fault_name)
        if fault is not None and fault.lose_response:
            _drop_connection(environ)
        return response(environ, start_response)

    def _take_fault(self, request: Request) -> Fault | None:
        target = unquote(request.full_path)  # so "filters[IsActive]" matches as written
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in target:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _apply_fault(self, fault: Fault, environ: dict) -> Response | None:
        """Sleep, drop or answer; None means 'then serve normally' (a pure delay)."""
        if fault.delay_seconds > 0:
            self._stopping.wait(fault.delay_seconds)
        if fault.drop:
            _drop_connection(environ)
        if fault.malformed:
            return Response(MALFORMED_BODY, status=fault.status or 200, mimetype="application/json")
        if fault.status is not None:
            body = (
                fault.body
                if fault.body is not None
                else self.error_body(fault.status, "Injected fault")
            )
            return json_response(body, fault.status)
        return None

    def _check_rate(self, request: Request) -> Response | None:
        rate = self._rate
        if rate is None:
            return None
        key = self.client_key(request)
        now = time.monotonic()
        capacity = max(1.0, rate)
        with self._lock:
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
        retry_after = max(1, math.ceil((1.0 - tokens) / rate))
        return json_response(
            self.error_body(429, f"Rate limit of {rate:g} requests per second exceeded"),
            429,
            headers={"Retry-After": str(retry_after)},
        )

    def _record(self, request: Request, status: int, fault: str | None) -> None:
        entry = RequestLogEntry(request.method, request.path, request.args.to_dict(), status, fault)
        with self._lock:
            self._log.append(entry)

    def _dispatch(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            handler = getattr(self, f"on_{endpoint}")
            return handler(request, **values)
        except NotFound:
            return json_response(self.error_body(404, f"No resource at {request.path}"), 404)
        except HTTPException as exc:
            code = exc.code or 500
            return json_response(self.error_body(code, exc.description or exc.name), code)
        except ConnectionError:
            raise
        except Exception as exc:  # an emulator bug must still answer, visibly
            log.exception("%s emulator failed on %s %s", self.name, request.method, request.path)
            return json_response(self.error_body(500, f"emulator error: {exc}"), 500)

    # ----- generic control API ---------------------------------------------------------------
    def on_ctl_info(self, request: Request) -> Response:
        return json_response(self.info())

    def on_ctl_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_requests()
            return json_response({"cleared": True})
        contains = request.args.get("path_contains", "")
        entries = [asdict(e) for e in self.requests if contains in e.path]
        return json_response({"requests": entries})

    def on_ctl_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_faults()
            return json_response({"cleared": True})
        if request.method == "POST":
            spec = control_json(request)
            allowed = set(Fault.__dataclass_fields__)
            unknown = set(spec) - allowed
            if unknown:
                raise BadControlRequest(f"unknown fault fields: {sorted(unknown)}")
            if "path_contains" not in spec:
                raise BadControlRequest("a fault needs 'path_contains'")
            try:
                fault = self.inject_fault(**spec)
            except (TypeError, ValueError) as exc:
                raise BadControlRequest(str(exc)) from exc
            return json_response(asdict(fault), 201)
        return json_response({"faults": [asdict(f) for f in self.faults]})

    def on_ctl_rate_limit(self, request: Request) -> Response:
        if request.method != "GET":
            spec = control_json(request)
            if "per_second" not in spec:  # an empty body must not switch the limit off
                raise BadControlRequest(
                    'rate-limit needs a JSON body {"per_second": <number or null>}'
                )
            per_second = spec["per_second"]
            if per_second is not None and not isinstance(per_second, int | float):
                raise BadControlRequest("per_second must be a number or null")
            try:
                self.set_rate_limit(per_second)
            except ValueError as exc:
                raise BadControlRequest(str(exc)) from exc
        return json_response({"per_second": self.rate_limit})


def _drop_connection(environ: dict) -> t.NoReturn:
    """Close the client's connection without an answer."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    # Werkzeug treats ConnectionError from the app as a dropped connection.
    raise ConnectionAbortedError("sandbox fault: connection dropped")


class BadControlRequest(HTTPException):
    """400 from the control API, with a message saying what was wrong."""

    code = 400


class UnsupportedControlMedia(HTTPException):
    """415 from the control API: a body that is not declared as JSON."""

    code = 415


def control_json(request: Request) -> dict[str, Any]:
    """The JSON object body of a control request, or a clear 400/415.

    Werkzeug parses a form-encoded body into ``request.form`` and leaves ``request.data``
    empty, so without the content-type check ``curl -X PUT -d per_second=5`` would read as
    an empty body and silently apply the defaults.
    """
    raw = request.get_data(cache=True, parse_form_data=False)
    if not raw:
        return {}
    if request.mimetype != "application/json":
        shown = request.mimetype or "none"
        raise UnsupportedControlMedia(
            f"control body must be JSON with Content-Type: application/json (got {shown})"
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadControlRequest(f"control body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadControlRequest("control body must be a JSON object")
    return body


__all__ = [
    "CONTROL_PREFIX",
    "BadControlRequest",
    "EmulatorServer",
    "Fault",
    "RequestLogEntry",
    "control_json",
    "json_response",
]
