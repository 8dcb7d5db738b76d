"""store_to_voyado: FlexPOS into the store, the store's Voyado models, and target-voyado.

The models are checked by running their SQL with DuckDB on a store the real flexpos_to_store
pipeline loaded, against what the FlexPOS emulator served; their rows then go to the real
target-voyado as Singer records. The last test runs the whole pipeline through
tap-loyalty-store (`loyalty run store_to_voyado`) once that tap is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
    sb, project, _emails, _cancelled = loaded
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

    shown = "\n".join(voyado_section(None, sb))  # the demo's lines about it
    assert f"{len(created):>5}  contacts created" in shown
    assert f"{len(known):>5}  contacts patched" in shown
    assert f"{len(returns):>5}  RETURN receipts" in shown

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
