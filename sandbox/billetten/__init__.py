"""The Billetten emulator: its data (`data.py`), its HTTP app (`app.py`) and its entry in the
sandbox registry (`EMULATOR`, below)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import click

from sandbox.billetten.app import API_KEY, BillettenEmulator
from sandbox.billetten.data import NEWSLETTER, RELATED, BillettenData
from sandbox.registry import Emulator, Option
from sandbox.timefmt import default_now

__all__ = ["API_KEY", "EMULATOR", "BillettenData", "BillettenEmulator", "BillettenSettings"]


@dataclass
class BillettenSettings:
    """Size and behaviour of the Billetten emulator (defaults: small, fast test data)."""

    seed: int = 42
    now: datetime | None = None
    buyers: int = 40  # the first 8 are the fixed scenarios (sandbox/billetten/data.py)
    anonymous_browsers: int = 6
    rate_limit_per_second: float | None = None
    # The names of the two permission fields in the Heyloyalty list (the guide's defaults).
    related_field: str = RELATED
    newsletter_field: str = NEWSLETTER


def build_billetten(settings: BillettenSettings) -> BillettenEmulator:
    """A Billetten emulator for `settings`, not yet started."""
    data = BillettenData(
        settings.seed,
        settings.buyers,
        settings.now or default_now(),
        related_field=settings.related_field,
        newsletter_field=settings.newsletter_field,
        anonymous_browsers=settings.anonymous_browsers,
    )
    return BillettenEmulator(data, rate_limit_per_second=settings.rate_limit_per_second)


def _summary(server: BillettenEmulator) -> str:
    counts = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in server.info()["counts"].items())
    return f"{counts}, seed {server.data.seed}, now {server.data.now}"


EMULATOR = Emulator(
    name="billetten",
    title="Billetten",
    settings=BillettenSettings,
    build=build_billetten,
    exports=lambda server: {
        "BILLETTEN_API_URL": server.api_url,
        "BILLETTEN_API_KEY": API_KEY,
    },
    env_prefix="BILLETTEN_",
    urls=lambda server: [("API", server.api_url)],
    summary=_summary,
    options=(
        Option("buyers", ("--billetten-buyers",), {"type": click.IntRange(8)}),
        Option(
            "rate_limit_per_second",
            ("--billetten-rate-limit",),
            {
                "type": click.FloatRange(0, min_open=True),
                "help": "Billetten requests per second per API key before 429 (default: none).",
            },
        ),
    ),
)
