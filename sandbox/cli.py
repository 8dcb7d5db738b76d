"""`loyalty sandbox` / `python -m sandbox`: run every registered emulator in the foreground.

The options are the shared ones (`--seed`, `--now`, `--port`, `--only`) plus each emulator's
own (sandbox/registry.py), so a new emulator brings its options without touching this file.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime
from types import FrameType
from typing import Any

import click

from sandbox.launcher import RunningSandbox, start_sandbox
from sandbox.registry import emulators
from singer_kit.dates import parse_instant


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, "--now")
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("--now: ")) from None


def _param(emulator: str, field: str) -> str:
    """The click parameter name of one emulator's option (unique across emulators)."""
    return f"{emulator}__{field}"


def _params() -> list[click.Parameter]:
    names = list(emulators())
    params: list[click.Parameter] = []
    for emulator in emulators().values():
        for option in emulator.options:
            params.append(
                click.Option(
                    [*option.flags, _param(emulator.name, option.field)],
                    default=emulator.default(option.field),
                    show_default=True,
                    **option.click,
                )
            )
    return [
        *params,
        click.Option(
            ["--seed"], type=int, default=42, show_default=True, help="Same seed, same data."
        ),
        click.Option(
            ["--port"],
            type=click.IntRange(0, 65535),
            default=0,
            show_default=True,
            help="0 = free ports; else the first emulator's port, the next one +1, and so on.",
        ),
        click.Option(
            ["--now"],
            callback=_instant,
            help="Fixed reference time (ISO 8601, naive = UTC) the data is built around; also "
            "printed as LOYALTY_NOW for the taps' default windows. Default: LOYALTY_NOW, else "
            "today 00:00 UTC.",
        ),
        click.Option(
            ["--only"],
            type=click.Choice(names),
            multiple=True,
            help="Start only this emulator (repeatable). Default: all.",
        ),
    ]


def _print_started(sandbox: RunningSandbox) -> None:
    """Each emulator's URLs, then one block of exports for every connector."""
    registered = emulators()
    for name, server in sandbox.emulators.items():
        emulator = registered[name]
        click.echo(f"{emulator.title} emulator: {server.base_url}  ({emulator.summary(server)})")
        for label, url in emulator.urls(server):
            click.echo(f"  {label + ':':<16}{url}")
        click.echo(f"  {'control API:':<16}{server.base_url}/_sandbox/  (see sandbox/README.md)")
    click.echo("")
    click.echo("# Paste into a shell to point the taps here. These sandbox credentials are fake")
    click.echo("# and only open these local emulators, so printing them is fine.")
    for name, value in sandbox.env().items():
        click.echo(f"export {name}={value}")
    click.echo("")
    click.echo("Running; Ctrl-C or SIGTERM stops it.")
    sys.stdout.flush()


def _run(seed: int, port: int, now: datetime | None, only: tuple[str, ...], **options: Any) -> None:
    registered = emulators()
    names = list(only) or list(registered)
    settings = [
        registered[name].settings(
            **{o.field: options[_param(name, o.field)] for o in registered[name].options}
        )
        for name in names
    ]
    try:
        sandbox = start_sandbox(*settings, only=names, seed=seed, now=now, port=port)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot start the sandbox: {exc}") from exc
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    _print_started(sandbox)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        click.echo("sandbox stopped")


sandbox_command = click.Command(
    "sandbox",
    callback=_run,
    params=_params(),
    help="Start the local emulators ("
    + ", ".join(e.title for e in emulators().values())
    + ") on 127.0.0.1 until Ctrl-C or SIGTERM.",
)
