"""Peer: a singer-sdk default tap for LoyaltyLion customers and transactions, as the SDK docs
show it.

``RESTStream`` per endpoint, ``BearerTokenAuthenticator``, the SDK's JSONPath paginator on
``$.cursor.next``, ``records_jsonpath``, every other knob at SDK defaults (stdlib JSON writer,
flush per message, typing conformance, its own 429/5xx backoff). No client-side rate limit:
the SDK has none by default, so the emulator's 429s are retried by the SDK's backoff.
Config: ``api_url``, ``api_key``. Runs inside the bench's ``singer-sdk`` peer venv.
"""

from __future__ import annotations

import typing as t

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import JSONPathPaginator
from singer_sdk.streams import RESTStream

PAGE_SIZE = 500


class LoyaltyLionStream(RESTStream):
    """One listing; the cursor carries the filters, so later pages send only the cursor."""

    primary_keys: t.ClassVar[list[str]] = ["id"]
    first_params: t.ClassVar[dict[str, str]] = {}

    @property
    def url_base(self) -> str:
        """The API."""
        return self.config["api_url"]

    @property
    def authenticator(self) -> BearerTokenAuthenticator:
        """The API key as a Bearer token."""
        return BearerTokenAuthenticator(token=self.config["api_key"])

    def get_new_paginator(self) -> JSONPathPaginator:
        """``cursor.next`` until null."""
        return JSONPathPaginator("$.cursor.next")

    def get_url_params(self, context: t.Any, next_page_token: t.Any) -> dict:
        """limit, then the cursor alone."""
        if next_page_token:
            return {"limit": PAGE_SIZE, "cursor": next_page_token}
        return {"limit": PAGE_SIZE, **self.first_params}


class CustomersStream(LoyaltyLionStream):
    """Customers, oldest update first."""

    name = "customers"
    path = "/customers"
    records_jsonpath = "$.customers[*]"
    replication_key = "updated_at"
    first_params: t.ClassVar[dict[str, str]] = {"sort_field": "updated_at", "sort_direction": "asc"}
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType),
        th.Property("merchant_id", th.StringType),
        th.Property("email", th.StringType),
        th.Property("points_approved", th.IntegerType),
        th.Property("points_pending", th.IntegerType),
        th.Property("points_spent", th.IntegerType),
        th.Property("properties", th.ObjectType()),
        th.Property("metadata", th.ObjectType()),
        th.Property("rewards_claimed", th.IntegerType),
        th.Property("rewards_used", th.IntegerType),
        th.Property("blocked", th.BooleanType),
        th.Property("guest", th.BooleanType),
        th.Property("enrolled", th.BooleanType),
        th.Property("enrolled_at", th.DateTimeType),
        th.Property("referral_id", th.StringType),
        th.Property("referred_by", th.ObjectType()),
        th.Property("loyalty_tier_membership", th.ObjectType()),
        th.Property("insights_segment", th.StringType),
        th.Property("birthday", th.StringType),
        th.Property("referral_url", th.StringType),
        th.Property("receipt_upload_url", th.StringType),
        th.Property("linked_merchant_ids", th.ArrayType(th.StringType)),
        th.Property("created_at", th.DateTimeType),
        th.Property("updated_at", th.DateTimeType),
    ).to_dict()


class TransactionsStream(LoyaltyLionStream):
    """Every transaction, newest first."""

    name = "transactions"
    path = "/transactions"
    records_jsonpath = "$.transactions[*]"
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType),
        th.Property("customer", th.ObjectType()),
        th.Property("points_approved", th.IntegerType),
        th.Property("points_pending", th.IntegerType),
        th.Property("created_at", th.DateTimeType),
        th.Property("resource", th.StringType),
        th.Property("activity", th.ObjectType()),
        th.Property("claimed_reward", th.ObjectType()),
        th.Property("adjustment", th.ObjectType()),
        th.Property("expiry", th.ObjectType()),
    ).to_dict()


class TapLoyaltyLionPeer(Tap):
    """The two streams, SDK defaults."""

    name = "tap-loyaltylion-sdk-peer"
    config_jsonschema = th.PropertiesList(
        th.Property("api_url", th.StringType, required=True),
        th.Property("api_key", th.StringType, required=True, secret=True),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """Customers, then transactions."""
        return [CustomersStream(self), TransactionsStream(self)]


if __name__ == "__main__":
    TapLoyaltyLionPeer.cli()
