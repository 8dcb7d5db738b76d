"""The kit's paginators over in-memory APIs: every record once, in order, and one clear error
(never an endless loop) when an API serves the same page again."""

from __future__ import annotations

import threading

import pytest

from singer_kit.http.errors import ApiError
from singer_kit.http.paging import (
    CursorPaginator,
    KeysetPaginator,
    PageNumberPaginator,
    paginate,
)

RECORDS = [{"id": i, "name": f"r{i}"} for i in range(23)]


def _cursor_api(records: list[dict], size: int, envelope=lambda page, nxt: {}):
    """Pages of ``size``; the cursor is the next offset as text; ``envelope`` shapes a page."""
    calls: list[str | None] = []

    def fetch(cursor: str | None) -> dict:
        calls.append(cursor)
        start = int(cursor or 0)
        nxt = str(start + size) if start + size < len(records) else None
        return envelope(records[start : start + size], nxt)

    return fetch, calls


def test_cursor_paging_with_the_default_next_cursor_path():
    fetch, calls = _cursor_api(
        RECORDS, 5, lambda page, nxt: {"customers": page, "cursor": {"next": nxt, "prev": None}}
    )
    paginator = CursorPaginator(what="Acme GET customers", items=("customers",))
    assert list(paginate(paginator, fetch)) == RECORDS
    assert calls == [None, "5", "10", "15", "20"]


def test_cursor_paging_with_a_configured_next_cursor():
    fetch, calls = _cursor_api(
        RECORDS, 10, lambda page, nxt: {"data": page, "meta": {"next_page_token": nxt}}
    )
    paginator = CursorPaginator(
        what="Acme GET x", items=("data",), next_cursor=lambda p: p["meta"]["next_page_token"]
    )
    assert [r["id"] for r in paginate(paginator, fetch)] == list(range(23))
    assert calls == [None, "10", "20"]


def test_first_page_parameters_are_sent_once_when_the_cursor_carries_the_filters():
    paginator = CursorPaginator(items=("customers",), first={"updated_at_min": "2026-01-01"})
    assert paginator.params(paginator.start) == {"updated_at_min": "2026-01-01"}
    assert paginator.params("abc") == {"cursor": "abc"}


def test_a_cursor_that_comes_back_stops_with_one_error():
    calls: list[str | None] = []

    def circular(cursor: str | None) -> dict:
        calls.append(cursor)
        # The API hands out a->b->a...: without loop detection this never ends.
        return {"items": [{"id": len(calls)}], "cursor": {"next": "b" if cursor == "a" else "a"}}

    paginator = CursorPaginator(what="Acme GET customers", items=("items",))
    with pytest.raises(ApiError) as err:
        list(paginate(paginator, circular))
    assert str(err.value) == (
        "Acme GET customers: the API returned the same page twice (it seems to ignore "
        "'cursor'); stopping instead of looping"
    )
    assert len(calls) <= 4


def test_page_numbers_until_a_short_page():
    calls: list[int] = []

    def fetch(page: int) -> list[dict]:
        calls.append(page)
        return RECORDS[(page - 1) * 10 : page * 10]

    paginator = PageNumberPaginator(what="Acme GET x", page_size=10)
    assert list(paginate(paginator, fetch)) == RECORDS
    assert calls == [1, 2, 3]


def test_page_numbers_ignored_by_the_api_stop_with_one_error():
    calls: list[int] = []

    def ignores_page(page: int) -> dict:
        calls.append(page)
        return {"results": RECORDS[:10]}

    paginator = PageNumberPaginator(what="Acme GET x", page_size=10, items=("results",))
    with pytest.raises(ApiError, match=r"same page twice .*'page'"):
        list(paginate(paginator, ignores_page))
    assert calls[:2] == [1, 2] and len(calls) <= 3


def test_keyset_paging_ignored_offset_stops_with_one_error():
    rows = [{"Uid": f"u{i}", "ModifiedDate": "2026-01-01T00:00:00"} for i in range(12)]
    calls: list[tuple] = []

    def ignores_offset(state: tuple) -> list[dict]:
        calls.append(state)
        return rows[:5]

    paginator = KeysetPaginator(
        what="Acme GET x", page_size=5, key="ModifiedDate", lower_param="since"
    )
    with pytest.raises(ApiError, match="same page twice"):
        list(paginate(paginator, ignores_offset))
    assert calls[:2] == [(None, 0), ("2026-01-01T00:00:00", 5)]
    assert paginator.params(calls[1]) == {"offset": 5, "since": "2026-01-01T00:00:00"}


def test_the_next_page_is_fetched_while_the_caller_works_on_this_one():
    second_asked = threading.Event()

    def fetch(page: int) -> list[dict]:
        if page == 2:
            second_asked.set()
        return RECORDS[(page - 1) * 10 : page * 10]

    records = paginate(PageNumberPaginator(what="x", page_size=10), fetch)
    next(records)  # the caller holds the first record of page 1 ...
    assert second_asked.wait(5)  # ... and page 2 is on its way already
    assert len(list(records)) == 22
