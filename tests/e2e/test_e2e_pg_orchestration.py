"""flexpos_to_store into a PostgreSQL store, end to end (issue 17): the real tap, mapper and
target-loyalty-store against the FlexPOS emulator, the bookmark and lock in the same database.

Needs target-loyalty-store to load PostgreSQL (helper pg-load's part): skipped, saying so,
until it does."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg

from singer_kit.dates import now
from tests.e2e.conftest import skip_unless_the_store_loads_postgresql

STATE = "SELECT value::text FROM _loyalty_state WHERE state_key = 'sandbox/flexpos_to_store'"


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as con:
        return con.execute(sql).fetchall()


def test_a_second_machine_continues_from_the_bookmark_the_first_left_in_postgresql(
    sandbox, store_project, pg_url, tmp_path
):
    skip_unless_the_store_loads_postgresql(pg_url, tmp_path)
    machines = []
    for name in ("machine-a", "machine-b"):
        project = store_project(sandbox.env(), folder=name)
        project.env["LOYALTY_STORE"] = pg_url
        machines.append(project)

    first = machines[0].run("run", "flexpos_to_store", "--env", "sandbox", "--json")
    assert first.returncode == 0, first.stderr
    loaded = json.loads(first.stdout)["records"]
    assert loaded["contacts"] > 0
    (saved,) = rows(pg_url, STATE)
    assert json.loads(saved[0])["bookmarks"]
    assert not (machines[0].state_dir / "sandbox").exists()  # nothing kept on machine A

    second = machines[1].run("run", "flexpos_to_store", "--env", "sandbox", "--json")
    assert second.returncode == 0, second.stderr
    log = Path(json.loads(second.stdout)["log"]).read_text()
    assert "state from postgresql://" in log and "_loyalty_state 'sandbox/flexpos_to_store'" in log
    assert (
        "the target saves it with each commit (LOYALTY_STATE_KEY=sandbox/flexpos_to_store)" in log
    )
    # Incremental: the emulator's data did not change, so B loads (next to) nothing again.
    assert sum(json.loads(second.stdout)["records"].values()) < sum(loaded.values())
    assert rows(pg_url, "SELECT count(*) FROM _loyalty_runs") == [(2,)]


def test_backfill_parallel_2_loads_what_a_sequential_backfill_loads(
    sandbox, store_project, pg_server, pg_url, tmp_path
):
    # 46 days ending a fortnight before the pinned "now": two 23-day windows, on any date.
    end = (now() - dt.timedelta(days=14)).date()
    start = end - dt.timedelta(days=46)
    args = ("--env", "sandbox", "--start", str(start), "--end", str(end), "--window", "23d")
    # A new, empty database for the windows side by side: their two targets create the
    # store's tables at the same moment.
    stores = {"one by one": pg_url, "side by side": pg_server.create_database("t_parallel2")}
    skip_unless_the_store_loads_postgresql(pg_url, tmp_path)
    for label, url in stores.items():
        project = store_project(sandbox.env(), folder=label.replace(" ", "-"))
        project.env["LOYALTY_STORE"] = url
        extra = ("--parallel", "2") if label == "side by side" else ()
        result = project.run("backfill", "flexpos_to_store", *args, *extra, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["windows_done"] == 2
    compare = "SELECT count(*), md5(string_agg(line_id, ',' ORDER BY line_id)) FROM order_lines"
    assert rows(stores["one by one"], compare) == rows(stores["side by side"], compare)
    assert rows(pg_url, "SELECT count(*) FROM _loyalty_state") == [(0,)]  # windows: no bookmark
