"""flexpos_to_store end to end: the store holds exactly what the emulator's data implies.

Expected values are computed here from the emulator's own records and the contracts in
docs/store-streams.md (one contact per email, one line per journal line / seat / membership),
never read back from the pipeline's output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

CPH = ZoneInfo("Europe/Copenhagen")


def _money(x: float) -> Decimal:
    return Decimal(str(x)).quantize(Decimal("0.01"))


def _local(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=CPH)


def orders_since(data, resource: str, since: dt.datetime | None = None) -> list[dict]:
    """The emulator's records of an order resource modified at or after ``since`` (default:
    the tap's default window, 365 days before the pinned now)."""
    since = since or data.now - dt.timedelta(days=365)
    return [r for r in data.iter_records(resource) if _local(r["ModifiedDate"]) >= since]


def expected(data, since: dt.datetime | None = None, *, all_customers: bool = True) -> dict:
    """What the store must contain for the emulator's current data: every customer (or, for
    an explicit start, those modified since it), and the order data modified since ``since``
    (default: the tap's default one-year window)."""
    customers = list(data.iter_records("customer"))
    if not all_customers:
        customers = [c for c in customers if _local(c["ModifiedDate"]) >= since]
    journals = orders_since(data, "journal", since)
    tickets = orders_since(data, "ticket", since)
    memberships = orders_since(data, "membership", since)
    with_email = [c for c in customers if c["Email"] and c["Email"].strip()]
    lines: dict[str, tuple] = {}
    for j in journals:
        kind = "return" if j["IsReturn"] else "purchase"
        for ln in j["Lines"]:
            lines[f"flexpos:journal:{j['Uid']}:{ln['LineNumber']}"] = (
                j["Uid"],
                j["CustomerUid"],
                kind,
                _money(ln["Quantity"]),
                _money(ln["TotalInclVat"]),
                False,
            )
    for t in tickets:
        lines[f"flexpos:ticket:{t['Uid']}"] = (
            t["OrderUid"],
            t["CustomerUid"],
            "ticket",
            _money(1),
            _money(t["PriceInclVat"]),
            t["Status"] == "Cancelled",
        )
    for m in memberships:
        lines[f"flexpos:membership:{m['Uid']}"] = (
            m["Uid"],
            m["CustomerUid"],
            "membership",
            _money(1),
            _money(m["PriceInclVat"]),
            False,
        )
    orders = {j["Uid"] for j in journals} | {t["OrderUid"] for t in tickets}
    orders |= {m["Uid"] for m in memberships}
    return {
        "customers": {c["Uid"]: c for c in customers},
        "emails": {c["Email"].strip().lower(): c for c in with_email},
        "contact_ids": {c["Uid"]: "email:" + c["Email"].strip().lower() for c in with_email},
        "lines": lines,
        "orders": orders,
    }


def actual_lines(project) -> dict[str, tuple]:
    rows = project.query(
        "SELECT line_id, order_id, source_customer_id, line_type, quantity::DECIMAL(18,2), "
        "amount::DECIMAL(18,2), cancelled_at IS NOT NULL FROM order_lines"
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def check_store(project, exp: dict) -> None:
    emails = dict(project.query("SELECT email, contact_id FROM contacts"))
    assert set(emails) == set(exp["emails"])
    assert all(cid == f"email:{e}" for e, cid in emails.items())
    ids = dict(
        project.query("SELECT source_id, contact_id FROM contact_ids WHERE source = 'flexpos'")
    )
    assert ids == exp["contact_ids"]
    assert actual_lines(project) == exp["lines"]
    orders = project.query("SELECT order_id FROM orders WHERE source = 'flexpos'")
    assert len(orders) == len(exp["orders"]) and {o for (o,) in orders} == exp["orders"]
    # No key twice, whatever happened before.
    assert project.query("SELECT count(*) = count(DISTINCT contact_id) FROM contacts") == [(True,)]
    assert project.query("SELECT count(*) = count(DISTINCT line_id) FROM order_lines") == [(True,)]


def check_contact(project, exp: dict, uid: str) -> None:
    """One contact's fields and its orders, against the emulator's records."""
    c = exp["customers"][uid]
    email = c["Email"].strip().lower()
    row = project.query(
        "SELECT first_name, last_name, city, is_club_member, newsletter FROM contacts "
        f"WHERE email = '{email}'"
    )
    assert row == [
        (c["FirstName"], c["LastName"], c["City"], c["IsClubMember"] == 1, c["GetsNewsletter"] == 1)
    ]
    mine = {k: v for k, v in exp["lines"].items() if v[1] == uid}
    got = project.query(
        "SELECT line_id, amount::DECIMAL(18,2) FROM order_lines_by_contact "
        f"WHERE contact_id = 'email:{email}'"
    )
    assert dict(got) == {k: v[4] for k, v in mine.items()}


def test_full_run_rerun_and_incremental_run(fresh_sandbox, store_project, pinned_now):
    # On each pinned date (an ordinary day, both DST changes, a leap day).
    sb = fresh_sandbox(now=pinned_now)
    project = store_project(sb.env())
    data = sb.flexpos.data

    first = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert first.returncode == 0, first.stderr
    exp = expected(data)
    assert len(exp["lines"]) > 500 and len(exp["emails"]) > 100  # a meaningful sample
    check_store(project, exp)
    buyer = next(u for u in exp["contact_ids"] if any(v[1] == u for v in exp["lines"].values()))
    check_contact(project, exp, buyer)
    no_email = len(exp["customers"]) - len(exp["emails"])
    assert no_email > 0
    assert project.query("SELECT count(*) FROM _rejects") == [(no_email,)]
    status = json.loads(project.run("status", "--json").stdout)[0]
    assert status["outcome"] == "success"
    assert status["records"]["order_lines"] == len(exp["lines"])
    assert status["records"]["contacts"] == len(exp["emails"])
    assert status["rejects"] == no_email

    # No secret in the state, the run records, the logs or the output.
    secrets = [v for k, v in sb.env().items() if k.endswith("SECRET")]
    assert len(secrets) == 2
    for path in project.state_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(sec in text for sec in secrets), path
    assert not any(sec in first.stdout + first.stderr for sec in secrets)

    # The demo's summary reads the same store.
    from loyalty.demo import summary

    text = summary(project.db)
    assert f"contacts     {len(exp['emails']):>7} rows" in text
    assert f"order_lines  {len(exp['lines']):>7} rows" in text
    assert f"orders       {len(exp['orders']):>7} rows" in text
    assert "A sample contact: " in text and "Where to look next" in text

    # Twice: nothing added, nothing changed.
    before = {
        t: project.rows(t, k) for t, k in (("contacts", "contact_id"), ("order_lines", "line_id"))
    }
    second = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert second.returncode == 0, second.stderr
    # The second run started from the saved bookmarks: it re-read at most the records at each
    # bookmark (the tap filters with $gte), not the whole history.
    saved = json.loads(project.run("state", "show", "flexpos_to_store").stdout)
    assert set(saved["bookmarks"]) == {"customers", "journals", "tickets", "memberships"}
    rerun = json.loads(project.run("status", "--json").stdout)[0]
    assert rerun["outcome"] == "success"
    assert sum(rerun["records"].values()) + rerun["rejects"] <= 20
    after = {
        t: project.rows(t, k) for t, k in (("contacts", "contact_id"), ("order_lines", "line_id"))
    }
    assert after == before
    check_store(project, exp)

    # The emulator changes: exactly those changes arrive.
    changed_uid = buyer
    data.update_customer(changed_uid, FirstName="Zelda", City="Aarhus")
    new_customers = data.add_customers(5)
    new_journals = data.add_journals(3)
    ticket = next(t for t in data.iter_records("ticket") if t["Status"] == "Active")
    data.cancel_ticket(ticket["Uid"])
    third = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert third.returncode == 0, third.stderr
    exp2 = expected(data)
    check_store(project, exp2)
    check_contact(project, exp2, changed_uid)
    new = project.rows("contacts", "contact_id")
    changed = {k for k in new if new[k] != before["contacts"].get(k)}
    assert changed == {
        exp2["contact_ids"][u] for u in [changed_uid, *new_customers] if u in exp2["contact_ids"]
    }
    new_lines = project.rows("order_lines", "line_id")
    changed = {k for k in new_lines if new_lines[k] != before["order_lines"].get(k)}
    journal_lines = {k for k in exp2["lines"] if k.split(":")[2] in set(new_journals)}
    assert journal_lines and changed == journal_lines | {f"flexpos:ticket:{ticket['Uid']}"}
    assert exp2["lines"][f"flexpos:ticket:{ticket['Uid']}"][5] is True


def _target_pid(project) -> int | None:
    for log in (project.state_dir / "runs").glob("*.log"):
        for line in log.read_text().splitlines():
            if "target started, pid" in line:
                return int(line.split()[-1])
    return None


@pytest.mark.slow
def test_target_killed_part_way_then_rerun_loses_and_doubles_nothing(fresh_sandbox, store_project):
    # Slow enough to be caught part-way: small pages under a rate limit. A commit per STATE
    # (max_batch_seconds 0) so the customers are committed before the kill.
    sb = fresh_sandbox(customers=600, journals=2000, tickets=800, rate_limit_per_second=20)
    project = store_project(sb.env(), tap={"page_size": 100}, max_batch_seconds=0)
    state = project.state_dir / "sandbox" / "flexpos_to_store" / "state.json"
    proc = project.popen("run", "flexpos_to_store", "--env", "sandbox")
    deadline = time.monotonic() + 90
    while not state.exists():  # the target has committed at least one batch with a STATE
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pid = _target_pid(project)
    assert pid
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "failed at step target: target-loyalty-store was killed by SIGKILL" in err
    exp = expected(sb.flexpos.data)
    partial = project.query("SELECT count(*) FROM order_lines")[0][0]
    assert partial < len(exp["lines"])  # killed part-way

    again = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert again.returncode == 0, again.stderr
    check_store(project, exp)


def test_batch_run_loads_what_a_record_run_loads_and_leaves_no_files(fresh_sandbox, store_project):
    sb = fresh_sandbox()
    # A space and parentheses in the path: batch file URLs must be quoted and unquoted right.
    project = store_project(sb.env(), folder="my project (batch)")
    data = sb.flexpos.data

    first = project.run("run", "flexpos_to_store", "--env", "sandbox", "--batch")
    assert first.returncode == 0, first.stderr
    exp = expected(data)
    check_store(project, exp)
    no_email = len(exp["customers"]) - len(exp["emails"])
    assert project.query("SELECT count(*) FROM _rejects") == [(no_email,)]
    status = json.loads(project.run("status", "--json").stdout)[0]
    assert status["records"]["order_lines"] == len(exp["lines"])
    assert status["rejects"] == no_email
    log = Path(status["log"]).read_text()
    assert "BATCH files in" in log
    assert not [p for p in project.root.parent.rglob("*.jsonl*") if p.is_file()]

    # `batch: true` in pipelines.yaml does the same; a re-run changes nothing and the
    # incremental run picks up exactly the emulator's changes.
    doc = yaml.safe_load((project.root / "pipelines.yaml").read_text())
    doc["pipelines"]["flexpos_to_store"]["batch"] = True
    (project.root / "pipelines.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    before = project.rows("order_lines", "line_id")
    again = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert again.returncode == 0, again.stderr
    assert project.rows("order_lines", "line_id") == before
    new_journals = data.add_journals(4)
    third = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert third.returncode == 0, third.stderr
    exp2 = expected(data)
    check_store(project, exp2)
    after = project.rows("order_lines", "line_id")
    added = set(after) - set(before)
    assert added and added == {k for k in exp2["lines"] if k.split(":")[2] in set(new_journals)}
    assert (
        "BATCH files in"
        in Path(json.loads(project.run("status", "--json").stdout)[0]["log"]).read_text()
    )


def test_backfill_in_windows_leaves_the_bookmark_alone_and_resumes_after_a_failure(
    fresh_sandbox, store_project
):

    from loyalty.backfill import parse_window, windows

    sb = fresh_sandbox()
    project = store_project(sb.env(), tap={"max_retries": 0, "backoff_seconds": 0})
    data = sb.flexpos.data
    start = (data.now - dt.timedelta(days=360)).date().isoformat()
    end = (data.now + dt.timedelta(days=1)).date().isoformat()
    args = ("backfill", "flexpos_to_store", "--env", "sandbox", "--start", start, "--end", end)
    since = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC)
    cut = windows(since, dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC), parse_window("90d"))
    assert len(cut) >= 4
    # The second window's first request fails (the tap is told not to retry).
    local = cut[1][0].astimezone(ZoneInfo("Europe/Copenhagen")).strftime("%Y-%m-%dT%H:%M:%S")
    sb.flexpos.inject_fault(f"[$gte]={local}", status=500, times=1)

    first = project.run(*args, "--window", "90d")
    assert first.returncode == 1, first.stderr
    assert f"backfill stopped at window 2/{len(cut)}" in first.stderr
    assert "run the same command again to resume" in first.stderr
    assert "window 1/" in first.stdout and ": done," in first.stdout

    again = project.run(*args, "--window", "90d")
    assert again.returncode == 0, again.stderr
    assert f"window 1/{len(cut)} " in again.stdout and "skipped" in again.stdout
    assert again.stdout.count(": done,") == len(cut) - 1
    # A backfill's explicit start bounds every stream: members modified in the range, and
    # the order data of the range.
    check_store(project, expected(data, since, all_customers=False))
    # The bookmark was never read or written: the next scheduled run starts from scratch.
    assert not (project.state_dir / "sandbox" / "flexpos_to_store" / "state.json").exists()
    runs = json.loads(project.run("status", "--json", "-n", "20").stdout)
    assert {tuple(r["window"]) for r in runs if r["outcome"] == "success"} == {
        (a.isoformat(), b.isoformat()) for a, b in cut
    }
    done = json.loads(
        (project.state_dir / "sandbox" / "flexpos_to_store" / "backfill.json").read_text()
    )
    assert len(done["windows_done"]) == len(cut)

    # Re-running the whole backfill with --redo changes nothing in the store.
    before = project.rows("order_lines", "line_id")
    redo = project.run(*args, "--window", "90d", "--redo", "--no-batch")
    assert redo.returncode == 0, redo.stderr
    assert redo.stdout.count(": done,") == len(cut)
    assert project.rows("order_lines", "line_id") == before
