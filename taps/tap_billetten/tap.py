"""``tap-billetten``: Singer tap for Billetten (ticket buyers, seats, cancellations, tracking)."""

from __future__ import annotations

import sys
import typing as t
from functools import cached_property

import click
import requests
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from singer_kit.dates import parse_instant
from singer_kit.http.client import RetryPolicy
from singer_kit.http.errors import ApiError
from singer_kit.redact import Redactor
from singer_kit.sdk_compat import classproperty, parse_environment_config
from singer_kit.singer_io import FastWriter
from singer_kit.streams import StreamError
from tap_billetten.client import BillettenAPI
from tap_billetten.streams import GROUPS, STREAM_TYPES

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

ENV_PREFIXES = ("BILLETTEN_", "TAP_BILLETTEN_")  # later prefixes win
ALL_GROUPS = list(GROUPS.values())


class TapBilletten(Tap):
    """Extracts buyers, order lines, cancellations and tracking events from Billetten."""

    name = "tap-billetten"
    package_name = "loyalty-pipelines"
    message_writer_class = FastWriter

    config_jsonschema = th.PropertiesList(
        th.Property("api_key", th.StringType, required=True, secret=True, description="API key"),
        th.Property(
            "api_url",
            th.StringType,
            default="https://api.billetten.dk/v1",
            description="API base URL",
        ),
        th.Property(
            "permission_groups",
            th.ArrayType(th.StringType(allowed_values=ALL_GROUPS)),
            default=ALL_GROUPS,
            description="Which buyers to transfer, by their current permissions: both, "
            "newsletter_only, related_only (10_2 only), terms_only. Default: every buyer, as "
            "the guide says; drop related_only for the guide's opt-out of 10_2-only buyers",
        ),
        th.Property(
            "related_field",
            th.StringType,
            default="10_2",
            description="Name of the permission field for related-product e-mail/SMS",
        ),
        th.Property(
            "newsletter_field",
            th.StringType,
            default="consent_email",
            description="Name of the permission field for all newsletters",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Earliest updated_at to extract (ISO 8601); default: everything",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="Extract only records updated before this instant (ISO 8601)",
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=200),
            default=200,
            description="Records per page (1-200)",
        ),
        th.Property(
            "requests_per_second",
            th.NumberType(minimum=0),
            default=10,
            description="Client-side request rate limit; 0 = none (429s are retried anyway)",
        ),
        th.Property(
            "request_timeout",
            th.NumberType(minimum=0.1),
            default=60,
            description="Seconds to wait for one HTTP response",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0, maximum=20),
            default=5,
            description="Retries of a failed request (429, 5xx, network, malformed JSON)",
        ),
        th.Property(
            "backoff_seconds",
            th.NumberType(minimum=0),
            default=1.0,
            description="First retry delay; doubles per retry (Retry-After wins on 429)",
        ),
    ).to_dict()

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:
        """Read BILLETTEN_* (the sandbox's names), then TAP_BILLETTEN_* variables."""
        merged: dict[str, t.Any] = {}
        for prefix in ENV_PREFIXES:
            merged.update(parse_environment_config(cls.config_jsonschema, prefix))
        return merged

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Add the checks JSON schema cannot express: bounds, URL, distinct field names."""
        errors = list(super()._validate_config(raise_errors=False))
        config = self._config
        bounds = {}
        for key in ("start_date", "end_date"):
            if isinstance(config.get(key), str):
                try:
                    bounds[key] = parse_instant(config[key], key)
                except ValueError as exc:
                    errors.append(str(exc))
        if len(bounds) == 2 and bounds["start_date"] >= bounds["end_date"]:
            errors.append("end_date must be later than start_date")
        url = config.get("api_url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            errors.append(f"api_url: {url!r} is not an http(s) URL")
        names = [config.get("related_field", "10_2"), config.get("newsletter_field")]
        if names[0] == names[1]:
            errors.append("related_field and newsletter_field must name different fields")
        if errors and raise_errors:
            raise ConfigValidationError(
                "Config validation failed", errors=errors, schema=self.config_jsonschema
            )
        return errors

    @cached_property
    def api(self) -> BillettenAPI:
        """One client for every stream, so the rate limit is shared."""
        config = self.config
        session = requests.Session()
        session.headers["User-Agent"] = f"tap-billetten/{self.plugin_version}"
        return BillettenAPI(
            api_url=config["api_url"],
            api_key=config["api_key"],
            session=session,
            policy=RetryPolicy(
                max_retries=int(config["max_retries"]),
                backoff_seconds=float(config["backoff_seconds"]),
                timeout=float(config["request_timeout"]),
            ),
            redact=Redactor(),
            page_size=int(config["page_size"]),
            requests_per_second=float(config["requests_per_second"]) or None,
        )

    def discover_streams(self) -> list[Stream]:
        """The four streams; schemas are package files, so discovery is offline."""
        return [stream_type(self) for stream_type in STREAM_TYPES]

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the tap; known failures end with one clean line on stderr and exit code 1."""
        try:
            super().invoke(*args, **kwargs)
        except (ApiError, StreamError) as exc:
            sys.stdout.flush()
            click.echo(f"tap-billetten: error: {exc}", err=True)
            sys.exit(1)
        except ConfigValidationError as exc:
            detail = "; ".join(exc.errors) or str(exc)
            click.echo(f"tap-billetten: config error: {detail}", err=True)
            sys.exit(1)


if __name__ == "__main__":
    TapBilletten.cli()
