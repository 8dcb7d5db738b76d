"""A plain paging HTTP client over FlexPOS ``journal``: the speed a tap could reach.

Logs in, pages ``limit=500`` until a short page, parses with orjson. Reads FLEXPOS_* variables.

- default (the emulator alone): ``offset`` paging, no filters, no output; prints
  ``journals lines``.
- ``--keyset``: the requests tap-flexpos makes (``filters[ModifiedDate][$gte]`` moved to the
  last value seen, ``offset`` only past the items sharing it; the first lower bound is
  ``start_date`` 2000-01-01 in the API's local time, as the tap sends it), so both get the
  same pages from the emulator; and every item written as one JSON line to stdout, a page
  per write, like a tap's RECORD lines. Counts go to stderr.
"""

from __future__ import annotations

import os
import sys

import orjson
import requests

LIMIT = 500
KEY = "ModifiedDate"
FIRST_LOWER = "2000-01-01T01:00:00"  # start_date 2000-01-01 (UTC) in Europe/Copenhagen


def main(argv: list[str]) -> None:
    """Page through every journal once."""
    keyset = "--keyset" in argv
    api = os.environ["FLEXPOS_API_URL"]
    session = requests.Session()
    login = session.post(
        f"{os.environ['FLEXPOS_AUTH_URL']}/api/v2/auth/login",
        params={"audience": "https://api.flexpos.com"},
        auth=(os.environ["FLEXPOS_CLIENT_ID"], os.environ["FLEXPOS_CLIENT_SECRET"]),
        data={"scope": "journal:read"},
        timeout=60,
    )
    login.raise_for_status()
    session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    out = sys.stdout.buffer
    journals = lines = offset = 0
    lower = FIRST_LOWER
    while True:
        params: dict[str, str | int] = {"offset": offset, "limit": LIMIT}
        if keyset:
            params[f"filters[{KEY}][$gte]"] = lower
        resp = session.get(f"{api}/journal", params=params, timeout=60)
        resp.raise_for_status()
        items = orjson.loads(resp.content)["Items"]
        journals += len(items)
        lines += sum(len(item["Lines"]) for item in items)
        if not keyset:
            offset += len(items)
        elif items:
            out.write(b"".join(orjson.dumps(item) + b"\n" for item in items))
            last = items[-1][KEY]
            ties = sum(1 for item in items if item[KEY] == last)
            offset = offset + ties if last == lower else ties
            lower = last
        if len(items) < LIMIT:
            break
    print(journals, lines, file=sys.stderr if keyset else sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
