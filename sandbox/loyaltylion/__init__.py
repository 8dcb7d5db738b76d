"""The LoyaltyLion API v2 emulator: its data (`data.py`), its HTTP app (`app.py`) and its entry
in the sandbox registry (`EMULATOR`, below)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import click

from sandbox.loyaltylion.app import (
    API_KEY,
    CUSTOMERS_ONLY_KEY,
    LEGACY_SECRET,
    LEGACY_TOKEN,
    RATE_LIMIT,
    LoyaltyLionEmulator,
)
from sandbox.loyaltylion.data import TIERS, LoyaltyLionData
from sandbox.registry import Emulator, Option

__all__ = [
    "API_KEY",
    "CUSTOMERS_ONLY_KEY",
    "EMULATOR",
    "LEGACY_SECRET",
    "LEGACY_TOKEN",
    "TIERS",
    "LoyaltyLionData",
    "LoyaltyLionEmulator",
    "LoyaltyLionSettings",
]


@dataclass
class LoyaltyLionSettings:
    """Size and behaviour of the LoyaltyLion emulator (defaults: small, fast test data)."""

    seed: int = 42
    now: datetime | None = None
    customers: int = 60
    # Percent of the newest quarter of transactions that commit late (release_late()).
    late_pct: int = 3
    rate_limit_per_second: float | None = RATE_LIMIT


def build_loyaltylion(settings: LoyaltyLionSettings) -> LoyaltyLionEmulator:
    """A LoyaltyLion emulator for `settings`, not yet started."""
    data = LoyaltyLionData(settings.seed, settings.customers, settings.now, settings.late_pct)
    return LoyaltyLionEmulator(data, rate_limit_per_second=settings.rate_limit_per_second)


def _summary(ll: LoyaltyLionEmulator) -> str:
    counts = ll.info()["counts"]
    late = len(ll.data.late)
    return (
        f"{counts['customer']} customers, {counts['transaction']} transactions "
        f"({late} late), seed {ll.data.seed}, now {ll.data.now}"
    )


EMULATOR = Emulator(
    name="loyaltylion",
    title="LoyaltyLion",
    settings=LoyaltyLionSettings,
    build=build_loyaltylion,
    exports=lambda ll: {"LOYALTYLION_API_URL": ll.api_url, "LOYALTYLION_API_KEY": API_KEY},
    env_prefix="LOYALTYLION_",
    urls=lambda ll: [("API", ll.api_url)],
    summary=_summary,
    options=(
        Option("customers", ("--loyaltylion-customers",), {"type": click.IntRange(0)}),
        Option(
            "late_pct",
            ("--loyaltylion-late-pct",),
            {
                "type": click.IntRange(0, 100),
                "help": "Percent of the newest transactions that commit late.",
            },
        ),
        Option(
            "rate_limit_per_second",
            ("--loyaltylion-rate-limit",),
            {
                "type": click.FloatRange(0, min_open=True),
                "help": "Requests per second per API key before 429 (default 20).",
            },
        ),
    ),
)
