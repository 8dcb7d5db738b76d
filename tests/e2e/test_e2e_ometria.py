"""`loyalty run` of the Ometria push pipelines from pipelines.yaml: FlexPOS into the store, then
the store's models through tap-loyalty-store | mapper-loyalty | target-ometria to the Ometria
emulator, as `make demo` runs them."""

from __future__ import annotations

import datetime as dt
import sys

import pyarrow as pa

from sandbox.flexpos import FlexposSettings
from tests.e2e.conftest import REPO, StoreProject, make_store_project

sys.path.insert(0, str(REPO / "tests" / "targets"))
from ometria_helpers import LOYALTY_ACCOUNTS

PUSH = ("loyaltylion_to_ometria", "store_orders_to_ometria")


def add_accounts(p: StoreProject) -> dict[str, dict]:
    """Stand-in LoyaltyLion accounts (issue 13's view not merged yet) for every 2nd contact."""
    import duckdb

    con = duckdb.connect(str(p.db))
    try:
        ids = [r[0] for r in con.execute("SELECT contact_id FROM contacts ORDER BY 1").fetchall()]
        rows = [
            {
                "contact_id": cid,
                "source": "loyaltylion",
                "source_id": str(n),
                "programme": "7",
                "points_total": 10 * n,
                "tier_name": ("Silver", "Gold")[n % 2],
                "referral_url": f"https://ll.example/r/{n}",
                "updated_at": dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
            }
            for n, cid in enumerate(ids[::2])
        ]
        con.execute(LOYALTY_ACCOUNTS)
        arrow = pa.Table.from_pylist(rows)  # noqa: F841 (read by DuckDB by name)
        con.execute("INSERT INTO loyalty_accounts BY NAME SELECT * FROM arrow")
        return {r["contact_id"]: r for r in rows}
    finally:
        con.close()


def test_push_pipelines_send_the_store_to_ometria_once(tmp_path, fresh_full_sandbox):
    sb = fresh_full_sandbox(FlexposSettings(customers=40, journals=60, tickets=30, memberships=5))
    p = make_store_project(tmp_path, sb.env())
    load = p.run("run", "flexpos_to_store", "--env", "sandbox")
    assert load.returncode == 0, load.stderr[-2000:]
    accounts = add_accounts(p)
    for pipeline in PUSH:
        pushed = p.run("run", pipeline, "--env", "sandbox")
        assert pushed.returncode == 0, pushed.stderr[-3000:]

    om = sb.ometria
    contacts = om.of_type("contact")
    (n_contacts,) = p.query("SELECT count(*) FROM contacts")[0]
    (n_orders,) = p.query("SELECT count(*) FROM orders")[0]
    assert len(contacts) == n_contacts and len(om.of_type("order")) == n_orders
    by_email = {c["email"]: c for c in contacts.values() if "email" in c}
    for cid, row in accounts.items():
        (email,) = p.query(f"SELECT email FROM contacts WHERE contact_id = '{cid}'")[0]
        assert by_email[email]["properties"] == {
            "loyalty_points_total": row["points_total"],
            "loyalty_tier": row["tier_name"],
            "loyalty_referral_url": row["referral_url"],
        }
    assert all(len(c["types"]) == 1 and c["records"] <= 100 for c in om.calls)

    # Incremental runs with nothing changed: no call at all.
    calls = len(om.calls)
    for pipeline in PUSH:
        again = p.run("run", pipeline, "--env", "sandbox")
        assert again.returncode == 0, again.stderr[-2000:]
    assert len(om.calls) == calls

    from loyalty.demo import summary

    shown = summary(p.db, sb)
    assert f"{len(contacts):>5}  contacts" in shown and "A sample contact:" in shown
