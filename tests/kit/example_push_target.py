"""A test-only push target on the kit's base: what a connector writes, and no more.

Sends ``{"id", "email", "name"}`` records to ``ExamplePushEmulator`` (tests/kit/test_push.py).
"""

from __future__ import annotations

import orjson
import requests
from singer_sdk import typing as th

from singer_kit.push import PUSH_SETTINGS, PushItem, PushSink, PushTarget


class ExampleSink(PushSink):
    max_records_per_call = 5
    max_record_bytes = 2048

    def build_payload(self, record: dict) -> dict:
        return {"id": str(record["id"]), "email": record.get("email"), "name": record.get("name")}

    def send(self, items: list[PushItem]) -> list[str | None]:
        response = requests.post(
            self.config["url"],
            data=orjson.dumps([i.payload for i in items]),
            headers={"X-Api-Key": self.config["api_key"], "Content-Type": "application/json"},
            timeout=30,
        )
        response.raise_for_status()
        errors = {e["index"]: e["reason"] for e in response.json()["errors"]}
        return [errors.get(n) for n in range(len(items))]


class ExamplePushTarget(PushTarget):
    name = "target-example-push"
    sink_class = ExampleSink
    rate_per_second = 8.0
    config_jsonschema = th.PropertiesList(
        th.Property("url", th.StringType, required=True),
        th.Property("api_key", th.StringType, required=True, secret=True),
        *PUSH_SETTINGS,
    ).to_dict()


if __name__ == "__main__":
    ExamplePushTarget.cli()
