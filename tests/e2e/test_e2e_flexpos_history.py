"""All members by default, one year of order data, and a backfill that cannot reach further.

The real tap -> mapper -> store against the emulator; expectations come from the emulator's
own records, never from the pipeline's output.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

CPH = ZoneInfo("Europe/Copenhagen")


def _instant(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=CPH)


def test_every_order_line_of_a_customer_with_an_email_has_its_contact(fresh_sandbox, store_project):
    sb = fresh_sandbox()
    data = sb.flexpos.data
    project = store_project(sb.env())
    run = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert run.returncode == 0, run.stderr

    year_ago = data.now - dt.timedelta(days=365)
    emails = {
        c["Uid"]: c["Email"].strip().lower()
        for c in data.iter_records("customer")
        if c["Email"] and c["Email"].strip()
    }
    old = {
        c["Uid"] for c in data.iter_records("customer") if _instant(c["ModifiedDate"]) < year_ago
    }
    rows = project.query(
        "SELECT line_id, source_customer_id, contact_id FROM order_lines_by_contact "
        "WHERE source_customer_id IS NOT NULL"
    )
    with_email = [r for r in rows if r[1] in emails]
    assert with_email and len(with_email) == sum(1 for r in rows if r[1] in emails)
    unresolved = [r for r in with_email if r[2] != f"email:{emails[r[1]]}"]
    assert unresolved == [], f"{len(unresolved)} lines without their contact, e.g. {unresolved[:3]}"
    # The case the one-year customer window lost: members unchanged for over a year who bought
    # within it.
    assert sum(1 for r in with_email if r[1] in old) >= 10
    # Customers without an e-mail have no contact; nothing else is unresolved.
    assert all(r[2] is None for r in rows if r[1] not in emails)


def select_only(project, stream: str, folder: Path) -> None:
    """Point the project's pipeline at a copy of the catalog that selects only ``stream``."""
    doc = yaml.safe_load((project.root / "pipelines.yaml").read_text())
    tap = doc["pipelines"]["flexpos_to_store"]["tap"]
    catalog = json.loads(Path(tap["catalog"]).read_text())
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == stream
    path = folder / f"{stream}-only.json"
    path.write_text(json.dumps(catalog))
    tap["catalog"] = str(path)
    (project.root / "pipelines.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_backfill_before_the_one_year_limit_is_refused_unless_only_members_are_selected(
    fresh_sandbox, store_project, tmp_path
):
    sb = fresh_sandbox(customers=30, journals=20, tickets=10, memberships=5)
    project = store_project(sb.env())
    now = sb.flexpos.data.now
    start = (now - dt.timedelta(days=400)).date().isoformat()
    end = (now + dt.timedelta(days=1)).date().isoformat()
    args = ("backfill", "flexpos_to_store", "--env", "sandbox", "--start", start, "--end", end)
    refused = project.run(*args, "--window", "30d")
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr
    earliest = (now - dt.timedelta(days=365)).isoformat()
    assert f"--start {start}T00:00:00+00:00 is too early" in lines[0]
    assert "journals, memberships, tickets only 365 days back" in lines[0]
    assert earliest in lines[0]
    # Nothing started: no request reached the emulator, no run was recorded.
    assert sb.flexpos.requests == []
    assert json.loads(project.run("status", "--json").stdout or "[]") == []

    # The streams a run extracts decide, whether chosen with --streams or in the catalog.
    with_journals = project.run(*args, "--streams", "customers,journals")
    assert with_journals.returncode == 2
    assert "serves journals only 365 days back" in with_journals.stderr
    members_only = project.run(*args, "--streams", "customers")
    assert members_only.returncode == 0, members_only.stderr

    # Members have no such limit: the same range with only customers selected loads those
    # modified in it.
    select_only(project, "customers", tmp_path)
    run = project.run(*args, "--redo")
    assert run.returncode == 0, run.stderr
    since = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC)
    want = {
        c["Email"].strip().lower()
        for c in sb.flexpos.data.iter_records("customer")
        if c["Email"] and c["Email"].strip() and _instant(c["ModifiedDate"]) >= since
    }
    got = {e for (e,) in project.query("SELECT email FROM contacts")}
    assert got == want and want
