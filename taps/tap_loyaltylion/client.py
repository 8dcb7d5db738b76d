"""The LoyaltyLion API v2 as configuration of the kit's HTTP client.

What is LoyaltyLion's own: a Bearer API key (or the deprecated token + secret as Basic), the
documented 20 requests per second, ``{"<resource>": [...], "cursor": {"next": ...}}`` pages
whose cursor carries the filters, and the scope each resource needs, which a 403 does not name
(its body is only "Authentication is required"), so the message here does.
"""

from __future__ import annotations

import logging
import typing as t

from singer_kit.http.auth import StaticAuth, basic_credentials
from singer_kit.http.client import HttpClient, RetryPolicy
from singer_kit.http.errors import ApiConfigError
from singer_kit.http.paging import CursorPaginator
from singer_kit.http.ratelimit import RateLimiter
from singer_kit.redact import Redactor

if t.TYPE_CHECKING:
    import requests

logger = logging.getLogger("tap-loyaltylion")

# The scope each resource needs: read_customers is documented; the transactions one is the
# sandbox's guess (docs/emulated-contracts.md).
SCOPES = {"customers": "read_customers", "transactions": "read_transactions"}


class LoyaltyLionAPI(HttpClient):
    """Lists LoyaltyLion resources: one key, one rate limit, cursor paging."""

    def __init__(self, config: t.Mapping[str, t.Any]) -> None:
        """Bearer ``api_key``, else the legacy ``api_token`` + ``api_secret`` as Basic."""
        redact = Redactor()
        if config.get("api_key"):
            auth = StaticAuth(config["api_key"], redact)
            self.credential = "api_key"
        elif config.get("api_token") and config.get("api_secret"):
            basic = basic_credentials(config["api_token"], config["api_secret"])
            redact.add([config["api_secret"], basic.partition(" ")[2]])
            auth = StaticAuth(basic.partition(" ")[2], redact, scheme="Basic")
            self.credential = "api_token/api_secret"
            logger.warning(
                "api_token/api_secret (HTTP Basic) are deprecated; LoyaltyLion accepts them "
                "until 2027-01-10: create an API key and set api_key instead"
            )
        else:
            raise ApiConfigError(
                "set api_key (a LoyaltyLion API key) or, deprecated, api_token and api_secret"
            )
        super().__init__(
            label="LoyaltyLion",
            base_url=config["api_url"],
            auth=auth,
            redact=redact,
            limiter=RateLimiter(float(config["requests_per_second"])),
            policy=RetryPolicy.from_config(config),
            logger=logger,
        )
        self.page_size = int(config["page_size"])

    def list(self, resource: str, first: dict[str, t.Any]) -> t.Iterator[dict[str, t.Any]]:
        """Every record of ``resource`` matching ``first`` (sent with the first page only:
        the cursor carries the filters afterwards)."""
        paginator = CursorPaginator(items=(resource,), first=first)
        return self.pages(resource, paginator, params={"limit": self.page_size})

    def refused(self, response: requests.Response, what: str, url: str, reauthed: bool) -> str:
        """The kit's message plus what to check: the key, or the scope the resource needs."""
        message = super().refused(response, what, url, reauthed)
        resource = url.rstrip("/").rsplit("/", 1)[-1].partition("?")[0]
        if response.status_code == 401:
            return f"{message}; check {self.credential} (LoyaltyLion: Manage > API keys)"
        if response.status_code == 403:
            scope = SCOPES.get(resource, "the one this resource needs")
            return (
                f"{message}; the API key lacks the scope {scope!r} that stream {resource!r} "
                "needs: add it to the key at LoyaltyLion, or deselect the stream"
            )
        return message
