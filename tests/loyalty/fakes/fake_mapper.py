"""Fake mapper: copies Singer lines through; optionally dies on the Nth line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETTINGS = {"fail_at_line": {"type": "integer"}, "rejected": {"type": "integer"}}


def main() -> None:
    args = sys.argv[1:]
    if "--about" in args:  # what `loyalty validate` and `loyalty run` check the settings against
        print(json.dumps({"name": "fake-mapper", "settings": {"properties": SETTINGS}}))
        return
    cfg = json.loads(Path(args[args.index("--config") + 1]).read_text())
    for n, line in enumerate(sys.stdin):
        if cfg.get("fail_at_line") == n:
            print("MappingError: flexpos.yaml:3: cannot convert field X", file=sys.stderr)
            sys.exit(2)
        sys.stdout.write(line)
    sys.stdout.flush()
    if "rejected" in cfg:  # mapper-loyalty's closing summary, which the runner counts
        n_in, bad = 10, cfg["rejected"]
        print(
            f"mapper-loyalty: {n_in} records in, {n_in - bad} out; "
            f"things: {n_in} in, {n_in - bad} out, 0 filtered, 0 empty, {bad} rejected",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
