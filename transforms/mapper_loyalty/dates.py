"""Date parsing compiled once per mapping rule.

Mappings name input date formats with pendulum tokens (``DD-MM-YYYY``), because that is what
the taps' configs use. ``pendulum.from_format`` re-tokenises the format on every call, which
costs ~20 µs a value; a million records cannot afford that. So each format is compiled once,
picking the fastest parser that gives the same answer:

1. fixed-width numeric formats (``DD-MM-YYYY``, ``YYYY-MM-DDTHH:mm:ss``) → generated slicing code;
2. formats whose tokens all have a ``strptime`` twin → ``datetime.strptime``;
3. anything else (ordinals, week days, locale names) → ``pendulum.from_format``.

A value without an offset is local time in the mapping's ``timezone``; ``localize`` reads it by
the rule the FlexPOS tap and the sandbox share (``singer_kit.singer_io.local_to_utc``, PEP 495
``fold=0``).
"""

from __future__ import annotations

import re
import typing as t
from datetime import date, datetime, tzinfo

import pendulum

from singer_kit.singer_io import local_to_utc

Parser = t.Callable[[str], date | datetime]

# pendulum's own token grammar (pendulum.formatting.Formatter._TOKENS), so we split formats
# exactly the way pendulum.from_format would.
_TOKEN_RE = re.compile(
    r"\[([^\[]*)\]|\\(.)|"
    r"(Mo|MM?M?M?|Do|DDDo|DD?D?D?|ddd?d?|do?|eo?|E{1,4}|w[o|w]?|W[o|W]?|Qo?|YYYY|YY|Y"
    r"|gg(ggg?)?|GG(GGG?)?|a|A|hh?|HH?|kk?|mm?|ss?|S{1,9}|x|X|zz?|ZZ?|LTS|LT|LL?L?L?)"
)

# token -> (datetime field, width) for the fixed-width fast path.
_FIXED = {
    "YYYY": ("year", 4),
    "MM": ("month", 2),
    "DD": ("day", 2),
    "HH": ("hour", 2),
    "mm": ("minute", 2),
    "ss": ("second", 2),
}

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
    """
    checks: list[str] = []
    fields: dict[str, str] = {}
    pos = 0
    for kind, text in parts:
        if kind == "lit":
            checks.append(f"s[{pos}:{pos + len(text)}] != {text!r}")
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
    cond = " or ".join([f"len(s) != {pos}", *checks])
    src = (
        f"def parse(s):\n    if {cond}:\n        raise ValueError\n"
        f"    return {func}({' + '.join(iso)})\n"
    )
    namespace: dict[str, t.Any] = {"datetime": datetime, "date": date}
    exec(compile(src, "<mapper_loyalty.dates>", "exec"), namespace)  # generated from _FIXED only
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


def compile_format(fmt: str) -> Parser:
    """Compile a pendulum-token format into the fastest equivalent parser.

    The parser returns a ``date`` for date-only fixed-width formats, else a ``datetime`` (naive
    when the format carries no zone; the caller ``localize``s it in the mapping's timezone),
    and raises ``ValueError`` on a value that does not fit.
    """
    parts = _tokenize(fmt)
    tokens = {text for kind, text in parts if kind == "tok"}
    if not tokens & {"X", "x"}:
        if not tokens & {"YYYY", "YY", "Y"}:
            raise ValueError(f"date format {fmt!r} has no year (use pendulum tokens: DD-MM-YYYY)")
        if not tokens & {"M", "MM", "MMM", "MMMM", "Mo", "DDD", "DDDD"}:
            raise ValueError(f"date format {fmt!r} has no month (use pendulum tokens: DD-MM-YYYY)")
    fixed = _fixed_width_parser(parts)
    if fixed is not None:
        return fixed
    pattern = _strptime_pattern(parts)
    if pattern is not None:
        strptime = datetime.strptime

        def parse_strptime(s: str) -> datetime:
            return strptime(s, pattern)

        return parse_strptime

    def parse_pendulum(s: str) -> datetime:
        # tz=None keeps a value without offset naive: pendulum would read a repeated autumn
        # time as its second occurrence, unlike ``localize`` (and the tap and the sandbox).
        p = pendulum.from_format(s, fmt, tz=None)
        # A plain datetime: pendulum's own astimezone has its own DST rule as well.
        return datetime(
            p.year, p.month, p.day, p.hour, p.minute, p.second, p.microsecond, tzinfo=p.tzinfo
        )

    return parse_pendulum


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """A local wall-clock time in ``tz`` as an aware datetime showing a time that exists.

    A repeated autumn time is its first occurrence; a skipped spring time keeps the offset in
    force before the gap, so it moves forward by the gap (02:30 becomes 03:30+02:00 in
    Copenhagen) instead of being written as a local time that never happened.
    """
    return local_to_utc(naive, tz).astimezone(tz)
