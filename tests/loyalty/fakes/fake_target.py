"""Fake target: 'commits' records to a JSONL file on each STATE, then emits that STATE."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SETTINGS = {
    "out": {"type": "string"},
    "fail_after_commits": {"type": "integer"},
    "wrap_state": {"type": "boolean"},
    # Where a real target's store is. The fake only names it (it writes `out`), so the
    # orchestrator treats its pipeline as one on that database (state, locks, --parallel).
    "database": {"type": "string"},
}
# Environment, not settings (tests compare the settings list): with FAKE_TARGET_COMMIT_METRICS
# each commit is reported as METRIC record_count points tagged with a status (loaded/rejected),
# the way target-loyalty-store does, instead of singer-sdk's one count per stream at the end;
# FAKE_TARGET_REJECT_EVERY=n then rejects the ids divisible by n.
COMMIT_METRICS = bool(os.environ.get("FAKE_TARGET_COMMIT_METRICS"))
REJECT_EVERY = int(os.environ.get("FAKE_TARGET_REJECT_EVERY") or 0)


def _metric(stream: str, value: int, **tags: str) -> None:
    point = {"type": "counter", "metric": "record_count", "value": value}
    point["tags"] = {"stream": stream, **tags}
    print(f"METRIC: {json.dumps(point)}", file=sys.stderr)


def main() -> None:
    args = sys.argv[1:]
    if "--about" in args:  # what `loyalty validate` and `loyalty run` check the settings against
        about = {"name": "fake-target", "settings": {"properties": SETTINGS}}
        # A target that takes BATCH messages says so, as singer-sdk targets do.
        if not os.environ.get("FAKE_TARGET_NO_BATCH"):
            about["capabilities"] = ["about", "batch"]
        print(json.dumps(about))
        return
    cfg = json.loads(Path(args[args.index("--config") + 1]).read_text())
    out_path = cfg["out"]
    # What a store target would save each STATE under, in its data transaction (issue 17).
    key = os.environ.get("LOYALTY_STATE_KEY")
    print(f"fake-target: state key {key or 'not given'}", file=sys.stderr, flush=True)
    buffered: list[dict] = []
    commits = 0
    counts: dict[str, int] = {}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["type"] == "RECORD":
            buffered.append(msg["record"])
            counts[msg["stream"]] = counts.get(msg["stream"], 0) + 1
        elif msg["type"] == "STATE":
            if cfg.get("fail_after_commits") == commits:
                print("ValueError: disk full while writing batch", file=sys.stderr)
                sys.exit(1)
            rejected = [r for r in buffered if REJECT_EVERY and r["id"] % REJECT_EVERY == 0]
            with Path(out_path).open("a") as fh:
                for rec in buffered:
                    if rec not in rejected:
                        fh.write(json.dumps(rec) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            if COMMIT_METRICS:
                loaded = len(buffered) - len(rejected)
                _metric("things", loaded, status="loaded")
                _metric("things", len(rejected), status="rejected")
                # Text for people, in the store's words but not its numbers: never parsed.
                print(
                    f"committed things: {loaded * 100} loaded, 0 rejected in 0.01s", file=sys.stderr
                )
            buffered.clear()
            commits += 1
            # Singer targets print the bare state value; some print the whole message.
            sys.stdout.write(json.dumps(msg if cfg.get("wrap_state") else msg["value"]) + "\n")
            sys.stdout.flush()
    if not COMMIT_METRICS:  # singer-sdk's record_count: records received
        for stream, n in counts.items():
            _metric(stream, n)


if __name__ == "__main__":
    main()
