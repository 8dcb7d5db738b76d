"""HTTP client for the FlexPOS POS and Attraction APIs: OAuth, paging, retries, clean errors.

One ``FlexposAuth`` and one ``FlexposAPI`` exist per API (POS, Attraction), because a token is only
valid for the API whose credentials obtained it. Every failure surfaces as a ``FlexposError`` with
a one-line message that names what failed (URL, status, body excerpt) and what to check; secrets
and tokens are scrubbed from every message before it leaves this module.
"""

from __future__ import annotations

import base64
import logging
import random
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec
import requests
from urllib3.exceptions import ProtocolError

logger = logging.getLogger("tap-flexpos")

_BODY_EXCERPT = 200
_MAX_RETRY_AFTER = 120.0
_MAX_BACKOFF = 30.0


class FlexposError(Exception):
    """A failure the user can act on; its message is one line and free of secrets."""


class FlexposConfigError(FlexposError):
    """The configuration cannot work (for example missing Attraction credentials)."""


class FlexposDataError(FlexposError):
    """A record from the API does not match the contract (for example a bad timestamp)."""


@dataclass
class RetryPolicy:
    """How often and how long to retry transient failures (429, 5xx, network, bad JSON)."""

    max_retries: int = 5
    backoff_seconds: float = 1.0
    timeout: float = 60.0

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), _MAX_RETRY_AFTER)
        base = min(self.backoff_seconds * (2 ** (attempt - 1)), _MAX_BACKOFF)
        return base * random.uniform(0.8, 1.2)  # jitter, not crypto


@dataclass
class Redactor:
    """Replaces known secrets (client secrets, tokens) in text with ``***``."""

    secrets: set[str] = field(default_factory=set)

    def add(self, value: str | None) -> None:
        """Remember a secret so it is scrubbed from any later message."""
        if value and len(value) >= 4:
            self.secrets.add(value)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every known secret replaced."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


def _excerpt(response: requests.Response) -> str:
    body = response.text.replace("\n", " ").replace("\r", " ").strip()
    if len(body) > _BODY_EXCERPT:
        body = body[:_BODY_EXCERPT] + "..."
    return body or "<empty body>"


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None  # HTTP-date form: fall back to exponential backoff


def send_with_retries(
    session: requests.Session,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    what: str,
    redact: Redactor,
    **kwargs: t.Any,  # passed through to requests
) -> requests.Response:
    """Send a request, retrying 429/5xx/network errors; return the first non-retryable response.

    ``what`` names the call in messages ("FlexPOS login", "GET customer"), so a final error says
    what failed without exposing headers or bodies that may carry credentials.
    """
    last_problem = ""
    retry_after: float | None = None
    for attempt in range(policy.max_retries + 1):
        if attempt:
            delay = policy.wait(attempt, retry_after)
            logger.warning(
                "%s: %s; retry %d/%d in %.1fs",
                what,
                redact(last_problem),
                attempt,
                policy.max_retries,
                delay,
            )
            time.sleep(delay)
        try:
            response = session.request(method, url, timeout=policy.timeout, **kwargs)
        except requests.Timeout:
            retry_after = None
            last_problem = f"no response from {url} within {policy.timeout:g}s"
            continue
        except requests.ConnectionError as exc:
            retry_after = None
            if exc.args and isinstance(exc.args[0], ProtocolError):
                last_problem = f"connection to {url} dropped before a response"
            else:
                last_problem = f"cannot connect to {url} ({type(exc).__name__})"
            continue
        except requests.RequestException as exc:
            msg = f"{what} failed: {url}: {type(exc).__name__}: {exc}"
            raise FlexposError(redact(msg)) from None
        retry_after = _retry_after(response) if response.status_code == 429 else None
        if response.status_code == 429 or response.status_code >= 500:
            last_problem = f"HTTP {response.status_code} from {url}: {_excerpt(response)}"
            continue
        return response
    hint = (
        "check that the URL is right and the server is reachable"
        if last_problem.startswith(("cannot connect", "no response", "connection to"))
        else "the server keeps failing; check its status or raise max_retries"
    )
    msg = f"{what} failed after {policy.max_retries + 1} attempts: {last_problem}; {hint}"
    raise FlexposError(redact(msg))


class FlexposAuth:
    """OAuth login/refresh for one FlexPOS API (Basic client credentials, audience, scopes).

    The token is refreshed shortly before ``expires_in`` runs out; a refresh that fails falls
    back to a full login. ``relogin`` is what a 401 mid-run triggers.
    """

    def __init__(
        self,
        *,
        label: str,
        auth_url: str,
        audience: str,
        client_id: str,
        client_secret: str,
        scope: str,
        session: requests.Session,
        policy: RetryPolicy,
        redact: Redactor,
    ) -> None:
        """Remember the credentials; no network call happens until the first token is needed."""
        self.label = label
        self.auth_url = auth_url.rstrip("/")
        self.audience = audience
        self.client_id = client_id
        self.scope = scope
        self.session = session
        self.policy = policy
        self.redact = redact
        redact.add(client_secret)
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        redact.add(basic)
        self._basic = f"Basic {basic}"
        self._access: str | None = None
        self._refresh: str | None = None
        self._expires_at = 0.0
        self.logins = 0
        self.refreshes = 0

    def _store(self, payload: dict[str, t.Any]) -> None:
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            msg = f"{self.label} auth at {self.auth_url} returned no access_token"
            raise FlexposError(msg)
        self.redact.add(access)
        self._access = access
        refresh = payload.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self.redact.add(refresh)
            self._refresh = refresh
        try:
            expires_in = float(payload.get("expires_in") or 3600)
        except (TypeError, ValueError):
            expires_in = 3600.0
        # Renew a little early: 10% of the lifetime, at most a minute, so short test tokens work.
        margin = min(60.0, expires_in * 0.1)
        self._expires_at = time.monotonic() + expires_in - margin

    def _decode(self, response: requests.Response, what: str) -> dict[str, t.Any]:
        try:
            payload = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            msg = f"{what} at {response.url}: response is not JSON: {_excerpt(response)}"
            raise FlexposError(self.redact(msg)) from None
        if not isinstance(payload, dict):
            msg = f"{what} at {response.url}: unexpected response {_excerpt(response)}"
            raise FlexposError(self.redact(msg))
        return payload

    def login(self) -> None:
        """Obtain a fresh token with the client credentials."""
        url = f"{self.auth_url}/api/v2/auth/login"
        what = f"{self.label} login"
        response = send_with_retries(
            self.session,
            "POST",
            url,
            policy=self.policy,
            what=what,
            redact=self.redact,
            params={"audience": self.audience},
            headers={"Authorization": self._basic},
            data={"scope": self.scope},
        )
        if response.status_code in (400, 401, 403):
            msg = (
                f"{what} rejected at {url}: HTTP {response.status_code} {_excerpt(response)}; "
                f"check client_id {self.client_id!r} and its client secret"
            )
            raise FlexposError(self.redact(msg))
        if response.status_code != 200:
            msg = f"{what} failed at {url}: HTTP {response.status_code} {_excerpt(response)}"
            raise FlexposError(self.redact(msg))
        self._store(self._decode(response, what))
        self.logins += 1
        logger.info("%s: logged in (login #%d)", self.label, self.logins)

    def refresh(self) -> None:
        """Renew the token with the refresh token; on any failure, log in again."""
        if not self._refresh:
            self.login()
            return
        url = f"{self.auth_url}/api/v2/auth/refresh"
        try:
            response = send_with_retries(
                self.session,
                "POST",
                url,
                policy=self.policy,
                what=f"{self.label} token refresh",
                redact=self.redact,
                data={"refresh_token": self._refresh},
            )
            if response.status_code == 200:
                self._store(self._decode(response, f"{self.label} token refresh"))
                self.refreshes += 1
                logger.info("%s: token refreshed", self.label)
                return
            logger.info("%s: refresh got HTTP %d; logging in", self.label, response.status_code)
        except FlexposError as exc:
            logger.warning("%s; logging in again", exc)
        self._refresh = None
        self.login()

    def relogin(self) -> None:
        """Drop the current token and log in again (after a 401 on an API call)."""
        self._access = None
        self._refresh = None
        self.login()

    def header(self) -> str:
        """Return a valid ``Authorization`` header value, renewing the token when due."""
        if self._access is None:
            self.login()
        elif time.monotonic() >= self._expires_at:
            self.refresh()
        return f"Bearer {self._access}"


class FlexposAPI:
    """Lists one FlexPOS API's resources with keyset-safe offset paging."""

    def __init__(
        self,
        *,
        label: str,
        api_url: str,
        auth: FlexposAuth,
        session: requests.Session,
        policy: RetryPolicy,
        redact: Redactor,
        page_size: int = 500,
    ) -> None:
        """Bind the API base URL to its own authenticator."""
        self.label = label
        self.api_url = api_url.rstrip("/")
        self.auth = auth
        self.session = session
        self.policy = policy
        self.redact = redact
        self.page_size = page_size
        self.requests = 0

    def get_page(self, resource: str, params: dict[str, str | int]) -> list[dict[str, t.Any]]:
        """GET one page of ``resource``; retry bad JSON; re-login once on a 401."""
        url = f"{self.api_url}/{resource}"
        what = f"{self.label} GET {resource}"
        relogged = False
        bad_pages = 0
        while True:  # bounded: one re-login, at most max_retries + 1 malformed pages
            response = send_with_retries(
                self.session,
                "GET",
                url,
                policy=self.policy,
                what=what,
                redact=self.redact,
                params=params,
                headers={"Authorization": self.auth.header(), "Accept": "application/json"},
            )
            self.requests += 1
            if response.status_code == 401 and not relogged:
                logger.info("%s: HTTP 401, logging in again", what)
                relogged = True
                self.auth.relogin()
                continue
            if response.status_code == 401:
                msg = (
                    f"{what} failed at {url}: HTTP 401 even after a fresh login "
                    f"({_excerpt(response)}); check that client {self.auth.client_id!r} "
                    f"may read this API and that the audience {self.auth.audience!r} is the "
                    f"one FlexPOS gave you"
                )
                raise FlexposError(self.redact(msg))
            if response.status_code == 403:
                msg = (
                    f"{what} forbidden at {url}: HTTP 403 ({_excerpt(response)}); the token "
                    f"was asked for the scopes {self.auth.scope!r}: add the one this "
                    f"resource needs to the scope setting"
                )
                raise FlexposError(self.redact(msg))
            if response.status_code != 200:
                msg = (
                    f"{what} failed at {response.url}: HTTP {response.status_code} "
                    f"{_excerpt(response)}"
                )
                raise FlexposError(self.redact(msg))
            items = _items(response)
            if items is not None:
                return items
            bad_pages += 1
            if bad_pages > self.policy.max_retries:
                msg = (
                    f"{what} failed at {url}: the response was not a JSON object with an "
                    f"'Items' list after {bad_pages} attempts (last body: {_excerpt(response)})"
                )
                raise FlexposError(self.redact(msg))
            delay = self.policy.wait(bad_pages)
            logger.warning(
                "%s: malformed JSON page (%s); retry %d/%d in %.1fs",
                what,
                self.redact(_excerpt(response)),
                bad_pages,
                self.policy.max_retries,
                delay,
            )
            time.sleep(delay)

    def iter_items(
        self,
        resource: str,
        filters: dict[str, dict[str, str]],
        *,
        key: str = "ModifiedDate",
    ) -> t.Iterator[dict[str, t.Any]]:
        """Yield every item matching ``filters``, ordered by ``key`` then ``Uid``.

        Paging moves the ``key >= last seen`` filter forward and uses ``offset`` only to skip
        the items already seen with that exact value. Plain offset paging would skip a record
        whenever another one is modified mid-run (it moves to the end and shifts the offsets);
        here a moved record is merely seen again, and downstream upserts on ``Uid`` dedupe it.
        """
        base: dict[str, str | int] = {"limit": self.page_size}
        for fld, ops in filters.items():
            for op, value in ops.items():
                if fld == key and op == "$gte":
                    continue
                base[f"filters[{fld}][{op}]"] = value
        lower = filters.get(key, {}).get("$gte")
        offset = 0
        seen: tuple[t.Any, ...] | None = None

        def fetch(lower: str | None, offset: int) -> list[dict[str, t.Any]]:
            params = dict(base)
            params["offset"] = offset
            if lower is not None:
                params[f"filters[{key}][$gte]"] = lower
            return self.get_page(resource, params)

        # The next page is fetched on one helper thread while this page's records are being
        # processed, so network time overlaps with work. Requests stay strictly sequential.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flexpos-page") as pool:
            pending = pool.submit(fetch, lower, offset)
            while True:
                items = pending.result()
                if not items:
                    return
                signature = (items[0].get("Uid"), items[-1].get("Uid"), len(items))
                if signature == seen:
                    msg = (
                        f"{self.label} GET {resource}: the API returned the same page twice "
                        f"(it seems to ignore 'offset'); stopping instead of looping"
                    )
                    raise FlexposError(msg)
                seen = signature
                last = items[-1].get(key)
                ties = 0
                for item in reversed(items):
                    if item.get(key) != last:
                        break
                    ties += 1
                full = len(items) >= self.page_size
                if isinstance(last, str) and last == lower:
                    offset += ties  # a whole page at one value: keep skipping within it
                elif isinstance(last, str):
                    lower, offset = last, ties
                else:
                    offset += len(items)  # no usable key: plain offset paging
                if full:
                    pending = pool.submit(fetch, lower, offset)
                yield from items
                if not full:
                    return


def _items(response: requests.Response) -> list[dict[str, t.Any]] | None:
    """Return the page's ``Items`` list, or None when the body is not the expected JSON."""
    try:
        payload = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    items = payload.get("Items")
    if not isinstance(items, list):
        return None
    return items
