"""Prove both mappers do the same work before timing them, on a small sample.

A faster mapper that maps differently would make the ratio meaningless, so the first 1,000
records go through ours (and the peer, when installed) and every output record must carry the
renamed fields, the extracted card number and the parsed date, without the dropped fields.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import orjson

from bench.core import Context
from bench.datagen import generate, iter_records

SAMPLE = 1_000
DROPPED = ("company_code", "currency", "is_reconciled", "description", "reference")


def _expected(src: dict) -> dict:
    cards = src["cards"]
    return {
        "company": src["company_code"],
        "ccy": src["currency"],
        "reconciled": src["is_reconciled"],
        "card_number": None if cards is None else cards["Cardnumber"],
        "sold_at": datetime.fromisoformat(src["created_at"]).astimezone(UTC),
    }


def _instant(value: object) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check(name: str, cmd: list[str], sample: bytes, wanted: dict[int, dict]) -> str | None:
    proc = subprocess.run(cmd, input=sample, capture_output=True, check=False, timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        return f"{name} exited {proc.returncode}: {last[:200]}"
    seen = 0
    for line in proc.stdout.splitlines():
        msg = orjson.loads(line)
        if msg.get("type") != "RECORD":
            continue
        rec = msg["record"]
        want = wanted.get(rec.get("line_id"))
        if want is None:
            return f"{name}: unexpected record {str(rec)[:120]}"
        seen += 1
        for key, value in want.items():
            got = rec.get(key)
            if key == "sold_at":
                got = _instant(got)
            elif key == "card_number" and got is not None:
                got = int(got)
            if got != value:
                return f"{name}: line_id {rec['line_id']} field {key} = {got!r}, want {value!r}"
        for key in DROPPED:
            if key in rec:
                return f"{name}: line_id {rec['line_id']} still has dropped field {key}"
    if seen != len(wanted):
        return f"{name}: {seen} of {len(wanted)} records came out"
    return None


def compare(ctx: Context, ours: list[str] | None, peer: list[str] | None) -> dict[str, str]:
    """Name -> problem for each mapper that does not map the sample as specified."""
    data = generate(SAMPLE, ctx.seed, ctx.data_dir)
    sample = data.stream.read_bytes()
    wanted = {r["line_id"]: _expected(r) for r in iter_records(SAMPLE, ctx.seed)}
    problems: dict[str, str] = {}
    for name, cmd in (("mapper-loyalty", ours), ("meltano-map-transform", peer)):
        if cmd is not None:
            problem = _check(name, cmd, sample, wanted)
            if problem:
                problems[name] = problem
    return problems
