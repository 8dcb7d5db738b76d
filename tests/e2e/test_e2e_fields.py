"""Issue 11 fields end to end: what the emulator served is what the store keeps.

Expected values come from the emulator's own records (``data.iter_records``), never from the
pipeline's output. Small data sets: these tests are about fields, not volume.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import yaml
from conftest import REPO
from test_e2e_flexpos_to_store import orders_since

SMALL = {"customers": 60, "journals": 120, "tickets": 90, "memberships": 20}


def _emails(data) -> dict[str, dict]:
    """Customers with an e-mail (the store's contacts), by their normalised e-mail."""
    return {
        c["Email"].strip().lower(): c
        for c in data.iter_records("customer")
        if c["Email"] and c["Email"].strip()
    }


def _first_card(cards: object) -> dict | None:
    """The first card as the emulator sent it: from an array, or the object itself."""
    if isinstance(cards, list):
        return cards[0] if cards else None
    return cards if isinstance(cards, dict) else None


def _check_cards(project, data) -> int:
    """Every contact's card_number/card_name equals its customer's first card; returns how
    many contacts have a card (so a caller can see the check was not vacuous)."""
    stored = {
        e: (n, m) for e, n, m in project.query("SELECT email, card_number, card_name FROM contacts")
    }
    with_card = 0
    for email, customer in _emails(data).items():
        card = _first_card(customer["cards"])
        want = (str(card["Cardnumber"]), card["Cardname"]) if card else (None, None)
        with_card += card is not None
        assert stored[email] == want, email
    return with_card


def test_guide_fields_arrive_in_the_store_as_the_emulator_served_them(fresh_sandbox, store_project):
    sb = fresh_sandbox(**SMALL)
    data = sb.flexpos.data
    data.cancel_ticket(next(data.iter_records("ticket"))["Uid"])  # both statuses, surely
    project = store_project(sb.env())
    run = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert run.returncode == 0, run.stderr

    # contacts.member_number: CustomerNumber as text.
    members = dict(project.query("SELECT email, member_number FROM contacts"))
    emails = _emails(data)
    assert members == {e: str(c["CustomerNumber"]) for e, c in emails.items()}
    assert _check_cards(project, data) > 10

    rows = project.query(
        "SELECT line_id, sku, unit_price, vat_rate, receipt_number, store_id, event_id, "
        "order_number, status FROM order_lines"
    )
    got = {r[0]: r[1:] for r in rows}
    want: dict[str, tuple] = {}
    for j in orders_since(data, "journal"):  # order data: the tap's one-year default window
        for ln in j["Lines"]:
            want[f"flexpos:journal:{j['Uid']}:{ln['LineNumber']}"] = (
                ln["ProductNumber"],
                Decimal(str(ln["UnitPriceInclVat"])),
                Decimal(str(ln["VatRate"])),
                str(j["JournalNumber"]),
                j["StoreUid"],
                None,
                None,
                None,
            )
    for t in orders_since(data, "ticket"):
        want[f"flexpos:ticket:{t['Uid']}"] = (
            None,
            None,
            None,
            None,
            None,
            t["EventUid"],
            str(t["OrderNumber"]),
            t["Status"].lower(),
        )
    for m in orders_since(data, "membership"):
        want[f"flexpos:membership:{m['Uid']}"] = (None,) * 8
    assert got == want
    statuses = {v[7] for v in want.values()} - {None}
    assert statuses == {"active", "cancelled"}  # both kinds were checked


def test_cards_sent_as_one_object_fill_the_same_columns(fresh_sandbox, store_project):
    # The guide's shape: `cards` is one object (cards.Cardnumber), read by the shipped
    # mapping's cards.0.Cardnumber through the one path rule (transforms/README.md, Paths).
    sb = fresh_sandbox(cards_shape="object", **SMALL)
    data = sb.flexpos.data
    served = [c["cards"] for c in data.iter_records("customer")]
    assert any(isinstance(c, dict) for c in served) and not any(isinstance(c, list) for c in served)
    project = store_project(sb.env())
    run = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert run.returncode == 0, run.stderr
    assert _check_cards(project, data) > 10


def test_a_field_named_in_the_catalog_and_mapping_reaches_the_store(
    fresh_sandbox, store_project, tmp_path: Path
):
    # PreferredStore is served by the API but not in the tap's packaged schema: adding it is
    # two lines of configuration (taps/tap_flexpos/README.md, Adding a field), no code.
    sb = fresh_sandbox(**SMALL)
    project = store_project(sb.env(), folder="project")
    catalog = json.loads((REPO / "catalogs" / "flexpos.json").read_text())
    customers = next(s for s in catalog["streams"] if s["tap_stream_id"] == "customers")
    assert "PreferredStore" not in customers["schema"]["properties"]
    customers["schema"]["properties"]["PreferredStore"] = {"type": ["string", "null"]}
    catalog_path = tmp_path / "my-catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    mapping = (REPO / "transforms" / "mappings" / "flexpos_to_store.yaml").read_text()
    mapping = mapping.replace("catalog: ../../catalogs/flexpos.json", f"catalog: {catalog_path}")
    marker = "      member_number: {path: CustomerNumber, type: string}\n"
    assert marker in mapping
    mapping = mapping.replace(marker, marker + "      preferred_store: PreferredStore\n")
    mapping_path = tmp_path / "my-mapping.yaml"
    mapping_path.write_text(mapping)
    pipes = project.root / "pipelines.yaml"
    doc = yaml.safe_load(pipes.read_text())
    pipe = doc["pipelines"]["flexpos_to_store"]
    pipe["tap"]["catalog"] = str(catalog_path)
    pipe["mapping"] = str(mapping_path)
    pipes.write_text(yaml.safe_dump(doc, sort_keys=False))

    checked = project.run("validate")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    run = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert run.returncode == 0, run.stderr
    stored = dict(project.query("SELECT email, preferred_store FROM contacts"))
    want = {e: c["PreferredStore"] for e, c in _emails(sb.flexpos.data).items()}
    assert stored == want
    assert sum(v is not None for v in want.values()) > 10
