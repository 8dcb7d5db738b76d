"""The FlexPOS POS and Attraction APIs as configuration of the kit's HTTP client.

What is FlexPOS's own: the login endpoint's shape (Basic client credentials, ``audience`` in the
query, ``scope`` in the form), the ``{"Items": [...]}`` envelope, keyset paging on
``filters[ModifiedDate][$gte]`` with ``offset``/``limit``, and what a 401/403 tells the user to
check. Retry, re-login, early token renewal, paging and redaction live in ``singer_kit.http``
(docs/kit/http.md). One ``FlexposAuth`` and one ``FlexposAPI`` exist per API, because a token is
only valid for the API whose credentials obtained it.
"""

from __future__ import annotations

import logging
import typing as t

from singer_kit.http.auth import TokenAuth, TokenRequest, basic_credentials
from singer_kit.http.classify import json_records
from singer_kit.http.client import HttpClient
from singer_kit.http.errors import ApiConfigError, ApiDataError, ApiError
from singer_kit.http.paging import KeysetPaginator

if t.TYPE_CHECKING:
    import requests

    from singer_kit.http.client import RetryPolicy
    from singer_kit.redact import Redactor

logger = logging.getLogger("tap-flexpos")

# The tap's names for the kit's errors (its streams and tests raise and catch these).
FlexposError = ApiError
FlexposConfigError = ApiConfigError
FlexposDataError = ApiDataError
ID_FIELD = "Uid"  # what the API orders by after the paging key, and the streams' primary key


class FlexposAuth(TokenAuth):
    """The FlexPOS login: Basic client credentials, an audience and space-separated scopes."""

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
        self.audience = audience
        self.client_id = client_id
        self.scope = scope
        base = auth_url.rstrip("/")
        basic = basic_credentials(client_id, client_secret)
        super().__init__(
            client=HttpClient(
                label=label, session=session, policy=policy, redact=redact, logger=logger
            ),
            login=TokenRequest(
                url=f"{base}/api/v2/auth/login",
                params={"audience": audience},
                headers={"Authorization": basic},
                data={"scope": scope},
            ),
            refresh_url=f"{base}/api/v2/auth/refresh",
            secrets=(client_secret, basic.partition(" ")[2]),
            rejected_hint=f"check client_id {client_id!r} and its client secret",
        )


class FlexposAPI(HttpClient):
    """Lists one FlexPOS API's resources with keyset-safe offset paging."""

    auth: FlexposAuth

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
        super().__init__(
            label=label,
            base_url=api_url,
            session=session,
            policy=policy,
            redact=redact,
            auth=auth,
            logger=logger,
        )
        self.page_size = page_size

    def iter_items(
        self,
        resource: str,
        filters: dict[str, dict[str, str]],
        *,
        key: str = "ModifiedDate",
        decoded: t.Collection[str] = (),
    ) -> t.Iterator[dict[str, t.Any]]:
        """Yield every item matching ``filters``, ordered by ``key`` then ``Uid``.

        ``filters[key]["$gte"]`` is the keyset paginator's lower bound; every other filter is
        sent as ``filters[field][op]`` on each page. A malformed page is retried. Only
        ``key``, ``Uid`` and the ``decoded`` fields are Python values; the others stay the
        API's JSON text (``singer_kit.http.classify.json_records``).
        """
        fields = tuple(dict.fromkeys((key, ID_FIELD, *decoded)))
        base: dict[str, str | int] = {"limit": self.page_size}
        for fld, ops in filters.items():
            for op, value in ops.items():
                if fld == key and op == "$gte":
                    continue
                base[f"filters[{fld}][{op}]"] = value
        paginator = KeysetPaginator(
            page_size=self.page_size,
            key=key,
            id_field=ID_FIELD,
            lower_param=f"filters[{key}][$gte]",
            lower=filters.get(key, {}).get("$gte"),
        )
        yield from self.pages(
            resource,
            paginator,
            params=base,
            parse=lambda response: json_records(response, "Items", fields),
            headers={"Accept": "application/json"},
        )

    def refused(self, response: requests.Response, what: str, url: str, reauthed: bool) -> str:
        """The kit's message, plus what to check at FlexPOS for a 401 or 403."""
        message = super().refused(response, what, url, reauthed)
        if response.status_code == 401:
            return (
                f"{message}; check that client {self.auth.client_id!r} may read this API and "
                f"that the audience {self.auth.audience!r} is the one FlexPOS gave you"
            )
        if response.status_code == 403:
            return (
                f"{message}; the token was asked for the scopes {self.auth.scope!r}: add the "
                f"one this resource needs to the scope setting"
            )
        return message
