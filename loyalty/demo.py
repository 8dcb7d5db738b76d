"""`make demo`: sandbox up, every demo pipeline into ./loyalty.duckdb, a summary of what landed.

Runs the same `loyalty run` a data engineer would, against the emulators started in-process
(every one in sandbox/registry.py, with the one export block `loyalty sandbox` prints), so a
fresh clone shows the whole path (tap | mapper | target, state, run record) without any
credentials.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb

from sandbox.launcher import RunningSandbox, start_sandbox
from sandbox.registry import emulators, env_prefixes
from singer_kit.dates import now
from target_loyalty_store.segments import catalog, query

ROOT = Path(__file__).resolve().parents[1]
# Run in this order (a push pipeline reads what an earlier one loaded); one line per pipeline.
PIPELINES: tuple[str, ...] = (
    "flexpos_to_store",
    "billetten_to_store",
    "loyaltylion_to_store",
    "loyaltylion_to_ometria",  # reads loyalty_accounts: after loyaltylion_to_store
    "store_orders_to_ometria",
    "store_to_voyado",  # FlexPOS and Billetten as one person each
)
TABLES = ("contacts", "contact_ids", "order_lines", "orders", "_rejects", "_runs")
# A few of the guide's segments (docs/segments.md), with the parameters the demo shows.
DEMO_SEGMENTS: tuple[tuple[str, dict[str, object]], ...] = (
    ("event_then_dining", {}),
    ("booked_more_than", {"times": 2}),
    ("tickets_in_one_order", {"more_than": 3}),
    ("booked_channel", {"channel": "desk"}),
    ("total_amount", {"at_least": 2000, "currency": "DKK"}),
    ("updated_profile", {"days": 30}),
)

Section = Callable[[duckdb.DuckDBPyConnection, RunningSandbox | None], list[str]]


# Each source's or destination's own lines of the summary, in PIPELINES order. A section may
# read the store and, when given the sandbox, what an emulator received (the summary runs
# before the emulators stop; tests call summary() on a store alone).
def billetten_section(con: duckdb.DuckDBPyConnection, sandbox: RunningSandbox | None) -> list[str]:
    """Billetten's buyers by their permissions now, its cancelled seats, paired browsers."""
    out = ["\nBilletten buyers by permission (contacts, as the store derives them):"]
    rows = con.execute(
        """
        SELECT CASE WHEN c.unsubscribed_at IS NOT NULL AND c.consent_related
                    THEN 'partly unsubscribed (10_2 kept)'
                    WHEN c.unsubscribed_at IS NOT NULL THEN 'unsubscribed'
                    WHEN c.newsletter AND c.consent_related THEN '10_2 and consent_email'
                    WHEN c.newsletter THEN 'consent_email only'
                    WHEN c.consent_related THEN '10_2 only'
                    ELSE 'terms only' END AS permission, count(*) AS buyers
        FROM contacts AS c
        WHERE c.contact_id IN (SELECT contact_id FROM contact_ids WHERE source = 'billetten')
        GROUP BY ALL ORDER BY buyers DESC, permission
        """
    ).fetchall()
    out += [f"  {n:>5}  {permission}" for permission, n in rows]
    seats = con.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE cancelled_at IS NOT NULL),
               count(DISTINCT order_id) FILTER (WHERE cancelled_at IS NOT NULL)
        FROM order_lines WHERE source = 'billetten'
        """
    ).fetchone()
    if seats and seats[0]:
        out.append(
            f"  seats: {seats[0]}, of them {seats[1]} cancelled (kept with cancelled_at, in "
            f"{seats[2]} order(s); left out of orders' tickets and amounts and of segments)"
        )
    paired = con.execute(
        "SELECT count(DISTINCT browser_id) FILTER (WHERE contact_id IS NOT NULL), "
        "count(DISTINCT browser_id) FROM tracking_events_by_contact WHERE source = 'billetten'"
    ).fetchone()
    if paired and paired[1]:
        out.append(f"  browsers: {paired[1]}, of them {paired[0]} paired to a contact")
    return out


def ometria_section(_con: duckdb.DuckDBPyConnection, sandbox: RunningSandbox | None) -> list[str]:
    """What the Ometria emulator holds after the push pipelines: contacts, orders, a sample
    contact with its loyalty properties (nothing when no Ometria emulator ran)."""
    server = (sandbox.emulators if sandbox else {}).get("ometria")
    if server is None or not hasattr(server, "of_type"):
        return []
    contacts, orders = server.of_type("contact"), server.of_type("order")
    calls = server.calls
    out = [
        "\nOmetria (the emulator, as the push pipelines left it):",
        f"  {len(contacts):>5}  contacts   {len(orders):>5}  orders   from {len(calls)} push "
        f"calls ({sum(c['records'] for c in calls)} records), {len(server.errors)} in _errors",
    ]
    optin = collections.Counter(c.get("marketing_optin", "-") for c in contacts.values())
    out.append("  marketing_optin: " + ", ".join(f"{k} {n}" for k, n in sorted(optin.items())))
    if contacts:
        sample = max(contacts.values(), key=lambda c: (len(c.get("properties", {})), c["id"]))
        name = " ".join(str(sample.get(k, "")) for k in ("firstname", "lastname")).strip()
        out.append(f"  A sample contact: {name} <{sample.get('email', '-')}>, id {sample['id']}")
        out.append(f"    marketing_optin {sample.get('marketing_optin')}, properties:")
        out += [f"      {k:<34} {v}" for k, v in sorted(sample.get("properties", {}).items())]
    if orders:

        def refunds(o: dict) -> int:
            return sum("refunded" in li for li in o.get("lineitems", []))

        order = max(orders.values(), key=lambda o: (refunds(o), len(o.get("lineitems", []))))
        refunded = refunds(order)
        out.append(
            f"  A sample order: {order['id']} {order.get('status')} {order.get('grand_total')} "
            f"{order.get('currency', '')}, {len(order.get('lineitems', []))} line items "
            f"({refunded} refunded)"
        )
    return out


def loyaltylion_tiers(con: duckdb.DuckDBPyConnection, _sandbox: RunningSandbox | None) -> list[str]:
    """LoyaltyLion members per tier (loyalty_accounts), lowest tier first."""
    rows = con.execute(
        "SELECT coalesce(a.tier_name, '(no tier)'), count(*), sum(a.points_total) "
        "FROM loyalty_accounts AS a LEFT JOIN loyalty_tiers AS t "
        "ON t.source = a.source AND t.tier_name = a.tier_name "
        "GROUP BY ALL ORDER BY min(t.tier_position) NULLS LAST"
    ).fetchall()
    out = ["\nLoyaltyLion members per tier (view loyalty_accounts):"]
    out += [f"  {tier:<12} {n:>5} members {points:>9} points" for tier, n, points in rows]
    if not rows:
        return [*out, "  (no members loaded)"]
    (shared,) = con.execute(
        "SELECT count(DISTINCT contact_id) FROM contact_ids WHERE source = 'loyaltylion' "
        "AND contact_id IN (SELECT contact_id FROM contact_ids WHERE source <> 'loyaltylion')"
    ).fetchone()
    return [*out, f"  {shared} of them are also contacts of another source (same e-mail)"]


def voyado_section(con: duckdb.DuckDBPyConnection, sandbox: RunningSandbox | None) -> list[str]:
    """What the Voyado emulator received from store_to_voyado."""
    del con
    voyado = sandbox.emulators.get("voyado") if sandbox else None
    if voyado is None:
        return []
    receipts = voyado.received
    returns = [r for r in receipts if r["totalGrossPrice"] < 0]
    assigned, redeemed = len(voyado.ops("assign")), len(voyado.ops("redeem"))
    out = [
        "\nVoyado Engage received (store_to_voyado):",
        f"  {len(voyado.ops('create')):>5}  contacts created (source, storeExternalId, language)",
        f"  {len(voyado.ops('patch')):>5}  contacts patched (only changed, non-empty fields)",
        f"  {len(receipts) - len(returns):>5}  purchase receipts",
        f"  {len(returns):>5}  RETURN receipts (returns, cancelled tickets)",
        f"  {assigned:>5}  welcome promotions assigned (to new contacts), {redeemed} redeemed "
        "(first purchases at the till with its code, channel POS)",
    ]
    patches = voyado.ops("patch")
    if patches:
        fields = ", ".join(sorted(patches[0]["body"]))
        out.append(f"  a known contact, patched: {fields}")
    if assigned:
        out.append(
            "  a POS checkout redeems one at once: "
            "voyado-promotion --config <target config> redeem --email <e-mail>"
        )
    if returns:
        r = returns[0]
        items = ", ".join(f"{i['sku']} x{i['quantity']}" for i in r["items"])
        out.append(
            f"  a return: {r['uniqueReceiptId']} {r['createdDate']} {r['totalGrossPrice']:.2f} "
            f"{r['currency']} ({items})"
        )
    return out


SECTIONS: tuple[Section, ...] = (
    billetten_section,
    loyaltylion_tiers,
    ometria_section,
    voyado_section,
)


def _loyalty() -> str:
    local = Path(sys.executable).parent / "loyalty"
    return str(local) if local.exists() else "loyalty"


def run_pipeline(pipeline: str, env: dict[str, str]) -> int:
    """`loyalty run <pipeline> --env sandbox --full-refresh`; its progress goes to stderr.

    Full refresh because each demo starts a fresh emulator: the load is an idempotent upsert,
    so re-running the demo never duplicates anything in the store.
    """
    cmd = [_loyalty(), "-f", str(ROOT / "pipelines.yaml"), "run", pipeline, "--env", "sandbox"]
    print("$ " + " ".join(["loyalty", *cmd[3:], "--full-refresh"]), flush=True)
    return subprocess.run([*cmd, "--full-refresh"], cwd=ROOT, env=env, check=False).returncode


def write_report(env: dict[str, str]) -> int:
    """`loyalty report --env sandbox --out report.html`: the page the summary points to."""
    report = ROOT / "report.html"
    cmd = [_loyalty(), "-f", str(ROOT / "pipelines.yaml"), "report", "--env", "sandbox"]
    rc = subprocess.run(
        [*cmd, "--out", str(report)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False
    ).returncode
    if rc == 0:
        print(f"\nThe run report (open it in a browser): {report}")
    return rc


def summary(db: Path, sandbox: RunningSandbox | None = None) -> str:
    """Rows per table, one contact with its orders, each source's section, where to look next."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = [f"\nThe loyalty store {db}:"]
        for table in TABLES:
            (n,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            out.append(f"  {table:<12} {n:>7} rows")
        sample = con.execute(
            """
            SELECT c.contact_id, c.first_name, c.last_name, c.email, c.city,
                   c.is_club_member, c.newsletter, count(*) AS orders
            FROM contacts c JOIN orders o ON o.contact_id = c.contact_id
            GROUP BY ALL
            ORDER BY count(DISTINCT o.has_return) DESC, max(o.tickets) > 0 DESC, orders DESC,
                     c.contact_id
            LIMIT 1
            """
        ).fetchone()
        if sample:
            cid, first, last, email, city, club, news, n_orders = sample
            out.append(f"\nA sample contact: {first} {last} <{email}>, {city}")
            out.append(f"  club member: {club}, newsletter: {news}, orders: {n_orders}")
            rows = con.execute(
                """
                SELECT order_id, strftime(ordered_at, '%Y-%m-%d %H:%M') AS at, channel,
                       lines, tickets, amount::DECIMAL(12, 2), currency, has_return, cancelled
                FROM orders WHERE contact_id = ? ORDER BY ordered_at
                """,
                [cid],
            ).fetchall()
            out.append(
                f"  {'ordered (UTC)':<17} {'channel':<8} {'lines':>5} {'tickets':>7} "
                f"{'amount':>10} cur  note"
            )
            for _oid, at, channel, lines, tickets, amount, cur, ret, cancelled in rows:
                note = "return" if ret else ("cancelled" if cancelled else "")
                out.append(
                    f"  {at:<17} {channel or '-':<8} {lines:>5} {tickets:>7} {amount:>10} "
                    f"{cur:<4} {note}"
                )
        out.append("\nSegments (loyalty segment list; members of each):")
        segments = catalog()
        for name, params in DEMO_SEGMENTS:
            segment = segments[name]
            args = {**params, "as_of": now()}
            _, members = query(con, segment, args)
            shown = " ".join(f"--param {k}={v}" for k, v in params.items())
            out.append(f"  {len(members):>5}  {name} {shown}".rstrip())
            out.append(f"         {segment.question}")
        for section in SECTIONS:
            out += section(con, sandbox)
        reasons = con.execute(
            "SELECT stream, reason, count(*) FROM _rejects GROUP BY ALL ORDER BY 3 DESC LIMIT 5"
        ).fetchall()
        if reasons:
            out.append("\nNot loaded (kept in _rejects with the record and the reason):")
            out += [f"  {n:>5} {stream}: {reason}" for stream, reason, n in reasons]
        out.append(
            "\nWhere to look next:\n"
            "  .venv/bin/loyalty status                 the run just recorded\n"
            "  .venv/bin/loyalty segment show event_then_dining   a segment's members\n"
            "  .venv/bin/loyalty state show flexpos_to_store   its saved bookmarks\n"
            '  .venv/bin/python -c "import duckdb; '
            "duckdb.connect('loyalty.duckdb', read_only=True).sql('FROM orders LIMIT 5').show()\"\n"
            "  .venv/bin/loyalty sandbox                start the emulators, then\n"
            "  .venv/bin/loyalty run flexpos_to_store --env sandbox   (incremental runs)\n"
            "  docs/architecture.md, docs/store-streams.md, docs/segments.md, pipelines.yaml"
        )
        return "\n".join(out)
    finally:
        con.close()


def main() -> int:
    """Start the emulators, run the pipelines, print the summary, stop the emulators."""
    titles = ", ".join(e.title for e in emulators().values())
    print(f"Starting the sandbox emulators ({titles}) on 127.0.0.1...")
    with start_sandbox() as sb:
        stale = ("LOYALTY_", *env_prefixes())  # a shell's exports of an earlier sandbox
        env = {k: v for k, v in os.environ.items() if not k.startswith(stale)}
        env.update(sb.env())
        for pipeline in PIPELINES:
            rc = run_pipeline(pipeline, env)
            if rc != 0:
                print(
                    f"\nThe demo run of {pipeline} failed (exit {rc}); see the message above.",
                    file=sys.stderr,
                )
                return rc
        print(summary(ROOT / "loyalty.duckdb", sb))
        return write_report(env)


if __name__ == "__main__":
    sys.exit(main())
