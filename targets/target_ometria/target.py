"""``target-ometria``: store models to Ometria's push API (`POST /v2/push`).

Built on the kit's push target (docs/kit/push.md): batches to Ometria's limits, the ledger that
sends only records whose content changed since Ometria accepted them, STATE only after
Ometria answered. One client-side rate limit (Ometria: 8 requests/s) covers every attempt,
retries included, because the loop's limiter is the one the HTTP client waits for.
"""

from __future__ import annotations

import requests
from singer_sdk import typing as th

from singer_kit.commit import InputError
from singer_kit.http.auth import StaticAuth
from singer_kit.http.client import HTTP_SETTINGS, HttpClient, RetryPolicy
from singer_kit.push import PUSH_SETTINGS, PushLoop, PushSink, PushTarget
from singer_kit.redact import Redactor
from target_ometria.sinks import SINKS, Pseudonym

# Stream (model) name -> Ometria record type; `record_types` in the config adds others.
DEFAULT_RECORD_TYPES = {"ometria_contacts": "contact", "ometria_orders": "order"}


class TargetOmetria(PushTarget):
    """Contacts (with loyalty custom fields) and orders to Ometria."""

    name = "target-ometria"
    package_name = "loyalty-pipelines"
    rate_per_second = 8.0  # "push: 8 requests/s", then 429

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description="Ometria API key (sent as X-Ometria-Auth)",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default="https://api.ometria.com/v2",
            description="Ometria Data API base URL",
        ),
        th.Property(
            "id_salt",
            th.StringType,
            required=True,
            secret=True,
            description="Key of the hash that makes a contact's Ometria id and customer_id "
            "from the store's contact id (no e-mail in ids); never change it for an account",
        ),
        th.Property(
            "property_keys",
            th.ObjectType(additional_properties=th.StringType),
            description="Model column -> Ometria custom field id for the loyalty properties "
            "(merged over the defaults; an empty id leaves that field out)",
        ),
        th.Property(
            "record_types",
            th.ObjectType(additional_properties=th.StringType),
            description="Stream -> Ometria record type (contact or order), merged over "
            "ometria_contacts: contact, ometria_orders: order",
        ),
        th.Property(
            "collection",
            th.StringType,
            description="@collection of the contacts (Ometria's default when unset)",
        ),
        th.Property(
            "errors_wait_seconds",
            th.NumberType(minimum=0),
            default=0,
            description="Wait this long after the last call before reading /v2/push/_errors "
            "(Ometria validates after answering)",
        ),
        *HTTP_SETTINGS,
        *PUSH_SETTINGS,
    ).to_dict()

    def make_loop(self) -> PushLoop:
        loop = super().make_loop()
        redact = Redactor()
        session = requests.Session()
        session.headers["User-Agent"] = "target-ometria"
        self._api = HttpClient(
            label="Ometria",
            base_url=self.config["api_url"],
            session=session,
            policy=RetryPolicy.from_config(self.config),
            redact=redact,
            auth=StaticAuth(self.config["api_key"], redact, scheme=""),
            auth_header="X-Ometria-Auth",
            limiter=loop.limiter,  # the loop's: every attempt takes a slot of one budget
            logger=self.logger,
        )
        redact.add(self.config["id_salt"])
        self._pseudonym = Pseudonym(self.config["id_salt"])
        return loop

    def make_sink(self, stream: str, schema: dict, key_properties: list[str]) -> PushSink:
        types = {**DEFAULT_RECORD_TYPES, **(self.config.get("record_types") or {})}
        kind = types.get(stream)
        if kind not in SINKS:
            raise InputError(
                f"stream {stream!r}: target-ometria does not know its Ometria record type; "
                f"set record_types: {{{stream}: contact|order}} (known: {', '.join(types)})"
            )
        sink = SINKS[kind]
        return sink(stream, schema, key_properties, self.config, api=self._api, ids=self._pseudonym)


__all__ = ["TargetOmetria"]

if __name__ == "__main__":
    TargetOmetria.cli()
