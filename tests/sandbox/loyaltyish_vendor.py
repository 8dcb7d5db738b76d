"""A small second vendor for the sandbox tests: what the next emulators (LoyaltyLion,
Billetten) look like on the engine and in the registry.

Its data is a `SeededDataset` whose members take their identity from `People`, so on one seed
member k is the same person (same e-mail) as FlexPOS customer k*stride. Its app serves them at
`GET /v2/customers` behind an API key; `EMULATOR` registers it like `sandbox/flexpos` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.engine import INT, STR, TS, People, SeededDataset
from sandbox.http import EmulatorServer, json_response
from sandbox.registry import Emulator, Option
from sandbox.timefmt import TimeFormat

API_KEY = "sandbox-loyaltyish-key"


class Loyaltyish(SeededDataset):
    """A LoyaltyLion-shaped vendor: integer ids, snake_case, `updated_at`, ISO timestamps."""

    FIELD_KINDS = {
        "customer": {
            "id": INT,
            "email": STR,
            "first_name": STR,
            "points_approved": INT,
            "updated_at": TS,
        }
    }
    MODIFIED = "updated_at"
    CREATED = {"customer": "updated_at"}
    READ_ONLY = frozenset({"id", "email"})

    def __init__(self, seed: int, customers: int, stride: int, now: datetime | None) -> None:
        time = TimeFormat("YYYY-MM-DDTHH:mm:ssZ", "UTC")
        super().__init__(seed, {"customer": customers}, now=now, time=time)
        self.people = People(seed)
        self.stride = stride  # member k is person k*stride: a different slice of the people
        self.generators["customer"] = self._customer

    def _customer(self, i: int, gen_ts: int | None) -> dict[str, Any]:
        d, _uid, ts = self.start("customer", i, gen_ts)
        person = self.people.person(i * self.stride)
        return {
            "id": 1_000 + i,
            "email": person.email,
            "first_name": person.first_name,
            "points_approved": d.below(5_000),
            "updated_at": ts,
        }


class LoyaltyishEmulator(EmulatorServer):
    name = "loyaltyish"

    def __init__(self, data: Loyaltyish) -> None:
        self.data = data
        super().__init__()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v2"

    def rules(self) -> list[Rule]:
        return [Rule("/v2/customers", endpoint="customers", methods=["GET"])]

    def on_customers(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return json_response({"error": "unauthorized"}, 401)
        return json_response({"customers": list(self.data.iter_records("customer"))})


@dataclass
class LoyaltyishSettings:
    seed: int = 42
    now: datetime | None = None
    members: int = 20
    stride: int = 3


EMULATOR = Emulator(
    name="loyaltyish",
    title="Loyaltyish",
    settings=LoyaltyishSettings,
    build=lambda s: LoyaltyishEmulator(Loyaltyish(s.seed, s.members, s.stride, s.now)),
    exports=lambda server: {
        "LOYALTYISH_API_URL": server.api_url,
        "LOYALTYISH_API_KEY": API_KEY,
    },
    env_prefix="LOYALTYISH_",
    urls=lambda server: [("API", server.api_url)],
    summary=lambda server: f"{server.data.count('customer')} members, seed {server.data.seed}",
    options=(Option("members", ("--loyaltyish-members",), {"type": click.IntRange(0)}),),
)
