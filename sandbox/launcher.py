"""Start the sandbox emulators from Python: the API tests, the demo and the CLI share.

with start_sandbox(FlexposSettings(customers=50)) as sb:
    env = sb.env()            # FLEXPOS_* variables for a tap subprocess
    sb.flexpos.inject_fault("/customer", status=500)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

from sandbox.datagen import FlexposData
from sandbox.flexpos import (
    ATTRACTION_CLIENT_ID,
    ATTRACTION_CLIENT_SECRET,
    HISTORY_DAYS,
    POS_CLIENT_ID,
    POS_CLIENT_SECRET,
    FlexposEmulator,
)
from singer_kit.dates import NOW_ENV


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


class RunningSandbox:
    """The running emulators; stop() (or leaving the `with` block) frees their ports."""

    def __init__(self, flexpos: FlexposEmulator, *, pinned: bool = False) -> None:
        self.flexpos = flexpos
        self.pinned = pinned  # the clock was fixed (settings.now or LOYALTY_NOW)

    def env(self) -> dict[str, str]:
        """Environment variables pointing a tap at the emulators (sandbox secrets are fake).

        With a fixed clock it includes LOYALTY_NOW, so a tap's default window ("one year back")
        is measured from the same "now" as the emulator's data.
        """
        fp = self.flexpos
        clock = {NOW_ENV: fp.data.now.isoformat()} if self.pinned else {}
        return {
            **clock,
            "FLEXPOS_AUTH_URL": fp.auth_url,
            "FLEXPOS_API_URL": fp.api_url,
            "FLEXPOS_CLIENT_ID": POS_CLIENT_ID,
            "FLEXPOS_CLIENT_SECRET": POS_CLIENT_SECRET,
            "FLEXPOS_ATTRACTION_API_URL": fp.attraction_url,
            "FLEXPOS_ATTRACTION_CLIENT_ID": ATTRACTION_CLIENT_ID,
            "FLEXPOS_ATTRACTION_CLIENT_SECRET": ATTRACTION_CLIENT_SECRET,
        }

    def stop(self) -> None:
        self.flexpos.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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


def start_sandbox(
    flexpos: FlexposSettings | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSandbox:
    """Start the emulators on `host` (port 0 = a free port); ready when this returns."""
    settings = flexpos or FlexposSettings()
    emulator = build_flexpos(settings)
    emulator.start(host, port)
    return RunningSandbox(
        emulator, pinned=settings.now is not None or bool(os.environ.get(NOW_ENV))
    )
