"""The one list of emulators: `loyalty sandbox`, `make demo` and the test fixtures start these.

Each vendor package (``sandbox/<vendor>/__init__.py``) defines ``EMULATOR = Emulator(...)``:
its name, its settings (a dataclass with ``seed`` and ``now`` among its fields, defaults = small
test data), how to build its server from them, the environment variables that point its
connector at it, what the CLI prints, and its own CLI options. Adding an emulator is one more
entry in ``VENDORS``; nothing else in the launcher, the CLI, the demo or the fixtures changes.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sandbox.http import EmulatorServer

# The vendor packages, in the order they start, print and export.
VENDORS = (
    "sandbox.flexpos",
    "sandbox.loyaltylion",
    "sandbox.billetten",
    "sandbox.ometria",
    "sandbox.voyado",
)
# Options every emulator shares (the CLI owns them); a vendor option may not take these names.
COMMON_OPTIONS = frozenset({"seed", "now", "port", "only"})


@dataclass(frozen=True)
class Option:
    """One CLI option of an emulator: `flags` set the settings field `field`.

    `click` holds click.Option keywords (type, help, ...); the default is the settings field's.
    The first emulator keeps short flags (`--customers`); later ones prefix theirs with their
    name (`--loyaltylion-customers`), as flags must be unique across emulators.
    """

    field: str
    flags: tuple[str, ...]
    click: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Emulator:
    """How the sandbox starts one vendor's emulator and points its connector at it."""

    name: str  # "flexpos": RunningSandbox.<name>, `loyalty sandbox --only <name>`
    title: str  # "FlexPOS": the printed header
    settings: type  # dataclass with `seed` and `now` fields; defaults are small test data
    build: Callable[[Any], EmulatorServer]  # settings -> a server, not yet started
    # A started server -> the variables its connector reads (URLs, fake sandbox credentials).
    exports: Callable[[Any], dict[str, str]]
    env_prefix: str  # every exported name starts with it ("FLEXPOS_")
    urls: Callable[[Any], list[tuple[str, str]]]  # (label, URL) lines the CLI prints
    summary: Callable[[Any], str]  # "200 customers, ..., seed 42, now ..." for the header
    options: tuple[Option, ...] = ()  # its own CLI options

    def __post_init__(self) -> None:
        fields = {f.name for f in dataclasses.fields(self.settings)}
        missing = {"seed", "now"} - fields
        if missing:
            raise TypeError(f"{self.name} settings lack {', '.join(sorted(missing))}")
        for option in self.options:
            if option.field not in fields or option.field in COMMON_OPTIONS:
                raise TypeError(f"{self.name} option {option.field!r} is not one of its settings")

    def default(self, field: str) -> Any:
        """The settings field's default (what the CLI shows and uses)."""
        return next(f.default for f in dataclasses.fields(self.settings) if f.name == field)

    def env(self, server: EmulatorServer) -> dict[str, str]:
        """`exports`, checked against the declared prefix (fixtures strip stale ones by it)."""
        env = self.exports(server)
        stray = [name for name in env if not name.startswith(self.env_prefix)]
        if stray:
            raise ValueError(f"{self.name} exports {', '.join(stray)} outside {self.env_prefix}*")
        return env


@cache
def emulators() -> dict[str, Emulator]:
    """Every registered emulator by name, in start order; names and options are unique."""
    found: dict[str, Emulator] = {}
    seen_options: dict[str, str] = {}
    for module in VENDORS:
        emulator: Emulator = importlib.import_module(module).EMULATOR
        if emulator.name in found:
            raise TypeError(f"two emulators are named {emulator.name!r}")
        for option in emulator.options:
            for flag in option.flags:
                if flag in seen_options:
                    other = seen_options[flag]
                    raise TypeError(f"{emulator.name} and {other} both take {flag}")
                seen_options[flag] = emulator.name
        found[emulator.name] = emulator
    return found


def env_prefixes() -> tuple[str, ...]:
    """Prefixes of every registered emulator's variables (to drop stale ones from a shell)."""
    return tuple(e.env_prefix for e in emulators().values())
