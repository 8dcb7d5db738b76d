"""Floor row for the mapper stage: parse and re-serialise every Singer line with orjson.

A mapper can not be faster than reading and writing each message once; this is that floor.
"""

from __future__ import annotations

import sys

import orjson


def main() -> None:
    """stdin -> stdout, one orjson parse and dump per line."""
    loads, dumps = orjson.loads, orjson.dumps
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        out.write(dumps(loads(line)) + b"\n")
    out.flush()


if __name__ == "__main__":
    main()
