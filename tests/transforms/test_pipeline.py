"""`tap-flexpos | mapper-loyalty --config flexpos_to_store.yaml` against the FlexPOS emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mapper_helpers import FLEXPOS_MAPPING

BIN = Path(sys.executable).parent
LOCAL = ZoneInfo("Europe/Copenhagen")  # the emulator's default timezone


def instant(local: str | None) -> datetime | None:
    """An emulator timestamp (local time, no offset) as a UTC instant, by zoneinfo's fold=0
    rule (a repeated autumn time is its first occurrence; see the tap's README). UTC, because
    Python never finds a repeated or skipped local time equal to a time in another zone."""
    if local is None:
        return None
    return datetime.fromisoformat(local).replace(tzinfo=LOCAL).astimezone(UTC)


def parsed(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def iso_day(ddmmyyyy: str | None) -> str | None:
    return None if ddmmyyyy is None else datetime.strptime(ddmmyyyy, "%d-%m-%Y").date().isoformat()


def test_tap_to_mapper_yields_the_store_streams_with_correct_values(sandbox, tmp_path):
    env = {**os.environ, **sandbox.env()}
    tap = subprocess.Popen(
        [str(BIN / "tap-flexpos"), "--config", "ENV"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    mapper = subprocess.run(
        [str(BIN / "mapper-loyalty"), "--config", str(FLEXPOS_MAPPING)],
        stdin=tap.stdout,
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert tap.stdout is not None
    tap.stdout.close()
    assert tap.wait(timeout=60) == 0
    assert mapper.returncode == 0, mapper.stderr.decode()[-2000:]
    out = [json.loads(line) for line in mapper.stdout.splitlines()]
    kinds = Counter((m["type"], m.get("stream")) for m in out)
    assert kinds[("RECORD", "_rejects")] == 0, [m for m in out if m.get("stream") == "_rejects"][:2]
    assert kinds[("RECORD", "contacts")] > 0 and kinds[("RECORD", "order_lines")] > 0
    assert kinds[("STATE", None)] > 0
    assert {s for (_, s) in kinds if s} == {"contacts", "order_lines"}

    data = sandbox.flexpos.data
    contacts = [m["record"] for m in out if m["type"] == "RECORD" and m["stream"] == "contacts"]
    lines = [m["record"] for m in out if m["type"] == "RECORD" and m["stream"] == "order_lines"]

    for c in contacts:
        src = data.get("customer", c["source_id"])
        assert src is not None
        cards = src["cards"] or []
        assert c["source"] == "flexpos"
        assert c["email"] == (src["Email"].strip().lower() if src["Email"] else None)
        assert c["birthday"] == iso_day(src["Birthday"])
        assert c["is_active"] is src["IsActive"]
        assert c["is_club_member"] is {1: True, 0: False}[src["IsClubMember"]]
        assert c["newsletter"] is {1: True, 0: False}[src["GetsNewsletter"]]
        assert c["card_number"] == (str(cards[0]["Cardnumber"]) if cards else None)
        assert c["card_name"] == (cards[0]["Cardname"] if cards else None)
        assert parsed(c["updated_at"]) == instant(src["ModifiedDate"])
        assert parsed(c["created_at"]) == instant(src["CreatedDate"])
    assert any(c["birthday"] for c in contacts) and any(c["card_number"] for c in contacts)

    by_type = Counter(line["line_type"] for line in lines)
    assert by_type["purchase"] and by_type["ticket"] and by_type["membership"]
    for line in lines:
        kind, uid = line["line_id"].split(":")[1:3]
        if kind == "journal":
            journal = data.get("journal", uid)
            number = int(line["line_id"].split(":")[3])
            src = next(x for x in journal["Lines"] if x["LineNumber"] == number)
            assert line["order_id"] == uid
            assert line["line_type"] == ("return" if journal["IsReturn"] else "purchase")
            assert line["quantity"] == src["Quantity"] and line["amount"] == src["TotalInclVat"]
            assert line["product_id"] == src["ProductUid"]
            assert line["store"] == journal["StoreName"] and line["channel"] == "pos"
            assert line["currency"] == journal["Currency"]
            assert parsed(line["occurred_at"]) == instant(journal["Date"])
        elif kind == "ticket":
            ticket = data.get("ticket", uid)
            assert line["order_id"] == ticket["OrderUid"] and line["quantity"] == 1
            assert line["amount"] == ticket["PriceInclVat"]
            assert line["channel"] == ticket["SalesChannel"].lower()
            assert (line["seat"], line["row"], line["zone"]) == (
                ticket["Seat"],
                ticket["Row"],
                ticket["Zone"],
            )
            assert parsed(line["cancelled_at"]) == instant(ticket["CancelledDate"])
            assert parsed(line["event_date"]) == instant(ticket["EventDate"])
        else:
            assert kind == "membership"
            membership = data.get("membership", uid)
            assert line["valid_from"] == iso_day(membership["ValidFrom"])
            assert line["valid_to"] == iso_day(membership["ValidTo"])
            assert date.fromisoformat(line["valid_to"]) > date.fromisoformat(line["valid_from"])
            assert line["product_name"] == membership["MembershipType"]
    # Journals become one line per journal line: as many lines as the source journals hold.
    journal_ids = {
        line["order_id"] for line in lines if line["line_id"].startswith("flexpos:journal:")
    }
    expected = sum(len(data.get("journal", uid)["Lines"]) for uid in journal_ids)
    assert sum(1 for line in lines if line["line_id"].startswith("flexpos:journal:")) == expected
