"""The Billetten API as configuration of the kit's HTTP client (docs/kit/http.md).

What is Billetten's own (the emulated contract, docs/emulated-contracts.md): the API key in
``X-API-Key``, the ``{"data": [...], "next_cursor": ...}`` envelope, and what a 401 tells the
user to check. Retries (429 with ``Retry-After``, 5xx, network, malformed pages), the rate
limit, cursor paging with loop detection and redaction are the kit's.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t

from singer_kit.http.auth import StaticAuth
from singer_kit.http.classify import Malformed, json_object
from singer_kit.http.client import HttpClient
from singer_kit.http.paging import CursorPaginator
from singer_kit.http.ratelimit import RateLimiter

if t.TYPE_CHECKING:
    import requests

    from singer_kit.http.client import RetryPolicy
    from singer_kit.redact import Redactor

logger = logging.getLogger("tap-billetten")


class BillettenAPI(HttpClient):
    """Lists Billetten resources in (updated_at, id) order, one cursor page after another."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        session: requests.Session,
        policy: RetryPolicy,
        redact: Redactor,
        page_size: int,
        requests_per_second: float | None,
    ) -> None:
        """The key goes to the redactor at once: no message can quote it."""
        super().__init__(
            label="Billetten",
            base_url=api_url,
            session=session,
            policy=policy,
            redact=redact,
            auth=StaticAuth(api_key, redact, scheme=""),
            auth_header="X-API-Key",
            limiter=RateLimiter(requests_per_second) if requests_per_second else None,
            logger=logger,
        )
        self.page_size = page_size

    def changed(
        self, path: str, start: dt.datetime | None, end: dt.datetime | None
    ) -> t.Iterator[dict[str, t.Any]]:
        """Every record of ``path`` with ``start <= updated_at < end`` (None: unbounded)."""
        params: dict[str, t.Any] = {"limit": self.page_size}
        if start is not None:
            params["updated_since"] = _utc(start)
        if end is not None:
            params["updated_before"] = _utc(end)
        paginator = CursorPaginator(items=("data",), next_cursor=("next_cursor",))
        yield from self.pages(path, paginator, params=params, parse=_page)

    def refused(self, response: requests.Response, what: str, url: str, reauthed: bool) -> str:
        """The kit's message, plus what to check at Billetten for a 401 or 403."""
        message = super().refused(response, what, url, reauthed)
        if response.status_code in (401, 403):
            return f"{message}; check api_key (the API key Billetten issued for this list)"
        return message


def _utc(instant: dt.datetime) -> str:
    """A filter bound as the API takes it: ISO 8601 in UTC with ``Z``."""
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page(response: requests.Response) -> dict[str, t.Any]:
    """The page object; ``Malformed`` (retried) unless it has a ``data`` list."""
    expected = "a JSON object with a 'data' list"
    try:
        page = json_object(response)
    except Malformed:
        raise Malformed(expected) from None
    if not isinstance(page.get("data"), list):
        raise Malformed(expected)
    return page
