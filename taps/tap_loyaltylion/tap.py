"""``tap-loyaltylion``: Singer tap for the LoyaltyLion API v2 (customers, transactions)."""

from __future__ import annotations

import typing as t
from functools import cached_property

from singer_sdk import typing as th

from singer_kit.http.client import HTTP_SETTINGS
from singer_kit.tap import KitTap
from tap_loyaltylion.client import LoyaltyLionAPI
from tap_loyaltylion.streams import STREAM_TYPES

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream


class TapLoyaltyLion(KitTap):
    """Extracts LoyaltyLion customers (members, points, tiers) and their points transactions."""

    name = "tap-loyaltylion"
    env_prefixes = ("LOYALTYLION_", "TAP_LOYALTYLION_")  # the sandbox's names, then singer-sdk's
    url_settings = ("api_url",)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            secret=True,
            description="LoyaltyLion API key (Authorization: Bearer); scopes read_customers "
            "and, for transactions, read_transactions",
        ),
        th.Property(
            "api_token",
            th.StringType,
            secret=True,
            description="Deprecated token (HTTP Basic user), used only without api_key",
        ),
        th.Property(
            "api_secret",
            th.StringType,
            secret=True,
            description="Deprecated secret (HTTP Basic password), with api_token",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default="https://api.loyaltylion.com/v2",
            description="API base URL",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Earliest customers updated_at and transactions created_at (ISO 8601); "
            "default: everything",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="Only customers updated / transactions created up to this instant",
        ),
        th.Property(
            "window_days",
            th.NumberType(minimum=0.001),
            default=30,
            description="Days of customers' updated_at per request window; STATE after each",
        ),
        th.Property(
            "transactions_lookback_ids",
            th.IntegerType(minimum=0),
            default=500,
            description="Re-read this many ids below the highest seen (late transactions)",
        ),
        th.Property(
            "requests_per_second",
            th.NumberType(minimum=0.1, maximum=20),
            default=18,
            description="Client-side rate limit; the API allows 20 per second",
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=500),
            default=500,
            description="Records per request (1-500)",
        ),
        *HTTP_SETTINGS,
    ).to_dict()

    def config_errors(self, config: t.Mapping[str, t.Any]) -> list[str]:
        """The kit's checks (dates, the URL), and one credential."""
        errors = super().config_errors(config)
        if not config.get("api_key") and not (config.get("api_token") and config.get("api_secret")):
            errors.append("set api_key, or (deprecated) api_token and api_secret")
        return errors

    @cached_property
    def api(self) -> LoyaltyLionAPI:
        """One client for every stream: one key, one rate limit."""
        return LoyaltyLionAPI(self.config)

    def discover_streams(self) -> list[Stream]:
        """The two streams; schemas are static files, so discovery is offline."""
        return [stream_type(self) for stream_type in STREAM_TYPES]


if __name__ == "__main__":
    TapLoyaltyLion.cli()
