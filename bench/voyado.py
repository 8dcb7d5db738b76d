"""The voyado stage: target-voyado pushing contacts and receipts against Voyado's rate limit.

Voyado allows about 50 requests per second per API key (above that it answers 429), so the
question is not records per second in the abstract but how much of that allowance the target
uses, and whether it loses anything doing so. The emulator runs in its own process
(``python -m bench.voyado --serve``) with its rate limit at ``ALLOWED`` requests/s; the target
gets N new contacts (each a lookup and a create) and N receipts (one call each) at its default
settings. The row reports requests/s (requests the emulator served ÷ the target's wall time,
start-up included) against the allowance, records/s, and checks that every contact and
receipt arrived exactly once. Target: >= 90 % of the allowed rate, zero loss.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench.core import OURS, Context, Row, check_our_executable, our_script
from bench.emulator import serving
from bench.measure import run_measured

ALLOWED = 50.0  # Voyado: "keep below 50 requests per second"
SHARE = 0.9  # the target: at least this share of the allowance
NOW = datetime(2026, 6, 1, tzinfo=UTC)
_RATE = re.compile(r"= ([0-9.]+) req/s")


def serve(rate: float) -> int:
    """Run the Voyado emulator until stdin closes; print its environment as one JSON line."""
    from sandbox.launcher import start_sandbox
    from sandbox.voyado import VoyadoSettings

    settings = VoyadoSettings(now=NOW, rate_limit_per_second=rate, known_contacts=0)
    with start_sandbox(settings, only=["voyado"]) as sb:
        print(json.dumps(sb.env()), flush=True)
        sys.stdin.read()
    return 0


def singer_input(path: Path, n: int) -> Path:
    """N new contacts, then one receipt each (two lines, DKK, in the history window)."""
    lines = [
        {
            "type": "SCHEMA",
            "stream": "voyado_contacts",
            "key_properties": ["contact_id"],
            "schema": {},
        },
    ]
    for i in range(n):
        email = f"bench{i}@example.com"
        record = {
            "contact_id": f"email:{email}",
            "email": email,
            "first_name": f"B{i}",
            "country_code": "DK",
            "newsletter": i % 2 == 0,
        }
        lines.append({"type": "RECORD", "stream": "voyado_contacts", "record": record})
    lines.append(
        {
            "type": "SCHEMA",
            "stream": "voyado_receipts",
            "key_properties": ["receipt_id"],
            "schema": {},
        }
    )
    for i in range(n):
        items = [
            {"sku": "1001", "quantity": 1, "amount": 45.0, "vat_rate": 25},
            {"sku": "1002", "quantity": 2, "amount": 90.0, "vat_rate": 25},
        ]
        record = {
            "receipt_id": f"bench:{i}",
            "kind": "PURCHASE",
            "email": f"bench{i}@example.com",
            "created_at": "2026-05-01T10:00:00+00:00",
            "currency": "DKK",
            "discount": 10,
            "items": items,
        }
        lines.append({"type": "RECORD", "stream": "voyado_receipts", "record": record})
    lines.append({"type": "STATE", "value": {"bench": n}})
    path.write_text("".join(json.dumps(m) + "\n" for m in lines))
    return path


def stage_voyado(ctx: Context) -> None:
    """One row: target-voyado against the emulator's allowed rate (module doc)."""
    n = 100 if ctx.quick else 600
    row = Row("voyado", "target-voyado (contacts + receipts)", OURS, n=2 * n)
    missing = check_our_executable("target-voyado", "target_voyado.target")
    if missing:
        ctx.not_available(row, missing)
        return
    scratch = ctx.scratch("voyado")
    data = singer_input(scratch / "input.jsonl", n)
    with serving("bench.voyado", "--serve", "--rate", str(ALLOWED)) as env:
        config = {
            "api_url": env["VOYADO_API_URL"],
            "api_key": env["VOYADO_API_KEY"],
            "ledger_path": str(scratch / "ledger.sqlite"),
            "default_store_external_id": "store01",
        }
        (scratch / "config.json").write_text(json.dumps(config))
        cmd = [str(our_script("target-voyado")), "--config", str(scratch / "config.json")]
        run = run_measured(cmd, stdin=data, cwd=scratch, timeout=600)
        state = requests.get(f"{env['VOYADO_API_URL']}/_sandbox/voyado/state", timeout=30).json()
        served = requests.get(f"{env['VOYADO_API_URL']}/_sandbox/requests", timeout=30).json()
    if not run.ok:
        row.status, row.reason = "failed", f"exit {run.returncode}: {run.stderr_tail[-200:]}"
        ctx.add(row)
        return
    statuses = [r["status"] for r in served["requests"]]
    contacts = {c["attributes"]["email"] for c in state["contacts"]}
    receipts = [r["uniqueReceiptId"] for r in state["receipts"]]
    row.wall_s, row.walls_s = run.wall_s, [round(run.wall_s, 3)]
    row.peak_rss_mib, row.tree_rss_mib = run.peak_rss_mib, run.tree_rss_mib
    row.records_per_s = row.n / run.wall_s
    row.rows_expected = 2 * n
    row.rows_out = len(contacts) + len(set(receipts))
    per_second = len(statuses) / run.wall_s
    row.config = f"emulator rate limit {ALLOWED:g} req/s; target defaults (4 workers)"
    row.note = (
        f"{len(statuses)} requests in {run.wall_s:.1f} s = {per_second:.1f} req/s, "
        f"{per_second / ALLOWED:.0%} of the allowed {ALLOWED:g}; "
        f"{statuses.count(429)} answered 429; {len(receipts) - len(set(receipts))} duplicates"
    )
    if row.rows_out != row.rows_expected or len(receipts) != len(set(receipts)):
        row.status = "lost rows"
        row.reason = f"{row.rows_out:,} of {row.rows_expected:,} contacts and receipts"
    ctx.add(row)


def rate_target(rows: list[Row]) -> dict:
    """>= 90 % of Voyado's allowed request rate, with zero loss."""
    out: dict = {
        "target": f"voyado push >= {SHARE:.0%} of the allowed {ALLOWED:g} req/s, zero loss",
        "met": None,
        "value": None,
        "detail": "not measured: stage not run",
    }
    row = next((r for r in rows if r.stage == "voyado"), None)
    if row is None or row.wall_s is None:
        if row is not None:
            out["detail"] = f"not measured: {row.status} ({row.reason})"
        return out
    per_second = float(_RATE.search(row.note).group(1))  # type: ignore[union-attr]
    out["value"] = round(per_second / ALLOWED, 3)
    out["met"] = row.status == "ok" and per_second >= SHARE * ALLOWED
    out["detail"] = row.note if row.status == "ok" else f"{row.status}: {row.reason}"
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.voyado")
    p.add_argument("--serve", action="store_true", help="run the emulator until stdin closes")
    p.add_argument("--rate", type=float, default=ALLOWED)
    args = p.parse_args()
    sys.exit(serve(args.rate) if args.serve else p.error("use --serve"))
