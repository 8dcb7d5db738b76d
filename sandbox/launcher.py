"""Start the sandbox emulators from Python: the API tests, the demo and the CLI share.

with start_sandbox() as sb:                 # every registered emulator (sandbox/registry.py)
    env = sb.env()                          # one set of variables for every connector
    sb.flexpos.inject_fault("/customer", status=500)

with start_sandbox(FlexposSettings(customers=50), only=["flexpos"]) as sb:
    ...                                     # one emulator, with its own settings
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sandbox.http import EmulatorServer
from sandbox.registry import Emulator, emulators
from sandbox.timefmt import default_now
from singer_kit.dates import NOW_ENV


class RunningSandbox:
    """The running emulators; stop() (or leaving the `with` block) frees their ports.

    Each emulator is an attribute named after it (``sb.flexpos``) and in ``sb.emulators``.
    """

    def __init__(
        self,
        running: dict[str, tuple[Emulator, EmulatorServer]],
        *,
        now: datetime,
        pinned: bool = False,
    ) -> None:
        self._running = running
        self.emulators = {name: server for name, (_, server) in running.items()}
        self.now = now  # the one clock every emulator's data is built around
        self.pinned = pinned  # the clock was fixed (a settings' now, `now=` or LOYALTY_NOW)

    def __getattr__(self, name: str) -> EmulatorServer:
        try:
            return self.__dict__["emulators"][name]
        except KeyError:
            raise AttributeError(f"no emulator {name!r} is running") from None

    def env(self) -> dict[str, str]:
        """Environment variables pointing every connector at the emulators (sandbox secrets
        are fake).

        With a fixed clock it includes LOYALTY_NOW, so a tap's default window ("one year back")
        is measured from the same "now" as the emulators' data.
        """
        env = {NOW_ENV: self.now.isoformat()} if self.pinned else {}
        for emulator, server in self._running.values():
            exported = emulator.env(server)
            clash = env.keys() & exported.keys()
            if clash:
                raise ValueError(f"{emulator.name} exports {', '.join(sorted(clash))} again")
            env.update(exported)
        return env

    def stop(self) -> None:
        for _, server in self._running.values():
            server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(
    *settings: Any,
    only: Iterable[str] | None = None,
    seed: int | None = None,
    now: datetime | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningSandbox:
    """Start the emulators on `host`; ready when this returns.

    `settings` are emulator settings objects (e.g. ``FlexposSettings(customers=50)``); an
    emulator without one runs on its defaults. `only` names the emulators to start (default:
    every registered one). `seed` and `now` apply to all of them, so their data describe the
    same people on the same clock; a settings object's own `now` counts as the clock too.
    `port` 0 gives each a free port; otherwise the k-th emulator listens on `port + k`.
    """
    registered = emulators()
    names = list(registered) if only is None else list(only)
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise ValueError(
            f"unknown emulator {', '.join(unknown)}; registered: {', '.join(registered)}"
        )
    by_type = {emulator.settings: emulator.name for emulator in registered.values()}
    given: dict[str, Any] = {}
    for s in settings:
        name = by_type.get(type(s))
        if name is None or name not in names:
            raise ValueError(f"{type(s).__name__} is not the settings of a started emulator")
        given[name] = s
    chosen = {n: given.get(n) or registered[n].settings() for n in names}
    clock, pinned = _clock(now, [s.now for s in chosen.values()])
    running: dict[str, tuple[Emulator, EmulatorServer]] = {}
    try:
        for k, name in enumerate(names):
            s = dataclasses.replace(chosen[name], now=clock)
            if seed is not None:
                s = dataclasses.replace(s, seed=seed)
            server = registered[name].build(s)
            server.start(host, port + k if port else 0)
            running[name] = (registered[name], server)
    except BaseException:
        for _, server in running.values():
            server.stop()
        raise
    return RunningSandbox(running, now=clock, pinned=pinned)


def _clock(now: datetime | None, asked: list[datetime | None]) -> tuple[datetime, bool]:
    """The one "now" of a sandbox (aware; naive means UTC) and whether it was fixed."""
    candidates = {c for c in (now, *asked) if c is not None}
    if len(candidates) > 1:
        shown = ", ".join(sorted(c.isoformat() for c in candidates))
        raise ValueError(f"the emulators need one clock, got {shown}")
    fixed = bool(candidates) or bool(os.environ.get(NOW_ENV))
    clock = candidates.pop() if candidates else default_now()
    if clock.tzinfo is None:
        clock = clock.replace(tzinfo=UTC)
    return clock, fixed
