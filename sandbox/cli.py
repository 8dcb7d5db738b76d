"""`loyalty sandbox` / `python -m sandbox`: run the emulators in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime
from types import FrameType

import click

from sandbox.datagen import CARDS_SHAPES
from sandbox.launcher import FlexposSettings, start_sandbox
from singer_kit.dates import parse_instant


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, "--now")
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("--now: ")) from None


@click.command("sandbox")
@click.option("--customers", type=click.IntRange(0), default=200, show_default=True)
@click.option("--journals", type=click.IntRange(0), default=600, show_default=True)
@click.option("--tickets", type=click.IntRange(0), default=400, show_default=True)
@click.option("--memberships", type=click.IntRange(0), default=80, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same data.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 = a free port."
)
@click.option(
    "--token-ttl",
    type=click.IntRange(1),
    default=300,
    show_default=True,
    help="Access token lifetime (expires_in), seconds.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Requests per second per client before 429 (default: unlimited).",
)
@click.option(
    "--date-format",
    default="YYYY-MM-DDTHH:mm:ss",
    show_default=True,
    help="pendulum tokens; timestamps are local Europe/Copenhagen time.",
)
@click.option(
    "--now",
    callback=_instant,
    help="Fixed reference time (ISO 8601, naive = UTC) the data is built around; also printed "
    "as LOYALTY_NOW for the taps' default windows. Default: LOYALTY_NOW, else today 00:00 UTC.",
)
@click.option(
    "--cards-shape",
    type=click.Choice(CARDS_SHAPES),
    default="array",
    show_default=True,
    help="How customers' cards are sent: an array, or one object (the guide's cards.Cardnumber).",
)
def sandbox_command(
    customers: int,
    journals: int,
    tickets: int,
    memberships: int,
    seed: int,
    port: int,
    token_ttl: int,
    rate_limit: float | None,
    date_format: str,
    now: datetime | None,
    cards_shape: str,
) -> None:
    """Start the local emulators (FlexPOS) on 127.0.0.1 until Ctrl-C or SIGTERM."""
    settings = FlexposSettings(
        seed=seed,
        customers=customers,
        journals=journals,
        tickets=tickets,
        memberships=memberships,
        token_ttl_seconds=token_ttl,
        rate_limit_per_second=rate_limit,
        date_format=date_format,
        now=now,
        cards_shape=cards_shape,
    )
    try:
        sandbox = start_sandbox(settings, port=port)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot start the sandbox: {exc}") from exc
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    fp = sandbox.flexpos
    counts = ", ".join(f"{n} {r}s" for r, n in fp.info()["counts"].items())
    click.echo(f"FlexPOS emulator: {fp.base_url}  ({counts}, seed {seed}, now {fp.data.now})")
    click.echo(f"  auth:           {fp.auth_url}")
    click.echo(f"  POS API:        {fp.api_url}")
    click.echo(f"  Attraction API: {fp.attraction_url}")
    click.echo(f"  control API:    {fp.base_url}/_sandbox/  (see sandbox/README.md)")
    click.echo("")
    click.echo("# Paste into a shell to point the taps here. These sandbox credentials are fake")
    click.echo("# and only open this local emulator, so printing them is fine.")
    for name, value in sandbox.env().items():
        click.echo(f"export {name}={value}")
    click.echo("")
    click.echo("Running; Ctrl-C or SIGTERM stops it.")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        click.echo("sandbox stopped")
