"""Opening a DuckDB file that another process may hold: wait a bounded time, then one line.

DuckDB lets one process write a file, or several read it, never both; a second process gets
"Could not set lock" at once. A load (target-loyalty-store) and a reader of the same store
(tap-loyalty-store, an analyst) therefore each wait here, up to their ``lock_timeout_seconds``,
instead of failing on the first try, and name the process they waited for when they give up
(exit 75, so cron and ``loyalty run`` try again later rather than alarm).
"""

from __future__ import annotations

import logging
import re
import time

import duckdb
from singer_sdk import typing as th

from singer_kit.commit import InputError

# The setting of every connector that opens the store (its value goes to connect_waiting).
LOCK_TIMEOUT = th.Property(
    "lock_timeout_seconds",
    th.NumberType(minimum=0),
    default=60,
    description="Wait this long for another process (a load, an analyst) to release "
    "the DuckDB file, then exit 75 (temporary failure). 0: do not wait.",
)
POLL_SECONDS = 0.5  # between attempts to open a file another process holds
log = logging.getLogger(__name__)


class DuckFileError(InputError):
    """The file cannot be opened (one line, no traceback)."""


class DuckFileLocked(DuckFileError):
    """Another process kept the file locked past the timeout: try later."""

    exit_code = 75  # EX_TEMPFAIL


def lock_holder(message: str) -> str:
    """'<program> (PID n)' from DuckDB's lock error, which names the process holding it."""
    found = re.search(r"lock is held in (.+?) \(PID (\d+)\)", message)
    if not found:
        return "another process (DuckDB did not say which)"
    return f"{found.group(1)} (PID {found.group(2)})"


def connect_waiting(
    database: str,
    lock_timeout: float,
    *,
    read_only: bool = False,
    label: str = "DuckDB file",
    error: type[Exception] = DuckFileError,
    locked: type[Exception] = DuckFileLocked,
    logger: logging.Logger | None = None,
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retried while another process holds the file's lock (bounded).

    ``label`` names the file in messages ("loyalty store"); ``error`` and ``locked`` are the
    caller's own one-line error classes, so its users see its wording and exit codes.
    """
    deadline = time.monotonic() + max(0.0, lock_timeout)
    announced = False
    while True:
        try:
            return duckdb.connect(database, read_only=read_only)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            if "Could not set lock" not in first:
                raise error(f"cannot open {label} {database}: {first}") from None
            holder = lock_holder(first)
        if time.monotonic() >= deadline:
            raise locked(
                f"{label} {database} is locked by {holder}; gave up after "
                f"{lock_timeout:g}s (lock_timeout_seconds), exit 75: try again later"
            )
        if not announced:
            announced = True
            (logger or log).warning(
                "%s %s is locked by %s; waiting up to %gs for it",
                label,
                database,
                holder,
                lock_timeout,
            )
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
