"""Shared fixtures: the sandbox emulators (real HTTP servers on 127.0.0.1, free ports)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sandbox.launcher import FlexposSettings, RunningSandbox, start_sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    """One emulator for the whole session, default small data. Read-only: never mutate it,
    inject faults into it or change its rate limit; use `fresh_sandbox` for that."""
    with start_sandbox(FlexposSettings()) as running:
        yield running


@pytest.fixture
def fresh_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """Factory: `fresh_sandbox(customers=10, token_ttl_seconds=2, ...)` -> a new, private
    RunningSandbox (FlexposSettings fields as keywords), stopped at teardown."""
    started: list[RunningSandbox] = []

    def _start(**settings: object) -> RunningSandbox:
        running = start_sandbox(FlexposSettings(**settings))  # type: ignore[arg-type]
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()
