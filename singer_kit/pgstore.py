"""The store on PostgreSQL: telling a URL from a file path, and opening it with one-line errors.

Every piece that opens the store (target-loyalty-store, tap-loyalty-store, the orchestrator's
state and locks) decides "DuckDB file or PostgreSQL server" with :func:`is_postgres_url`, so a
``database`` setting means the same thing everywhere. Errors never carry the URL's password.
"""

from __future__ import annotations

import typing as t

from singer_kit.commit import InputError
from singer_kit.redact import MASK, URL_PASSWORD

if t.TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql://", "postgres://")


class PgStoreError(InputError):
    """The server cannot be reached or refused us (one line, no password)."""


class PgStoreUnavailable(PgStoreError):
    """The server did not answer: try again later (cron, `loyalty run`'s retry)."""

    exit_code = 75  # EX_TEMPFAIL


def is_postgres_url(database: str | None) -> bool:
    """Whether a ``database`` setting names a PostgreSQL server rather than a DuckDB file."""
    return bool(database) and str(database).lower().startswith(SCHEMES)


def safe_url(url: str) -> str:
    """The URL for messages: its password replaced by ``***``."""
    return URL_PASSWORD.sub(rf"\1{MASK}@", url)


def connect(
    url: str, *, application_name: str, autocommit: bool = False, connect_timeout: int = 10
) -> psycopg.Connection:
    """Open a connection; a refused or unreachable server is one line naming the safe URL.

    Sessions run in UTC, as the DuckDB store does, so timestamps never depend on the server's
    or the client's zone. The URL's own ``options`` (e.g. ``?options=-csearch_path%3Dloyalty``
    for a store in its own schema) are kept.
    """
    import psycopg  # only pipelines on PostgreSQL pay for the import
    from psycopg.conninfo import conninfo_to_dict

    try:
        own = conninfo_to_dict(url).get("options")
        con = psycopg.connect(
            url,
            autocommit=autocommit,
            application_name=application_name,
            connect_timeout=connect_timeout,
            options=f"{own} -c TimeZone=UTC" if own else "-c TimeZone=UTC",
        )
    except psycopg.OperationalError as exc:
        first = safe_url(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        unreachable = any(
            s in first for s in ("Connection refused", "timeout expired", "could not translate")
        )
        cls = PgStoreUnavailable if unreachable else PgStoreError
        raise cls(f"cannot open the PostgreSQL store {safe_url(url)}: {first}") from None
    except psycopg.Error as exc:
        first = safe_url(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        raise PgStoreError(f"cannot open the PostgreSQL store {safe_url(url)}: {first}") from None
    return con


# Pipeline state kept in the store's database (issue 17). The orchestrator sets
# STATE_KEY_ENV (`<environment>/<pipeline>`) for an incremental run; a target that commits
# into this database (target-loyalty-store) saves the STATE it is about to emit in the same
# transaction as the data it covers, and the orchestrator saves each STATE it receives too
# (a push target's), so the bookmark is in the database whichever process dies first.
STATE_KEY_ENV = "LOYALTY_STATE_KEY"
STATE_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS _loyalty_state (state_key text PRIMARY KEY, "
    "value json NOT NULL, run_id text, updated_at timestamptz NOT NULL DEFAULT now())"
)


def save_state(con: psycopg.Connection, key: str, value: str, run_id: str | None) -> None:
    """Upsert one pipeline's bookmark (``value``: the STATE's value as JSON text); runs in the
    caller's transaction, so it commits or rolls back with the data it covers."""
    con.execute(STATE_TABLE_DDL)
    con.execute(
        "INSERT INTO _loyalty_state (state_key, value, run_id, updated_at) "
        "VALUES (%s, %s, %s, now()) ON CONFLICT (state_key) DO UPDATE SET "
        "value = EXCLUDED.value, run_id = EXCLUDED.run_id, updated_at = EXCLUDED.updated_at",
        (key, value, run_id),
    )


def load_state(con: psycopg.Connection, key: str) -> str | None:
    """The saved bookmark of one pipeline as JSON text, or None."""
    con.execute(STATE_TABLE_DDL)
    row = con.execute("SELECT value::text FROM _loyalty_state WHERE state_key = %s", (key,))
    found = row.fetchone()
    return None if found is None else str(found[0])
