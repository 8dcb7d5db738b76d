"""The Voyado Engage emulator (`app.py`) and its entry in the sandbox registry (`EMULATOR`).

Voyado is a destination: it starts with the sandbox's promotions (the guide's WELCOME10, an
expired one, an ECOM-only one) and a few contacts it already knows from e-commerce (persons
0, 3, 6, ... of the seed, so FlexPOS customers by e-mail, with only a first name and an old
city, and the welcome promotion Engage assigned at their web sign-up, still open: a first
purchase at the till that uses WELCOME10 redeems it), and keeps what target-voyado sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import click

from sandbox.engine import People
from sandbox.registry import Emulator, Option
from sandbox.timefmt import default_now
from sandbox.voyado.app import API_KEY, Promotion, VoyadoEmulator, default_promotions

__all__ = ["API_KEY", "EMULATOR", "Promotion", "VoyadoEmulator", "VoyadoSettings"]

# Above this many requests per second per API key the real API answers 429 (its docs).
RATE_LIMIT = 200.0


@dataclass
class VoyadoSettings:
    """The Voyado emulator's settings (it holds no seeded data of its own)."""

    seed: int = 42
    now: datetime | None = None
    rate_limit_per_second: float | None = RATE_LIMIT
    known_contacts: int = 10  # contacts Voyado already has: target-voyado finds and patches them


def build_voyado(settings: VoyadoSettings) -> VoyadoEmulator:
    """A Voyado emulator for `settings`, not yet started."""
    now = settings.now or default_now()
    server = VoyadoEmulator(
        now=now,
        rate_limit_per_second=settings.rate_limit_per_second,
        promotions=default_promotions(now),
    )
    people = People(settings.seed)
    for k in range(settings.known_contacts):
        person = people.person(3 * k)
        if person.email:  # known from an earlier web sign-up: a name and where they lived
            cid = server.add_contact(email=person.email, firstName=person.first_name, city="Ukendt")
            server.add_assignment(cid, _welcome(server).id)
    return server


def _welcome(server: VoyadoEmulator) -> Promotion:
    return next(p for p in server.promotions.values() if p.external_id == "WELCOME10")


EMULATOR = Emulator(
    name="voyado",
    title="Voyado Engage",
    settings=VoyadoSettings,
    build=build_voyado,
    exports=lambda server: {
        "VOYADO_API_URL": server.api_url,
        "VOYADO_API_KEY": API_KEY,
        "VOYADO_WELCOME_PROMOTION_ID": _welcome(server).id,
        "VOYADO_LEDGER_PATH": server.ledger_path,
    },
    env_prefix="VOYADO_",
    urls=lambda server: [("API", server.api_url + "/api/v3")],
    summary=lambda server: (
        f"{len(server.contacts)} known contacts, {len(server.promotions)} promotions, "
        f"rate limit {server.rate_limit or 'none'}/s, now {server.now.isoformat()}"
    ),
    options=(
        Option("known_contacts", ("--voyado-known-contacts",), {"type": click.IntRange(0)}),
        Option(
            "rate_limit_per_second",
            ("--voyado-rate-limit",),
            {
                "type": click.FloatRange(0, min_open=True),
                "help": "Requests per second per API key before 429 (Voyado: 200).",
            },
        ),
    ),
)
