"""``tap-flexpos``: Singer tap for FlexPOS / Amero (POS API and Attraction API)."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from functools import cached_property

import requests
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.about import JSONFormatter
from singer_sdk.exceptions import ConfigValidationError

from singer_kit.dates import DateFormatError, TimestampCodec, now
from singer_kit.http.client import RetryPolicy
from singer_kit.redact import Redactor
from singer_kit.resttap import HTTP_SETTINGS, OneLineErrors, retry_policy, url_errors, window_errors
from singer_kit.sdk_compat import classproperty, parse_environment_config
from singer_kit.singer_io import FastWriter
from tap_flexpos.client import FlexposAPI, FlexposAuth, FlexposConfigError
from tap_flexpos.streams import STREAM_TYPES

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

ATTRACTION_KEYS = ("attraction_api_url", "attraction_client_id", "attraction_client_secret")
ENV_PREFIXES = ("FLEXPOS_", "TAP_FLEXPOS_")  # later prefixes win
# The contract's example login (`?audience=https://api.flexpos.com`): an audience names the
# API the token is for, which is not its versioned base URL.
DEFAULT_AUDIENCE = "https://api.flexpos.com"
# How far back the API serves order data (the guide: "one year prior"). `--about` says so as
# `history_days`, so an orchestrator can refuse an older backfill before it starts.
HISTORY_DAYS = 365


class TapFlexPOS(OneLineErrors, Tap):
    """Extracts customers and journals (POS) and tickets and memberships (Attraction API)."""

    name = "tap-flexpos"
    package_name = "loyalty-pipelines"
    message_writer_class = FastWriter

    config_jsonschema = th.PropertiesList(
        th.Property("client_id", th.StringType, required=True, description="POS API client id"),
        th.Property(
            "client_secret",
            th.StringType,
            required=True,
            secret=True,
            description="POS API client secret",
        ),
        th.Property(
            "auth_url",
            th.StringType,
            default="https://auth.flexpos.com",
            description="OAuth server base URL",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default="https://api.flexpos.com/api/v1.0",
            description="POS API base URL",
        ),
        th.Property(
            "audience",
            th.StringType,
            default=DEFAULT_AUDIENCE,
            description="Login audience for the POS API token (not the API URL)",
        ),
        th.Property(
            "attraction_api_url",
            th.StringType,
            description="Attraction API base URL (given by FlexPOS); needed for tickets and "
            "memberships",
        ),
        th.Property("attraction_client_id", th.StringType, description="Attraction client id"),
        th.Property(
            "attraction_audience",
            th.StringType,
            default=DEFAULT_AUDIENCE,
            description="Login audience for the Attraction API token",
        ),
        th.Property(
            "attraction_client_secret",
            th.StringType,
            secret=True,
            description="Attraction client secret",
        ),
        th.Property(
            "scope",
            th.StringType,
            default="customer:read journal:read",
            description="Space-separated OAuth scopes for the POS API",
        ),
        th.Property(
            "attraction_scope",
            th.StringType,
            default="ticket:read membership:read",
            description="Space-separated OAuth scopes for the Attraction API",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Earliest ModifiedDate to extract, every stream (ISO 8601); default: "
            "all customers, and order data (journals, tickets, memberships) of the last "
            f"{HISTORY_DAYS} days, all the API serves",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="Extract only records modified before this instant (ISO 8601)",
        ),
        th.Property(
            "only_active",
            th.BooleanType,
            default=False,
            description="Customers with IsActive true only",
        ),
        th.Property(
            "only_club_members",
            th.BooleanType,
            default=False,
            description="Customers with IsClubMember 1 only",
        ),
        th.Property(
            "only_newsletter",
            th.BooleanType,
            default=False,
            description="Customers with GetsNewsletter 1 only",
        ),
        th.Property(
            "date_format",
            th.StringType,
            default="YYYY-MM-DDTHH:mm:ss",
            description="Timestamp format the API sends (pendulum tokens)",
        ),
        th.Property(
            "timezone",
            th.StringType,
            default="Europe/Copenhagen",
            description="IANA timezone of the API's timestamps",
        ),
        *HTTP_SETTINGS,
    ).to_dict()

    # --- config ---------------------------------------------------------------------------

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:
        """Read FLEXPOS_* (the sandbox's and deployments' names), then TAP_FLEXPOS_* variables."""
        schema = cls.config_jsonschema
        merged: dict[str, t.Any] = {}
        for prefix in ENV_PREFIXES:
            merged.update(parse_environment_config(schema, prefix))
        return merged

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Add semantic checks (dates, format, timezone, URLs) to the JSON-schema validation."""
        errors = list(super()._validate_config(raise_errors=False))
        config = self._config
        try:
            TimestampCodec(
                config.get("date_format") or "YYYY-MM-DDTHH:mm:ss",
                config.get("timezone") or "Europe/Copenhagen",
            )
        except (DateFormatError, ValueError) as exc:
            errors.append(f"date_format/timezone: {exc}")
        errors += window_errors(config)
        if not config.get("start_date"):
            try:
                now()  # the default window reads it: a bad LOYALTY_NOW is a config error
            except ValueError as exc:
                errors.append(str(exc))
        errors += url_errors(config, ("auth_url", "api_url", "attraction_api_url"))
        if errors and raise_errors:
            raise ConfigValidationError(
                "Config validation failed", errors=errors, schema=self.config_jsonschema
            )
        return errors

    @cached_property
    def codec(self) -> TimestampCodec:
        """Timestamp parser/formatter compiled once for the run."""
        return TimestampCodec(self.config["date_format"], self.config["timezone"])

    @cached_property
    def history_start(self) -> dt.datetime:
        """The oldest order data the API serves: ``HISTORY_DAYS`` before now.

        "Now" is ``singer_kit.singer_io.now``: the sandbox and the tests pin it with LOYALTY_NOW
        so the default window matches the emulator's data on any calendar date.
        """
        return now().replace(microsecond=0) - dt.timedelta(days=HISTORY_DAYS)

    # --- clients --------------------------------------------------------------------------

    @cached_property
    def _redact(self) -> Redactor:
        return Redactor()

    @cached_property
    def _session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = f"tap-flexpos/{self.plugin_version}"
        return session

    @cached_property
    def _policy(self) -> RetryPolicy:
        return retry_policy(self.config)

    @cached_property
    def _apis(self) -> dict[str, FlexposAPI]:
        return {}

    def api(self, which: str) -> FlexposAPI:
        """The client for ``pos`` or ``attraction``, each with its own authenticator."""
        if which not in self._apis:
            config = self.config
            if which == "pos":
                url, audience, cid, secret, scope = (
                    config["api_url"],
                    config["audience"],
                    config["client_id"],
                    config["client_secret"],
                    config["scope"],
                )
            else:
                missing = [key for key in ATTRACTION_KEYS if not config.get(key)]
                if missing:
                    raise FlexposConfigError(self._attraction_message(missing))
                url, audience, cid, secret, scope = (
                    config["attraction_api_url"],
                    config["attraction_audience"],
                    config["attraction_client_id"],
                    config["attraction_client_secret"],
                    config["attraction_scope"],
                )
            label = "FlexPOS" if which == "pos" else "FlexPOS Attraction"
            auth = FlexposAuth(
                label=label,
                auth_url=config["auth_url"],
                audience=audience,
                client_id=cid,
                client_secret=secret,
                scope=scope,
                session=self._session,
                policy=self._policy,
                redact=self._redact,
            )
            self._apis[which] = FlexposAPI(
                label=label,
                api_url=url,
                auth=auth,
                session=self._session,
                policy=self._policy,
                redact=self._redact,
                page_size=int(config["page_size"]),
            )
        return self._apis[which]

    @staticmethod
    def _attraction_message(missing: list[str]) -> str:
        return (
            f"streams tickets and memberships need {', '.join(missing)} "
            "(the Attraction API's own URL and credentials from FlexPOS); set them, "
            "or deselect those streams in the catalog"
        )

    # --- streams and run ------------------------------------------------------------------

    def discover_streams(self) -> list[Stream]:
        """The four FlexPOS streams; schemas are static files, so discovery is offline."""
        return [stream_type(self) for stream_type in STREAM_TYPES]

    def sync_all(self) -> None:
        """Check that selected Attraction streams are configured before any data moves."""
        needs_attraction = [
            stream.name
            for stream in self.streams.values()
            if stream.selected and getattr(stream, "api_name", "pos") == "attraction"
        ]
        if needs_attraction:
            missing = [key for key in ATTRACTION_KEYS if not self.config.get(key)]
            if missing:
                raise FlexposConfigError(self._attraction_message(missing))
        super().sync_all()

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """singer-sdk's about, plus (as JSON) ``history_days``: per stream, how many days back
        the API serves it, so `loyalty backfill` can refuse an older window up front."""
        if output_format != "json":
            super().print_about(output_format)
            return
        info = json.loads(JSONFormatter().format_about(cls._get_about_info()))
        info["history_days"] = {
            stream.name: HISTORY_DAYS for stream in STREAM_TYPES if stream.limited_history
        }
        print(json.dumps(info, indent=2, default=str))


if __name__ == "__main__":
    TapFlexPOS.cli()
