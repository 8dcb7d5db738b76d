"""The `push` stage: target-ometria against the Ometria emulator at Ometria's own limit.

Ometria allows 8 push calls a second of at most 100 records, so no client can push more than
800 records a second; the row says how close target-ometria gets (target: at least 90 %) with
zero loss: every contact stored once, none refused, none sent twice.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from bench.core import LIMIT, OURS, Context, Row, check_our_executable, measure, our_script

PUSH_RECORDS = 40_000
QUICK_PUSH_RECORDS = 2_000
ALLOWED_CALLS_PER_S = 8
RECORDS_PER_CALL = 100
ALLOWED = ALLOWED_CALLS_PER_S * RECORDS_PER_CALL
STREAM = "ometria_contacts"
_TS = {"type": ["string", "null"], "format": "date-time"}


def _contacts(path: Path, n: int) -> Path:
    """Singer input in the contacts model's shape, every loyalty field filled."""
    base = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    schema = {
        "properties": {
            "contact_id": {"type": ["string"]},
            "email": {"type": ["string", "null"]},
            "first_name": {"type": ["string", "null"]},
            "newsletter": {"type": ["boolean", "null"]},
            "points_total": {"type": ["integer", "null"]},
            "points_approved": {"type": ["integer", "null"]},
            "tier_name": {"type": ["string", "null"]},
            "enrolled_at": _TS,
            "referral_url": {"type": ["string", "null"]},
            "updated_at": _TS,
        }
    }
    with path.open("w") as out:
        out.write(
            json.dumps(
                {
                    "type": "SCHEMA",
                    "stream": STREAM,
                    "schema": schema,
                    "key_properties": ["contact_id"],
                }
            )
            + "\n"
        )
        for i in range(n):
            record = {
                "contact_id": f"email:bench{i}@example.com",
                "email": f"bench{i}@example.com",
                "first_name": f"Bench{i}",
                "newsletter": i % 2 == 0,
                "points_total": i * 3,
                "points_approved": i * 2,
                "tier_name": ("Bronze", "Silver", "Gold")[i % 3],
                "enrolled_at": (base - dt.timedelta(days=i % 700)).isoformat(),
                "referral_url": f"https://ll.example/r/{i}",
                "updated_at": (base + dt.timedelta(seconds=i)).isoformat(),
            }
            out.write(json.dumps({"type": "RECORD", "stream": STREAM, "record": record}) + "\n")
        out.write(json.dumps({"type": "STATE", "value": {"done": n}}) + "\n")
    return path


def stage_push(ctx: Context) -> None:
    """records/s target-ometria pushes, against the 800 records/s Ometria allows."""
    from sandbox.ometria import API_KEY, OmetriaEmulator

    n = QUICK_PUSH_RECORDS if ctx.quick else PUSH_RECORDS
    row = Row("push", "target-ometria -> Ometria emulator", OURS, n=n, rows_expected=n)
    row.config = (
        f"{n:,} contacts with loyalty properties; emulator at Ometria's 8 calls/s and 100 "
        "records/call; target config as shipped (workers 4, its 8/s limit), fresh ledger"
    )
    missing = check_our_executable("target-ometria", "target_ometria.target")
    if missing:
        ctx.not_available(row, missing)
        return
    data = _contacts(ctx.scratch("push-input") / "contacts.jsonl", n)
    server = OmetriaEmulator().start()
    try:

        def command(scratch: Path) -> list[str]:
            server.clear_received()
            server.clear_requests()
            config = {
                "api_url": server.base_url + "/v2",
                "api_key": API_KEY,
                "id_salt": "bench",
                "ledger_path": str(scratch / "ledger.sqlite"),
            }
            (scratch / "config.json").write_text(json.dumps(config))
            return [str(our_script("target-ometria")), "--config", str(scratch / "config.json")]

        def delivered(_scratch: Path, _run: object) -> int:
            stored, received = len(server.stored), len(server.received)
            refused = sum(r.status == 429 for r in server.requests)
            if received != stored or server.errors:
                raise RuntimeError(
                    f"{received} received for {stored} stored, {len(server.errors)} errors"
                )
            row.note = f"{refused} answers 429"
            return stored

        measure(ctx, row, command, stdin=data, verify=delivered)
    finally:
        server.stop()
    if row.records_per_s:
        share = row.records_per_s / ALLOWED
        row.note = (
            f"{share:.0%} of the {ALLOWED} records/s Ometria allows (target >= 90 %, zero loss); "
            + row.note
        )
    limit = Row("push", "allowed: 8 calls/s x 100 records", LIMIT, n=n)
    limit.config = "Ometria's documented push limits (../shared/api-contracts.md 5)"
    limit.reason = f"{ALLOWED} records/s, computed (not a run)"
    ctx.add(limit)
    limit.wall_s, limit.records_per_s = n / ALLOWED, ALLOWED  # the table's ratio column
