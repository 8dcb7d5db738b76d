"""tap-loyalty-store: store models as streams, read with the real executable from a real store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "targets"))
from ometria_helpers import BIN, MODELS, catalog, make_store, tap_config  # noqa: E402

TAP = str(BIN / "tap-loyalty-store")


def run_tap(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TAP, *args], capture_output=True, text=True, timeout=timeout)


def messages(out: str, kind: str) -> list[dict]:
    return [m for m in map(json.loads, out.splitlines()) if m["type"] == kind]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "store.duckdb"
    make_store(db, 40, orders=6)
    return db


def test_discover_types_columns_from_duckdb(tmp_path, store):
    found = run_tap("--config", str(tap_config(tmp_path, store)), "--discover")
    assert found.returncode == 0, found.stderr
    streams = {s["tap_stream_id"]: s for s in json.loads(found.stdout)["streams"]}
    assert set(streams) == {p.stem for p in MODELS.glob("*.sql")}
    contacts = streams["ometria_contacts"]
    assert contacts["key_properties"] == ["contact_id"]
    assert contacts["replication_key"] == "updated_at"
    props = contacts["schema"]["properties"]
    assert props["points_total"]["type"] == ["integer", "null"]
    assert props["blocked"]["type"] == ["boolean", "null"]
    assert props["birthday"] == {"type": ["string", "null"], "format": "date"}
    assert props["updated_at"]["format"] == "date-time"
    lines = streams["ometria_orders"]["schema"]["properties"]["lineitems"]
    assert lines["type"] == ["array", "null"]
    assert lines["items"]["properties"]["quantity"]["type"] == ["number", "null"]


def test_incremental_on_the_change_column_full_without_one(tmp_path, store):
    models = tmp_path / "models"
    models.mkdir()
    (models / "ometria_contacts.sql").write_text((MODELS / "ometria_contacts.sql").read_text())
    (models / "emails.sql").write_text(
        "-- key: contact_id\n-- description: every e-mail (no change column)\n"
        "SELECT contact_id, email FROM contacts\n"
    )
    cfg = tmp_path / "tap.json"
    cfg.write_text(json.dumps({"database": str(store), "models_dir": str(models)}))
    first = run_tap("--config", str(cfg))
    assert first.returncode == 0, first.stderr
    records = messages(first.stdout, "RECORD")
    assert sum(r["stream"] == "emails" for r in records) == 40
    assert sum(r["stream"] == "ometria_contacts" for r in records) == 40
    state = messages(first.stdout, "STATE")[-1]["value"]
    bookmark = state["bookmarks"]["ometria_contacts"]["replication_key_value"]
    assert bookmark == max(r["record"]["updated_at"] for r in records if r["stream"] != "emails")

    con = duckdb.connect(str(store))
    con.execute(
        "UPDATE loyalty_accounts SET tier_name = 'Platinum', "
        "updated_at = TIMESTAMPTZ '2026-07-01 00:00:00+00' "
        "WHERE contact_id = 'email:member5@example.com'"
    )
    con.close()
    (tmp_path / "state.json").write_text(json.dumps(state))
    second = run_tap("--config", str(cfg), "--state", str(tmp_path / "state.json"))
    assert second.returncode == 0, second.stderr
    again = messages(second.stdout, "RECORD")
    assert sum(r["stream"] == "emails" for r in again) == 40  # the whole model each time
    changed = [r["record"] for r in again if r["stream"] == "ometria_contacts"]
    # the changed member, and the one at the old bookmark (>=: a tie is never skipped)
    assert [c["contact_id"] for c in changed][-1] == "email:member5@example.com"
    assert changed[-1]["tier_name"] == "Platinum"
    assert len(changed) == 2 and changed[0]["updated_at"] == bookmark


def test_a_bad_model_is_one_line_naming_the_file(tmp_path, store):
    models = tmp_path / "models"
    models.mkdir()
    (models / "nokey.sql").write_text("SELECT 1 AS a\n")
    cfg = tmp_path / "tap.json"
    cfg.write_text(json.dumps({"database": str(store), "models_dir": str(models)}))
    result = run_tap("--config", str(cfg), "--discover")
    assert result.returncode == 2  # a user error, as every connector here
    assert result.stderr.strip().splitlines()[-1] == (
        f"tap-loyalty-store: error: {models / 'nokey.sql'}:1: a model needs a "
        "'-- key: <column>[, <column>]' header line"
    )
    (models / "nokey.sql").write_text("-- key: id\nSELECT contact_id FROM contacts\n")
    result = run_tap("--config", str(cfg), "--discover")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "header names column 'id', which the SELECT does not return" in result.stderr


def test_an_unselected_model_that_cannot_run_does_not_stop_the_selected_one(tmp_path, store):
    cfg = tap_config(tmp_path, store)
    cat = catalog(tmp_path, cfg, "ometria_orders")
    con = duckdb.connect(str(store))
    con.execute("DROP TABLE loyalty_accounts")  # a store without LoyaltyLion loaded yet
    con.close()
    result = run_tap("--config", str(cfg), "--catalog", str(cat))
    assert result.returncode == 0, result.stderr
    assert {r["stream"] for r in messages(result.stdout, "RECORD")} == {"ometria_orders"}
    assert "model ometria_contacts skipped" in result.stderr


def test_waits_for_a_load_then_gives_up_with_exit_75(tmp_path, store):
    cfg = tmp_path / "tap.json"
    cfg.write_text(
        json.dumps({"database": str(store), "models_dir": str(MODELS), "lock_timeout_seconds": 1})
    )
    writer = duckdb.connect(str(store))  # a load holding the store
    try:
        result = run_tap("--config", str(cfg), "--discover")
    finally:
        writer.close()
    assert result.returncode == 75
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tap-loyalty-store: error: loyalty store {store} is locked by ")
    assert "gave up after 1s" in last and "Traceback" not in result.stderr


def test_holds_the_store_only_while_copying(tmp_path):
    """Its output is far more than a pipe holds: while it waits for its reader, a load can
    already open the store for writing."""
    db = tmp_path / "big.duckdb"
    make_store(db, 3000)
    cfg = tap_config(tmp_path, db)
    cat = catalog(tmp_path, cfg, "ometria_contacts")
    proc = subprocess.Popen(
        [TAP, "--config", str(cfg), "--catalog", str(cat)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the SCHEMA: the tap is under way
        assert b'"SCHEMA"' in first
        while b'"RECORD"' not in proc.stdout.readline():
            pass
        assert proc.poll() is None  # still writing, blocked on the full pipe
        writer = duckdb.connect(str(db))  # would fail at once if the tap held the file
        writer.execute("UPDATE contacts SET city = 'Aarhus'")
        writer.close()
        rest = proc.stdout.read()
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert rest.count(b'"RECORD"') == 3000 - 1


@pytest.mark.parametrize(
    ("catalog_file", "selected"),
    [
        ("loyalty_store_contacts.json", ["ometria_contacts"]),
        ("loyalty_store_orders.json", ["ometria_orders"]),
        ("loyalty_store_voyado.json", ["voyado_contacts", "voyado_receipts"]),
    ],
)
def test_the_shipped_catalogs_are_the_models_discovered_with_their_models_selected(
    tmp_path, store, catalog_file, selected
):
    found = run_tap("--config", str(tap_config(tmp_path, store)), "--discover")
    discovered = {s["tap_stream_id"]: s["schema"] for s in json.loads(found.stdout)["streams"]}
    shipped = json.loads((MODELS.parents[1] / "catalogs" / catalog_file).read_text())["streams"]
    assert {s["tap_stream_id"]: s["schema"] for s in shipped} == discovered
    chosen = [
        s["tap_stream_id"]
        for s in shipped
        for m in s["metadata"]
        if m["breadcrumb"] == [] and m["metadata"].get("selected")
    ]
    assert chosen == selected


def test_on_postgresql_discover_full_then_incremental_read_without_blocking_a_load(
    tmp_path, pg_url
):
    """The same tap on a PostgreSQL store: columns typed by PostgreSQL, the bookmark as on
    DuckDB, and a write to the store goes through while the tap is mid-read (MVCC, no lock)."""
    import psycopg

    from target_loyalty_store.pgschema import install

    with psycopg.connect(pg_url, autocommit=True) as con:
        install(con)
        con.execute(
            "INSERT INTO contacts (contact_id, match_field, email, birthday, newsletter, "
            "updated_at) SELECT 'email:m' || n || '@example.com', 'email', "
            "'m' || n || '@example.com', DATE '1990-01-01' + n, n % 2 = 0, "
            "TIMESTAMPTZ '2026-05-01 00:00:00+00' + n * INTERVAL '1 minute' "
            "FROM generate_series(1, 3000) AS n"
        )
    models = tmp_path / "models"
    models.mkdir()
    (models / "voyado_contacts.sql").write_text((MODELS / "voyado_contacts.sql").read_text())
    (models / "emails.sql").write_text(  # '%': the model's own, not a placeholder
        "-- key: contact_id\n-- change_column: updated_at\n"
        "SELECT contact_id, email, updated_at FROM contacts WHERE email LIKE '%@%'\n"
    )
    cfg = tmp_path / "tap.json"
    cfg.write_text(json.dumps({"database": pg_url, "models_dir": str(models)}))

    found = run_tap("--config", str(cfg), "--discover")
    assert found.returncode == 0, found.stderr
    streams = {s["tap_stream_id"]: s for s in json.loads(found.stdout)["streams"]}
    props = streams["voyado_contacts"]["schema"]["properties"]
    assert props["birthday"] == {"type": ["string", "null"], "format": "date"}
    assert props["newsletter"] == {"type": ["boolean", "null"]}
    assert props["updated_at"] == {"type": ["string", "null"], "format": "date-time"}
    assert streams["emails"]["replication_key"] == "updated_at"
    emails = streams["emails"]
    for entry in emails["metadata"]:
        if entry["breadcrumb"] == []:
            entry["metadata"]["selected"] = True
    (tmp_path / "catalog.json").write_text(json.dumps({"streams": [emails]}))

    proc = subprocess.Popen(
        [TAP, "--config", str(cfg), "--catalog", str(tmp_path / "catalog.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        head = [proc.stdout.readline(), proc.stdout.readline()]
        assert '"RECORD"' in head[1]
        with psycopg.connect(pg_url, autocommit=True) as writer:  # a load, mid-read
            writer.execute("SET lock_timeout = '5s'")
            writer.execute(
                "UPDATE contacts SET updated_at = TIMESTAMPTZ '2026-06-01 00:00:00+00' "
                "WHERE contact_id = 'email:m3000@example.com'"
            )
        out = "".join(head) + proc.stdout.read()
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    records = [m["record"] for m in messages(out, "RECORD")]
    assert len(records) == 3000  # the snapshot the read started on
    assert records[0] == {
        "contact_id": "email:m1@example.com",
        "email": "m1@example.com",
        "updated_at": "2026-05-01T00:01:00+00:00",
    }
    state = messages(out, "STATE")[-1]["value"]
    assert state["bookmarks"]["emails"]["replication_key_value"] == "2026-05-03T02:00:00+00:00"

    (tmp_path / "state.json").write_text(json.dumps(state))
    again = run_tap(
        "--config",
        str(cfg),
        "--catalog",
        str(tmp_path / "catalog.json"),
        "--state",
        str(tmp_path / "state.json"),
    )
    assert again.returncode == 0, again.stderr
    assert [m["record"] for m in messages(again.stdout, "RECORD")] == [
        {
            "contact_id": "email:m3000@example.com",
            "email": "m3000@example.com",
            "updated_at": "2026-06-01T00:00:00+00:00",
        }
    ]
