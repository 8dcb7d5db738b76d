"""Voyado Engage API v3 calls: the kit's HttpClient configured for Voyado, one method per call.

Every request carries the ``apikey`` header, a ``User-Agent`` (required) and the JSON content
type (without it Voyado answers 500 "An error has occurred"). 429, 5xx and timeouts are retried
by the kit's client with backoff; Voyado's documented refusals (400/404/409 with an error
code) come back as :class:`Refused`, which the sinks turn into rejects carrying the code.

A create is never retried blindly: a lost answer may mean the contact exists now, so
:meth:`VoyadoClient.create_contact` makes one attempt and the caller looks the contact up again
before the next (Voyado's retry policy: "check with a GET before retrying a POST").
"""

from __future__ import annotations

import logging
import typing as t

import requests

from singer_kit.http.auth import StaticAuth
from singer_kit.http.classify import excerpt
from singer_kit.http.client import HttpClient, RetryPolicy
from singer_kit.http.ratelimit import RateLimiter
from singer_kit.redact import Redactor

log = logging.getLogger("target-voyado")
USER_AGENT = "loyalty-pipelines target-voyado/1.0"
# Statuses Voyado documents with an error code: answers to read, not failures to retry.
REFUSALS = (400, 404, 409)
# What a configured contact key looks up by, and how a receipt names it (matchKeyType).
LOOKUP_PARAM = {"email": "email", "mobilePhone": "mobilePhone", "memberNumber": "customKey"}


class Refused(Exception):
    """Voyado refused a call with a documented error code (``ContactNotFound``, ...)."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message and message != code else code)
        self.status = status
        self.code = code


class VoyadoClient:
    """The calls target-voyado and the promotion helpers make (module doc)."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        user_agent: str = USER_AGENT,
        limiter: RateLimiter | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        redact = Redactor([api_key])
        session = requests.Session()
        session.headers.update({"User-Agent": user_agent, "Content-Type": "application/json"})
        auth = StaticAuth(api_key, redact, scheme="")
        common = {
            "label": "Voyado",
            "base_url": api_url.rstrip("/") + "/api/v3",
            "session": session,
            "redact": redact,
            "auth": auth,
            "auth_header": "apikey",
            "limiter": limiter,
            "logger": log,
        }
        policy = policy or RetryPolicy()
        self.http = HttpClient(policy=policy, **common)
        # One attempt only: the caller looks the contact up before trying a create again.
        self.once = HttpClient(policy=RetryPolicy(max_retries=0, timeout=policy.timeout), **common)
        self.policy = policy

    @classmethod
    def from_config(
        cls, config: t.Mapping[str, t.Any], limiter: RateLimiter | None = None
    ) -> VoyadoClient:
        """A client from target-voyado's settings (api_url, api_key, user_agent, retries)."""
        return cls(
            str(config["api_url"]),
            str(config["api_key"]),
            user_agent=str(config.get("user_agent") or USER_AGENT),
            limiter=limiter,
            policy=RetryPolicy(
                max_retries=int(config.get("max_retries", 5)),
                backoff_seconds=float(config.get("backoff_seconds", 1.0)),
                timeout=float(config.get("timeout_seconds", 30.0)),
            ),
        )

    # ----- contacts ------------------------------------------------------------------------
    def find_contact(self, key: str, value: str, contact_type: str | None = None) -> str | None:
        """The contact id for ``key`` (email, mobilePhone, memberNumber) = value, or None.

        ``MultipleMatches`` (409) and invalid values (400) raise :class:`Refused`.
        """
        params = {LOOKUP_PARAM[key]: value}
        if contact_type:
            params["contactType"] = contact_type
        response = self._call(self.http, "GET", "contacts/id", "find contact", params=params)
        if response is None:
            return None
        body = response.json()
        return str(body["id"] if isinstance(body, dict) else body)

    def overview(self, contact_id: str) -> dict[str, t.Any]:
        """The contact's enriched profile: attributes, preferences, promotions."""
        response = self._call(
            self.http,
            "GET",
            "contactoverview",
            "contact overview",
            params={"contactId": contact_id},
        )
        if response is None:
            raise Refused(404, "ContactNotFound", f"contact {contact_id}")
        return response.json()

    def create_contact(self, body: dict[str, t.Any], query: dict[str, str]) -> dict[str, t.Any]:
        """One attempt to create (raises ``ApiError`` when the answer did not arrive)."""
        response = self._call(
            self.once, "POST", "contacts", "create contact", params=query, json=body, found=()
        )
        return response.json()

    def patch_contact(self, contact_id: str, fields: dict[str, t.Any]) -> None:
        """Overwrite exactly these fields (an empty value would erase one: never send it)."""
        self._call(self.http, "PATCH", f"contacts/{contact_id}", "update contact", json=fields)

    # ----- receipts and promotions -----------------------------------------------------------
    def post_receipt(self, receipt: dict[str, t.Any]) -> None:
        """Register a receipt; one with a known ``uniqueReceiptId`` is ignored by Voyado, so
        a retried POST is safe."""
        self._call(self.http, "POST", "receipts", "register receipt", json=receipt, found=())

    def assign_promotion(self, contact_id: str, promotion_id: str) -> dict[str, t.Any]:
        """Make a promotion personal to the contact; returns the assignment (its ``id``)."""
        body = {"contactId": contact_id, "promotionId": promotion_id}
        response = self._call(
            self.http, "POST", "promotion-assignments", "assign promotion", json=body, found=()
        )
        return response.json()

    def redeem_assignment(self, assignment_id: str, channel: str = "POS") -> dict[str, t.Any]:
        """Redeem one contact's assignment (not the promotion id) in ``channel``."""
        response = self._call(
            self.http,
            "POST",
            f"promotion-assignments/{assignment_id}/redeem",
            "redeem promotion",
            json={"redemptionChannel": channel},
            found=(),
        )
        return response.json()

    def _call(
        self,
        http: HttpClient,
        method: str,
        path: str,
        what: str,
        *,
        found: tuple[int, ...] = (404,),
        **kwargs: t.Any,
    ) -> t.Any:
        """The response; None for a 404 in ``found`` (not there); other refusals raise."""
        response = http.request(method, path, what=f"Voyado {what}", answers=REFUSALS, **kwargs)
        if response.status_code < 300:
            return response
        if response.status_code in found:
            return None
        raise Refused(response.status_code, *_error(response))


def _error(response: requests.Response) -> tuple[str, str]:
    """Voyado's error code and message from a refusal's body."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP{response.status_code}", excerpt(response)
    if isinstance(body, dict):
        code = body.get("errorCode") or body.get("code") or f"HTTP{response.status_code}"
        return str(code), str(body.get("message") or "")
    return f"HTTP{response.status_code}", excerpt(response)
