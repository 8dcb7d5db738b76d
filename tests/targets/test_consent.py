"""Consent (newsletter / unsubscribed_at) depends on the records' own times, never on splits.

The rule (README, "Consent"): records are ordered by `updated_at`, a `false` after a `true`
at the same instant. Without `resubscribe_unsubscribed`, a `false` that follows any `true`
unsubscribes for good; with it, the latest record wins. `unsubscribed_at` is the time of the
first `false` after the earliest (resp. latest) `true`.
"""

from __future__ import annotations

import random
import uuid

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import CONTACT_SCHEMA, Store, record, schema, singer_bytes

from target_loyalty_store.loader import Loader

CONTACTS = schema("contacts", CONTACT_SCHEMA, ["source", "source_id"])
# PostgreSQL runs the same merge SQL in its working set: what it adds is the pull of a
# person's earlier rows and statements between loads, so the scenarios over several loads run
# on both backends and those within one batch on DuckDB only.
pytestmark = pytest.mark.both_backends
ONE_BATCH = pytest.mark.duckdb_only("one batch: the same merge SQL on both backends")


def consent(newsletter: bool | None, updated_at: str | None, source: str = "flexpos") -> dict:
    """One contacts RECORD for the same person (ann@x.dk) with the given flag and time."""
    rec = {
        "source": source,
        "source_id": "F1",
        "email": "ann@x.dk",
        "newsletter": newsletter,
        "created_at": "2024-01-01T00:00:00Z",
    }
    if updated_at is not None:
        rec["updated_at"] = updated_at
    return record("contacts", rec)


YES_1 = consent(True, "2024-01-01T00:00:00Z")
NO_2 = consent(False, "2024-02-01T00:00:00Z")
YES_3 = consent(True, "2024-03-01T00:00:00Z")


def _consent_row(store: Store) -> list[tuple]:
    return store.query("SELECT newsletter, unsubscribed_at::VARCHAR FROM contacts")


UNSUBSCRIBED = [(False, "2024-02-01 00:00:00+00")]


@ONE_BATCH
def test_true_false_true_in_one_batch_stays_unsubscribed(store):
    store.load([CONTACTS, YES_1, NO_2, YES_3])
    assert _consent_row(store) == UNSUBSCRIBED


@pytest.mark.duckdb_only("over loads on PostgreSQL: the reload and property tests")
def test_true_false_true_in_three_loads_stays_unsubscribed(store):
    for message in (YES_1, NO_2, YES_3):
        store.load([CONTACTS, message])
    assert _consent_row(store) == UNSUBSCRIBED


def test_an_older_true_replayed_after_a_newer_false_does_not_resubscribe(store):
    store.load([CONTACTS, NO_2])
    store.load([CONTACTS, YES_1])  # a replayed window, or another source's older record
    assert _consent_row(store) == UNSUBSCRIBED
    # ...nor in one batch where the older true arrives last.
    other = store.another("other")
    other.load([CONTACTS, NO_2, consent(True, "2024-01-15T00:00:00Z")])
    assert _consent_row(other) == UNSUBSCRIBED


@pytest.mark.duckdb_only("over loads on PostgreSQL: the reload and property tests")
def test_with_resubscribe_the_latest_record_wins_whatever_the_arrival(store):
    store.load([CONTACTS, YES_3, NO_2, YES_1], resubscribe_unsubscribed=True)
    assert _consent_row(store) == [(True, None)]
    store.load([CONTACTS, consent(False, "2024-04-01T00:00:00Z")], resubscribe_unsubscribed=True)
    store.load([CONTACTS, YES_1], resubscribe_unsubscribed=True)  # older: changes nothing
    assert _consent_row(store) == [(False, "2024-04-01 00:00:00+00")]


@ONE_BATCH
def test_a_false_and_a_true_at_the_same_instant_unsubscribe(store):
    same = "2024-02-01T00:00:00Z"
    store.load([CONTACTS, YES_1, consent(False, same, "billetten"), consent(True, same)])
    assert _consent_row(store) == UNSUBSCRIBED


@ONE_BATCH
def test_never_subscribed_can_subscribe_whatever_the_arrival(store):
    store.load([CONTACTS, YES_3, consent(False, "2024-01-01T00:00:00Z")])
    assert _consent_row(store) == [(True, None)]


@pytest.mark.duckdb_only("an older DuckDB store; PostgreSQL stores begin with the log")
def test_a_store_from_before_the_consent_log_keeps_its_unsubscribes(store):
    """Contacts unsubscribed by an older target stay so (their state seeds the log)."""
    store.load([CONTACTS, YES_1])
    con = duckdb.connect(str(store.db))
    con.execute(
        "UPDATE contacts SET newsletter = false, unsubscribed_at = '2024-02-01 00:00:00+00'"
    )
    con.execute("DELETE FROM contact_consents")
    con.close()
    store.load([CONTACTS, YES_3])
    assert _consent_row(store) == UNSUBSCRIBED


def test_incremental_and_full_reload_of_the_same_records_agree(store):
    """The issue's end-to-end case at the target: daily windows vs one reload, new store."""
    history = [YES_1, NO_2, YES_3, consent(None, "2024-03-05T00:00:00Z")]
    for day in history:
        store.load([CONTACTS, day])
    refreshed = store.another("refresh")
    refreshed.load([CONTACTS, *reversed(history)], batch_size_rows=1)
    refreshed_one_batch = store.another("one")
    refreshed_one_batch.load([CONTACTS, *history])
    assert _consent_row(store) == _consent_row(refreshed) == _consent_row(refreshed_one_batch)
    assert _consent_row(store) == UNSUBSCRIBED


# -- property: any order, any split into runs and batches -------------------------------------

# Index -1: a record without updated_at (older than every dated one).
_TIMES = [f"2024-0{m}-01T00:00:00Z" for m in range(1, 6)]


def _time(index: int) -> str | None:
    return _TIMES[index] if index >= 0 else None


def _shown(index: int) -> str:
    """unsubscribed_at as DuckDB shows it as text."""
    return _TIMES[index].replace("T", " ").replace("Z", "+00") if index >= 0 else "-infinity"


def _expected(events: list[tuple[bool | None, int]], resubscribe: bool) -> tuple:
    """The documented rule, written independently of the SQL."""
    said = [(t, v) for v, t in events if v is not None]
    if not said:
        return (None, None)
    yes = [t for t, v in said if v]
    if not yes:
        return (False, None)
    pivot = max(yes) if resubscribe else min(yes)
    after = [t for t, v in said if not v and t >= pivot]
    if after:
        return (False, _shown(min(after)))
    return (True, None)


def _load_in_runs(store: Store, runs: list[list[dict]], batch: int, resubscribe: bool) -> tuple:
    """Each run is one Loader (what one target process runs), `batch` records per commit.

    In-process so that hypothesis can try many splits; the scenarios above use the executable.
    """
    config = {"database": store.database, "batch_size_rows": batch, "staging_dir": str(store.path)}
    config["resubscribe_unsubscribed"] = resubscribe
    for run in runs:
        loader = Loader(config)
        loader.process(singer_bytes([CONTACTS, *run]).splitlines(keepends=True))
        loader.finish()
    rows = store.query("SELECT newsletter, unsubscribed_at::VARCHAR FROM contacts")
    return rows[0] if rows else None


@pytest.mark.parametrize("resubscribe", [False, True])
def test_any_order_and_split_gives_the_same_consent(store, resubscribe):
    # Each PostgreSQL example costs a new database and a connection per run: fewer of them.
    @settings(max_examples=25 if store.backend == "duckdb" else 3, deadline=None)
    @given(
        events=st.lists(
            st.tuples(st.sampled_from([True, False, None]), st.integers(-1, len(_TIMES) - 1)),
            min_size=1,
            max_size=7,
        ),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(events: list[tuple[bool | None, int]], seed: int) -> None:
        rnd = random.Random(seed)
        messages = [
            consent(v, _time(t), source=rnd.choice(["flexpos", "billetten"])) for v, t in events
        ]
        rnd.shuffle(messages)
        cuts = sorted(rnd.sample(range(1, len(messages)), rnd.randint(0, len(messages) - 1)))
        runs = [messages[a:b] for a, b in zip([0, *cuts], [*cuts, len(messages)], strict=True)]
        fresh = store.another(f"split-{uuid.uuid4().hex[:8]}")  # hypothesis reuses `store`
        split = _load_in_runs(fresh, runs, rnd.randint(1, 3), resubscribe)
        expected = _expected(events, resubscribe)
        if expected == (None, None):
            assert split is None or split == (None, None)
        else:
            assert split == expected

    check()


def related(value: bool | None, newsletter: bool | None, updated_at: str) -> dict:
    """A Billetten-like statement: both consents of ann@x.dk at one time."""
    rec = {
        "source": "billetten",
        "source_id": "B1",
        "email": "ann@x.dk",
        "newsletter": newsletter,
        "consent_related": value,
        "updated_at": updated_at,
    }
    return record("contacts", rec)


def _both(store: Store) -> list[tuple]:
    return store.query("SELECT newsletter, consent_related, unsubscribed_at::VARCHAR FROM contacts")


CHECKOUT = related(True, True, "2024-01-01T00:00:00Z")
PARTIAL = related(True, False, "2024-02-01T00:00:00Z")  # update form: 10_2 kept
FULL = related(False, False, "2024-03-01T00:00:00Z")  # unsubscribe form
BOUGHT_AGAIN = related(True, True, "2024-04-01T00:00:00Z")  # both boxes ticked again


@ONE_BATCH
@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_consent_related_follows_the_same_rule_in_any_order(store, order):
    statements = [CHECKOUT, PARTIAL, FULL, BOUGHT_AGAIN]
    for i in order:
        store.load([CONTACTS, statements[i]])
    # The partial unsubscribe withdrew the newsletter; the full one 10_2 too; buying again
    # re-subscribes neither.
    assert _both(store) == [(False, False, "2024-02-01 00:00:00+00")]


@ONE_BATCH
def test_a_partial_unsubscribe_keeps_consent_related(store):
    store.load([CONTACTS, CHECKOUT, PARTIAL, BOUGHT_AGAIN])
    assert _both(store) == [(False, True, "2024-02-01 00:00:00+00")]


@ONE_BATCH
def test_with_resubscribe_a_later_purchase_gives_both_back(store):
    store.load([CONTACTS, CHECKOUT, FULL, BOUGHT_AGAIN], resubscribe_unsubscribed=True)
    assert _both(store) == [(True, True, None)]


def test_a_consent_never_given_stays_null_and_a_10_2_withdrawal_sets_unsubscribed_at(store):
    store.load([CONTACTS, related(True, None, "2024-01-01T00:00:00Z")])
    assert _both(store) == [(None, True, None)]
    store.load([CONTACTS, related(False, False, "2024-02-01T00:00:00Z")])
    assert _both(store) == [(False, False, "2024-02-01 00:00:00+00")]
