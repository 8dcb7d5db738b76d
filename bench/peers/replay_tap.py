"""A stand-in tap for ``loyalty run``: copies a recorded Singer file to stdout.

Accepts the standard tap arguments (``--config``, ``--catalog``, ``--state``, ``--about``)
so the orchestrator drives it like any tap; only ``replay_file`` in the config is used.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def main() -> None:
    """Stream the file named by the config's ``replay_file``."""
    p = argparse.ArgumentParser()
    p.add_argument("--config", action="append", default=[])
    p.add_argument("--catalog")
    p.add_argument("--state")
    p.add_argument("--properties")
    p.add_argument("--about", action="store_true")  # `loyalty run` checks settings against it
    args, _ = p.parse_known_args()
    if args.about:
        settings = {"properties": {"replay_file": {"type": "string"}}}
        print(json.dumps({"name": "replay-tap", "settings": settings}))
        return
    config: dict = {}
    for path in args.config:
        config.update(json.loads(Path(path).read_text()))
    with Path(config["replay_file"]).open("rb") as src:
        shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
