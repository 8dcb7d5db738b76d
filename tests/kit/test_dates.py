"""The kit's one date-format compiler: pendulum's answer for every token, both ways, faster.

pendulum is the oracle: a compiled parser must read what ``pendulum.from_format`` reads, a
compiled renderer must write what ``pendulum.format`` writes, whichever path (generated slices,
strptime, generated f-string, pendulum itself) the format took.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pendulum
import pytest

from sandbox.timefmt import TimeFormat
from singer_kit.dates import (
    DateFormat,
    DateFormatError,
    TimestampCodec,
    compile_format,
    load_zone,
    local_to_utc,
    localize,
    parse_instant,
)

CPH = ZoneInfo("Europe/Copenhagen")
MOMENTS = [
    dt.datetime(2026, 7, 1, 0, 5, 7, 123456),  # midnight hour: 12 AM, single-digit fields
    dt.datetime(2024, 2, 29, 12, 0, 0, 0),  # leap day, noon: 12 PM
    dt.datetime(2025, 12, 31, 13, 59, 59, 999000),  # 1 PM, last second of a year
    dt.datetime(1999, 10, 9, 23, 30, 1, 7),
]
ZONES = [dt.UTC, CPH, ZoneInfo("America/St_Johns")]  # +00:00, +01/+02:00, -03:30/-02:30

# Each token in a format of its own kind; together they cover every token the compiler has a
# fast path for, and the fallback ones (names, ordinals, week days, zone names).
RENDER_FORMATS = [
    "YYYY-MM-DDTHH:mm:ss",
    "YY M D H m s",
    "DD.MM.YYYY hh:mm:ss A",
    "h:mm A",
    "YYYY-MM-DD HH:mm:ss.SSS",
    "YYYY-MM-DD HH:mm:ss.SSSSSS",
    "YYYY-MM-DDTHH:mm:ssZ",
    "YYYY-MM-DD HH:mm ZZ",
    "[at] HH:mm [on] DD/MM/YYYY",
    "dddd, Do MMMM YYYY",  # pendulum renders these
    "YYYY-MM-DD HH:mm z",
]


@pytest.mark.parametrize("fmt", RENDER_FORMATS)
@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("naive", MOMENTS, ids=str)
def test_every_token_renders_as_pendulum_does(fmt, zone, naive):
    moment = naive.replace(tzinfo=zone)
    assert DateFormat(fmt).format(moment) == pendulum.instance(moment).format(fmt)


def test_numeric_formats_take_the_generated_renderer():
    assert all(DateFormat(fmt).render is not None for fmt in RENDER_FORMATS[:-2])
    assert DateFormat("dddd YYYY").render is None


PARSE_FORMATS = [
    "YYYY-MM-DDTHH:mm:ss",  # ISO as it is
    "YYYY-MM-DD HH:mm:ss",
    "YYYY-MM-DD",
    "DD-MM-YYYY",  # fixed width, re-assembled
    "DD/MM/YYYY HH:mm",
    "D.M.YY H:m:s",  # strptime
    "DD-MM-YYYY hh:mm A",
    "YYYY-MM-DD HH:mm:ss.SSS",
    "YYYY-MM-DD HH:mm:ss.SSSSSS",
    "YYYY-MM-DDTHH:mm:ssZ",
    "YYYY-MM-DD HH:mm:ss ZZ",
    "[on] YYYY-MM-DD",
    "MMMM D, YYYY",  # pendulum
    "dddd Do MMMM YYYY HH:mm",
    "X",
]


@pytest.mark.parametrize("fmt", PARSE_FORMATS)
@pytest.mark.parametrize("naive", MOMENTS, ids=str)
def test_every_token_parses_as_pendulum_does(fmt, naive):
    moment = pendulum.instance(naive.replace(tzinfo=CPH))
    text = moment.format(fmt)
    ours = compile_format(fmt)(text)
    theirs = pendulum.from_format(text, fmt, tz=None)
    if type(ours) is dt.date:
        assert ours == theirs.date()
    elif theirs.tzinfo is None:
        assert ours.tzinfo is None and ours == theirs.naive()
    else:
        assert ours.tzinfo is not None and ours == theirs


def test_escaped_text_may_hold_token_letters():
    # pendulum.from_format itself fails on this one (its parser re-reads the "D" of "Date").
    assert compile_format("[Date:] YYYY-MM-DD")("Date: 2026-01-02") == dt.date(2026, 1, 2)


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("YYYY-MM-DDTHH:mm:ss", "2026-07-01 12:00:00"),  # ISO accepts " "; the format does not
        ("YYYY-MM-DDTHH:mm:ss", "2026-07-01T12:00"),
        ("YYYY-MM-DDTHH:mm:ss", "2026-07-01T12:00:00+01:00"),
        ("YYYY-MM-DD", "20260701"),  # basic ISO: valid for fromisoformat, not the format
        ("DD-MM-YYYY", "2026-07-01"),
        ("DD-MM-YYYY", "32-01-2026"),
        ("D.M.YY H:m:s", "1.13.26 1:2:3"),
        ("MMMM D, YYYY", "Smarch 1, 2026"),
    ],
)
def test_a_value_that_does_not_fit_is_a_value_error(fmt, value):
    with pytest.raises(ValueError):
        compile_format(fmt)(value)


@pytest.mark.parametrize("fmt", ["DD-MM-YYYY", "D.M.YYYY", "Do MMMM YYYY"])
def test_leap_day_only_in_leap_years(fmt):
    parse = compile_format(fmt)
    assert parse(pendulum.date(2024, 2, 29).format(fmt)) in (
        dt.date(2024, 2, 29),
        dt.datetime(2024, 2, 29),
    )
    with pytest.raises(ValueError):
        parse(pendulum.date(2024, 2, 29).format(fmt).replace("2024", "2023"))


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("abc", "date format 'abc' has no year (use pendulum tokens: DD-MM-YYYY)"),
        ("DD-YYYY", "date format 'DD-YYYY' has no month (use pendulum tokens: DD-MM-YYYY)"),
    ],
)
def test_a_format_without_year_or_month_is_refused_with_one_line(fmt, message):
    with pytest.raises(DateFormatError) as info:
        compile_format(fmt)
    assert str(info.value) == message


def test_unknown_zone_is_one_line():
    with pytest.raises(DateFormatError, match=r"unknown timezone 'Mars/Olympus' .*IANA"):
        load_zone("Mars/Olympus")


# Copenhagen 2026: the clocks skip 02:00-03:00 on 29 March and repeat 02:00-03:00 on 25 October.
DST = [
    ("2026-03-29T01:59:59", "2026-03-29T00:59:59+00:00"),
    ("2026-03-29T02:30:00", "2026-03-29T01:30:00+00:00"),  # skipped: offset before the gap
    ("2026-03-29T03:00:00", "2026-03-29T01:00:00+00:00"),
    ("2026-10-25T01:59:59", "2026-10-24T23:59:59+00:00"),
    ("2026-10-25T02:30:00", "2026-10-25T00:30:00+00:00"),  # repeated: first occurrence
    ("2026-10-25T03:00:00", "2026-10-25T02:00:00+00:00"),
]


@pytest.mark.parametrize(("local", "utc"), DST)
@pytest.mark.parametrize(
    "fmt", ["YYYY-MM-DDTHH:mm:ss", "DD.MM.YYYY HH:mm:ss", "dddd YYYY-MM-DD HH:mm:ss"]
)
def test_tap_mapper_and_emulator_read_the_dst_gap_and_repeated_hour_alike(fmt, local, utc):
    naive = dt.datetime.fromisoformat(local)
    text = pendulum.instance(naive).format(fmt)
    expected = dt.datetime.fromisoformat(utc)
    assert local_to_utc(naive, CPH) == expected
    assert TimestampCodec(fmt, "Europe/Copenhagen").to_iso(text) == utc  # the tap
    parsed = compile_format(fmt)(text)  # the mapper
    assert localize(t_naive(parsed), CPH).astimezone(dt.UTC) == expected
    assert TimeFormat(fmt, "Europe/Copenhagen").parse(text) == expected.timestamp()  # emulator


def t_naive(value: dt.date | dt.datetime) -> dt.datetime:
    assert isinstance(value, dt.datetime) and value.tzinfo is None
    return value


def test_localize_shows_a_time_that_exists():
    shown = localize(dt.datetime(2026, 3, 29, 2, 30), CPH)
    assert shown.isoformat() == "2026-03-29T03:30:00+02:00"


def test_the_repeated_hour_renders_twice_and_latest_reads_the_second():
    codec = TimestampCodec("YYYY-MM-DDTHH:mm:ss", "Europe/Copenhagen")
    first = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)
    second = first + dt.timedelta(hours=1)
    assert codec.format_filter(first) == codec.format_filter(second) == "2026-10-25T02:30:00"
    assert codec.to_iso("2026-10-25T02:30:00") == first.isoformat()
    assert codec.latest_iso("2026-10-25T02:30:00") == second.isoformat()


def test_a_date_only_source_format_is_read_as_local_midnight():
    codec = TimestampCodec("DD-MM-YYYY", "Europe/Copenhagen")
    assert codec.to_iso("29-02-2024") == "2024-02-28T23:00:00+00:00"


def test_instants_naive_means_utc_and_bad_ones_name_the_field():
    assert parse_instant("2026-01-31", "start_date") == dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match=r"^start_date: '31-01-2026' is not an ISO 8601"):
        parse_instant("31-01-2026", "start_date")


# Zones with whole-hour, half-hour and 45-minute offsets, a 30-minute DST change (Lord Howe),
# one west of UTC and one that changes at midnight (Havana): the cached hours must give exactly
# what the exact rule gives.
CACHE_ZONES = [
    "Europe/Copenhagen",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/St_Johns",
    "America/Havana",
]


@pytest.mark.parametrize("zone", CACHE_ZONES)
@pytest.mark.parametrize("fmt", ["YYYY-MM-DDTHH:mm:ss", "YYYY-MM-DD HH:mm:ss"])
def test_cached_hours_give_the_exact_rule_for_every_hour_of_two_years(zone, fmt):
    """Every local hour of 2023-2024 (both DST changes, the leap day), at a few minutes and
    seconds each, converted in a shuffled order so caches warm in any order, equals
    ``local_to_utc``; invalid minutes and seconds still fail once their hour is cached."""
    import random

    codec = TimestampCodec(fmt, zone)
    tz = ZoneInfo(zone)
    sep = fmt[10]
    start = dt.datetime(2023, 1, 1)
    values = [
        start + dt.timedelta(hours=h, minutes=m, seconds=s)
        for h in range(2 * 366 * 24)
        for m, s in ((0, 0), (30, 0), (59, 59))
    ]
    random.Random(12).shuffle(values)
    for naive in values:
        text = naive.isoformat(sep)
        assert codec.to_iso(text) == local_to_utc(naive, tz).isoformat(), text
    for bad in ("2024-02-29T12:60:00", "2024-02-29T12:00:60", "2024-02-29T12:5:00x"):
        with pytest.raises(DateFormatError):
            codec.to_iso(bad.replace("T", sep))
    for not_text in (None, 20240229, ["2024-02-29T12:00:00"]):
        with pytest.raises((DateFormatError, TypeError)):
            codec.to_iso(not_text)  # type: ignore[arg-type]
