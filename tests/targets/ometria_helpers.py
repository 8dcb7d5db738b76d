"""Shared by the Ometria tests: a small store with contacts, LoyaltyLion accounts and orders,
the real tap-loyalty-store and target-ometria processes, and the expected Ometria properties
computed here in Python (independently of the model's SQL and of the target's code).

Until issue 13 merges, the store has no `loyalty_accounts` view: `make_store` creates a
stand-in TABLE with exactly the contract's columns (../BRIEF.md, "LoyaltyLion in the store").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa

from sandbox.ometria import API_KEY, OmetriaEmulator
from target_loyalty_store.store import connect
from target_ometria.sinks import DEFAULT_PROPERTY_KEYS

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODELS = REPO / "transforms" / "models"
SALT = "test-salt"
LOYALTY_ACCOUNTS = """
DROP VIEW IF EXISTS loyalty_accounts;
CREATE TABLE loyalty_accounts (
    contact_id VARCHAR, source VARCHAR, source_id VARCHAR, programme VARCHAR,
    points_total BIGINT, points_approved BIGINT, points_pending BIGINT, points_spent BIGINT,
    points_expired BIGINT, points_lifetime BIGINT, rewards_claimed BIGINT, rewards_used BIGINT,
    blocked BOOLEAN, enrolled BOOLEAN, enrolled_at TIMESTAMPTZ, referral_url VARCHAR,
    receipt_upload_url VARCHAR, birthday DATE, insights_segment VARCHAR, tier_name VARCHAR,
    tier_started_at TIMESTAMPTZ, tier_expires_at TIMESTAMPTZ, tier_progress BIGINT,
    tier_progress_projected BIGINT, tier_progress_to_renew BIGINT,
    tier_progress_to_upgrade BIGINT, next_tier_name VARCHAR, forecast_tier_name VARCHAR,
    updated_at TIMESTAMPTZ
)
"""
BASE = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
TIERS = ("Bronze", "Silver", "Gold")
SEGMENTS = ("Loyal", "At Risk", "Win Back", "")  # "" : no value, must be left out


def contact_id(n: int) -> str:
    return f"email:member{n}@example.com"


def account(n: int) -> dict:
    """Member n's LoyaltyLion account (None for every fourth contact: not a member)."""
    if n % 4 == 3:
        return {}
    tier = TIERS[n % 3]
    return {
        "contact_id": contact_id(n),
        "source": "loyaltylion",
        "source_id": str(9000 + n),
        "programme": "1",
        "points_total": 100 + n * 7,
        "points_approved": 80 + n * 7,
        "points_pending": 20,
        "points_spent": n * 3,
        "points_expired": n % 5,
        "points_lifetime": 500 + n * 11,
        "rewards_claimed": n % 6,
        "rewards_used": n % 4,
        "blocked": n % 10 == 0,
        "enrolled": True,
        "enrolled_at": BASE - dt.timedelta(days=300 - n % 200),
        "referral_url": f"https://ll.example/r/{n}" if n % 2 else None,
        "receipt_upload_url": f"https://ll.example/u/{n}" if n % 3 else None,
        "birthday": dt.date(1980 + n % 30, 1 + n % 12, 1 + n % 28) if n % 5 else None,
        "insights_segment": SEGMENTS[n % 4],
        "tier_name": tier,
        "tier_started_at": BASE - dt.timedelta(days=30),
        "tier_expires_at": BASE + dt.timedelta(days=335) if tier != "Bronze" else None,
        "tier_progress": n * 5,
        "tier_progress_projected": n * 6,
        "tier_progress_to_renew": max(0, 400 - n * 5),
        "tier_progress_to_upgrade": 0 if tier == "Gold" else 1000 - n,
        "next_tier_name": None if tier == "Gold" else TIERS[TIERS.index(tier) + 1],
        "forecast_tier_name": tier,
        "updated_at": BASE + dt.timedelta(hours=n),
    }


def make_store(path: Path, contacts: int, *, orders: int = 0) -> None:
    """A store with `contacts` people (consent varied), their accounts and `orders` orders."""
    people, ids, accounts = [], [], []
    for n in range(contacts):
        unsubscribed = BASE - dt.timedelta(days=3) if n % 5 == 0 else None
        people.append(
            {
                "contact_id": contact_id(n),
                "match_field": "email",
                "email": f"member{n}@example.com",
                "first_name": f"First{n}",
                "last_name": f"Last{n}" if n % 2 else None,
                "newsletter": False if unsubscribed else (True, False, None)[n % 3],
                "unsubscribed_at": unsubscribed,
                "first_seen_at": BASE - dt.timedelta(days=400),
                "updated_at": BASE - dt.timedelta(days=1),
                "birthday": dt.date(1990, 1, 1 + n % 28) if n % 2 else None,
                "mobile": f"+45{20000000 + n}" if n % 3 == 0 else None,
            }
        )
        ids.append({"source": "flexpos", "source_id": f"cust-{n}", "contact_id": contact_id(n)})
        if row := account(n):
            accounts.append(row)
    con = connect(str(path))
    try:
        con.execute(LOYALTY_ACCOUNTS)
        for table, rows in (
            ("contacts", people),
            ("contact_ids", ids),
            ("loyalty_accounts", accounts),
        ):
            if rows:
                arrow = pa.Table.from_pylist(rows)  # noqa: F841 (read by DuckDB by name)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM arrow")
        for o in range(orders):
            add_order(con, o)
    finally:
        con.close()


def add_order(con, o: int) -> None:
    """Order o of customer o % 7: two lines; every 5th order's second line cancelled, and
    every line of order 11."""
    when = BASE + dt.timedelta(hours=o)
    for line in (1, 2):
        gone = (o % 5 == 0 and line == 2) or o == 11
        cancelled = when + dt.timedelta(hours=1) if gone else None
        con.execute(
            "INSERT INTO order_lines (line_id, order_id, source, source_customer_id, line_type, "
            "product_id, sku, quantity, unit_price, amount, discount, currency, channel, "
            "occurred_at, cancelled_at, updated_at) VALUES (?, ?, 'flexpos', ?, 'purchase', ?, "
            "?, ?, ?, ?, 0, 'DKK', 'pos', ?, ?, ?)",
            [
                f"flexpos:{o}:{line}",
                f"order-{o}",
                f"cust-{o % 7}",
                f"product-{line}",
                f"SKU-{line}",
                line,
                50.0,
                50.0 * line,
                when,
                cancelled,
                cancelled or when,
            ],
        )


# The guide's sync list (../shared/seeds/003_*) as the contract's column names: 21 fields.
SYNC_LIST = [
    "points_total",
    "points_approved",
    "points_pending",
    "points_spent",
    "points_lifetime",
    "rewards_claimed",
    "rewards_used",
    "blocked",
    "enrolled_at",
    "referral_url",
    "tier_name",
    "birthday",
    "insights_segment",
    "tier_expires_at",
    "tier_progress",
    "tier_progress_projected",
    "tier_progress_to_renew",
    "tier_progress_to_upgrade",
    "next_tier_name",
    "forecast_tier_name",
    "receipt_upload_url",
]


def expected_properties(n: int) -> dict:
    """Member n's Ometria properties: every sync-list field with a value, as JSON text/numbers."""
    out = {}
    for column in SYNC_LIST:
        key = DEFAULT_PROPERTY_KEYS[column]  # the ids are configuration; the values are not
        value = account(n).get(column)
        if value is None or value == "":
            continue
        out[key] = value.isoformat() if isinstance(value, dt.date) else value
    return out


def expected_optin(n: int) -> str:
    if n % 5 == 0 or n % 3 == 1:
        return "EXPLICITLY_OPTEDOUT"
    return "EXPLICITLY_OPTEDIN" if n % 3 == 0 else "NOT_SPECIFIED"


def tap_config(tmp: Path, db: Path) -> Path:
    path = tmp / "tap.json"
    path.write_text(json.dumps({"database": str(db), "models_dir": str(MODELS)}))
    return path


def target_config(tmp: Path, emulator: OmetriaEmulator, **extra: object) -> Path:
    path = tmp / "target.json"
    settings = {
        "api_url": emulator.base_url + "/v2",
        "api_key": API_KEY,
        "id_salt": SALT,
        "ledger_path": str(tmp / "ledger.sqlite"),
        "backoff_seconds": 0.05,
        **extra,
    }
    path.write_text(json.dumps(settings))
    return path


def catalog(tmp: Path, tap_cfg: Path, stream: str) -> Path:
    """The tap's discovered catalog with only `stream` selected."""
    found = subprocess.run(
        [str(BIN / "tap-loyalty-store"), "--config", str(tap_cfg), "--discover"],
        capture_output=True,
        check=True,
    )
    doc = json.loads(found.stdout)
    for entry in doc["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == stream
    path = tmp / f"catalog-{stream}.json"
    path.write_text(json.dumps(doc))
    return path


def tap_output(tap_cfg: Path, catalog_path: Path, state: dict | None = None) -> bytes:
    args = [
        str(BIN / "tap-loyalty-store"),
        "--config",
        str(tap_cfg),
        "--catalog",
        str(catalog_path),
    ]
    if state is not None:
        state_path = catalog_path.with_suffix(".state.json")
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    return subprocess.run(args, capture_output=True, check=True, timeout=60).stdout


def run_target(cfg: Path, data: bytes, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(BIN / "target-ometria"), "--config", str(cfg)],
        input=data,
        capture_output=True,
        timeout=timeout,
        env={**os.environ},
    )


def last_state(out: bytes) -> dict | None:
    lines = [line for line in out.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def pseudonym(n: int) -> str:
    """What the contact's Ometria id must be (HMAC-SHA256 of the contact id, keyed by the salt)."""
    import hmac

    digest = hmac.new(SALT.encode(), contact_id(n).encode(), hashlib.sha256).hexdigest()
    return f"lp-{digest[:32]}"


def ledger_key(stream: str, *key_values: object) -> str:
    """The push ledger's key for a record (docs/kit/push.md: sha256 of stream and key values)."""
    ident = orjson.dumps(list(key_values), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(stream.encode() + b"\x1f" + ident).hexdigest()
