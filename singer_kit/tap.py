"""A singer-sdk ``Tap`` with what every REST tap here shares, so a tap's ``tap.py`` is its
config schema, its client and its streams (docs/kit/streams.md, *The tap*).

- settings from the environment under the tap's own prefixes (``FLEXPOS_*`` as
  ``loyalty sandbox`` prints them, then singer-sdk's ``TAP_FLEXPOS_*``);
- the checks JSON schema cannot express: ``start_date`` / ``end_date`` are instants in order,
  URLs are http(s); a tap adds its own in ``config_errors``;
- the ``RetryPolicy`` of the kit's ``HTTP_SETTINGS`` (``singer_kit.http.client``);
- the ending: an ``ApiError`` or ``StreamError`` is one ``<tap>: error: …`` line and exit 1, a
  bad config one ``<tap>: config error: …`` line and exit 1, never a traceback.
"""

from __future__ import annotations

import sys
import typing as t
from functools import cached_property

import click
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError

from singer_kit.dates import parse_instant
from singer_kit.http.client import RetryPolicy
from singer_kit.http.errors import ApiError
from singer_kit.sdk_compat import classproperty, parse_environment_config
from singer_kit.singer_io import FastWriter
from singer_kit.streams import StreamError


class KitTap(Tap):
    """Set ``name``, ``config_jsonschema`` (with ``*HTTP_SETTINGS``), ``env_prefixes``,
    ``url_settings`` and ``discover_streams``; extend ``config_errors`` for the tap's own."""

    package_name = "loyalty-pipelines"
    message_writer_class = FastWriter
    env_prefixes: t.ClassVar[tuple[str, ...]] = ()  # later prefixes win
    url_settings: t.ClassVar[tuple[str, ...]] = ()  # settings that must be http(s) URLs

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:
        """Settings from ``<PREFIX><KEY>`` variables, prefix after prefix."""
        merged: dict[str, t.Any] = {}
        for prefix in cls.env_prefixes:
            merged.update(parse_environment_config(cls.config_jsonschema, prefix))
        return merged

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """singer-sdk's JSON-schema validation plus ``config_errors``."""
        errors = [*super()._validate_config(raise_errors=False), *self.config_errors(self._config)]
        if errors and raise_errors:
            raise ConfigValidationError(
                "Config validation failed", errors=errors, schema=self.config_jsonschema
            )
        return errors

    def config_errors(self, config: t.Mapping[str, t.Any]) -> list[str]:
        """The window's bounds are ISO instants in order; ``url_settings`` are http(s) URLs."""
        errors: list[str] = []
        bounds = {}
        for key in ("start_date", "end_date"):
            if isinstance(config.get(key), str):
                try:
                    bounds[key] = parse_instant(config[key], key)
                except ValueError as exc:
                    errors.append(str(exc))
        if len(bounds) == 2 and bounds["start_date"] >= bounds["end_date"]:
            errors.append("end_date must be later than start_date")
        for key in self.url_settings:
            value = config.get(key)
            if isinstance(value, str) and not value.startswith(("http://", "https://")):
                errors.append(f"{key}: {value!r} is not an http(s) URL")
        return errors

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        """The ``HTTP_SETTINGS`` as the kit's retrier takes them."""
        return RetryPolicy.from_config(self.config)

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the tap; known failures end with one clean line on stderr and exit code 1."""
        try:
            super().invoke(*args, **kwargs)
        except (ApiError, StreamError) as exc:
            sys.stdout.flush()
            click.echo(f"{cls.name}: error: {exc}", err=True)
            sys.exit(1)
        except ConfigValidationError as exc:
            detail = "; ".join(exc.errors) or str(exc)
            click.echo(f"{cls.name}: config error: {detail}", err=True)
            sys.exit(1)
