"""The kit's HTTP client: one retrier over classified exchanges, re-auth, rate limit, redaction.

``HttpClient.request`` is the only loop that retries: transient failures (429, 5xx, network,
timeouts, a malformed body the caller needed) share one budget of ``max_retries``; a 401 renews
the credentials once, outside that budget (so a token expiring mid-run costs no retry); any
other failure is one ``ApiError`` line, redacted.
"""

from __future__ import annotations

import logging
import random
import time
import typing as t
from dataclasses import dataclass

import requests
from singer_sdk import typing as th

from singer_kit.http.classify import (
    Action,
    Verdict,
    classify,
    classify_error,
    excerpt,
    json_object,
)
from singer_kit.http.errors import ApiError
from singer_kit.http.paging import paginate
from singer_kit.redact import Redactor

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_kit.http.paging import Paginator
    from singer_kit.http.ratelimit import RateLimiter

_NETWORK_HINT = "check that the URL is right and the server is reachable"
_SERVER_HINT = "the server keeps failing; check its status or raise max_retries"


class Auth(t.Protocol):
    """What the client needs from an authenticator (``singer_kit.http.auth``)."""

    def header(self) -> str:
        """The credentials header's value, renewed first when it is about to expire."""
        ...

    def relogin(self) -> None:
        """Obtain fresh credentials after a 401 (a no-op for a static key)."""
        ...


@dataclass
class RetryPolicy:
    """How often and how long to retry transient failures, and how long one request may take."""

    max_retries: int = 5
    backoff_seconds: float = 1.0
    timeout: float = 60.0
    max_retry_after: float = 120.0  # a server asking for longer is capped, not obeyed blindly
    max_backoff: float = 30.0

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> RetryPolicy:
        """The policy of a connector's ``HTTP_SETTINGS`` (their defaults where unset)."""
        return cls(
            max_retries=int(config.get("max_retries", 5)),
            backoff_seconds=float(config.get("backoff_seconds", 1.0)),
            timeout=float(config.get("request_timeout", 60)),
        )

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number ``attempt`` (1-based): the server's
        ``Retry-After`` when it sent one, else exponential backoff with +-20% jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.backoff_seconds * (2 ** (attempt - 1)), self.max_backoff)
        return base * random.uniform(0.8, 1.2)  # jitter spreads clients apart; not crypto


# The settings every HTTP connector offers for its RetryPolicy (``RetryPolicy.from_config``).
HTTP_SETTINGS = th.PropertiesList(
    th.Property(
        "request_timeout",
        th.NumberType(minimum=0.1),
        default=60,
        description="Seconds to wait for one HTTP response",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0, maximum=20),
        default=5,
        description="Retries of a failed request (429, 5xx, network, malformed JSON)",
    ),
    th.Property(
        "backoff_seconds",
        th.NumberType(minimum=0),
        default=1.0,
        description="First retry delay; doubles per retry (Retry-After wins on 429)",
    ),
)


class HttpClient:
    """Requests against one API: retry, re-auth, rate limit and clean errors in one place.

    ``label`` names the API in messages ("FlexPOS", "LoyaltyLion"); ``auth`` may be replaced
    after construction (each request reads it). Subclasses adapt the refusal messages
    (``refused``) to say what to check at their vendor.
    """

    def __init__(
        self,
        *,
        label: str,
        base_url: str = "",
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        redact: Redactor | None = None,
        auth: Auth | None = None,
        auth_header: str = "Authorization",
        limiter: RateLimiter | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """Nothing is sent until the first request."""
        self.label = label
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.policy = policy or RetryPolicy()
        self.redact = redact or Redactor()
        self.auth = auth
        self.auth_header = auth_header
        self.limiter = limiter
        self.log = logger or logging.getLogger("singer_kit.http")

    def url(self, path: str) -> str:
        """``path`` under the base URL; an absolute URL is kept as it is."""
        if path.startswith(("http://", "https://")) or not self.base_url:
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        parse: t.Callable[[requests.Response], t.Any] | None = None,
        refused: t.Callable[[requests.Response, str, str, bool], str] | None = None,
        answers: t.Collection[int] = (),
        **kwargs: t.Any,  # passed through to requests (params, data, json, headers)
    ) -> t.Any:
        """Send until the exchange is done; return ``parse(response)``, or the response.

        ``what`` names the call in messages ("FlexPOS GET customer"), so an error says what
        failed without quoting headers or bodies that may carry credentials. ``parse`` raises
        ``classify.Malformed`` for a body that must be retried. ``refused(response, what,
        url, reauthed)`` words a final refusal instead of ``self.refused``. A status in
        ``answers`` (a lookup's 404, a duplicate's 409) is an answer the caller reads itself:
        the response is returned, not retried or raised.
        """
        url = self.url(path)
        what = what or f"{self.label} {method} {path}"
        headers = dict(kwargs.pop("headers", None) or {})
        retries = 0
        reauthed = False
        while True:  # bounded: max_retries + 1 transient failures, plus one re-auth
            if self.auth is not None:
                headers[self.auth_header] = self.auth.header()
            if self.limiter is not None:
                self.limiter.acquire()
            response: requests.Response | None = None
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=self.policy.timeout, **kwargs
                )
            except requests.RequestException as exc:
                verdict, value = classify_error(exc, url, self.policy.timeout), None
                if verdict.action is Action.FAIL:
                    raise ApiError(self.redact(f"{what} failed: {verdict.problem}")) from None
            else:
                if response.status_code in answers:
                    return response
                verdict, value = classify(response, url, parse)
            if verdict.action is Action.DONE:
                return value
            if verdict.action is Action.REAUTH and not reauthed and self.auth is not None:
                self.log.info("%s: HTTP 401, logging in again", what)
                reauthed = True
                self.auth.relogin()
                continue
            if verdict.action is not Action.RETRY:
                assert response is not None  # a refusal is an HTTP answer
                word = refused or self.refused
                raise ApiError(self.redact(word(response, what, url, reauthed)))
            retries += 1
            if retries > self.policy.max_retries:
                raise ApiError(self.redact(self._give_up(verdict, what, url, retries, response)))
            delay = self.policy.wait(retries, verdict.retry_after)
            self.log.warning(
                "%s: %s; retry %d/%d in %.1fs",
                what,
                self.redact(verdict.problem),
                retries,
                self.policy.max_retries,
                delay,
            )
            time.sleep(delay)

    def pages(
        self,
        path: str,
        paginator: Paginator[t.Any, t.Any],
        *,
        params: dict[str, t.Any] | None = None,
        parse: t.Callable[[requests.Response], t.Any] = json_object,
        what: str | None = None,
        **kwargs: t.Any,  # passed through to ``request`` (headers)
    ) -> Iterator[dict[str, t.Any]]:
        """Every record of a GET listing: ``params`` on each page plus the paginator's own,
        the next page prefetched while the caller works (see ``paging.paginate``)."""
        what = what or f"{self.label} GET {path}"
        paginator.what = paginator.what or what
        fixed = dict(params or {})

        def fetch(state: t.Any) -> t.Any:
            page_params = {**fixed, **paginator.params(state)}
            return self.request("GET", path, what=what, parse=parse, params=page_params, **kwargs)

        return paginate(paginator, fetch)

    def refused(self, response: requests.Response, what: str, url: str, reauthed: bool) -> str:
        """The one-line error for a final 4xx (or a 401 that survived a re-login).

        Vendors override this to add what to check (client id, scopes); the wording here is
        the generic one.
        """
        status = response.status_code
        if status == 401:
            again = " even after a fresh login" if reauthed else ""
            return f"{what} failed at {url}: HTTP 401{again} ({excerpt(response)})"
        if status == 403:
            return f"{what} forbidden at {url}: HTTP 403 ({excerpt(response)})"
        return f"{what} failed at {response.url}: HTTP {status} {excerpt(response)}"

    @staticmethod
    def _give_up(
        verdict: Verdict, what: str, url: str, attempts: int, response: requests.Response | None
    ) -> str:
        if verdict.malformed is not None and response is not None:
            return (
                f"{what} failed at {url}: the response was not {verdict.malformed} after "
                f"{attempts} attempts (last body: {excerpt(response)})"
            )
        hint = _NETWORK_HINT if verdict.network else _SERVER_HINT
        return f"{what} failed after {attempts} attempts: {verdict.problem}; {hint}"
