"""What every REST tap's singer-sdk ``Tap`` class shares, so a tap declares only its own.

- ``HTTP_SETTINGS``: ``page_size``, ``request_timeout``, ``max_retries``, ``backoff_seconds``,
  the knobs of the kit's ``HttpClient`` (``retry_policy`` turns them into a ``RetryPolicy``);
- ``window_errors`` / ``url_errors``: the config checks JSON Schema cannot express
  (``start_date`` before ``end_date``, ISO 8601, http(s) URLs), as one message each;
- ``OneLineErrors``: a mixin whose ``invoke`` ends a known failure (an ``ApiError``, a
  ``StreamError``, a config error) with one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import sys
import typing as t

import click
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from singer_kit.dates import parse_instant
from singer_kit.http.client import RetryPolicy
from singer_kit.http.errors import ApiError
from singer_kit.streams import StreamError

if t.TYPE_CHECKING:
    import datetime as dt

HTTP_SETTINGS: tuple[th.Property, ...] = (
    th.Property(
        "page_size",
        th.IntegerType(minimum=1, maximum=500),
        default=500,
        description="Records per request (1-500)",
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
)


def retry_policy(config: t.Mapping[str, t.Any]) -> RetryPolicy:
    """The ``RetryPolicy`` of ``HTTP_SETTINGS``' values."""
    return RetryPolicy(
        max_retries=int(config["max_retries"]),
        backoff_seconds=float(config["backoff_seconds"]),
        timeout=float(config["request_timeout"]),
    )


def window_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """``start_date`` and ``end_date``: ISO 8601, and the start before the end."""
    errors: list[str] = []
    bounds: dict[str, dt.datetime] = {}
    for key in ("start_date", "end_date"):
        if isinstance(config.get(key), str):
            try:
                bounds[key] = parse_instant(config[key], key)
            except ValueError as exc:
                errors.append(str(exc))
    if len(bounds) == 2 and bounds["start_date"] >= bounds["end_date"]:
        errors.append("end_date must be later than start_date")
    return errors


def url_errors(config: t.Mapping[str, t.Any], keys: t.Iterable[str]) -> list[str]:
    """Each of ``keys`` that is set but not an http(s) URL."""
    return [
        f"{key}: {value!r} is not an http(s) URL"
        for key in keys
        if isinstance(value := config.get(key), str)
        and not value.startswith(("http://", "https://"))
    ]


class OneLineErrors:
    """Mixin for a singer-sdk ``Tap`` (put it first): a known failure is one line, exit 1."""

    name: str

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the tap; ``<name>: error: …`` or ``<name>: config error: …`` on failure."""
        try:
            super().invoke(*args, **kwargs)  # type: ignore[misc]
        except (ApiError, StreamError) as exc:
            sys.stdout.flush()
            click.echo(f"{cls.name}: error: {exc}", err=True)
            sys.exit(1)
        except ConfigValidationError as exc:
            detail = "; ".join(exc.errors) or str(exc)
            click.echo(f"{cls.name}: config error: {detail}", err=True)
            sys.exit(1)
