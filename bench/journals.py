"""A tap-flexpos-shaped ``journals`` Singer file with exactly N journal lines, made fast.

The memory stage runs ``loyalty run`` at up to 5M order lines. The emulator renders ~6-10k
journals/s (its generator, see the README), so 5M lines through it would take most of the
15-minute budget on its own; this generator writes the records tap-flexpos would emit (same
catalog schema, UTC ISO timestamps, 1-5 lines per journal) at ~20x that, cached under
``bench/.data``. The real tap is measured in the tap and e2e stages.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import orjson

from bench.core import ROOT
from bench.datagen import DATA_DIR

FORMAT_VERSION = 1
_STORES = [
    (str(uuid.UUID(int=0x5701 + i)), f"Butik {name}")
    for i, name in enumerate(
        ("Aarhus", "Odense", "Aalborg", "Esbjerg", "Vejle", "Roskilde", "Kolding", "Horsens")
    )
]
_PRODUCTS = [
    (str(uuid.UUID(int=0x9000 + i)), str(1000 + i), name, price)
    for i, (name, price) in enumerate(
        (
            ("Vand", 25.0),
            ("Kaffe", 35.0),
            ("Entre voksen", 189.0),
            ("Entre barn", 119.0),
            ("Aarskort", 795.0),
            ("Is", 32.0),
            ("T-shirt", 149.0),
            ("Parkering", 60.0),
        )
    )
]


def journals_schema() -> dict:
    """The journals stream's schema from the committed catalog (what the mapping checks)."""
    catalog = json.loads((ROOT / "catalogs" / "flexpos.json").read_text())
    for stream in catalog["streams"]:
        if stream["tap_stream_id"] == "journals":
            return stream["schema"]
    raise RuntimeError("catalogs/flexpos.json has no journals stream")


def generate_journals(lines: int, seed: int = 42, data_dir: Path = DATA_DIR) -> Path:
    """Write (or reuse) a journals Singer file holding exactly ``lines`` journal lines."""
    folder = data_dir / f"flexpos-journals-{lines}-s{seed}-v{FORMAT_VERSION}"
    path, done = folder / "stream.jsonl", folder / ".complete"
    if done.exists() and path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    randrange, rand = rnd.randrange, rnd.random
    dumps = orjson.dumps
    head = b'{"type":"RECORD","stream":"journals","record":'
    tail = b',"time_extracted":"2026-11-22T12:00:00+00:00"}\n'
    schema = {
        "type": "SCHEMA",
        "stream": "journals",
        "schema": journals_schema(),
        "key_properties": ["Uid"],
        "bookmark_properties": ["ModifiedDate"],
    }
    customers = [str(uuid.UUID(int=(seed << 64) + i)) for i in range(5_000)]
    written = j = 0
    last_ts = ""
    with path.open("wb", buffering=1 << 20) as out:
        out.write(dumps(schema) + b"\n")
        while written < lines:
            j += 1
            n_lines = min(1 + randrange(5), lines - written)
            is_return = rand() < 0.05
            currency = "DKK" if rand() < 0.86 else "EUR"
            secs = j * 20
            day, rest = divmod(secs, 86_400)
            ts = (
                f"2026-{1 + (day // 28) % 12:02d}-{1 + day % 28:02d}T"
                f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}+00:00"
            )
            rows, total, discount = [], 0.0, 0.0
            for ln in range(1, n_lines + 1):
                p_uid, p_no, p_name, price = _PRODUCTS[randrange(len(_PRODUCTS))]
                qty = -1 if is_return else 1 + (randrange(4) == 0)
                disc = round(price * qty * 0.1, 2) if not is_return and rand() < 0.15 else 0.0
                line_total = round(price * qty - disc, 2)
                total += line_total
                discount += disc
                rows.append(
                    {
                        "LineNumber": ln,
                        "ProductUid": p_uid,
                        "ProductNumber": p_no,
                        "ProductName": p_name,
                        "Quantity": qty,
                        "UnitPriceInclVat": price,
                        "DiscountInclVat": disc,
                        "TotalInclVat": line_total,
                        "VatRate": 25.0,
                    }
                )
            store_uid, store_name = _STORES[j % len(_STORES)]
            record = {
                "Uid": str(uuid.UUID(int=(seed << 96) + j)),
                "JournalNumber": 500_000 + j,
                "Date": ts,
                "ModifiedDate": ts,
                "StoreUid": store_uid,
                "StoreName": store_name,
                "CustomerUid": customers[randrange(len(customers))] if rand() < 0.7 else None,
                "Currency": currency,
                "TotalInclVat": round(total, 2),
                "DiscountInclVat": round(discount, 2),
                "IsReturn": is_return,
                "Lines": rows,
            }
            out.write(head + dumps(record) + tail)
            written += n_lines
            last_ts = ts
            if j % 10_000 == 0 or written >= lines:
                state = {
                    "bookmarks": {
                        "journals": {
                            "replication_key": "ModifiedDate",
                            "replication_key_value": last_ts,
                        }
                    }
                }
                out.write(dumps({"type": "STATE", "value": state}) + b"\n")
    done.write_text(f"{lines}\n")
    return path
