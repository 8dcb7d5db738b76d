"""Timestamp conversion between the FlexPOS wire format and ISO 8601.

FlexPOS sends local wall-clock time without an offset in a configurable format (pendulum tokens,
default ``YYYY-MM-DDTHH:mm:ss`` in Europe/Copenhagen). The tap emits UTC ISO 8601 with an explicit
``+00:00`` offset: singer-sdk compares bookmark values as strings, and only a single fixed offset
keeps string order equal to time order across daylight-saving changes.

Parsing is compiled once per format: the default format takes a ``datetime.fromisoformat`` fast
path (guarded by an exact shape check), other common formats a translated ``strptime`` pattern,
and only exotic token sets fall back to ``pendulum.from_format`` per value.

A local time that is repeated (the autumn hour) or skipped (the spring hour) is read by the one
rule of ``singer_kit.singer_io.local_to_utc`` (PEP 495 ``fold=0``), which the mapper and the
sandbox share: the first occurrence, and for a skipped time the offset before the change.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_kit.singer_io import local_to_utc

UTC = dt.UTC

# pendulum token -> strptime directive; the regex tries longer tokens first ("SSSSSS" before "SSS").
_TOKENS: dict[str, str] = {
    "YYYY": "%Y",
    "MM": "%m",
    "DD": "%d",
    "HH": "%H",
    "mm": "%M",
    "ss": "%S",
    "SSSSSS": "%f",
    "SSS": "%f",
    "ZZ": "%z",
    "Z": "%z",
}
_TOKEN_RE = re.compile(r"\[[^\]]*\]|YYYY|SSSSSS|SSS|MM|DD|HH|mm|ss|ZZ|Z|[A-Za-z]")
# Letters pendulum reads as (parts of) tokens; any other letter, like the "T", is a literal.
_PENDULUM_LETTERS = set("MDdEeWwQYgGaAhHkmsSxXzZLl")
_ISO_SHAPES = {"YYYY-MM-DDTHH:mm:ss": "T", "YYYY-MM-DD HH:mm:ss": " "}
_OFFSET_CACHE_MAX = 100_000
_MISSING = object()


class DateFormatError(ValueError):
    """A value does not match the configured date format."""


def _to_strptime(fmt: str) -> str | None:
    """Translate a pendulum format into a strptime pattern, or None if not translatable."""
    out: list[str] = []
    pos = 0
    for match in _TOKEN_RE.finditer(fmt):
        out.append(fmt[pos : match.start()].replace("%", "%%"))
        tok = match.group(0)
        if tok.startswith("["):
            out.append(tok[1:-1].replace("%", "%%"))
        elif tok in _TOKENS:
            out.append(_TOKENS[tok])
        elif tok in _PENDULUM_LETTERS:
            return None
        else:
            out.append(tok)
        pos = match.end()
    out.append(fmt[pos:].replace("%", "%%"))
    return "".join(out)


def _directives(pattern: str) -> set[str]:
    return set(re.findall(r"%.", pattern))


def load_zone(name: str) -> ZoneInfo:
    """Resolve an IANA zone name, with a message a user can act on."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"unknown timezone {name!r} (expected an IANA name such as 'Europe/Copenhagen')"
        raise DateFormatError(msg) from exc


class TimestampCodec:
    """Parse API timestamps to UTC ISO strings and format datetimes for API filters."""

    def __init__(self, fmt: str, timezone: str) -> None:
        """Compile the parser for ``fmt`` once; per-value work is then minimal."""
        self.fmt = fmt
        self.zone = load_zone(timezone)
        self._iso_sep = _ISO_SHAPES.get(fmt)
        self._strptime = None if self._iso_sep else _to_strptime(fmt)
        # Filters render through strftime when it matches pendulum exactly (no %z: "+0100" vs
        # "+01:00"; no %f: 6 digits vs "SSS"); pendulum is imported only for other formats.
        pattern = _to_strptime(fmt)
        self._strftime = pattern if pattern and not {"%z", "%f"} & _directives(pattern) else None
        self._offsets: dict[str, t.Any] = {}
        self.parse: t.Callable[[str], dt.datetime] = self._pick_parser()
        # Fail at startup, not on the first record, if pendulum cannot render the format.
        self.format_filter(dt.datetime(2000, 1, 2, 3, 4, 5, tzinfo=UTC))

    def _pick_parser(self) -> t.Callable[[str], dt.datetime]:
        if self._iso_sep is not None:
            return self._parse_iso
        if self._strptime is not None:
            return self._parse_strptime
        return self._parse_pendulum

    def _parse_iso(self, value: str) -> dt.datetime:
        # fromisoformat accepts many shapes; the shape check makes it exactly the format.
        if (
            len(value) != 19
            or value[10] != self._iso_sep
            or value[4] != "-"
            or value[7] != "-"
            or value[13] != ":"
            or value[16] != ":"
        ):
            raise DateFormatError(value)
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise DateFormatError(value) from exc

    def _parse_strptime(self, value: str) -> dt.datetime:
        try:
            return dt.datetime.strptime(value, self._strptime)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            raise DateFormatError(value) from exc

    def _parse_pendulum(self, value: str) -> dt.datetime:
        import pendulum  # lazily: only exotic formats need it, and it costs startup time

        try:
            parsed = pendulum.from_format(value, self.fmt, tz=None)
        except (ValueError, TypeError) as exc:
            raise DateFormatError(value) from exc
        return dt.datetime(
            parsed.year,
            parsed.month,
            parsed.day,
            parsed.hour,
            parsed.minute,
            parsed.second,
            parsed.microsecond,
            tzinfo=parsed.tzinfo,
        )

    def to_utc(self, value: str) -> dt.datetime:
        """Parse an API timestamp (local time unless the format carries an offset) to UTC."""
        parsed = self.parse(value)
        if parsed.tzinfo is None:
            return local_to_utc(parsed, self.zone)
        return parsed.astimezone(UTC)

    def _hour_offset(self, naive: dt.datetime) -> dt.timedelta | None:
        """The UTC offset shared by the whole local hour of ``naive``, or None if it changes.

        None when a daylight-saving change (gap or repeated hour) touches the hour; those
        values take the exact path, ``local_to_utc``.
        """
        start = naive.replace(minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(minutes=59, seconds=59, microseconds=999_999)
        zone = self.zone
        offsets = {
            zone.utcoffset(moment.replace(fold=fold)) for moment in (start, end) for fold in (0, 1)
        }
        return offsets.pop() if len(offsets) == 1 else None

    def to_iso(self, value: str) -> str:
        """Parse an API timestamp and render it as UTC ISO 8601 with offset.

        On the ISO fast path the zone offset is cached per local hour (checked to be the same
        for the whole hour); the zoneinfo lookup is otherwise the bulk of the per-value cost.
        """
        if self._iso_sep is None:
            return self.to_utc(value).isoformat()
        naive = self._parse_iso(value)
        key = value[:13]
        offset = self._offsets.get(key, _MISSING)
        if offset is _MISSING:
            if len(self._offsets) >= _OFFSET_CACHE_MAX:
                self._offsets.clear()
            offset = self._offsets[key] = self._hour_offset(naive)
        if offset is None:
            return local_to_utc(naive, self.zone).isoformat()
        return (naive - offset).isoformat() + "+00:00"

    def latest_iso(self, value: str) -> str:
        """The latest instant ``value`` may denote, as UTC ISO 8601: a repeated autumn time
        read as its second occurrence (``to_iso`` reads the first). An API that orders by
        instant sends the repeated hour's times "backwards"; this tells that from disorder."""
        parsed = self.parse(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.zone, fold=1)
        return parsed.astimezone(UTC).isoformat()

    def format_filter(self, moment: dt.datetime) -> str:
        """Render an aware datetime in the API's own format and timezone for a filter value."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        local = moment.astimezone(self.zone)
        if self._strftime is not None:
            return local.strftime(self._strftime)
        import pendulum  # lazily, see _parse_pendulum

        return pendulum.instance(local).format(self.fmt)
