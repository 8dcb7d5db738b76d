"""store_to_voyado: FlexPOS into the store, the store's Voyado models, and target-voyado.

The models are checked by running their SQL with DuckDB on a store the real flexpos_to_store
pipeline loaded, against what the FlexPOS emulator served; their rows then go to the real
target-voyado as Singer records. The last test runs the whole pipeline through
tap-loyalty-store (`loyalty run store_to_voyado`) once that tap is installed.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
import yaml

from loyalty.demo import voyado_section
from sandbox.flexpos import FlexposSettings

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "transforms" / "models"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CPH = ZoneInfo("Europe/Copenhagen")
SMALL = FlexposSettings(customers=40, journals=80, tickets=60, memberships=5)


def in_window(data, resource: str) -> list[dict]:
    """The emulator's records the tap's default window loads (a year back from now)."""
    since = NOW - timedelta(days=365)
    return [
        r
        for r in data.iter_records(resource)
        if datetime.fromisoformat(r["ModifiedDate"]).replace(tzinfo=CPH) >= since
    ]


def model(db: Path, name: str) -> list[dict]:
    """The model's rows as the JSON a tap would send (timestamps as text)."""
    sql = (MODELS / f"{name}.sql").read_text()
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(f"SELECT to_json(m)::VARCHAR FROM ({sql}) AS m").fetchall()
    finally:
        con.close()
    return [json.loads(r) for (r,) in rows]


def header(name: str) -> dict[str, str]:
    """The model file's `-- key:` style header lines."""
    out = {}
    for line in (MODELS / f"{name}.sql").read_text().splitlines():
        if not line.startswith("-- ") or ":" not in line:
            break
        k, v = line[3:].split(":", 1)
        out[k.strip()] = v.strip()
    return out


def singer(streams: dict[str, tuple[str, list[dict]]]) -> str:
    out = []
    for stream, (key, rows) in streams.items():
        out.append({"type": "SCHEMA", "stream": stream, "key_properties": [key], "schema": {}})
        out += [{"type": "RECORD", "stream": stream, "record": r} for r in rows]
    out.append({"type": "STATE", "value": {"done": True}})
    return "".join(json.dumps(m) + "\n" for m in out)


def target_config(tmp_path: Path, env: dict[str, str]) -> Path:
    """The pipeline's own target-voyado settings, pointed at this sandbox's emulator."""
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    config = dict(doc["pipelines"]["store_to_voyado"]["target"]["config"])
    config.update(
        api_url=env["VOYADO_API_URL"],
        api_key=env["VOYADO_API_KEY"],
        welcome_promotion_id=env["VOYADO_WELCOME_PROMOTION_ID"],
        ledger_path=str(tmp_path / "voyado-ledger.sqlite"),
    )
    path = tmp_path / "voyado.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def loaded(fresh_full_sandbox, store_project):
    """FlexPOS (one cancelled ticket of a known person) in a store, and the Voyado emulator."""
    sb = fresh_full_sandbox(SMALL, now=NOW)
    data = sb.flexpos.data
    emails = {c["Uid"]: c["Email"] for c in data.iter_records("customer") if c["Email"]}
    ticket = next(t for t in data.iter_records("ticket") if t["CustomerUid"] in emails)
    data.cancel_ticket(ticket["Uid"])
    project = store_project(sb.env())
    run = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert run.returncode == 0, run.stderr
    return sb, project, emails, ticket


def test_the_models_hold_one_contact_per_person_and_every_receipt_of_theirs(loaded):
    sb, project, emails, cancelled = loaded
    data = sb.flexpos.data

    contacts = model(project.db, "voyado_contacts")
    receipts = {r["receipt_id"]: r for r in model(project.db, "voyado_receipts")}

    assert header("voyado_contacts")["key"] == "contact_id"
    assert header("voyado_receipts")["change_column"] == "updated_at"
    assert sorted(c["email"] for c in contacts) == sorted({e.lower() for e in emails.values()})
    journals = [j for j in in_window(data, "journal") if j["CustomerUid"] in emails]
    for j in journals:
        receipt = receipts[f"flexpos:journal:{j['Uid']}"]
        assert receipt["kind"] == ("RETURN" if j["IsReturn"] else "PURCHASE")
        assert receipt["email"] == emails[j["CustomerUid"]].lower()
        assert receipt["currency"] == j["Currency"]
        assert round(sum(i["amount"] for i in receipt["items"]), 2) == j["TotalInclVat"]
        assert receipt["receipt_number"] == str(j["JournalNumber"])
    tickets = [t for t in in_window(data, "ticket") if t["CustomerUid"] in emails]
    orders = {t["OrderUid"] for t in tickets}
    assert {f"flexpos:ticket-order:{o}" for o in orders} <= set(receipts)
    back = receipts[f"flexpos:ticket:{cancelled['Uid']}:cancelled"]
    assert back["kind"] == "RETURN"
    assert [i["amount"] for i in back["items"]] == [cancelled["PriceInclVat"]]
    cancelled_lines = sum(t["Status"] == "Cancelled" for t in tickets)
    assert len(receipts) == len(journals) + len(orders) + cancelled_lines


def test_target_voyado_takes_the_models_rows_and_voyado_holds_each_once(loaded, tmp_path):
    sb, project, emails, _cancelled = loaded
    welcome = sb.env()["VOYADO_WELCOME_PROMOTION_ID"]
    contacts = model(project.db, "voyado_contacts")
    receipts = model(project.db, "voyado_receipts")
    cfg = target_config(tmp_path, sb.env())
    data = singer(
        {
            "voyado_contacts": ("contact_id", contacts),
            "voyado_receipts": ("receipt_id", receipts),
        }
    )

    def run() -> subprocess.CompletedProcess[str]:
        exe = str(Path(sys.executable).parent / "target-voyado")
        return subprocess.run(
            [exe, "--config", str(cfg)],
            input=data,
            capture_output=True,
            text=True,
            timeout=300,
            env={**sb.env(), "PATH": str(Path(sys.executable).parent)},
            check=False,
        )

    voyado = sb.voyado
    known = {c.attributes["email"]: cid for cid, c in voyado.contacts.items()}
    first = run()

    assert first.returncode == 0, first.stderr
    assert known and set(known) <= {c["email"] for c in contacts}  # FlexPOS customers too
    assert len(voyado.contacts) == len(contacts)  # the known ones were found, not duplicated
    assert sorted(p["contactId"] for p in voyado.ops("patch")) == sorted(known.values())
    created = {c["contactId"] for c in voyado.ops("create")}
    assert len(created) == len(contacts) - len(known)
    assert {a["contactId"] for a in voyado.ops("assign")} == created  # only new ones welcomed
    assert len(voyado.ops("assign")) == len(created)
    assert len(voyado.received) == len(receipts)  # none older than 24 months here
    assert not (tmp_path / "voyado-ledger.rejects.jsonl").exists()
    stores = {r["storeExternalId"] for r in voyado.received}
    assert stores <= {
        "store01-copenhagen",
        "store02-aarhus",
        "store03-cafe-havnen",
        "store04-museum",
        "online-dk",
        "store05-ticket-desk",
    }
    returns = [r for r in voyado.received if r["items"][0]["type"] == "RETURN"]
    assert returns and all(r["totalGrossPrice"] < 0 for r in returns)
    assert all(i["quantity"] < 0 for r in returns for i in r["items"])

    # The welcome offer: the contacts whose first purchase at the till used its code (as
    # FlexPOS recorded the sale and Voyado received the receipt) had their assignment
    # redeemed at the till, once each; nobody else.
    coded = {
        f"flexpos:journal:{j['Uid']}"
        for j in in_window(sb.flexpos.data, "journal")
        if j["PromotionCode"] == "WELCOME10" and j["CustomerUid"] in emails
    }
    used = {
        r["uniqueReceiptId"]
        for r in voyado.received
        if {"promotionId": welcome, "couponId": "WELCOME10"} in r.get("usedPromotions", [])
    }
    assert coded and used == coded
    first_buys: dict[str, dict] = {}
    for r in sorted(voyado.received, key=lambda r: datetime.fromisoformat(r["createdDate"])):
        if r["uniqueReceiptId"].startswith("flexpos:journal:") and r["totalGrossPrice"] > 0:
            first_buys.setdefault(r["contact"]["matchKey"].lower(), r)
    welcomed = sorted(e for e, r in first_buys.items() if r["uniqueReceiptId"] in used)
    redeems = voyado.ops("redeem")
    email_of = {cid: c.attributes["email"].lower() for cid, c in voyado.contacts.items()}
    assert sorted(email_of[r["contactId"]] for r in redeems) == welcomed
    assert {voyado.assignments[r["assignmentId"]].channel for r in redeems} == {"POS"}

    shown = "\n".join(voyado_section(None, sb))  # the demo's lines about it
    assert f"{len(created):>5}  contacts created" in shown
    assert f"{len(known):>5}  contacts patched" in shown
    assert f"{len(returns):>5}  RETURN receipts" in shown
    assert f"{len(created):>5}  welcome promotions assigned" in shown
    assert f"{len(welcomed)} redeemed" in shown

    voyado.clear_requests()
    again = run()
    assert again.returncode == 0, again.stderr
    assert voyado.requests == []  # nothing changed: nothing sent


def test_loyalty_run_store_to_voyado(loaded):
    pytest.importorskip("tap_loyalty_store")
    sb, project, _emails, _cancelled = loaded
    doc = yaml.safe_load((project.root / "pipelines.yaml").read_text())
    pipe = doc["pipelines"]["store_to_voyado"]
    pipe["tap"]["config"]["models_dir"] = str(MODELS)
    (project.root / "pipelines.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    run = project.run("run", "store_to_voyado", "--env", "sandbox")

    assert run.returncode == 0, run.stderr
    assert len(sb.voyado.contacts) == len(model(project.db, "voyado_contacts"))
    assert len(sb.voyado.received) == len(model(project.db, "voyado_receipts"))
    sb.voyado.clear_requests()
    assert project.run("run", "store_to_voyado", "--env", "sandbox").returncode == 0
    assert [r for r in sb.voyado.requests if r.method != "GET"] == []


def test_a_history_migration_killed_partway_resumes_with_loyalty_backfill(loaded):
    """`loyalty backfill store_to_voyado` in windows of the receipts' dates, as the target's
    README describes a migration: killed after some windows, the same command sends only the
    windows left, and Voyado holds each receipt of the history window once, none older."""
    sb, project, _emails, _cancelled = loaded
    doc = yaml.safe_load((project.root / "pipelines.yaml").read_text())
    doc["pipelines"]["store_to_voyado"]["target"]["config"]["history_months"] = 6
    (project.root / "pipelines.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    oldest = datetime(2025, 12, 1, tzinfo=UTC)  # NOW less 6 months
    created = {
        r["receipt_id"]: datetime.fromisoformat(r["created_at"])
        for r in model(project.db, "voyado_receipts")
    }
    start = NOW - timedelta(days=400)  # three windows; the 6-month cut falls in the second
    in_history = {rid for rid, at in created.items() if at >= oldest}
    older = [rid for rid, at in created.items() if start <= at < oldest]
    assert in_history and older
    args = ("backfill", "store_to_voyado", "--env", "sandbox", "--window", "134d")
    args += ("--start", start.isoformat(), "--end", (NOW + timedelta(days=1)).isoformat())
    progress = project.state_dir / "sandbox" / "store_to_voyado" / "backfill.json"
    voyado = sb.voyado

    def windows_done() -> list[str]:
        return json.loads(progress.read_text())["windows_done"] if progress.exists() else []

    first = project.popen(*args)
    deadline = time.monotonic() + 120
    while not windows_done() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()  # SIGKILL: no clean-up, the window under way is not recorded
    first.communicate(timeout=30)
    done = windows_done()
    assert first.returncode == -signal.SIGKILL and 1 <= len(done) < 3
    resume_from = datetime.fromisoformat(max(done).split("/")[1])
    sent_before = {r["uniqueReceiptId"] for r in voyado.received}
    creates, repeats = len(voyado.ops("create")), voyado.duplicate_receipts
    voyado.clear_requests()

    again = project.run(*args, timeout=300)

    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped (finished by an earlier backfill)") == len(done)
    assert again.stdout.count(": done,") == 3 - len(done)
    # Only the windows left: new receipts from them, and a repeat only of one the killed
    # window had sent before the ledger noted it (Voyado ignores it).
    left = {rid for rid in in_history if created[rid] >= resume_from}
    received = [r["uniqueReceiptId"] for r in voyado.received]
    new = set(received) - sent_before
    posted = [r for r in voyado.requests if r.path == "/api/v3/receipts" and r.status == 202]
    repeated = voyado.duplicate_receipts - repeats
    assert new <= left and len(posted) == len(new) + repeated
    assert repeated <= len(sent_before & left)
    assert sorted(received) == sorted(in_history)  # all of the history window, none older
    assert len(voyado.ops("create")) == creates  # contacts: sent in the first window only
    # Each window's run reports the receipts it left out as older than the history window.
    runs = json.loads(project.run("status", "--json", "-n", "20").stdout)
    skipped = 0
    for run in runs:
        if run["pipeline"] == "store_to_voyado" and run["outcome"] == "success":
            text = Path(run["log"]).read_text()
            skipped += sum(
                int(n) for n in re.findall(r"(\d+) skipped \(older than the 6-month", text)
            )
    assert skipped == len(older)
