"""target-voyado: store models (contacts, receipts) into Voyado Engage v3 (README.md)."""

from __future__ import annotations

from singer_sdk import typing as th

from singer_kit.commit import InputError
from singer_kit.http.ratelimit import RateLimiter
from singer_kit.push import PUSH_SETTINGS, PushLoop, PushSettings, PushSink, PushTarget
from target_voyado.client import USER_AGENT, VoyadoClient
from target_voyado.sinks import ContactSink, ReceiptSink

# Voyado: "keep below 50 requests per second"; above 200 it answers 429.
RATE_PER_SECOND = 48.0
_OBJECT = th.ObjectType(additional_properties=True)


class TargetVoyado(PushTarget):
    """Contacts (find → create or PATCH) and receipts into Voyado, STATE after it confirmed."""

    name = "target-voyado"
    package_name = "loyalty-pipelines"
    rate_per_second = RATE_PER_SECOND
    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_url", th.StringType, required=True, description="https://<client>.voyado.com"
        ),
        th.Property(
            "api_key", th.StringType, required=True, secret=True, description="The apikey header."
        ),
        th.Property(
            "user_agent", th.StringType, default=USER_AGENT, description="Required by Voyado."
        ),
        th.Property(
            "source", th.StringType, default="POS", description="`source` on created contacts."
        ),
        th.Property(
            "contact_key",
            th.StringType(allowed_values=["email", "mobilePhone", "memberNumber"]),
            default="email",
            description="How contacts are identified (and receipts matched).",
        ),
        th.Property("contact_type", th.StringType, default="Member"),
        th.Property("create_as_unapproved", th.BooleanType, default=False),
        th.Property(
            "store_external_ids", _OBJECT, description="Source store id or name -> storeExternalId."
        ),
        th.Property(
            "markets",
            _OBJECT,
            description="Country code -> storeExternalId for contacts without a store.",
        ),
        th.Property("default_store_external_id", th.StringType),
        th.Property(
            "default_country", th.StringType, description="countryCode when the source has none."
        ),
        th.Property("languages", _OBJECT, description="Country code -> ISO 639-1 language."),
        th.Property("default_language", th.StringType),
        th.Property("consents", _OBJECT, description="Model consent column -> Voyado preference."),
        th.Property(
            "timezone",
            th.StringType,
            default="Europe/Copenhagen",
            description="Receipts' local time.",
        ),
        th.Property(
            "group_currency", th.StringType, description="Voyado's group currency, e.g. DKK."
        ),
        th.Property(
            "exchange_rates", _OBJECT, description="Currency -> rate to the group currency."
        ),
        th.Property("default_payment_method", _OBJECT, description="For sources without payments."),
        th.Property(
            "promotion_ids", _OBJECT, description="POS promotion code -> Engage promotion id."
        ),
        th.Property("welcome_promotion_id", th.StringType, description="Assigned to new contacts."),
        th.Property(
            "welcome_promotion_code", th.StringType, description="Its POS code on receipts."
        ),
        th.Property(
            "history_months", th.IntegerType(minimum=0), default=24, description="0: no limit."
        ),
        th.Property("max_retries", th.IntegerType(minimum=0), default=5),
        th.Property("backoff_seconds", th.NumberType(minimum=0), default=1.0),
        th.Property("timeout_seconds", th.NumberType(minimum=1), default=30.0),
        *PUSH_SETTINGS,
    ).to_dict()

    def make_loop(self) -> PushLoop:
        # One limiter for every request (a contact is up to four), not one slot per record:
        # the loop's own limiter is off and the client's counts each attempt.
        settings = PushSettings.from_config(self.config, rate=self.rate_per_second)
        self._client = VoyadoClient.from_config(
            self.config, RateLimiter(settings.requests_per_second)
        )
        settings.requests_per_second = 0.0
        return PushLoop(self.make_sink, settings)

    def make_sink(self, stream: str, schema: dict, key_properties: list[str]) -> PushSink:
        kind = sink_for(stream)
        return kind(stream, schema, key_properties, self.config, client=self._client)


def sink_for(stream: str) -> type[ContactSink | ReceiptSink]:
    """A stream named ``*contacts`` or ``*receipts`` (``voyado_contacts``, ``receipts``)."""
    if stream.endswith("contacts"):
        return ContactSink
    if stream.endswith("receipts"):
        return ReceiptSink
    raise InputError(
        f"target-voyado takes contacts and receipts streams (names ending in 'contacts' or "
        f"'receipts'); got stream {stream!r}"
    )


def main() -> None:
    TargetVoyado.cli()


if __name__ == "__main__":
    main()
