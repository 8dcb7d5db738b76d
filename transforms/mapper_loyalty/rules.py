"""Runtime building blocks of compiled rules: paths, casts, value maps, filters.

Everything here is built once per mapping and then called per record, so each piece is a
small closure specialised at compile time (no YAML, no dict look-ups of options per record).
A value a rule cannot convert raises :class:`RuleFailure`; the runner turns it into a reject.
"""

from __future__ import annotations

import math
import re
import typing as t
from datetime import date, datetime, tzinfo

from singer_kit.dates import Parser, localize

Getter = t.Callable[[t.Any], t.Any]
Convert = t.Callable[[t.Any], t.Any]

REJECTS = "_rejects"  # the output stream of records a rule cannot convert
EXTRA_FIELD = "extra"  # the output field of `unmapped: extra`


class RuleFailure(Exception):
    """A record that one rule cannot convert: the runner rejects it (or stops on_error: fail)."""

    def __init__(self, rule: str, line: int, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.line = line
        self.reason = reason


# --- paths -----------------------------------------------------------------------------------

WILDCARD = "*"
_INDEX = re.compile(r"-?[0-9]+")  # an array index step: cards.0, cards.-1


class Segment(t.NamedTuple):
    """One step of a path: a key, an optional list index, or the ``*`` wildcard."""

    key: str
    index: int | None
    wildcard: bool


def parse_path(path: str, separator: str) -> list[Segment]:
    """Split ``cards.0.Cardnumber`` into segments; raise ValueError on an empty step."""
    segments: list[Segment] = []
    for part in path.split(separator):
        if part == "":
            msg = f"path {path!r} has an empty step (separator {separator!r})"
            raise ValueError(msg)
        if part == WILDCARD:
            segments.append(Segment(part, None, True))
            continue
        # Only plain digits are an index: int() also reads "10_2" (Billetten's permission
        # field) as 102, and " 1" or "+1" as 1.
        index = int(part) if _INDEX.fullmatch(part) else None
        segments.append(Segment(part, index, False))
    return segments


def make_getter(segments: t.Sequence[Segment]) -> Getter:
    """Compile segments into a chain of closures; missing steps give None, never an error.

    A wildcard maps the rest of the path over a list and leaves out missing values, so
    ``cards.*.Cardnumber`` is the list of card numbers that exist. An object where a list
    was expected counts as a one-element list (:func:`one_or_many`).
    """
    if not segments:
        return _identity
    head, rest = segments[0], make_getter(segments[1:])
    last = len(segments) == 1
    key, index = head.key, head.index
    if head.wildcard:

        def get_each(v: t.Any) -> t.Any:
            if type(v) is dict:
                v = [v]
            elif type(v) is not list:
                return None
            values = [rest(x) for x in v] if not last else list(v)
            return [x for x in values if x is not None]

        return get_each

    if last and index is None:

        def get_key(v: t.Any) -> t.Any:
            return v.get(key) if type(v) is dict else None

        return get_key

    def get_step(v: t.Any) -> t.Any:
        if index is not None:
            v = step_index(v, key, index)
        elif type(v) is dict:
            v = v.get(key)
        else:
            return None
        return v if v is None or last else rest(v)

    return get_step


def step_index(v: t.Any, key: str, index: int) -> t.Any:
    """One numeric step (``cards.0``): a list's element; on an object, its key of that name
    if it has one, else the object itself as a one-element list's element (index 0 or -1).

    One rule for both shapes a source may send (the FlexPOS guide shows ``cards`` as one
    object, the emulator and other APIs send an array): ``cards.0.Cardnumber`` reads the
    first card of either, where a stricter path would give a silent null for one of them.
    """
    if type(v) is list:
        return v[index] if -len(v) <= index < len(v) else None
    if type(v) is dict:
        if key in v:
            return v[key]
        return v if index in (0, -1) else None
    return None


def _identity(v: t.Any) -> t.Any:
    return v


# --- casts -----------------------------------------------------------------------------------

CAST_TYPES = ("string", "integer", "number", "boolean", "date", "datetime")

_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def _show(v: t.Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def to_string(v: t.Any) -> str:
    """Cast scalars to text; JSON booleans become ``true``/``false``."""
    tv = type(v)
    if tv is str:
        return v  # type: ignore[no-any-return]
    if tv is bool:
        return "true" if v else "false"
    if tv is int:
        return str(v)
    if tv is float:
        return str(int(v)) if v.is_integer() else repr(v)
    raise ValueError(f"cannot cast {type(v).__name__} {_show(v)} to string")


def to_integer(v: t.Any) -> int:
    """Cast to int; a fractional number is an error, not silently truncated."""
    tv = type(v)
    if tv is int:
        return v  # type: ignore[no-any-return]
    if tv is bool:
        return int(v)
    if tv is str:
        try:
            return int(v)
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                raise ValueError(f"not an integer: {_show(v)}") from None
            v = f
            tv = float
    if tv is float and math.isfinite(v) and v.is_integer():
        return int(v)
    raise ValueError(f"not an integer: {_show(v)}")


def to_number(v: t.Any) -> int | float:
    """Cast to a JSON number; NaN and infinities are not numbers in JSON."""
    tv = type(v)
    if tv is int or tv is float:
        if tv is float and not math.isfinite(v):
            raise ValueError(f"not a finite number: {_show(v)}")
        return v  # type: ignore[no-any-return]
    if tv is str:
        try:
            f = float(v)
        except ValueError:
            raise ValueError(f"not a number: {_show(v)}") from None
        if not math.isfinite(f):
            raise ValueError(f"not a finite number: {_show(v)}")
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    raise ValueError(f"not a number: {_show(v)}")


def to_boolean(v: t.Any) -> bool:
    """Cast 0/1, true/false, yes/no (any case) to a boolean."""
    tv = type(v)
    if tv is bool:
        return v  # type: ignore[no-any-return]
    if tv is int and v in (0, 1):
        return bool(v)
    if tv is str:
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    raise ValueError(f"not a boolean: {_show(v)}")


def _parse_iso(v: str) -> datetime:
    try:
        return datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {_show(v)}") from None


def make_date_cast(parser: Parser | None, fmt: str | None) -> Convert:
    """Cast to an ISO date ``YYYY-MM-DD``, parsing text with the compiled format if given."""

    def to_date(v: t.Any) -> str:
        if type(v) is not str:
            raise ValueError(f"cannot read a date from {type(v).__name__} {_show(v)}")
        if parser is not None:
            try:
                parsed = parser(v)
                return (parsed if type(parsed) is date else parsed.date()).isoformat()  # type: ignore[union-attr]
            except ValueError:
                raise ValueError(f"{_show(v)} does not match date format {fmt}") from None
        if len(v) == 10:
            try:
                return date.fromisoformat(v).isoformat()
            except ValueError:
                pass
        return _parse_iso(v).date().isoformat()

    return to_date


def make_datetime_cast(parser: Parser | None, fmt: str | None, tz: tzinfo) -> Convert:
    """Cast to ISO 8601 with its zone; a value without a zone gets the mapping's timezone."""

    def to_datetime(v: t.Any) -> str:
        if type(v) is not str:
            raise ValueError(f"cannot read a date-time from {type(v).__name__} {_show(v)}")
        if parser is not None:
            try:
                parsed = parser(v)
            except ValueError:
                raise ValueError(f"{_show(v)} does not match date format {fmt}") from None
            dt = (
                parsed
                if isinstance(parsed, datetime)
                else datetime(parsed.year, parsed.month, parsed.day)
            )
        else:
            dt = _parse_iso(v)
            # Already canonical (what taps send): the text is its own isoformat(), which
            # costs ~5x the parse, so the validated input goes out as it came.
            if (
                len(v) == 25
                and v[10] == "T"
                and v[13] == ":"
                and v[16] == ":"
                and v[22] == ":"
                and v[19] in "+-"
                and v[19:] != "-00:00"
            ):
                return v
        if dt.tzinfo is None:
            dt = localize(dt, tz)
        return dt.isoformat()

    return to_datetime


SIMPLE_CASTS: dict[str, Convert] = {
    "string": to_string,
    "integer": to_integer,
    "number": to_number,
    "boolean": to_boolean,
}

# JSON type of the source value -> casts that can apply to it (checked against the catalog).
CASTS_FROM: dict[str, frozenset[str]] = {
    "string": frozenset(CAST_TYPES),
    "integer": frozenset({"string", "integer", "number", "boolean"}),
    "number": frozenset({"string", "integer", "number"}),
    "boolean": frozenset({"string", "integer", "boolean"}),
    "object": frozenset(),
    "array": frozenset(),
    "null": frozenset(CAST_TYPES),
}


def cast_schema(cast: str) -> dict[str, t.Any]:
    """The JSON schema (without null) a cast produces."""
    if cast == "date":
        return {"type": ["string"], "format": "date"}
    if cast == "datetime":
        return {"type": ["string"], "format": "date-time"}
    return {"type": [cast]}


def literal_type(v: t.Any) -> str:
    """JSON type name of a YAML literal."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def template_text(v: t.Any) -> str:
    """Text of a value inside a template (ids are built from ints and GUIDs)."""
    if type(v) is str:
        return v  # type: ignore[no-any-return]
    return to_string(v)
