"""Shared fixtures: the sandbox emulators (real HTTP servers on 127.0.0.1, free ports), on a
fixed clock.

The emulator's data and the taps' default windows ("one year back") are built around "now", so
a suite on the real clock would test different inputs every day. The whole suite therefore
runs with LOYALTY_NOW pinned (read by ``singer_kit.singer_io.now``; subprocesses inherit it),
unless LOYALTY_NOW is already set: `LOYALTY_NOW=2028-02-29T12:00:00Z make test` runs the suite
on another date, and LOYALTY_NOW= (empty) on the real one. The date-sensitive tests also run on
each of CLOCK_DATES (the ``pinned_now`` and ``dated_sandbox`` fixtures), and
``real_date_sandbox`` keeps one test on the real date.

``sandbox``, ``fresh_sandbox``, ``dated_sandbox`` and ``real_date_sandbox`` run the FlexPOS
emulator alone (their tests are about FlexPOS); ``full_sandbox`` and ``fresh_full_sandbox`` run
every emulator in ``sandbox/registry.py``, with one export block for all connectors.

``pg_server`` is one real PostgreSQL server per test process (``sandbox/postgres.py``: binaries
from a wheel, TCP on 127.0.0.1, a password); ``pg_url`` gives each test a new empty database on
it, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from hypothesis import settings

from sandbox.flexpos import FlexposSettings
from sandbox.launcher import RunningSandbox, start_sandbox
from sandbox.postgres import PostgresServer, running_postgres
from singer_kit.dates import NOW_ENV

# Property tests draw the same examples on every run (`make test` must not turn red on a
# new random draw); `pytest --hypothesis-profile=explore` searches afresh with more examples.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, max_examples=200, print_blob=True)
settings.load_profile("repeatable")

# An ordinary day, both daylight-saving changes in Copenhagen (the data's newest hours and the
# taps' window edges then straddle the change) and a leap day (one year back does not exist).
CLOCK_DATES = {
    "ordinary-day": "2026-06-15T09:30:00+00:00",
    "spring-dst": "2026-03-29T01:30:00+00:00",  # 03:30 CEST, 30 minutes after the skipped hour
    "autumn-dst": "2026-10-25T01:30:00+00:00",  # the second 02:30 of the day (CET)
    "leap-day": "2028-02-29T12:00:00+00:00",
}
os.environ.setdefault(NOW_ENV, CLOCK_DATES["ordinary-day"])
FLEXPOS = ("flexpos",)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    """One emulator for the whole session, default small data. Read-only: never mutate it,
    inject faults into it or change its rate limit; use `fresh_sandbox` for that."""
    with start_sandbox(only=FLEXPOS) as running:
        yield running


@pytest.fixture
def fresh_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """Factory: `fresh_sandbox(customers=10, token_ttl_seconds=2, ...)` -> a new, private
    RunningSandbox (FlexposSettings fields as keywords), stopped at teardown."""
    started: list[RunningSandbox] = []

    def _start(**settings: object) -> RunningSandbox:
        running = start_sandbox(FlexposSettings(**settings), only=FLEXPOS)  # type: ignore[arg-type]
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


@pytest.fixture(params=list(CLOCK_DATES.values()), ids=list(CLOCK_DATES))
def pinned_now(request: pytest.FixtureRequest) -> datetime:
    """Each of CLOCK_DATES in turn: a test taking it runs once per date."""
    return datetime.fromisoformat(request.param)


@pytest.fixture
def dated_sandbox(pinned_now: datetime) -> Iterator[RunningSandbox]:
    """The default sandbox with its clock at each of CLOCK_DATES; its env() carries
    LOYALTY_NOW, so a tap run with it measures its default window from the same "now"."""
    with start_sandbox(only=FLEXPOS, now=pinned_now) as running:
        yield running


@pytest.fixture
def real_date_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningSandbox]:
    """The default sandbox on the real date, with LOYALTY_NOW unset for this test and its
    subprocesses: the one check that the code still works on today's calendar."""
    monkeypatch.delenv(NOW_ENV, raising=False)
    with start_sandbox(only=FLEXPOS) as running:
        assert not running.pinned
        yield running


@pytest.fixture(scope="session")
def full_sandbox() -> Iterator[RunningSandbox]:
    """Every registered emulator, default data, one seed and clock; `env()` is the one export
    block for every connector. Read-only, like `sandbox`."""
    with start_sandbox() as running:
        yield running


@pytest.fixture
def fresh_full_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """Factory: `fresh_full_sandbox(FlexposSettings(customers=10), seed=7, now=...)` -> every
    registered emulator, private to the test (settings objects for some, defaults for the
    rest), stopped at teardown."""
    started: list[RunningSandbox] = []

    def _start(*settings: object, **shared: object) -> RunningSandbox:
        running = start_sandbox(*settings, **shared)  # type: ignore[arg-type]
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this test process, stopped and removed at the end (in a
    folder of its own under the temp dir: pytest's are closed to the `nobody` it runs as
    under root)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """The URL (password included) of a new, empty database private to this test."""
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
