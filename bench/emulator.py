"""The FlexPOS emulator in its own process, so its CPU never hides inside a measured tool.

``python -m bench.emulator --journals N --customers M`` starts the sandbox emulator, prints one
JSON line with its FLEXPOS_* environment, and serves until stdin closes (the harness holds the
pipe; if the harness dies the emulator goes with it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin reaches EOF."""
    p = argparse.ArgumentParser(prog="python -m bench.emulator")
    p.add_argument("--journals", type=int, required=True)
    p.add_argument("--customers", type=int, default=1_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tickets", type=int, default=0)
    p.add_argument("--memberships", type=int, default=0)
    args = p.parse_args(argv)
    from sandbox.flexpos import FlexposSettings
    from sandbox.launcher import start_sandbox

    settings = FlexposSettings(
        seed=args.seed,
        customers=args.customers,
        journals=args.journals,
        tickets=args.tickets,
        memberships=args.memberships,
        token_ttl_seconds=3_600,
        history_days=None,  # the bench reads every journal it generated (start_date 2000)
    )
    with start_sandbox(settings, only=["flexpos"]) as sb:
        print(json.dumps(sb.env()), flush=True)
        sys.stdin.read()
    return 0


@contextmanager
def running(
    journals: int,
    customers: int = 1_000,
    seed: int = 42,
    tickets: int = 0,
    memberships: int = 0,
) -> Iterator[dict[str, str]]:
    """Start the emulator process; yield its FLEXPOS_* environment; stop it afterwards."""
    args = {
        "--journals": journals,
        "--customers": customers,
        "--seed": seed,
        "--tickets": tickets,
        "--memberships": memberships,
    }
    argv = [str(x) for pair in args.items() for x in pair]
    with serving([sys.executable, "-m", "bench.emulator", *argv]) as env:
        yield env


@contextmanager
def serving(cmd: list[str]) -> Iterator[dict[str, str]]:
    """Run an emulator process that prints its environment as one JSON line and serves until
    its stdin closes; yield that environment; stop it afterwards."""
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first:
            err = proc.stderr.read() if proc.stderr else ""
            last = (err.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"emulator did not start: {last}")
        yield json.loads(first)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
