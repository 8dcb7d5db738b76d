"""The ``pg`` stage: the same Singer file into PostgreSQL, ours and MeltanoLabs' target-postgres.

One real PostgreSQL server (``sandbox.postgres``: the pgserver wheel's binaries, TCP on
127.0.0.1 with a password) for the whole stage; every run loads into a new empty database of
it, dropped after its rows are counted. The two targets run in turn, round after round
(``measure_interleaved``), so both see the same load on a shared host. The wall covers the
whole load, the server's work included; the server's memory is in neither row's peak RSS.
"""

from __future__ import annotations

import typing as t
import uuid
from pathlib import Path

from bench import peerenv
from bench.core import (
    OURS,
    PEER,
    Context,
    Plan,
    Row,
    check_our_executable,
    measure_interleaved,
    our_script,
    write_json,
)
from bench.datagen import STREAM, generate

if t.TYPE_CHECKING:
    from sandbox.postgres import PostgresServer

OURS_TOOL = "target-loyalty-store (PostgreSQL)"
PEER_TOOL = "target-postgres 0.8.1 (MeltanoLabs)"
# target-postgres loads ~4k records/s on a quiet 2-core host: 1M takes minutes, more when busy.
RUN_TIMEOUT_S = 3_600.0
PEER_CONFIG = (
    '{"host", "port", "user", "password", "database": <fresh database>}, defaults otherwise: '
    'default_target_schema "melty", use_copy false (INSERT), validate_records true, '
    "batch_size_rows 10000, add_record_metadata true, activate_version true; "
    "upserts by line_id through a temp table per batch"
)


class _Databases:
    """A fresh database per run (looked up by the run's scratch folder), dropped after it."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.names: dict[Path, str] = {}

    def create(self, scratch: Path) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        self.names[scratch] = name
        self.server.create_database(name)
        return name

    def url(self, scratch: Path) -> str:
        return self.server.url(self.names[scratch])

    def count(self, scratch: Path, owner: str) -> int:
        """Rows of ``journal_lines`` in whatever schema the target put it."""
        import psycopg

        with psycopg.connect(self.url(scratch)) as con:
            found = con.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = %s",
                [STREAM],
            ).fetchall()
            if not found:
                raise RuntimeError(
                    f"{owner} exited 0 but left no {STREAM} table in its PostgreSQL database"
                    " (does it load PostgreSQL yet?)"
                )
            schema = found[0][0]
            return int(con.execute(f'SELECT count(*) FROM "{schema}"."{STREAM}"').fetchone()[0])

    def drop(self, scratch: Path) -> None:
        import psycopg

        name = self.names.pop(scratch, None)
        if name:
            with psycopg.connect(self.server.url(), autocommit=True) as con:
                con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stage_pg(ctx: Context) -> None:
    """target-loyalty-store on a PostgreSQL URL vs target-postgres, interleaved, same input."""
    from sandbox.postgres import USER, running_postgres

    data = generate(ctx.size, ctx.seed, ctx.data_dir)
    n = ctx.size
    ours = Row("pg", OURS_TOOL, OURS, n=n, rows_expected=n)
    ours.config = (
        '{"database": "postgresql://loyalty:***@127.0.0.1:<port>/<fresh database>", '
        '"staging_dir": "<scratch>"}'
    )
    peer = Row("pg", PEER_TOOL, PEER, n=n, rows_expected=n)
    peer.config = PEER_CONFIG
    plans: list[Plan] = []
    with running_postgres() as server:
        dbs = _Databases(server)
        missing = check_our_executable("target-loyalty-store", "target_loyalty_store.target")
        if missing:
            ctx.not_available(ours, missing)
        else:
            exe = str(our_script("target-loyalty-store"))

            def ours_cmd(s: Path) -> list[str]:
                dbs.create(s)
                cfg = {"database": dbs.url(s), "staging_dir": str(s / "staging")}
                return [exe, "--config", str(write_json(s / "cfg.json", cfg))]

            plans.append(
                Plan(
                    ours,
                    ours_cmd,
                    data.stream,
                    verify=lambda s, _run: dbs.count(s, "target-loyalty-store"),
                    timeout=RUN_TIMEOUT_S,
                    cleanup=dbs.drop,
                )
            )
        ok, why = ctx.peer_status.get(peerenv.TARGET_POSTGRES.name, (False, "venv not prepared"))
        if peer.role in ctx.roles and not ok:
            ctx.not_available(peer, why)
        else:
            peer_exe = str(peerenv.TARGET_POSTGRES.bin("target-postgres"))

            def peer_cmd(s: Path) -> list[str]:
                cfg = {
                    "host": "127.0.0.1",
                    "port": server.port,
                    "user": USER,
                    "password": server.password,
                    "database": dbs.create(s),
                }
                return [peer_exe, "--config", str(write_json(s / "cfg.json", cfg))]

            plans.append(
                Plan(
                    peer,
                    peer_cmd,
                    data.stream,
                    verify=lambda s, _run: dbs.count(s, "target-postgres"),
                    timeout=RUN_TIMEOUT_S,
                    cleanup=dbs.drop,
                )
            )
        measure_interleaved(ctx, plans)
    _per_round_ratios(ours, peer)


def _per_round_ratios(ours: Row, peer: Row) -> None:
    """Ours over the peer, round by round (same N: peer wall / our wall), in our row's note."""
    if ours.status != "ok" or not peer.walls_s or len(peer.walls_s) != len(ours.walls_s):
        return
    ratios = [p / o for o, p in zip(ours.walls_s, peer.walls_s, strict=True)]
    ours.note = "ours/target-postgres per round: " + ", ".join(f"{r:.2f}x" for r in ratios)
