"""The Ometria emulator (the push API of `app.py`) and its entry in the sandbox registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import click

from sandbox.ometria.app import API_KEY, RATE_PER_SECOND, OmetriaEmulator
from sandbox.registry import Emulator, Option

__all__ = ["API_KEY", "EMULATOR", "OmetriaEmulator", "OmetriaSettings"]


@dataclass
class OmetriaSettings:
    """The Ometria emulator: it holds no data of its own, only what is pushed to it."""

    seed: int = 42  # shared by every emulator; Ometria's data all arrives by push
    now: datetime | None = None
    rate_limit_per_second: float | None = RATE_PER_SECOND  # "push: 8 requests/s, then 429"


def _exports(om: OmetriaEmulator) -> dict[str, str]:
    """The variables target-ometria reads (pipelines.yaml's `sandbox` environment)."""
    return {
        "OMETRIA_API_URL": om.base_url + "/v2",
        "OMETRIA_API_KEY": API_KEY,
        # Names the push ledger in the sandbox config: a new emulator is a new account, so
        # nothing a previous sandbox accepted is taken as already sent.
        "OMETRIA_ACCOUNT": om.account,
        # target-ometria's salt for contact ids: a secret in production, a fixed sandbox one
        # here (meltano.yml may hold no secret's value, so the sandbox config names it too).
        "OMETRIA_ID_SALT": "sandbox-id-salt",
    }


EMULATOR = Emulator(
    name="ometria",
    title="Ometria",
    settings=OmetriaSettings,
    build=lambda s: OmetriaEmulator(rate_limit_per_second=s.rate_limit_per_second),
    exports=_exports,
    env_prefix="OMETRIA_",
    urls=lambda om: [("push API", om.base_url + om.push_path)],
    summary=lambda om: f"push only, {om.rate_limit or 'no'} requests/s per API key",
    options=(
        Option(
            "rate_limit_per_second",
            ("--ometria-rate-limit",),
            {
                "type": click.FloatRange(0, min_open=True),
                "help": "Ometria push requests per second per API key before 429 (default 8).",
            },
        ),
    ),
)
