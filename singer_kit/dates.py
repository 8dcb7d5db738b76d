"""Instants and date formats, one implementation for every tap, mapper and emulator.

*Instants*: Singer's ``start_date``/``end_date`` (ISO 8601, naive = UTC), the pinnable clock
``now()``, and the one rule for reading a local wall-clock time (``local_to_utc``, PEP 495
``fold=0``) that taps, the mapper and the emulators share, so they agree on every value.

*Date formats*: sources and mappings name formats with pendulum tokens (``DD-MM-YYYY``).
``pendulum.from_format``/``format`` re-tokenise the format on every call (~20 µs a value); a
million records cannot afford that. So a format is compiled once into the fastest parser and
renderer that give pendulum's answer:

- parse: fixed-width numeric formats become generated slicing code around the C
  ``fromisoformat`` (the ISO layouts hand the text over unchanged); formats whose tokens all
  have a ``strptime`` twin use ``datetime.strptime``; anything else (ordinals, week days,
  month names) ``pendulum.from_format``;
- render: formats of numeric tokens become one generated f-string over the date's fields;
  anything else ``pendulum.format``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import typing as t
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC
NOW_ENV = "LOYALTY_NOW"


def parse_instant(value: str, field: str) -> dt.datetime:
    """An ISO 8601 date or date-time from config or the command line; naive means UTC.

    Singer's ``start_date``/``end_date`` convention, shared by the taps and ``loyalty backfill``.
    """
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        msg = f"{field}: {value!r} is not an ISO 8601 date or date-time (e.g. 2025-01-31)"
        raise ValueError(msg) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def now() -> dt.datetime:
    """The current instant (UTC), or the one pinned by ``LOYALTY_NOW`` (ISO 8601; naive = UTC).

    Only default windows read it (a tap's "one year back", the sandbox's reference time), so
    tests and demos can pin the calendar the data is built around; production never sets it.
    """
    pinned = os.environ.get(NOW_ENV)
    if pinned:
        return parse_instant(pinned, NOW_ENV).astimezone(UTC)
    return dt.datetime.now(UTC)


def local_to_utc(naive: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The instant a wall-clock time in ``zone`` denotes, by PEP 495's ``fold=0`` rule.

    A repeated time (the autumn hour) is its first occurrence; a time that does not exist (the
    skipped spring hour) is read with the offset in force before the gap, i.e. moved forward
    by the gap (02:30 on the spring-forward day is 03:30 summer time). One rule for the
    FlexPOS tap, the mapper and the sandbox, so they agree on every value.
    """
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


def localize(naive: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """A local wall-clock time as an aware datetime showing a time that exists (same rule).

    A skipped spring time moves forward by the gap (02:30 becomes 03:30+02:00 in Copenhagen)
    instead of being written as a local time that never happened.
    """
    return local_to_utc(naive, zone).astimezone(zone)


class DateFormatError(ValueError):
    """A format, a time zone or a value that does not fit; the message says which."""


def load_zone(name: str) -> ZoneInfo:
    """Resolve an IANA zone name, with a message a user can act on."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        msg = f"unknown timezone {name!r} (expected an IANA name such as 'Europe/Copenhagen')"
        raise DateFormatError(msg) from exc


Parser = t.Callable[[str], dt.date | dt.datetime]
# (year, month, day, hour, minute, second, microsecond, UTC offset in seconds) -> text
Renderer = t.Callable[[int, int, int, int, int, int, int, int], str]

# pendulum's own token grammar (pendulum.formatting.Formatter._TOKENS), so formats split
# exactly the way pendulum.from_format would: [escaped text], \x, then the tokens.
_TOKEN_RE = re.compile(
    r"\[([^\[]*)\]|\\(.)|"
    r"(Mo|MM?M?M?|Do|DDDo|DD?D?D?|ddd?d?|do?|eo?|E{1,4}|w[o|w]?|W[o|W]?|Qo?|YYYY|YY|Y"
    r"|gg(ggg?)?|GG(GGG?)?|a|A|hh?|HH?|kk?|mm?|ss?|S{1,9}|x|X|zz?|ZZ?|LTS|LT|LL?L?L?)"
)
_OFFSET_TOKENS = frozenset({"Z", "ZZ", "z", "zz", "X", "x"})

# token -> (datetime field, width): the fixed-width parse path.
_FIXED = {
    "YYYY": ("year", 4),
    "MM": ("month", 2),
    "DD": ("day", 2),
    "HH": ("hour", 2),
    "mm": ("minute", 2),
    "ss": ("second", 2),
}
# token -> strptime directive, only where both read exactly the same values.
_STRPTIME = {
    "YYYY": "%Y",
    "YY": "%y",
    "MM": "%m",
    "M": "%m",
    "DD": "%d",
    "D": "%d",
    "HH": "%H",
    "H": "%H",
    "hh": "%I",
    "h": "%I",
    "mm": "%M",
    "m": "%M",
    "ss": "%S",
    "s": "%S",
    "SSSSSS": "%f",
    "SSS": "%f",
    "A": "%p",
    "Z": "%z",
    "ZZ": "%z",
}
# token -> f-string piece over (y, mo, d, h, mi, s, us, off): the render path. Each renders
# exactly what pendulum's format does (YYYY is not zero-padded there either).
_RENDER = {
    "YYYY": "{y}",
    "YY": "{str(y)[2:]}",
    "MM": "{_TWO[mo]}",
    "M": "{mo}",
    "DD": "{_TWO[d]}",
    "D": "{d}",
    "HH": "{_TWO[h]}",
    "H": "{h}",
    "hh": "{_TWO[_H12[h]]}",
    "h": "{_H12[h]}",
    "mm": "{_TWO[mi]}",
    "m": "{mi}",
    "ss": "{_TWO[s]}",
    "s": "{s}",
    "SSS": "{us // 1000:03d}",
    "SSSSSS": "{us:06d}",
    "A": "{_AMPM[h >= 12]}",
    "Z": "{_offset(off, ':')}",
    "ZZ": "{_offset(off, '')}",
}
_TWO = tuple(f"{n:02d}" for n in range(100))
_H12 = tuple((h % 12) or 12 for h in range(24))
_AMPM = ("AM", "PM")


def _offset(seconds: int, sep: str) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}{sep}{minutes:02d}"


def _tokenize(fmt: str) -> list[tuple[str, str]]:
    """Split a pendulum format into ``("tok", token)`` and ``("lit", text)`` parts."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _TOKEN_RE.finditer(fmt):
        if m.start() > pos:
            parts.append(("lit", fmt[pos : m.start()]))
        if m.group(1) is not None:
            parts.append(("lit", m.group(1)))
        elif m.group(2) is not None:
            parts.append(("lit", m.group(2)))
        else:
            parts.append(("tok", m.group(3)))
        pos = m.end()
    if pos < len(fmt):
        parts.append(("lit", fmt[pos:]))
    return parts


def _fixed_width_parser(parts: list[tuple[str, str]]) -> Parser | None:
    """Generate slicing code for an all-numeric fixed-width format, or None.

    The slices are re-assembled into ISO 8601 and handed to the C ``fromisoformat``, which
    validates digits and ranges: ~3x faster than building the date from ``int()`` slices.
    A format laid out as ISO already (``YYYY-MM-DDTHH:mm:ss``) hands the text over unchanged.
    """
    checks: list[str] = []
    fields: dict[str, str] = {}
    pos = 0
    for kind, text in parts:
        if kind == "lit":
            # One character by index: cheaper than a slice (no new string); len is checked first.
            at = str(pos) if len(text) == 1 else f"{pos}:{pos + len(text)}"
            checks.append(f"s[{at}] != {text!r}")
            pos += len(text)
            continue
        spec = _FIXED.get(text)
        if spec is None or spec[0] in fields:
            return None
        name, width = spec
        fields[name] = f"s[{pos}:{pos + width}]"
        pos += width
    if not {"year", "month", "day"} <= fields.keys():
        return None
    iso = [fields["year"], "'-'", fields["month"], "'-'", fields["day"]]
    has_time = "hour" in fields
    if has_time:
        iso += ["'T'", fields["hour"], "':'", fields.get("minute", "'00'")]
        iso += ["':'", fields.get("second", "'00'")]
    elif fields.keys() != {"year", "month", "day"}:
        return None  # minutes without hours: leave it to strptime
    # A date-only format builds a ``date``: cheaper, and what a date cast wants anyway.
    func = "datetime.fromisoformat" if has_time else "date.fromisoformat"
    layout = "".join(text if kind == "lit" else f"<{text}>" for kind, text in parts)
    as_is = layout in ("<YYYY>-<MM>-<DD>", "<YYYY>-<MM>-<DD>T<HH>:<mm>:<ss>")
    as_is = as_is or layout == "<YYYY>-<MM>-<DD> <HH>:<mm>:<ss>"  # fromisoformat takes " " too
    arg = "s" if as_is else " + ".join(iso)
    cond = " or ".join([f"len(s) != {pos}", *checks])
    src = f"def parse(s):\n    if {cond}:\n        raise ValueError\n    return {func}({arg})\n"
    namespace: dict[str, t.Any] = {"datetime": dt.datetime, "date": dt.date}
    exec(compile(src, "<singer_kit.dates>", "exec"), namespace)  # generated from _FIXED only
    return t.cast("Parser", namespace["parse"])


def _strptime_pattern(parts: list[tuple[str, str]]) -> str | None:
    """Translate to a strptime pattern when every token has an exact twin."""
    out: list[str] = []
    for kind, text in parts:
        if kind == "lit":
            out.append(text.replace("%", "%%"))
        else:
            pattern = _STRPTIME.get(text)
            if pattern is None:
                return None
            out.append(pattern)
    return "".join(out)


def _parser(fmt: str, parts: list[tuple[str, str]]) -> Parser:
    fixed = _fixed_width_parser(parts)
    if fixed is not None:
        return fixed
    pattern = _strptime_pattern(parts)
    if pattern is not None:
        strptime = dt.datetime.strptime

        def parse_strptime(s: str) -> dt.datetime:
            return strptime(s, pattern)

        return parse_strptime

    def parse_pendulum(s: str) -> dt.datetime:
        import pendulum  # lazily: only exotic formats need it, and it costs startup time

        # tz=None keeps a value without offset naive: pendulum would read a repeated autumn
        # time as its second occurrence, unlike ``local_to_utc``.
        p = pendulum.from_format(s, fmt, tz=None)
        # A plain datetime: pendulum's own astimezone has its own DST rule as well.
        return dt.datetime(
            p.year, p.month, p.day, p.hour, p.minute, p.second, p.microsecond, tzinfo=p.tzinfo
        )

    return parse_pendulum


def _renderer(parts: list[tuple[str, str]]) -> Renderer | None:
    """One generated f-string for a format of numeric tokens, or None (pendulum renders it)."""
    pieces: list[str] = []
    for kind, text in parts:
        if kind == "lit":
            pieces.append(text.replace("{", "{{").replace("}", "}}"))
        elif text in _RENDER:
            pieces.append(_RENDER[text])
        else:
            return None
    body = "".join(pieces)
    src = f"lambda y, mo, d, h, mi, s, us, off: f{body!r}"
    namespace = {"_TWO": _TWO, "_H12": _H12, "_AMPM": _AMPM, "_offset": _offset}
    return t.cast("Renderer", eval(src, namespace))  # generated from _RENDER only


class DateFormat:
    """One pendulum-token format, compiled once: ``parse`` text, ``format`` datetimes.

    ``parse`` returns a ``date`` for a date-only fixed-width format, else a ``datetime`` (naive
    unless the format carries an offset), and raises ValueError on a value that does not fit.
    ``render`` is the fast renderer over a date's fields, or None when only pendulum can.
    """

    def __init__(self, fmt: str) -> None:
        parts = _tokenize(fmt)
        self.fmt = fmt
        self.tokens = frozenset(text for kind, text in parts if kind == "tok")
        self.has_offset = bool(self.tokens & _OFFSET_TOKENS)
        self.parse: Parser = _parser(fmt, parts)
        self.render: Renderer | None = _renderer(parts)

    def format(self, moment: dt.datetime) -> str:
        """Render a datetime (as the wall-clock time it shows) in this format."""
        render = self.render
        if render is None:
            import pendulum  # lazily, see _parser

            return pendulum.instance(moment).format(self.fmt)
        offset = moment.utcoffset()
        return render(
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            moment.microsecond,
            int(offset.total_seconds()) if offset is not None else 0,
        )


def compile_format(fmt: str) -> Parser:
    """The compiled parser of a format for date values, refusing one without a year or month.

    See DateFormat.parse for what it returns; the caller localises a naive result.
    """
    date_format = DateFormat(fmt)
    tokens = date_format.tokens
    if not tokens & {"X", "x"}:
        if not tokens & {"YYYY", "YY", "Y"}:
            raise DateFormatError(
                f"date format {fmt!r} has no year (use pendulum tokens: DD-MM-YYYY)"
            )
        if not tokens & {"M", "MM", "MMM", "MMMM", "Mo", "DDD", "DDDD"}:
            raise DateFormatError(
                f"date format {fmt!r} has no month (use pendulum tokens: DD-MM-YYYY)"
            )
    return date_format.parse


_ISO_HOUR_KEY = {"YYYY-MM-DDTHH:mm:ss": 13, "YYYY-MM-DD HH:mm:ss": 13}
_OFFSET_CACHE_MAX = 100_000
_MISSING = object()
# Every valid ":mm:ss" tail of an ISO layout: a set lookup checks minutes and seconds as
# exactly as ``fromisoformat`` does, without parsing.
_MINUTE_SECONDS = frozenset(f":{m:02d}:{s:02d}" for m in range(60) for s in range(60))
_HOUR = dt.timedelta(hours=1)


class TimestampCodec:
    """A source's local timestamps (a format in a zone) to UTC ISO 8601, and back for filters.

    A tap emits UTC ISO 8601 with an explicit ``+00:00``: singer-sdk compares bookmarks as
    strings, and only one fixed offset keeps string order equal to time order across
    daylight-saving changes. A value without an offset is local time, read by ``local_to_utc``.
    """

    def __init__(self, fmt: str, timezone: str) -> None:
        """Compile ``fmt`` once; per-value work is then minimal."""
        self.fmt = fmt
        self.zone = load_zone(timezone)
        self._format = DateFormat(fmt)
        self._parse = self._format.parse
        self._hour_key = _ISO_HOUR_KEY.get(fmt)
        # local "YYYY-MM-DD" -> the offset of the whole local day (None: it changes that day)
        self._days: dict[str, t.Any] = {}
        # local "YYYY-MM-DDTHH" (a valid one) -> its UTC "YYYY-MM-DDTHH", or None: exact path
        self._hours: dict[str, str | None] = {}
        # Fail at startup, not on the first record, if pendulum cannot render the format.
        self.format_filter(dt.datetime(2000, 1, 2, 3, 4, 5, tzinfo=UTC))

    def parse(self, value: str) -> dt.datetime:
        """Parse a timestamp as it is written (naive unless the format has an offset)."""
        try:
            parsed = self._parse(value)
        except (ValueError, TypeError) as exc:
            raise DateFormatError(value) from exc
        if type(parsed) is dt.date:  # a date-only format: its midnight
            return dt.datetime(parsed.year, parsed.month, parsed.day)
        return t.cast("dt.datetime", parsed)

    def to_utc(self, value: str) -> dt.datetime:
        """Parse a timestamp (local time unless the format carries an offset) to UTC."""
        parsed = self.parse(value)
        if parsed.tzinfo is None:
            return local_to_utc(parsed, self.zone)
        return parsed.astimezone(UTC)

    def _steady_offset(self, start: dt.datetime, hours: int) -> dt.timedelta | None:
        """The UTC offset shared by ``hours`` local hours from ``start``, or None if it changes.

        Checked at each hour's start and at the last microsecond, with both folds, so a
        daylight-saving change (gap or repeated hour) inside the span shows (a zone changes
        its offset at most once an hour); those values take the exact path, ``local_to_utc``.
        """
        zone = self.zone
        moments = [start + n * _HOUR for n in range(hours)]
        moments.append(start + (hours * _HOUR - dt.timedelta(microseconds=1)))
        offsets = {zone.utcoffset(m.replace(fold=fold)) for m in moments for fold in (0, 1)}
        return offsets.pop() if len(offsets) == 1 else None

    def _utc_hour(self, value: str, naive: dt.datetime) -> str | None:
        """The UTC "YYYY-MM-DDTHH" of a valid value's local hour when the hour has one offset of
        whole hours (then minutes and seconds carry over unchanged); None otherwise."""
        start = naive.replace(minute=0, second=0, microsecond=0)
        days = self._days
        offset = days.get(value[:10], _MISSING)
        if offset is _MISSING:
            if len(days) >= _OFFSET_CACHE_MAX:
                days.clear()
            offset = days[value[:10]] = self._steady_offset(start.replace(hour=0), 24)
        if offset is None:  # the day of a change: decide per hour
            offset = self._steady_offset(start, 1)
        if offset is None or offset % _HOUR:
            return None
        return (start - offset).isoformat()[:13]

    def to_iso(self, value: str) -> str:
        """Parse a timestamp and render it as UTC ISO 8601 with offset.

        For the ISO layouts the UTC hour is cached per local hour (when the zone keeps one
        whole-hour offset all that hour and day, checked): a value of a known hour is then
        its UTC hour, its own ``:mm:ss`` (checked against every valid one) and ``+00:00``,
        without parsing. Anything else takes the exact path, ``local_to_utc``.
        """
        key_len = self._hour_key
        if key_len is None:
            return self.to_utc(value).isoformat()
        if type(value) is str:
            utc_hour = self._hours.get(value[:key_len])
            if utc_hour is not None:
                tail = value[key_len:]
                if tail in _MINUTE_SECONDS:
                    return f"{utc_hour}{tail}+00:00"
        try:  # self.parse inlined (no cast call either): an ISO layout parses to a datetime
            naive: dt.datetime = self._parse(value)  # type: ignore[assignment]
        except (ValueError, TypeError) as exc:
            raise DateFormatError(value) from exc
        key = value[:key_len]
        utc_hour = self._hours.get(key, _MISSING)  # type: ignore[arg-type]
        if utc_hour is _MISSING:
            if len(self._hours) >= _OFFSET_CACHE_MAX:
                self._hours.clear()
            utc_hour = self._hours[key] = self._utc_hour(value, naive)
        if utc_hour is None:
            return local_to_utc(naive, self.zone).isoformat()
        return f"{utc_hour}{value[key_len:]}+00:00"

    def latest_iso(self, value: str) -> str:
        """The latest instant ``value`` may denote, as UTC ISO 8601: a repeated autumn time
        read as its second occurrence (``to_iso`` reads the first). An API that orders by
        instant sends the repeated hour's times "backwards"; this tells that from disorder."""
        parsed = self.parse(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.zone, fold=1)
        return parsed.astimezone(UTC).isoformat()

    def format_filter(self, moment: dt.datetime) -> str:
        """Render an aware datetime in the source's own format and zone for a filter value."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return self._format.format(moment.astimezone(self.zone))
