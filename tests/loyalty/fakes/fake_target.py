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
}


def main() -> None:
    args = sys.argv[1:]
    if "--about" in args:  # what `loyalty validate` and `loyalty run` check the settings against
        print(json.dumps({"name": "fake-target", "settings": {"properties": SETTINGS}}))
        return
    cfg = json.loads(Path(args[args.index("--config") + 1]).read_text())
    out_path = cfg["out"]
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
            with Path(out_path).open("a") as fh:
                for rec in buffered:
                    fh.write(json.dumps(rec) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            buffered.clear()
            commits += 1
            # Singer targets print the bare state value; some print the whole message.
            sys.stdout.write(json.dumps(msg if cfg.get("wrap_state") else msg["value"]) + "\n")
            sys.stdout.flush()
    for stream, n in counts.items():
        point = {
            "type": "counter",
            "metric": "record_count",
            "value": n,
            "tags": {"stream": stream},
        }
        print(f"METRIC: {json.dumps(point)}", file=sys.stderr)


if __name__ == "__main__":
    main()
