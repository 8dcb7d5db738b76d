"""The FlexPOS / Amero emulator: its data (`data.py`), its HTTP app (`app.py`) and its entry
in the sandbox registry (`EMULATOR`, below)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import click

from sandbox.flexpos.app import (
    ATTRACTION_CLIENT_ID,
    ATTRACTION_CLIENT_SECRET,
    AUDIENCE,
    DENIED,
    HISTORY_DAYS,
    POS_CLIENT_ID,
    POS_CLIENT_SECRET,
    FlexposEmulator,
)
from sandbox.flexpos.data import CARDS_SHAPES, FlexposData
from sandbox.registry import Emulator, Option

__all__ = [
    "ATTRACTION_CLIENT_SECRET",
    "AUDIENCE",
    "DENIED",
    "EMULATOR",
    "POS_CLIENT_SECRET",
    "FlexposData",
    "FlexposEmulator",
    "FlexposSettings",
]


@dataclass
class FlexposSettings:
    """Size and behaviour of the FlexPOS emulator (defaults: small, fast test data)."""

    seed: int = 42
    customers: int = 200
    journals: int = 600
    tickets: int = 400
    memberships: int = 80
    token_ttl_seconds: int = 300
    rate_limit_per_second: float | None = None
    date_format: str = "YYYY-MM-DDTHH:mm:ss"
    timezone: str = "Europe/Copenhagen"
    # Reference time the data is built around; default LOYALTY_NOW, else today 00:00 UTC.
    now: datetime | None = None
    # How customers' `cards` is sent: "array" (default) or "object" (the guide's shape).
    cards_shape: str = "array"
    # Days of order data (journals, tickets, memberships) served before `now`; None = all.
    history_days: int | None = HISTORY_DAYS


def build_flexpos(settings: FlexposSettings) -> FlexposEmulator:
    """A FlexPOS emulator for `settings`, not yet started."""
    data = FlexposData(
        seed=settings.seed,
        customers=settings.customers,
        journals=settings.journals,
        tickets=settings.tickets,
        memberships=settings.memberships,
        now=settings.now,
        date_format=settings.date_format,
        timezone=settings.timezone,
        cards_shape=settings.cards_shape,
    )
    return FlexposEmulator(
        data,
        token_ttl_seconds=settings.token_ttl_seconds,
        rate_limit_per_second=settings.rate_limit_per_second,
        history_days=settings.history_days,
    )


def _exports(fp: FlexposEmulator) -> dict[str, str]:
    """The variables tap-flexpos reads (pipelines.yaml's `sandbox` environment)."""
    return {
        "FLEXPOS_AUTH_URL": fp.auth_url,
        "FLEXPOS_API_URL": fp.api_url,
        "FLEXPOS_CLIENT_ID": POS_CLIENT_ID,
        "FLEXPOS_CLIENT_SECRET": POS_CLIENT_SECRET,
        "FLEXPOS_ATTRACTION_API_URL": fp.attraction_url,
        "FLEXPOS_ATTRACTION_CLIENT_ID": ATTRACTION_CLIENT_ID,
        "FLEXPOS_ATTRACTION_CLIENT_SECRET": ATTRACTION_CLIENT_SECRET,
    }


def _summary(fp: FlexposEmulator) -> str:
    counts = ", ".join(f"{n} {r}s" for r, n in fp.info()["counts"].items())
    return f"{counts}, seed {fp.data.seed}, now {fp.data.now}"


EMULATOR = Emulator(
    name="flexpos",
    title="FlexPOS",
    settings=FlexposSettings,
    build=build_flexpos,
    exports=_exports,
    env_prefix="FLEXPOS_",
    urls=lambda fp: [
        ("auth", fp.auth_url),
        ("POS API", fp.api_url),
        ("Attraction API", fp.attraction_url),
    ],
    summary=_summary,
    options=(
        Option("customers", ("--customers",), {"type": click.IntRange(0)}),
        Option("journals", ("--journals",), {"type": click.IntRange(0)}),
        Option("tickets", ("--tickets",), {"type": click.IntRange(0)}),
        Option("memberships", ("--memberships",), {"type": click.IntRange(0)}),
        Option(
            "token_ttl_seconds",
            ("--token-ttl",),
            {"type": click.IntRange(1), "help": "Access token lifetime (expires_in), seconds."},
        ),
        Option(
            "rate_limit_per_second",
            ("--rate-limit",),
            {
                "type": click.FloatRange(0, min_open=True),
                "help": "Requests per second per client before 429 (default: unlimited).",
            },
        ),
        Option(
            "date_format",
            ("--date-format",),
            {"help": "pendulum tokens; timestamps are local Europe/Copenhagen time."},
        ),
        Option(
            "cards_shape",
            ("--cards-shape",),
            {
                "type": click.Choice(CARDS_SHAPES),
                "help": "How customers' cards are sent: an array, or one object (the guide's "
                "cards.Cardnumber).",
            },
        ),
    ),
)
