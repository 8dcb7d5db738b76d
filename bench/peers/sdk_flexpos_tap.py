"""Peer: a singer-sdk default tap for FlexPOS journals, written the way the SDK docs show.

``RESTStream`` + ``OffsetPaginator`` (limit 500) + a Bearer token from the FlexPOS login, every
other knob at SDK defaults (stdlib JSON writer, flush per message, typing conformance). It does
the work tap-flexpos + the journal explode rule do: one record per journal line carrying its
journal's fields, with the API's local timestamps converted to UTC ISO 8601.

Config: ``auth_url``, ``api_url``, ``client_id``, ``client_secret`` (the emulator's values);
``explode: false`` emits whole journals with their ``Lines`` instead (what tap-flexpos emits), for
the tap stage.
Runs inside the bench's ``singer-sdk`` peer venv.
"""

from __future__ import annotations

import typing as t
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import requests
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import OffsetPaginator
from singer_sdk.streams import RESTStream

LOCAL = ZoneInfo("Europe/Copenhagen")
PAGE_SIZE = 500


def _utc(value: str | None) -> str | None:
    if not value:
        return None
    local = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=LOCAL)
    return local.astimezone(UTC).isoformat()


class Pages(OffsetPaginator):
    """FlexPOS: a page shorter than the limit is the last one."""

    def has_more(self, response: requests.Response) -> bool:
        """More pages while a page is full."""
        return len(response.json()["Items"]) == PAGE_SIZE


class JournalLinesStream(RESTStream):
    """One record per journal line."""

    name = "journal_lines"
    path = "/journal"
    primary_keys: t.ClassVar[list[str]] = ["Uid", "LineNumber"]
    records_jsonpath = "$.Items[*]"
    line_schema = th.PropertiesList(
        th.Property("Uid", th.StringType),
        th.Property("JournalNumber", th.IntegerType),
        th.Property("Date", th.DateTimeType),
        th.Property("ModifiedDate", th.DateTimeType),
        th.Property("StoreName", th.StringType),
        th.Property("CustomerUid", th.StringType),
        th.Property("Currency", th.StringType),
        th.Property("IsReturn", th.BooleanType),
        th.Property("LineNumber", th.IntegerType),
        th.Property("ProductUid", th.StringType),
        th.Property("ProductName", th.StringType),
        th.Property("Quantity", th.NumberType),
        th.Property("TotalInclVat", th.NumberType),
        th.Property("DiscountInclVat", th.NumberType),
    ).to_dict()
    journal_schema = th.PropertiesList(
        th.Property("Uid", th.StringType),
        th.Property("JournalNumber", th.IntegerType),
        th.Property("Date", th.DateTimeType),
        th.Property("ModifiedDate", th.DateTimeType),
        th.Property("StoreUid", th.StringType),
        th.Property("StoreName", th.StringType),
        th.Property("CustomerUid", th.StringType),
        th.Property("Currency", th.StringType),
        th.Property("TotalInclVat", th.NumberType),
        th.Property("DiscountInclVat", th.NumberType),
        th.Property("IsReturn", th.BooleanType),
        th.Property(
            "Lines",
            th.ArrayType(
                th.ObjectType(
                    th.Property("LineNumber", th.IntegerType),
                    th.Property("ProductUid", th.StringType),
                    th.Property("ProductNumber", th.StringType),
                    th.Property("ProductName", th.StringType),
                    th.Property("Quantity", th.NumberType),
                    th.Property("UnitPriceInclVat", th.NumberType),
                    th.Property("DiscountInclVat", th.NumberType),
                    th.Property("TotalInclVat", th.NumberType),
                    th.Property("VatRate", th.NumberType),
                )
            ),
        ),
    ).to_dict()

    def __init__(self, tap: Tap) -> None:
        """Whole journals (name ``journals``) when ``explode`` is false."""
        explode = tap.config.get("explode", True)
        super().__init__(
            tap,
            name="journal_lines" if explode else "journals",
            schema=self.line_schema if explode else self.journal_schema,
        )
        if not explode:
            self.primary_keys = ["Uid"]

    _token: str | None = None

    @property
    def url_base(self) -> str:
        """The POS API."""
        return self.config["api_url"]

    @property
    def authenticator(self) -> BearerTokenAuthenticator:
        """Log in once (Basic client id/secret) and send the Bearer token."""
        if JournalLinesStream._token is None:
            resp = requests.post(
                f"{self.config['auth_url']}/api/v2/auth/login",
                params={"audience": "https://api.flexpos.com"},  # the contract's audience
                auth=(self.config["client_id"], self.config["client_secret"]),
                data={"scope": "journal:read"},
                timeout=60,
            )
            resp.raise_for_status()
            JournalLinesStream._token = resp.json()["access_token"]
        return BearerTokenAuthenticator(token=JournalLinesStream._token)

    def get_new_paginator(self) -> Pages:
        """Offset paging, 500 per page."""
        return Pages(start_value=0, page_size=PAGE_SIZE)

    def get_url_params(self, context: t.Any, next_page_token: t.Any) -> dict:
        """offset/limit."""
        return {"offset": next_page_token or 0, "limit": PAGE_SIZE}

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        """Explode each journal into its lines."""
        for journal in response.json()["Items"]:
            if not self.config.get("explode", True):
                journal["Date"] = _utc(journal["Date"])
                journal["ModifiedDate"] = _utc(journal["ModifiedDate"])
                yield journal
                continue
            head = {
                "Uid": journal["Uid"],
                "JournalNumber": journal["JournalNumber"],
                "Date": _utc(journal["Date"]),
                "ModifiedDate": _utc(journal["ModifiedDate"]),
                "StoreName": journal["StoreName"],
                "CustomerUid": journal["CustomerUid"],
                "Currency": journal["Currency"],
                "IsReturn": journal["IsReturn"],
            }
            for line in journal["Lines"]:
                yield {
                    **head,
                    "LineNumber": line["LineNumber"],
                    "ProductUid": line["ProductUid"],
                    "ProductName": line["ProductName"],
                    "Quantity": line["Quantity"],
                    "TotalInclVat": line["TotalInclVat"],
                    "DiscountInclVat": line["DiscountInclVat"],
                }


class TapSdkFlexpos(Tap):
    """Minimal singer-sdk tap."""

    name = "tap-sdk-flexpos"
    config_jsonschema = th.PropertiesList(
        th.Property("auth_url", th.StringType, required=True),
        th.Property("api_url", th.StringType, required=True),
        th.Property("client_id", th.StringType, required=True),
        th.Property("client_secret", th.StringType, required=True, secret=True),
        th.Property("explode", th.BooleanType, default=True),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """The one stream."""
        return [JournalLinesStream(self)]


if __name__ == "__main__":
    TapSdkFlexpos.cli()
