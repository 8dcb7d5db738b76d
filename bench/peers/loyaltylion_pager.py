"""A plain paging HTTP client over the LoyaltyLion emulator: the speed a tap could reach.

Makes tap-loyaltylion's requests (customers oldest first by updated_at, then every transaction;
``limit=500``; after the first page only ``cursor`` and ``limit``, as the cursor carries the
filters) at the same pace the tap keeps under the API's 20 requests/s (``--rate``, default 18),
writes every record as one JSON line, a page per write. Reads LOYALTYLION_API_URL and
LOYALTYLION_API_KEY; prints the record count on stderr.
"""

from __future__ import annotations

import os
import sys
import time

import orjson
import requests

LIMIT = 500


def main(argv: list[str]) -> None:
    """Page through both listings once."""
    rate = float(argv[argv.index("--rate") + 1]) if "--rate" in argv else 18.0
    api = os.environ["LOYALTYLION_API_URL"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {os.environ['LOYALTYLION_API_KEY']}"
    out = sys.stdout.buffer
    total = 0
    next_at = time.monotonic()
    first = {"customers": {"sort_field": "updated_at", "sort_direction": "asc"}, "transactions": {}}
    for resource, params in first.items():
        cursor = None
        while True:
            wait = next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            next_at = max(next_at, time.monotonic()) + 1.0 / rate
            query = {"limit": LIMIT, **({"cursor": cursor} if cursor else params)}
            resp = session.get(f"{api}/{resource}", params=query, timeout=60)
            resp.raise_for_status()
            page = orjson.loads(resp.content)
            items = page[resource]
            out.write(b"".join(orjson.dumps(item) + b"\n" for item in items))
            total += len(items)
            cursor = page["cursor"]["next"]
            if not cursor:
                break
    print(total, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
