"""`tap-flexpos | mapper-loyalty --config flexpos_to_store.yaml` against the FlexPOS emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
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


def run_tap_to_mapper(sandbox, tmp_path: Path) -> list[dict]:
    """`tap-flexpos --config ENV | mapper-loyalty`: the tap's default window (365 days back from
    "now", which is the sandbox's LOYALTY_NOW when its clock is pinned)."""
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
    return [json.loads(line) for line in mapper.stdout.splitlines()]


def test_tap_to_mapper_yields_the_store_streams_with_correct_values(dated_sandbox, tmp_path):
    # On each pinned date (both DST changes, a leap day): the tap's default window and every
    # converted value agree with the emulator's data.
    out = run_tap_to_mapper(dated_sandbox, tmp_path)
    check_store_streams(dated_sandbox, out, dated_sandbox.flexpos.data.now, timedelta(0))


def test_tap_to_mapper_on_the_real_date(real_date_sandbox, tmp_path):
    # The one test on today's calendar (LOYALTY_NOW unset): the tap reads the real clock.
    before = datetime.now(UTC)
    out = run_tap_to_mapper(real_date_sandbox, tmp_path)
    margin = datetime.now(UTC) - before + timedelta(seconds=1)
    check_store_streams(real_date_sandbox, out, before, margin)


def check_store_streams(sandbox, out: list[dict], now: datetime, margin: timedelta) -> None:
    """The mapper's output against the emulator's records; the tap read from ``now`` minus 365
    days (give or take ``margin``, how far the test's clock may be from the tap's)."""
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

    # Exactly the records modified in the default window came through.
    start = now - timedelta(days=365)
    windows = {"customer": {c["source_id"] for c in contacts}, "journal": journal_ids}
    windows["ticket"] = {x["line_id"].split(":")[2] for x in lines if ":ticket:" in x["line_id"]}
    windows["membership"] = {
        x["line_id"].split(":")[2] for x in lines if ":membership:" in x["line_id"]
    }
    # Members are read however old (all members by default), order data one year back.
    customers = windows.pop("customer")
    assert customers == {c["Uid"] for c in data.iter_records("customer")}
    for resource, got in windows.items():
        when = {r["Uid"]: instant(r["ModifiedDate"]) for r in data.iter_records(resource)}
        assert {u for u, at in when.items() if at >= start + margin} <= got, resource
        assert not {u for u, at in when.items() if at < start - margin} & got, resource
        assert len(got) < len(when), f"{resource}: the emulator holds older records too"
