"""Authenticators for ``HttpClient``: a static key, and OAuth-style tokens renewed early.

``TokenAuth`` obtains a token at a login endpoint, renews it with the refresh token shortly
before ``expires_in`` runs out (falling back to a login when the refresh fails), and logs in
again when the API answers 401. A vendor configures it with its endpoints' shape
(``TokenRequest``); every credential and token is registered with the client's redactor.
"""

from __future__ import annotations

import base64
import threading
import time
import typing as t
from dataclasses import dataclass, field

from singer_kit.http.classify import excerpt, json_object
from singer_kit.http.errors import ApiError

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import requests

    from singer_kit.http.client import HttpClient
    from singer_kit.redact import Redactor


def basic_credentials(user: str, password: str) -> str:
    """The ``Authorization`` value of HTTP Basic (OAuth client credentials often use it)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class StaticAuth:
    """A fixed API key or bearer token: nothing to renew, so a 401 is final after one retry."""

    def __init__(self, token: str, redact: Redactor, *, scheme: str = "Bearer") -> None:
        """``scheme`` "" sends the bare key (for APIs with their own header, e.g. ``apikey``)."""
        redact.add(token)
        self._value = f"{scheme} {token}" if scheme else token

    def header(self) -> str:
        """The header value."""
        return self._value

    def relogin(self) -> None:
        """A static key cannot be renewed; the retry after a 401 settles whether it was a blip."""


@dataclass(frozen=True)
class TokenRequest:
    """One call to a token endpoint: its URL and what to send (form body, query, headers)."""

    url: str
    data: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


class TokenAuth:
    """OAuth-style access tokens: login, early renewal by refresh token, re-login on 401.

    Thread-safe: a push sink's workers share one token, and only one of them renews it.
    """

    # The token response's fields (RFC 6749 names).
    access_field = "access_token"
    refresh_field = "refresh_token"
    lifetime_field = "expires_in"

    def __init__(
        self,
        *,
        client: HttpClient,
        login: TokenRequest,
        refresh_url: str | None = None,
        secrets: Iterable[str] = (),
        rejected_hint: str = "check the client id and secret",
        default_lifetime: float = 3600.0,
        renew_share: float = 0.1,
        max_margin: float = 60.0,
    ) -> None:
        """No network call happens until the first token is needed.

        ``client`` sends the token calls (no auth of its own); ``secrets`` are the credentials
        inside ``login`` (client secret, encoded Basic value) to scrub from every message. The
        token is renewed ``renew_share`` of its lifetime early, at most ``max_margin`` seconds,
        so short test tokens renew too.
        """
        self.client = client
        self.label = client.label
        self.login_request = login
        self.refresh_url = refresh_url
        self.rejected_hint = rejected_hint
        self.default_lifetime = default_lifetime
        self.renew_share = renew_share
        self.max_margin = max_margin
        client.redact.add(list(secrets))
        self._lock = threading.RLock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._expires_at = 0.0
        self.logins = 0

    def header(self) -> str:
        """A valid ``Authorization`` value, renewing the token when it is due."""
        with self._lock:
            if self._access is None:
                self.login()
            elif time.monotonic() >= self._expires_at:
                self.refresh()
            return f"Bearer {self._access}"

    def relogin(self) -> None:
        """Drop the current token and log in again (after a 401 on an API call)."""
        with self._lock:
            self._access = None
            self._refresh = None
            self.login()

    def login(self) -> None:
        """Obtain a fresh token with the configured credentials."""
        req = self.login_request
        payload = self.client.request(
            "POST",
            req.url,
            what=f"{self.label} login",
            parse=json_object,
            refused=self._rejected,
            params=dict(req.params),
            headers=dict(req.headers),
            data=dict(req.data),
        )
        self._store(payload, req.url)
        self.logins += 1
        self.client.log.info("%s: logged in (login #%d)", self.label, self.logins)

    def refresh(self) -> None:
        """Renew the token with the refresh token; on any failure, log in again."""
        if not (self._refresh and self.refresh_url):
            self.login()
            return
        try:
            payload = self.client.request(
                "POST",
                self.refresh_url,
                what=f"{self.label} token refresh",
                parse=json_object,
                data={self.refresh_field: self._refresh},
            )
            self._store(payload, self.refresh_url)
            self.client.log.info("%s: token refreshed", self.label)
            return
        except ApiError as exc:
            self.client.log.warning("%s; logging in again", exc)
        self._refresh = None
        self.login()

    def _rejected(self, response: requests.Response, what: str, url: str, _: bool) -> str:
        status, body = response.status_code, excerpt(response)
        if status in (400, 401, 403):
            return f"{what} rejected at {url}: HTTP {status} {body}; {self.rejected_hint}"
        return f"{what} failed at {url}: HTTP {status} {body}"

    def _store(self, payload: dict[str, t.Any], url: str) -> None:
        access = payload.get(self.access_field)
        if not isinstance(access, str) or not access:
            raise ApiError(f"{self.label} auth at {url} returned no {self.access_field}")
        redact = self.client.redact
        redact.add(access)
        refresh = payload.get(self.refresh_field)
        if isinstance(refresh, str) and refresh:
            redact.add(refresh)
            self._refresh = refresh
        try:
            lifetime = float(payload.get(self.lifetime_field) or self.default_lifetime)
        except (TypeError, ValueError):
            lifetime = self.default_lifetime
        margin = min(self.max_margin, lifetime * self.renew_share)
        self._expires_at = time.monotonic() + lifetime - margin
        self._access = access
