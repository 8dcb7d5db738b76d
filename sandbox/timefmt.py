"""Render and parse FlexPOS timestamps in a configurable pendulum format, fast.

Values are *instants*: integer seconds since 1970-01-01T00:00 UTC. The API shows them as local
wall-clock time without an offset, as a server that stores instants and renders local time
would: no value falls in the skipped spring hour, and the repeated autumn hour is shown twice
(once in summer time, once in winter time), in instant order. Filter values come in the same
offset-less local format and are read by the rule the tap and the mapper share
(``singer_kit.dates.local_to_utc``, PEP 495 ``fold=0``): a repeated time is its first
occurrence, a skipped time keeps the offset before the change.

The format itself is compiled by the kit (``singer_kit.dates.DateFormat``), the one compiler
the tap and the mapper use too. What stays here is the emulator's own: instants as integers,
and per-day and per-quarter-hour caches, since a million records carry two or three
timestamps each and even ``strftime`` costs about six microseconds.
"""

from __future__ import annotations

import os
import typing as t
from datetime import UTC, date, datetime

from singer_kit.dates import NOW_ENV, DateFormat, DateFormatError, load_zone, local_to_utc, now

DATE_ONLY_FORMAT = "DD-MM-YYYY"

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CACHE_LIMIT = 100_000


class TimeFormat:
    """One compiled timestamp format in one time zone (values: UTC epoch seconds)."""

    def __init__(self, fmt: str, timezone: str) -> None:
        self.fmt = fmt
        self.timezone = timezone
        self._tz = load_zone(timezone)
        self._format = DateFormat(fmt)
        self._fast = self._format.render
        self._has_offset = self._format.has_offset
        self._offsets: dict[int, int] = {}
        self._days: dict[int, tuple[int, int, int]] = {}
        # Formats that show whole seconds: filters compare the raw instants (only the fold of a
        # repeated autumn time is lost in the text, and the client reads it as the first one).
        self.lossless = self._fast is not None and "ss" in self._format.tokens
        self._check()

    def _check(self) -> None:
        """Refuse a format a client could not read back (no date in it, a typo)."""
        probe = 1_750_000_000 + 12 * 3600
        try:
            back = self.parse(self.render(probe))
        except DateFormatError:
            back = None
        if back is None or abs(back - probe) >= 86_400:
            raise ValueError(
                f"date format {self.fmt!r} cannot be read back; use pendulum tokens such as "
                "YYYY-MM-DDTHH:mm:ss"
            )

    def render(self, ts: int) -> str:
        """An instant -> its local wall-clock time in the configured format."""
        fast = self._fast
        if fast is None:
            return self._format.format(datetime.fromtimestamp(ts, self._tz))
        off = self._offset_at(ts)
        days, secs = divmod(ts + off, 86_400)
        ymd = self._days.get(days)
        if ymd is None:
            ymd = self._day(days)
        h, rem = divmod(secs, 3600)
        mi, s = divmod(rem, 60)
        return fast(ymd[0], ymd[1], ymd[2], h, mi, s, 0, off)

    def parse(self, text: str) -> int:
        """Text in the configured format -> the instant (a local time by the shared rule)."""
        try:
            parsed = self._format.parse(text)
        except (ValueError, TypeError) as exc:
            raise DateFormatError(f"{text!r} does not match the date format {self.fmt}") from exc
        if not isinstance(parsed, datetime):  # a date-only format: local midnight
            parsed = datetime(parsed.year, parsed.month, parsed.day)
        if parsed.tzinfo is None:
            return self.local_instant(parsed)
        return int(parsed.timestamp())

    def comparable(self, ts: int) -> int:
        """The value a client sees after a round trip through the format (for filters).

        An offset-less format shows a repeated autumn time like its first occurrence; the
        instant keeps its own offset here so the value stays monotone (the API bisects on it).
        """
        if self.lossless:
            return ts
        back = self.parse(self.render(ts))
        return back if self._has_offset else back + self._offset_at(back) - self._offset_at(ts)

    def from_datetime(self, value: datetime) -> int:
        """An aware datetime -> its instant (whole seconds)."""
        return int(value.timestamp())

    def local_instant(self, naive: datetime) -> int:
        """A local wall-clock time -> its instant, by the rule the tap and mapper share."""
        return int(local_to_utc(naive, self._tz).timestamp())

    def local_date(self, ts: int) -> date:
        """The local calendar day of an instant."""
        return date.fromordinal(_EPOCH_ORDINAL + (ts + self._offset_at(ts)) // 86_400)

    def epoch(self, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
        """A local wall-clock time -> its instant."""
        return self.local_instant(datetime(year, month, day, hour, minute))

    def _offset_at(self, ts: int) -> int:
        """UTC offset (seconds) in force at an instant, cached per quarter hour."""
        q = ts // 900  # offsets change on quarter hours at most
        off = self._offsets.get(q)
        if off is None:
            if len(self._offsets) > _CACHE_LIMIT:
                self._offsets.clear()
            delta = datetime.fromtimestamp(q * 900, self._tz).utcoffset()
            self._offsets[q] = off = int(delta.total_seconds()) if delta else 0
        return off

    def _day(self, days: int) -> tuple[int, int, int]:
        if len(self._days) > _CACHE_LIMIT:
            self._days.clear()
        d = date.fromordinal(_EPOCH_ORDINAL + days)
        self._days[days] = ymd = (d.year, d.month, d.day)
        return ymd


def render_date(value: date) -> str:
    """Date-only fields are always DD-MM-YYYY."""
    return f"{value.day:02d}-{value.month:02d}-{value.year:04d}"


_parse_date_only = DateFormat(DATE_ONLY_FORMAT).parse


def parse_date(text: str) -> date:
    """DD-MM-YYYY -> date, with a message naming the expected format."""
    try:
        return t.cast("date", _parse_date_only(text))
    except (ValueError, TypeError) as exc:
        raise DateFormatError(
            f"{text!r} does not match the date format {DATE_ONLY_FORMAT}"
        ) from exc


def default_now() -> datetime:
    """Default reference time: LOYALTY_NOW when pinned, else today 00:00 UTC (so the data stays
    identical for a whole day)."""
    current = now()
    if os.environ.get(NOW_ENV):
        return current
    return datetime(current.year, current.month, current.day, tzinfo=UTC)
