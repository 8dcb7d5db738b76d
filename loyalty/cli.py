"""The `loyalty` command: orchestrates taps, mappings and targets from pipelines.yaml."""

from __future__ import annotations

import click

from loyalty import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty")
def main() -> None:
    """Move loyalty and marketing data: taps -> mappings -> targets.

    Start with `loyalty sandbox` to run the local emulators, `loyalty validate` to check
    pipelines.yaml offline, and `loyalty run PIPELINE` to run one pipeline.
    """


def _register() -> None:
    # Each command lives in the module of its concern; importing here keeps `loyalty --help` fast
    # enough while the command set stays in one place.
    from sandbox.cli import sandbox_command

    main.add_command(sandbox_command)


_register()
