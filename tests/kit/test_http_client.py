"""The kit's HTTP client against a tiny scripted server on 127.0.0.1: what the server received
(how many requests, when, with which credentials) and the one error line a user sees."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from singer_kit.http.auth import StaticAuth, TokenAuth, TokenRequest
from singer_kit.http.classify import json_object
from singer_kit.http.client import HttpClient, RetryPolicy
from singer_kit.http.errors import ApiError
from singer_kit.http.paging import CursorPaginator
from singer_kit.http.ratelimit import RateLimiter
from singer_kit.redact import Redactor

TOKEN = "tok-9f8e7d6c5b4a"
KEY = "key-0123456789ab"


@dataclass
class Seen:
    """One request as the server received it."""

    at: float
    path: str
    auth: str | None
    form: dict[str, str]
    headers: dict[str, str]
    query: dict[str, str]


@dataclass
class Script:
    """Answers per path, consumed in order (the last one repeats), and what was received."""

    answers: dict[str, list[tuple[int, dict[str, str], str]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str, *answers: tuple[int, dict[str, str], str]) -> None:
        self.answers[path] = list(answers)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.seen.append(
                Seen(
                    time.monotonic(),
                    request.path,
                    request.headers.get("Authorization"),
                    dict(request.form),
                    dict(request.headers),
                    dict(request.args),
                )
            )
            queue = self.answers.get(request.path) or [(404, {}, '{"error": "no route"}')]
            status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return Response(body, status, headers, content_type="application/json")(
            environ, start_response
        )


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = make_server("127.0.0.1", 0, script, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", script
    finally:
        httpd.shutdown()
        thread.join(5)


def _client(url: str, **kwargs) -> HttpClient:
    policy = kwargs.pop("policy", RetryPolicy(max_retries=2, backoff_seconds=0.01, timeout=5))
    return HttpClient(label="Acme", base_url=url, policy=policy, **kwargs)


OK = (200, {}, '{"data": [1, 2]}')


def test_retry_after_in_the_http_date_form_is_waited_for(server):
    url, script = server
    # RFC 9110's other form of Retry-After; the date has one-second resolution, so ask for 2s.
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    script.on("/things", (429, {"Retry-After": when}, "slow down"), OK)
    assert _client(url).request("GET", "things", parse=json_object) == {"data": [1, 2]}
    first, second = script.seen
    # A client that fell back to its own 10 ms backoff would be back far sooner.
    assert second.at - first.at >= 0.9


def test_retry_after_in_seconds_is_waited_for_and_capped(server):
    url, script = server
    script.on("/things", (429, {"Retry-After": "1"}, "slow down"), OK)
    _client(url).request("GET", "things")
    assert script.seen[1].at - script.seen[0].at >= 0.9

    script.seen.clear()
    script.on("/things", (429, {"Retry-After": "3600"}, "come back in an hour"), OK)
    policy = RetryPolicy(max_retries=1, backoff_seconds=0.01, max_retry_after=0.3)
    started = time.monotonic()
    _client(url, policy=policy).request("GET", "things")
    assert len(script.seen) == 2 and time.monotonic() - started < 5


def test_transient_failures_and_a_malformed_body_share_one_retry_budget(server):
    url, script = server
    script.on("/things", (500, {}, "oops"), (200, {}, '{"data": [1'), (503, {}, "busy"), OK)
    with pytest.raises(ApiError) as err:
        _client(url).request("GET", "things", what="Acme GET things", parse=json_object)
    assert len(script.seen) == 3  # max_retries=2: three attempts in all, whatever failed
    assert str(err.value) == (
        f"Acme GET things failed after 3 attempts: HTTP 503 from {url}/things: busy; "
        "the server keeps failing; check its status or raise max_retries"
    )

    script.seen.clear()
    script.on("/things", (500, {}, "oops"), (200, {}, '{"data": [1'), (503, {}, "busy"), OK)
    client = _client(url, policy=RetryPolicy(max_retries=3, backoff_seconds=0.01))
    assert client.request("GET", "things", parse=json_object) == {"data": [1, 2]}


def test_a_body_that_never_parses_names_what_was_expected(server):
    url, script = server
    script.on("/things", (200, {}, "<html>maintenance</html>"))
    with pytest.raises(ApiError, match=r"the response was not a JSON object after 3 attempts "):
        _client(url).request("GET", "things", parse=json_object)


def test_other_4xx_fails_at_once_with_one_line(server):
    url, script = server
    script.on("/things", (404, {}, '{"error": "no such thing"}'))
    with pytest.raises(ApiError) as err:
        _client(url).request("GET", "things", what="Acme GET things")
    assert len(script.seen) == 1
    assert (
        str(err.value)
        == f'Acme GET things failed at {url}/things: HTTP 404 {{"error": "no such thing"}}'
    )


def test_a_status_named_in_answers_is_returned_for_the_caller_to_read(server):
    url, script = server
    script.on("/contacts/id", (409, {}, '{"errorCode": "MultipleMatches"}'))
    response = _client(url).request("GET", "contacts/id", answers=(404, 409))
    assert (response.status_code, response.json()) == (409, {"errorCode": "MultipleMatches"})
    assert len(script.seen) == 1  # neither retried nor raised
    script.on("/contacts/id", (503, {}, "busy"), (404, {}, '{"errorCode": "ContactNotFound"}'))
    assert _client(url).request("GET", "contacts/id", answers=(404,)).status_code == 404


def test_unreachable_server_says_check_the_url():
    with pytest.raises(ApiError) as err:
        _client(
            "http://127.0.0.1:9", policy=RetryPolicy(max_retries=1, backoff_seconds=0.01)
        ).request("GET", "things", what="Acme GET things")
    assert str(err.value).startswith(
        "Acme GET things failed after 2 attempts: cannot connect to http://127.0.0.1:9/things"
    )
    assert str(err.value).endswith("check that the URL is right and the server is reachable")


def test_rate_limiter_spaces_requests(server):
    url, script = server
    script.on("/things", OK)
    client = _client(url, limiter=RateLimiter(20))
    for _ in range(11):
        client.request("GET", "things")
    # 20/s: eleven calls span at least ten intervals of 50 ms.
    assert script.seen[-1].at - script.seen[0].at >= 0.45


def _token_auth(url: str, redact: Redactor, **kwargs) -> TokenAuth:
    transport = HttpClient(
        label="Acme", policy=RetryPolicy(max_retries=0, timeout=5), redact=redact
    )
    return TokenAuth(
        client=transport,
        login=TokenRequest(f"{url}/login", data={"client_secret": "cs-secret-77"}),
        refresh_url=f"{url}/refresh",
        secrets=["cs-secret-77"],
        rejected_hint="check the client id 'acme'",
        **kwargs,
    )


def _token(access: str, refresh: str = "rt-1111", expires_in: float = 3600) -> tuple:
    return (
        200,
        {},
        f'{{"access_token": "{access}", "refresh_token": "{refresh}", "expires_in": {expires_in}}}',
    )


def test_401_relogs_in_once_outside_the_retry_budget(server):
    url, script = server
    script.on("/login", _token("tok-first-0001"), _token("tok-second-002"))
    script.on("/things", (401, {}, "expired"), OK)
    redact = Redactor()
    client = _client(url, policy=RetryPolicy(max_retries=0), redact=redact)
    client.auth = _token_auth(url, redact)
    assert client.request("GET", "things", parse=json_object) == {"data": [1, 2]}
    assert script.paths() == ["/login", "/things", "/login", "/things"]
    assert [s.auth for s in script.seen if s.path == "/things"] == [
        "Bearer tok-first-0001",
        "Bearer tok-second-002",
    ]


def test_a_401_after_the_relogin_is_one_line_without_the_token(server):
    url, script = server
    script.on("/login", _token(TOKEN))
    script.on("/things", (401, {}, f'{{"error": "token {TOKEN} not valid"}}'))
    redact = Redactor()
    client = _client(url, redact=redact)
    client.auth = _token_auth(url, redact)
    with pytest.raises(ApiError) as err:
        client.request("GET", "things", what="Acme GET things")
    assert script.paths() == ["/login", "/things", "/login", "/things"]
    assert str(err.value) == (
        f"Acme GET things failed at {url}/things: HTTP 401 even after a fresh login "
        f'({{"error": "token *** not valid"}})'
    )


def test_token_is_renewed_early_with_the_refresh_token_then_by_login_when_refresh_fails(server):
    url, script = server
    # 1.5 s tokens are renewed 0.15 s early (10% of their life), before they expire.
    script.on(
        "/login", _token("tok-login-0001", "rt-aaaa", 1.5), _token("tok-login-0002", "rt-bbbb", 1.5)
    )
    script.on(
        "/refresh", _token("tok-refresh-01", "rt-cccc", 1.5), (400, {}, "refresh token revoked")
    )
    auth = _token_auth(url, Redactor())
    assert auth.header() == "Bearer tok-login-0001"
    assert auth.header() == "Bearer tok-login-0001"  # still fresh: no call
    time.sleep(1.4)
    assert auth.header() == "Bearer tok-refresh-01"  # before expiry, by refresh token
    time.sleep(1.4)
    assert auth.header() == "Bearer tok-login-0002"  # refresh refused: log in again
    assert script.paths() == ["/login", "/refresh", "/refresh", "/login"]
    assert [s.form for s in script.seen if s.path == "/refresh"] == [
        {"refresh_token": "rt-aaaa"},
        {"refresh_token": "rt-cccc"},
    ]


def test_rejected_login_names_the_hint_and_never_the_secret(server):
    url, script = server
    script.on("/login", (401, {}, '{"error": "bad secret cs-secret-77"}'))
    auth = _token_auth(url, Redactor())
    with pytest.raises(ApiError) as err:
        auth.header()
    assert str(err.value) == (
        f'Acme login rejected at {url}/login: HTTP 401 {{"error": "bad secret ***"}}; '
        "check the client id 'acme'"
    )
    assert len(script.seen) == 1  # a refused login is not retried


def test_static_bearer_key_is_sent_and_kept_out_of_messages(server):
    url, script = server
    script.on("/things", (403, {}, f'{{"error": "key {KEY} may not read things"}}'))
    redact = Redactor()
    client = _client(url, redact=redact, auth=StaticAuth(KEY, redact))
    with pytest.raises(ApiError) as err:
        client.request("GET", "things", what="Acme GET things")
    assert script.seen[0].auth == f"Bearer {KEY}"
    assert KEY not in str(err.value) and "HTTP 403" in str(err.value)


def test_api_key_in_its_own_header(server):
    url, script = server
    script.on("/things", OK)
    redact = Redactor()
    client = _client(
        url, redact=redact, auth=StaticAuth(KEY, redact, scheme=""), auth_header="X-Api-Key"
    )
    client.request("GET", "things")
    assert script.seen[0].headers["X-Api-Key"] == KEY
    assert script.seen[0].auth is None


def test_a_bearer_cursor_rate_limited_tap_in_a_few_lines(server):
    """The docs/kit/http.md example: LoyaltyLion-style bearer key, cursor paging, 20 req/s."""
    url, script = server
    pages = [
        {"customers": [{"id": 1}, {"id": 2}], "cursor": {"next": "c2"}},
        {"customers": [{"id": 3}], "cursor": {"next": None}},
    ]
    script.on("/v2/customers", *[(200, {}, json.dumps(p)) for p in pages])
    redact = Redactor()
    client = HttpClient(
        label="LoyaltyLion",
        base_url=f"{url}/v2",
        auth=StaticAuth(KEY, redact),
        redact=redact,
        limiter=RateLimiter(20),
    )
    records = client.pages(
        "customers",
        CursorPaginator(items=("customers",)),
        params={"limit": 2, "updated_at_min": "2026-01-01T00:00:00Z"},
    )
    assert [r["id"] for r in records] == [1, 2, 3]
    assert [(s.auth, s.query) for s in script.seen] == [
        (f"Bearer {KEY}", {"limit": "2", "updated_at_min": "2026-01-01T00:00:00Z"}),
        (f"Bearer {KEY}", {"limit": "2", "updated_at_min": "2026-01-01T00:00:00Z", "cursor": "c2"}),
    ]
