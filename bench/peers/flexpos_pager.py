"""The emulator alone: a plain paging HTTP client over FlexPOS ``journal``, nothing else.

Logs in, pages ``offset/limit=500`` until a short page, counts journals and lines; parsing with
orjson, no Singer output. If the tap is barely slower than this, the emulator is the bottleneck.
Reads FLEXPOS_* variables; prints ``journals lines``.
"""

from __future__ import annotations

import os
import sys

import orjson
import requests

LIMIT = 500


def main() -> None:
    """Page through every journal once."""
    api = os.environ["FLEXPOS_API_URL"]
    session = requests.Session()
    login = session.post(
        f"{os.environ['FLEXPOS_AUTH_URL']}/api/v2/auth/login",
        params={"audience": api},
        auth=(os.environ["FLEXPOS_CLIENT_ID"], os.environ["FLEXPOS_CLIENT_SECRET"]),
        data={"scope": "journal:read"},
        timeout=60,
    )
    login.raise_for_status()
    session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    journals = lines = offset = 0
    while True:
        resp = session.get(f"{api}/journal", params={"offset": offset, "limit": LIMIT}, timeout=60)
        resp.raise_for_status()
        items = orjson.loads(resp.content)["Items"]
        journals += len(items)
        lines += sum(len(item["Lines"]) for item in items)
        offset += len(items)
        if len(items) < LIMIT:
            break
    print(journals, lines)


if __name__ == "__main__":
    sys.exit(main())
