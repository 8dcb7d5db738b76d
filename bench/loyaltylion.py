"""Bench stage `loyaltylion`: tap-loyaltylion against its emulator alone and a singer-sdk tap.

The LoyaltyLion emulator runs in its own process (``python -m bench.loyaltylion``) with the
API's own limit, 20 requests per second per key, as the real API has it. Rows, N = customers +
transactions:

- ``LoyaltyLion emulator alone (plain pager)``: ``peers/loyaltylion_pager.py``, the tap's
  requests (limit 500, the cursor alone after the first page) at the tap's pace (18/s, under
  the limit), every record one JSON line to a file. The 0.8 target is measured against it.
- ``tap-loyaltylion`` (ours): the emulator's URL and key, page_size 500, both streams.
- ``singer-sdk RESTStream tap``: ``peers/sdk_loyaltylion_tap.py``, SDK defaults: no client
  rate limit, so it meets the API's 429s and the SDK's backoff retries them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench import peerenv
from bench.core import (
    BENCH_DIR,
    OURS,
    PEER,
    SOURCE,
    Context,
    Row,
    check_our_executable,
    count_records,
    measure,
    our_script,
)
from bench.emulator import serving

PEERS_SCRIPTS = BENCH_DIR / "peers"
CUSTOMERS = 20_000  # ~100k records, ~210 requests: start-up (~0.6-2 s) is then a small share
QUICK_CUSTOMERS = 1_000
STAGE = "lion"  # the rows' stage column (six wide); `--only loyaltylion` runs it


def main(argv: list[str] | None = None) -> int:
    """Serve the emulator until stdin closes; the first line is its environment and size."""
    p = argparse.ArgumentParser(prog="python -m bench.loyaltylion")
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    from sandbox.launcher import start_sandbox
    from sandbox.loyaltylion import LoyaltyLionSettings

    settings = LoyaltyLionSettings(seed=args.seed, customers=args.customers, late_pct=0)
    with start_sandbox(settings, only=["loyaltylion"]) as sb:
        data = sb.loyaltylion.data
        records = data.count("customer") + len(data.visible_transactions())
        print(json.dumps({"env": sb.env(), "records": records}), flush=True)
        sys.stdin.read()
    return 0


def _write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def stage_loyaltylion(ctx: Context) -> None:
    """tap-loyaltylion vs a plain pager and a singer-sdk default tap on the emulator."""
    customers = QUICK_CUSTOMERS if ctx.quick else CUSTOMERS
    with serving("bench.loyaltylion", "--customers", str(customers), "--seed", str(ctx.seed)) as up:
        env, n = up["env"], up["records"]
        config = {"api_url": env["LOYALTYLION_API_URL"], "api_key": env["LOYALTYLION_API_KEY"]}
        row = Row(STAGE, "LoyaltyLion emulator alone (plain pager)", SOURCE, n=n, rows_expected=n)
        row.config = "requests + orjson, the tap's requests (limit 500) at 18 req/s, JSON lines"
        measure(
            ctx,
            row,
            lambda _s: [sys.executable, str(PEERS_SCRIPTS / "loyaltylion_pager.py")],
            stdin=None,
            stdout_name="out.jsonl",
            verify=lambda s, _run: sum(1 for _ in (s / "out.jsonl").open("rb")),
            env={**os.environ, **env},
        )

        def records(scratch: Path, _run: object) -> int:
            return count_records(scratch / "out.jsonl")

        row = Row(STAGE, "tap-loyaltylion", OURS, n=n, rows_expected=n)
        row.config = "emulator URL and key, page_size 500, requests_per_second 18 (default)"
        missing = check_our_executable("tap-loyaltylion", "tap_loyaltylion.tap")
        if missing:
            ctx.not_available(row, missing)
        else:
            exe = str(our_script("tap-loyaltylion"))
            ours = {**config, "page_size": 500}
            measure(
                ctx,
                row,
                lambda s: [exe, "--config", str(_write(s / "tap.json", ours))],
                stdin=None,
                stdout_name="out.jsonl",
                verify=records,
            )

        row = Row(STAGE, "singer-sdk RESTStream tap", PEER, n=n, rows_expected=n)
        row.config = "bench/peers/sdk_loyaltylion_tap.py, SDK defaults (no rate limit)"
        ok, why = ctx.peer_status.get(peerenv.SINGER_SDK.name, (False, "peers not installed"))
        if not ok and PEER in ctx.roles:
            ctx.not_available(row, why)
            return
        py = str(peerenv.SINGER_SDK.python)
        script = str(PEERS_SCRIPTS / "sdk_loyaltylion_tap.py")
        measure(
            ctx,
            row,
            lambda s: [py, script, "--config", str(_write(s / "sdk.json", config))],
            stdin=None,
            stdout_name="out.jsonl",
            verify=records,
        )


if __name__ == "__main__":
    sys.exit(main())
