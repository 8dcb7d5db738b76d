"""The store's views, segments and models give the same answers on PostgreSQL as on DuckDB.

The same rows go into a DuckDB store and a PostgreSQL store (each with its schema installed
the way its loader does it), then every view, every segment (with parameters that select
members) and every model is read on both and compared row by row. The rows exercise what the
translation must get right: any_value/arg_min/arg_max, FILTER, QUALIFY, lists of structs,
intervals and time zones, NULL ordering, and text that sorts differently by collation.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import typing as t
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest

from singer_kit.pgstore import connect as pg_connect
from tap_loyalty_store.models import jsonable, load_models
from target_loyalty_store import pgschema
from target_loyalty_store.pgsegments import query_postgres
from target_loyalty_store.segments import catalog, query
from target_loyalty_store.store import connect as duck_connect
from target_loyalty_store.store import open_read_only

REPO = Path(__file__).resolve().parents[2]
LOYALTY = str(Path(sys.executable).parent / "loyalty")
T0 = dt.datetime(2026, 10, 1, 9, 30, tzinfo=dt.UTC)
AS_OF = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def _contacts() -> list[dict[str, t.Any]]:
    rows = []
    for n, name in enumerate(("ann", "Bo", "cai", "Dee", "eve")):
        rows.append(
            {
                "contact_id": f"email:{name.lower()}@example.com",
                "match_field": "email",
                "email": f"{name.lower()}@example.com",
                "first_name": name,
                "newsletter": n % 2 == 0,
                "unsubscribed_at": at(-3) if n == 1 else None,
                "birthday": dt.date(1990, 1 + n, 2),
                "first_seen_at": at(-400 + n * 100),
                "updated_at": at(20 + n),
                "member_number": f"M{n}",
            }
        )
    return rows


def _lines() -> list[dict[str, t.Any]]:
    def line(line_id: str, customer: str | None, kind: str, days: float, **more: t.Any) -> dict:
        return {
            "line_id": line_id,
            "source": more.pop("source", "billetten" if kind == "ticket" else "flexpos"),
            "source_customer_id": customer,
            "line_type": kind,
            "occurred_at": at(days),
            "updated_at": at(days + 0.5),
            "quantity": Decimal("1"),
            "currency": "DKK",
            **more,
        }

    hamlet = {"event_name": "Hamlet", "event_id": "ev-1", "event_date": at(40), "zone": "Parket"}
    return [
        # Bo: one order of four seats (one cancelled later), online; a second order at the desk.
        *(
            line(
                f"{k}-t{s}",
                "b-2",
                "ticket",
                1,
                order_id="o1",
                seat=str(s),
                **hamlet,
                row="3",
                channel="online",
                amount=Decimal("150.5"),
                order_number="N1",
                cancelled_at=at(5) if s == 2 else None,
            )
            for k, s in (("B", 1), ("a", 2), ("_", 3), ("b", 4))
        ),
        line(
            "t9",
            "b-2",
            "ticket",
            10,
            order_id="o2",
            channel="desk",
            amount=Decimal("99"),
            event_name="Lear",
            event_id="ev-2",
            zone="Balkon",
            row="1",
            seat="7",
        ),
        # Ann: coffee and dinner after her booking; a return; a line in EUR; a membership.
        line(
            "p1",
            "f-1",
            "purchase",
            2,
            order_id="j1",
            product_name="Latte",
            sku="L1",
            amount=Decimal("45.25"),
            quantity=Decimal("2"),
            product_group="Bar",
            unit_price=Decimal("22.625"),
            vat_rate=Decimal("25"),
            store_id="s1",
            store="Main",
            receipt_number="R1",
            discount=Decimal("5"),
        ),
        line(
            "p2",
            "f-1",
            "purchase",
            3,
            order_id="j2",
            product_name="Steak",
            sku="S1",
            amount=Decimal("1200"),
            product_group="Dining",
            store_id="s2",
            store="Annex",
        ),
        line(
            "p3",
            "f-1",
            "return",
            4,
            order_id="j3",
            product_name="Steak",
            sku="S1",
            amount=Decimal("-1200"),
            quantity=Decimal("-1"),
            store_id="s2",
            store="Annex",
        ),
        line(
            "p4",
            "f-1",
            "purchase",
            6,
            order_id="j4",
            product_name="Wine",
            currency="EUR",
            amount=Decimal("30"),
        ),
        line(
            "t5",
            "b-1",
            "ticket",
            1.5,
            order_id="o3",
            seat="9",
            **hamlet,
            row="1",
            channel="online",
            amount=Decimal("150.5"),
        ),
        line(
            "m1",
            "f-1",
            "membership",
            -100,
            order_id="mb1",
            product_name="Årskort",
            valid_from=dt.date(2026, 1, 1),
            valid_to=dt.date(2026, 12, 31),
        ),
        # Eve booked at 23:30 UTC: the next day in Copenhagen.
        line(
            "t6",
            "b-5",
            "ticket",
            12.583,
            order_id="o4",
            seat="1",
            **hamlet,
            row="9",
            channel="online",
            amount=Decimal("100"),
        ),
        # A line whose buyer is not a contact yet (anonymous until contact_ids names them).
        line(
            "t7",
            "b-9",
            "ticket",
            3,
            order_id="o5",
            seat="2",
            **hamlet,
            row="9",
            channel="online",
            amount=Decimal("100"),
        ),
    ]


def _rows() -> dict[str, list[dict[str, t.Any]]]:
    ids = [("flexpos", "f-1", "ann"), ("billetten", "b-1", "ann"), ("billetten", "b-2", "bo")]
    ids += [("billetten", "b-5", "eve"), ("loyaltylion", "L1", "ann")]
    ids += [("loyaltylion", "L2", "cai"), ("loyaltylion", "L3", "cai")]
    tiers = {"Bronze": (1, 0, 500), "Silver": (2, 500, 1500), "Gold": (3, 1500, None)}

    def member(source_id: str, programme: str, tier: str, points: int, days: float) -> dict:
        position, lower, upper = tiers[tier]
        return {
            "source": "loyaltylion",
            "source_id": source_id,
            "programme": programme,
            "email": "x@example.com",
            "points_approved": points,
            "points_pending": 10,
            "points_spent": 40,
            "rewards_claimed": 2,
            "blocked": False,
            "enrolled": True,
            "enrolled_at": at(-200),
            "tier_id": position,
            "tier_name": tier,
            "tier_position": position,
            "tier_lower_bound": lower,
            "tier_upper_bound": upper,
            "tier_started_at": at(-60),
            "tier_expires_at": at(300) if tier != "Bronze" else None,
            "insights_segment": "Loyal",
            "updated_at": at(days),
        }

    def ledger(tid: int, customer: str, kind: str, points: int, days: float) -> dict:
        return {
            "source": "loyaltylion",
            "transaction_id": tid,
            "source_customer_id": customer,
            "kind": kind,
            "points_approved": points,
            "points_pending": 0,
            "created_at": at(days),
        }

    def event(n: int, kind: str, browser: str, days: float, **more: t.Any) -> dict:
        return {
            "tracking_event_id": f"e{n}",
            "source": "billetten",
            "event_type": kind,
            "browser_id": browser,
            "occurred_at": at(days),
            "updated_at": at(days),
            **more,
        }

    return {
        "contacts": _contacts(),
        "contact_ids": [
            {"source": s, "source_id": i, "contact_id": f"email:{c}@example.com"} for s, i, c in ids
        ],
        "order_lines": _lines(),
        "loyalty_members": [
            member("L1", "7", "Silver", 700, 10),
            member("L2", "7", "Bronze", 120, 11),
            member("L3", "8", "Gold", 2000, 11),  # cai's second programme, changed as late
        ],
        "loyalty_transactions": [
            ledger(1, "L1", "activity", 300, -10),
            ledger(2, "L1", "expiry", -25, 5),
            ledger(3, "L2", "activity", 120, -5),
            ledger(4, "L3", "activity", 900, -70),
            ledger(5, "L3", "activity", 100, 1),
        ],
        "tracking_events": [
            event(1, "pairing", "br1", 1, cookies_accepted=True, source_customer_id="b-2"),
            event(2, "add_to_cart", "br1", 0.5, event_id="ev-9"),
            event(3, "add_to_cart", "br1", 2, event_id="ev-1"),
            event(4, "pairing", "br1", 3, cookies_accepted=True, source_customer_id="b-5"),
            event(5, "add_to_cart", "br2", 2, event_id="ev-9"),
            event(6, "pairing", "br3", 2, cookies_accepted=False, source_customer_id="b-1"),
            event(7, "add_to_cart", "br3", 2, event_id="ev-9"),
        ],
    }


def _insert(con: t.Any, placeholder: str, rows: dict[str, list[dict[str, t.Any]]]) -> None:
    for table, records in rows.items():
        for record in records:
            names = ", ".join(f'"{k}"' for k in record)
            marks = ", ".join(placeholder for _ in record)
            con.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(record.values()))


@pytest.fixture(scope="module")
def locations(pg_server: t.Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The same rows in a DuckDB store and a PostgreSQL store, schemas installed as loads do:
    the file's path and the database's URL."""
    rows = _rows()
    path = str(tmp_path_factory.mktemp("pg-sql") / "store.duckdb")
    duck = duck_connect(path)
    _insert(duck, "?", rows)
    duck.close()
    url = pg_server.create_database("pg_sql_same_answers")
    with pg_connect(url, application_name="test", autocommit=True) as pg:
        pgschema.install(pg)
        _insert(pg, "%s", rows)
    return path, url


@pytest.fixture(scope="module")
def stores(
    locations: tuple[str, str],
) -> t.Iterator[tuple[duckdb.DuckDBPyConnection, psycopg.Connection]]:
    """Both stores open for reading."""
    duck = open_read_only(locations[0])
    pg = pg_connect(locations[1], application_name="test", autocommit=True)
    yield duck, pg
    duck.close()
    pg.close()


def _table(rows: list[tuple[t.Any, ...]], names: list[str]) -> list[dict[str, t.Any]]:
    """Rows as JSON values (the tap's own conversion), in a fixed order."""
    found = [{n: jsonable(v) for n, v in zip(names, row, strict=True)} for row in rows]
    return sorted(found, key=repr)


def _both(stores: t.Any, duck_sql: str, pg_sql: str) -> tuple[list[dict], list[dict]]:
    duck, pg = stores
    result = duck.execute(duck_sql)
    on_duck = _table(result.fetchall(), [d[0] for d in result.description])
    cur = pg.execute(pg_sql)
    on_pg = _table(cur.fetchall(), [d.name for d in cur.description or ()])
    return on_duck, on_pg


@pytest.mark.parametrize("view", pgschema.view_names())
def test_every_view_same_rows(stores, view):
    on_duck, on_pg = _both(stores, f"SELECT * FROM {view}", f"SELECT * FROM {view}")
    assert on_duck, f"{view}: the fixture rows must reach the view"
    assert on_pg == on_duck


MODELS = load_models(REPO / "transforms" / "models")


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_every_model_same_rows(stores, model):
    on_duck, on_pg = _both(stores, model.sql, model.postgres_sql())
    assert on_duck, f"{model.name}: the fixture rows must reach the model"
    assert on_pg == on_duck


# Parameters under which each segment has members in the fixture rows.
SEGMENT_ARGS: dict[str, dict[str, t.Any]] = {
    "booked_more_than": {"times": 0},
    "booked_event": {"event": "HAMLET"},
    "tickets_in_one_order": {"more_than": 2},
    "booked_seat": {"zone": "parket", "seat_row": "3"},
    "booked_channel": {"channel": "desk"},
    "total_amount": {"at_least": Decimal("10")},
    "updated_profile": {},
    "event_then_dining": {},
    "purchased_product": {"product": "latte"},
    "booked_on_date": {"day": dt.date(2026, 10, 14)},
    "has_membership": {"membership": "Årskort"},
    "bought_items": {"at_least": 2},
    "new_members": {"days": 200},
    "abandoned_cart": {},
}


@pytest.mark.parametrize("name", list(catalog()))
def test_every_segment_same_members(stores, name):
    duck, pg = stores
    segment = catalog()[name]
    values = dict(SEGMENT_ARGS[name])
    if any(p.name == "as_of" for p in segment.params):
        values["as_of"] = AS_OF
    on_duck = query(duck, segment, values)
    on_pg = query_postgres(pg, segment, values)
    assert on_duck[1], f"{name}: the fixture rows must select members"
    assert on_pg == on_duck


def test_loyalty_segment_show_prints_the_same_on_both_stores(locations):
    """What a user sees: the same table and count from a file and from a PostgreSQL URL."""
    args = [LOYALTY, "segment", "show", "total_amount", "--param", "at_least=10"]
    args += ["--param", f"as_of={AS_OF.isoformat()}"]
    shown = [
        subprocess.run([*args, "--database", where], capture_output=True, text=True, timeout=60)
        for where in locations
    ]
    assert [p.returncode for p in shown] == [0, 0], shown[1].stderr
    assert shown[1].stdout == shown[0].stdout
    assert shown[0].stdout.splitlines()[-1].startswith("3 member(s) in total_amount")


def test_install_on_an_up_to_date_store_waits_for_no_reader_and_an_upgrade_rebuilds(locations):
    """Every load starts with install: on a store already up to date it must not queue behind
    an analyst's open transaction; after an upgrade (another digest) it rebuilds the views and
    segments in place, rows untouched."""
    url = locations[1]
    with (
        pg_connect(url, application_name="analyst") as reader,
        pg_connect(url, application_name="load", autocommit=True) as loader,
    ):
        assert reader.execute("SELECT count(*) FROM orders").fetchone() == (10,)  # stays open
        loader.execute("SET lock_timeout = '1s'")
        pgschema.install(loader)  # a DROP VIEW would fail here: the reader holds the view
        reader.rollback()
        loader.execute(
            "UPDATE _store_meta SET value = 'older' WHERE key = %s", (pgschema.DIGEST_KEY,)
        )
        pgschema.install(loader)
        assert loader.execute("SELECT count(*) FROM orders").fetchone() == (10,)
        members = loader.execute("SELECT contact_id FROM seg_booked_event('hamlet')").fetchall()
        assert members == [
            ("email:ann@example.com",),
            ("email:bo@example.com",),
            ("email:eve@example.com",),
        ]


def test_tap_loyalty_store_emits_the_same_records_and_bookmarks_from_both(locations, tmp_path):
    """Every shipped model through the real tap: the same RECORDs in the same order and the
    same final STATE, whichever store it reads."""
    out = []
    for where in locations:
        cfg = tmp_path / "tap.json"
        cfg.write_text(
            json.dumps({"database": where, "models_dir": str(REPO / "transforms" / "models")})
        )
        run = subprocess.run(
            [str(Path(sys.executable).parent / "tap-loyalty-store"), "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        messages = [json.loads(line) for line in run.stdout.splitlines()]
        records = [(m["stream"], m["record"]) for m in messages if m["type"] == "RECORD"]
        states = [m["value"] for m in messages if m["type"] == "STATE"]
        out.append((records, states[-1]))
    assert {stream for stream, _ in out[0][0]} == {m.name for m in MODELS}
    assert out[1] == out[0]
