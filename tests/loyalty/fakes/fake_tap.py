"""Fake Singer tap for the runner's tests: numbered records, a STATE every few, optional failure."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

SETTINGS = {
    "count": {"type": "integer"},
    "state_every": {"type": "integer"},
    "fail_at": {"type": "integer"},
    "sleep": {"type": "number"},
    "client_secret": {"type": "string"},
    "chatter": {"type": "integer"},
    "state_pad": {"type": "integer"},
    "api_url": {"type": "string"},
    # Set by `loyalty backfill` for each window (this fake tags its records with start_date).
    "start_date": {"type": "string"},
    "end_date": {"type": "string"},
}


def main() -> None:
    args = sys.argv[1:]
    if "--about" in args:  # what `loyalty validate` and `loyalty run` check the settings against
        print(json.dumps({"name": "fake-tap", "settings": {"properties": SETTINGS}}))
        return
    config_path = args[args.index("--config") + 1]
    cfg = json.loads(Path(config_path).read_text())
    mode = oct(Path(config_path).stat().st_mode & 0o777)
    print(f"fake-tap: config mode {mode}", file=sys.stderr, flush=True)
    if "--catalog" in args:  # which streams the runner's catalog selects, for its tests
        catalog = json.loads(Path(args[args.index("--catalog") + 1]).read_text())
        selected = {
            e["tap_stream_id"]: m["metadata"].get("selected")
            for e in catalog["streams"]
            for m in e["metadata"]
            if m["breadcrumb"] == []
        }
        print(f"fake-tap: catalog {json.dumps(selected)}", file=sys.stderr, flush=True)
    start = 0
    if "--state" in args:
        state = json.loads(Path(args[args.index("--state") + 1]).read_text())
        start = state["bookmarks"]["things"]["last"] + 1
        print(f"fake-tap: resuming at {start}", file=sys.stderr, flush=True)
    if "batch_config" in cfg:  # what singer-sdk does first in a BATCH run: a file of records
        root = Path(cfg["batch_config"]["storage"]["root"])
        root.mkdir(parents=True, exist_ok=True)
        (root / "things-0001.jsonl.gz").write_bytes(b"personal data")
        print(f"fake-tap: batch file in {root}", file=sys.stderr, flush=True)
    for n in range(cfg.get("chatter", 0)):  # a chatty tap: far more stderr than a pipe holds
        print(f"fake-tap: debug line {n} " + "x" * 100, file=sys.stderr)
    count, every = cfg.get("count", 10), cfg.get("state_every", 5)
    out = sys.stdout
    out.write(
        json.dumps({"type": "SCHEMA", "stream": "things", "schema": {}, "key_properties": ["id"]})
        + "\n"
    )
    emitted = 0
    for i in range(start, count):
        if cfg.get("fail_at") == i:
            out.flush()
            url = f" from {cfg['api_url']}" if "api_url" in cfg else ""
            print(
                f"RuntimeError: fetch failed{url} (client_secret={cfg['client_secret']})",
                file=sys.stderr,
            )
            sys.exit(1)
        record = {"id": i, **({"window": cfg["start_date"]} if "start_date" in cfg else {})}
        out.write(json.dumps({"type": "RECORD", "stream": "things", "record": record}) + "\n")
        emitted += 1
        if (i + 1) % every == 0 or i == count - 1:
            mark = {"last": i, **({"pad": "x" * cfg["state_pad"]} if "state_pad" in cfg else {})}
            out.write(
                json.dumps({"type": "STATE", "value": {"bookmarks": {"things": mark}}}) + "\n"
            )
            out.flush()
        if cfg.get("sleep"):
            time.sleep(cfg["sleep"])
    out.flush()
    point = {
        "type": "counter",
        "metric": "record_count",
        "value": emitted,
        "tags": {"stream": "things"},
    }
    print(f"2026-01-01 | INFO | singer_sdk.metrics | METRIC: {json.dumps(point)}", file=sys.stderr)


if __name__ == "__main__":
    main()
