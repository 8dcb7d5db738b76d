"""Small HTTP helpers for the emulator tests (real requests against 127.0.0.1), and the
foreground `loyalty sandbox` process as a user starts it."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests

from sandbox.flexpos import AUDIENCE
from sandbox.launcher import RunningSandbox

TIMEOUT = 10
MAX_PAGES = 10_000  # every paging loop is bounded
ROOT = Path(__file__).resolve().parents[2]


def start_foreground(
    argv: list[str], **env: str
) -> tuple[subprocess.Popen[str], dict[str, str], list[str]]:
    """Start `loyalty sandbox`-like `argv`; its output up to "Running" (at most 30 s) and the
    `export NAME=value` lines in it. `env` adds to the environment."""
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Running"):
            break
    exports = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            exports[name] = value
    return proc, exports, lines


def login(sb: RunningSandbox | dict[str, str], which: str = "pos") -> dict[str, Any]:
    """Log in with the sandbox credentials of the POS or the Attraction API (from a running
    sandbox, or the exports a `loyalty sandbox` process printed)."""
    env = sb if isinstance(sb, dict) else sb.env()
    prefix = "FLEXPOS_" if which == "pos" else "FLEXPOS_ATTRACTION_"
    scope = "customer:read journal:read" if which == "pos" else "ticket:read membership:read"
    r = requests.post(
        f"{env['FLEXPOS_AUTH_URL']}/api/v2/auth/login",
        params={"audience": AUDIENCE},
        auth=(env[f"{prefix}CLIENT_ID"], env[f"{prefix}CLIENT_SECRET"]),
        data={"scope": scope},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    return r.json()


def session(sb: RunningSandbox, which: str = "pos") -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {login(sb, which)['access_token']}"
    return s


def url(sb: RunningSandbox, resource: str) -> str:
    base = sb.flexpos.attraction_url if resource in ("ticket", "membership") else sb.flexpos.api_url
    return f"{base}/{resource}"


def fetch_all(
    sb: RunningSandbox,
    resource: str,
    params: dict[str, str] | None = None,
    limit: int = 500,
    s: requests.Session | None = None,
) -> list[dict[str, Any]]:
    """Page with offset/limit until a short page, as the contract says a client should."""
    s = s or session(sb, "attraction" if resource in ("ticket", "membership") else "pos")
    out: list[dict[str, Any]] = []
    for page in range(MAX_PAGES):
        r = s.get(
            url(sb, resource),
            params={**(params or {}), "offset": page * limit, "limit": limit},
            timeout=TIMEOUT,
        )
        assert r.status_code == 200, r.text
        items = r.json()["Items"]
        assert len(items) <= limit
        out.extend(items)
        if len(items) < limit:
            return out
    raise AssertionError("paging did not end")


def served(sb: RunningSandbox, resource: str) -> list[dict[str, Any]]:
    """The records a list request may return: every customer, but order data only from the
    emulator's history start (computed here with zoneinfo, not with the emulator's codec)."""
    records = list(sb.flexpos.data.iter_records(resource))
    start = sb.flexpos.history_start
    if resource == "customer" or start is None:
        return records
    zone = ZoneInfo("Europe/Copenhagen")

    def instant(value: str) -> datetime:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=zone)

    return [r for r in records if instant(r["ModifiedDate"]) >= start]
