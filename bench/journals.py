"""A tap-flexpos-shaped ``journals`` Singer file with exactly N journal lines, made fast.

The memory stage runs ``loyalty run`` at up to 5M order lines. Through the emulator's HTTP
layer that would take most of the 15-minute budget on its own, so this writes what tap-flexpos
would emit from the emulator for the same seed: the FlexPOS vendor module's journals
(``sandbox.flexpos.data``, its bulk path without HTTP, rendering or locks), timestamps as UTC
ISO like the tap's, the catalog's schema; cached under ``bench/.data``. The last journal is
cut to its first lines so the file holds exactly N. The real tap is measured in the tap and
e2e stages.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import orjson

from bench.core import ROOT
from bench.datagen import DATA_DIR, TIME_EXTRACTED, iso
from sandbox.flexpos.data import FlexposData

FORMAT_VERSION = 2
CUSTOMERS = 5_000
# The emulator's clock for this data: fixed, so a size and seed always give the same bytes.
NOW = datetime.fromisoformat(TIME_EXTRACTED)
STATE_EVERY = 10_000  # journals


def journals_schema() -> dict:
    """The journals stream's schema from the committed catalog (what the mapping checks)."""
    catalog = json.loads((ROOT / "catalogs" / "flexpos.json").read_text())
    for stream in catalog["streams"]:
        if stream["tap_stream_id"] == "journals":
            return stream["schema"]
    raise RuntimeError("catalogs/flexpos.json has no journals stream")


def emulator_data(lines: int, seed: int) -> FlexposData:
    """The emulator's data these journals come from (at least one journal per line)."""
    return FlexposData(
        seed=seed, customers=CUSTOMERS, journals=lines, tickets=0, memberships=0, now=NOW
    )


def generate_journals(lines: int, seed: int = 42, data_dir: Path = DATA_DIR) -> Path:
    """Write (or reuse) a journals Singer file holding exactly ``lines`` journal lines."""
    folder = data_dir / f"flexpos-journals-{lines}-s{seed}-v{FORMAT_VERSION}"
    path, done = folder / "stream.jsonl", folder / ".complete"
    if done.exists() and path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    dumps = orjson.dumps
    head = b'{"type":"RECORD","stream":"journals","record":'
    tail = b',"time_extracted":"' + TIME_EXTRACTED.encode() + b'"}\n'
    schema = {
        "type": "SCHEMA",
        "stream": "journals",
        "schema": journals_schema(),
        "key_properties": ["Uid"],
        "bookmark_properties": ["ModifiedDate"],
    }
    written = j = 0
    with path.open("wb", buffering=1 << 20) as out:
        out.write(dumps(schema) + b"\n")
        for record in emulator_data(lines, seed).base_records("journal"):
            if written >= lines:
                break
            j += 1
            if written + len(record["Lines"]) > lines:
                _cut(record, lines - written)
            written += len(record["Lines"])
            record["Date"] = record["ModifiedDate"] = ts = iso(record["ModifiedDate"], "+00:00")
            out.write(head + dumps(record) + tail)
            if j % STATE_EVERY == 0 or written >= lines:
                bookmark = {"replication_key": "ModifiedDate", "replication_key_value": ts}
                state = {"bookmarks": {"journals": bookmark}}
                out.write(dumps({"type": "STATE", "value": state}) + b"\n")
    done.write_text(f"{lines}\n")
    return path


def _cut(journal: dict, keep: int) -> None:
    """Keep a journal's first `keep` lines, its totals summed over them."""
    journal["Lines"] = kept = journal["Lines"][:keep]
    journal["TotalInclVat"] = round(sum(x["TotalInclVat"] for x in kept), 2)
    journal["DiscountInclVat"] = round(sum(x["DiscountInclVat"] for x in kept), 2)
