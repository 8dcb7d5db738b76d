"""Paginators: how to get from one page to the next, and a driver that never loops forever.

A paginator knows four things about one listing: where it starts (``start``), the query
parameters of a page request (``params``), which records a page holds (``items``) and what to ask
for next (``advance``; None after the last page). It raises ``ApiError`` when the API serves the
same page twice (an API that ignores the paging parameter would otherwise be read forever).
``paginate`` drives any of them and fetches the next page on one helper thread while the caller
processes the current one.
"""

from __future__ import annotations

import abc
import typing as t
from concurrent.futures import ThreadPoolExecutor

import msgspec

from singer_kit.http.errors import ApiError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

Record = dict[str, t.Any]
S = t.TypeVar("S")  # what identifies a page request (offset, cursor, page number)
P = t.TypeVar("P")  # a fetched page as the API returns it


class Paginator(abc.ABC, t.Generic[S, P]):
    """One listing's paging rule; single use (it remembers the pages it has seen)."""

    def __init__(self, *, what: str, param: str) -> None:
        """``what`` names the listing in errors ("FlexPOS GET customer"; ``HttpClient.pages``
        fills in an empty one); ``param`` is the paging query parameter (named in the loop
        error, since an API that ignores it is what makes pages repeat)."""
        self.what = what
        self.param = param

    @property
    @abc.abstractmethod
    def start(self) -> S:
        """The first page's request."""

    @abc.abstractmethod
    def params(self, state: S) -> dict[str, t.Any]:
        """The query parameters that ask for the page ``state`` names."""

    @abc.abstractmethod
    def items(self, page: P) -> list[Record]:
        """The records of ``page``."""

    @abc.abstractmethod
    def advance(self, state: S, page: P) -> S | None:
        """The request after ``page`` (fetched with ``state``), or None when it was the last."""

    def _loop(self) -> ApiError:
        return ApiError(
            f"{self.what}: the API returned the same page twice (it seems to ignore "
            f"{self.param!r}); stopping instead of looping"
        )


def paginate(paginator: Paginator[S, P], fetch: Callable[[S], P]) -> Iterator[Record]:
    """Yield every record of the listing, page after page.

    The next page is fetched on one helper thread while this page's records are being
    processed, so network time overlaps with work; requests stay strictly sequential.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="page") as pool:
        state = paginator.start
        pending = pool.submit(fetch, state)
        while True:
            page = pending.result()
            items = paginator.items(page)
            following = paginator.advance(state, page)
            if following is not None:
                state = following
                pending = pool.submit(fetch, state)
            yield from items
            if following is None:
                return


def _signature(items: list[Record], id_field: str | None) -> tuple[t.Any, ...]:
    """What tells two pages apart cheaply: their first and last records, and their size."""
    if id_field is not None:
        return (items[0].get(id_field), items[-1].get(id_field), len(items))
    return (msgspec.json.encode(items[0]), msgspec.json.encode(items[-1]), len(items))


class KeysetPaginator(Paginator[tuple[str | None, int], list[Record]]):
    """Offset paging made safe by a sort key: ``key >= lower`` moves forward, ``offset`` only
    skips the records already seen with that exact key value.

    Plain offset paging skips a record whenever another one is modified mid-run (it moves to
    the end of the order and shifts the offsets); here a moved record is merely seen again, and
    downstream upserts on the id dedupe it. The API must order by (key, id). A page is a list
    of records; the request ``(lower, offset)`` asks for ``key >= lower`` in ``lower_param``
    (no filter when None) and skips ``offset`` records.
    """

    def __init__(
        self,
        *,
        page_size: int,
        key: str,
        lower_param: str,
        lower: str | None = None,
        id_field: str = "Uid",
        param: str = "offset",
        what: str = "",
    ) -> None:
        """``lower``: the caller's own lower bound on ``key`` (the bookmark), if any."""
        super().__init__(what=what, param=param)
        self.lower_param = lower_param
        self.page_size = page_size
        self.key = key
        self.id_field = id_field
        self._start = (lower, 0)
        self._seen: tuple[t.Any, ...] | None = None

    @property
    def start(self) -> tuple[str | None, int]:
        """The caller's lower bound, offset 0."""
        return self._start

    def params(self, state: tuple[str | None, int]) -> dict[str, t.Any]:
        """``offset``, and the lower bound once there is one."""
        lower, offset = state
        found: dict[str, t.Any] = {self.param: offset}
        if lower is not None:
            found[self.lower_param] = lower
        return found

    def items(self, page: list[Record]) -> list[Record]:
        """A page is its records."""
        return page

    def advance(
        self, state: tuple[str | None, int], page: list[Record]
    ) -> tuple[str | None, int] | None:
        """Move ``lower`` to the page's last key and skip its ties; None after a short page."""
        if not page:
            return None
        signature = _signature(page, self.id_field)
        if signature == self._seen:
            raise self._loop()
        self._seen = signature
        lower, offset = state
        last = page[-1].get(self.key)
        ties = 0
        for item in reversed(page):
            if item.get(self.key) != last:
                break
            ties += 1
        if isinstance(last, str) and last == lower:
            offset += ties  # a whole page at one value: keep skipping within it
        elif isinstance(last, str):
            lower, offset = last, ties
        else:
            offset += len(page)  # no usable key: plain offset paging
        return (lower, offset) if len(page) >= self.page_size else None


def _pick(page: t.Any, how: tuple[str, ...] | Callable[[t.Any], t.Any]) -> t.Any:
    """What ``how`` locates in ``page``: a function of it, or a key path (missing keys: None)."""
    if callable(how):
        return how(page)
    for name in how:
        page = page.get(name) if isinstance(page, dict) else None
    return page


def _records(page: t.Any, how: tuple[str, ...] | Callable[[t.Any], t.Any]) -> list[Record]:
    """The records ``how`` locates in ``page``; a missing list is an empty page."""
    found = _pick(page, how)
    return found if isinstance(found, list) else []


class CursorPaginator(Paginator[str | None, dict[str, t.Any]]):
    """Cursor paging: each page names the next one (LoyaltyLion: ``{"cursor": {"next": ..}}``).

    ``items`` and ``next_cursor`` are key paths into the page (or functions of it), so the
    envelope of each API is configuration. ``fetch(None)`` asks for the first page.
    ``first`` holds query parameters of the first page only, for an API whose cursor carries
    the filters (LoyaltyLion: "send only ?cursor=", everything else is then ignored).
    """

    def __init__(
        self,
        *,
        items: tuple[str, ...] | Callable[[dict[str, t.Any]], list[Record]],
        next_cursor: tuple[str, ...] | Callable[[dict[str, t.Any]], str | None] = (
            "cursor",
            "next",
        ),
        param: str = "cursor",
        what: str = "",
        first: dict[str, t.Any] | None = None,
    ) -> None:
        """Key paths are looked up with missing keys read as "none"."""
        super().__init__(what=what, param=param)
        self._first = dict(first or {})
        self._items = items
        self._next = next_cursor
        self._followed: set[str] = set()

    @property
    def start(self) -> str | None:
        """No cursor: the first page."""
        return None

    def params(self, state: str | None) -> dict[str, t.Any]:
        """The first page's own parameters, then the cursor alone."""
        return dict(self._first) if state is None else {self.param: state}

    def items(self, page: dict[str, t.Any]) -> list[Record]:
        """The page's records; a missing list is an empty page."""
        return _records(page, self._items)

    def advance(self, state: str | None, page: dict[str, t.Any]) -> str | None:
        """The page's next cursor; None (or empty) ends the listing. A cursor already
        followed means the API sends us in a circle."""
        cursor = _pick(page, self._next)
        if cursor is None or cursor == "":
            return None
        cursor = str(cursor)
        if cursor in self._followed:
            raise self._loop()
        self._followed.add(cursor)
        return cursor


class PageNumberPaginator(Paginator[int, t.Any]):
    """Page-number paging: pages 1, 2, ... until a short or empty page."""

    def __init__(
        self,
        *,
        page_size: int,
        items: tuple[str, ...] | Callable[[t.Any], list[Record]] = (),
        first: int = 1,
        id_field: str | None = None,
        param: str = "page",
        what: str = "",
    ) -> None:
        """``items`` locates the records in a page (``()``: the page is the list itself);
        ``id_field`` makes the same-page check cheaper than comparing whole records."""
        super().__init__(what=what, param=param)
        self.page_size = page_size
        self._items = items
        self._first = first
        self.id_field = id_field
        self._seen: tuple[t.Any, ...] | None = None

    @property
    def start(self) -> int:
        """The first page number."""
        return self._first

    def params(self, state: int) -> dict[str, t.Any]:
        """The page number."""
        return {self.param: state}

    def items(self, page: t.Any) -> list[Record]:
        """The page's records; a missing list is an empty page."""
        return _records(page, self._items)

    def advance(self, state: int, page: t.Any) -> int | None:
        """The next page number, None after a short page."""
        items = self.items(page)
        if not items:
            return None
        signature = _signature(items, self.id_field)
        if signature == self._seen:
            raise self._loop()
        self._seen = signature
        return state + 1 if len(items) >= self.page_size else None
