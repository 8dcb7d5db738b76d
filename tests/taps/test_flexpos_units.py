"""Small unit tests for tap-flexpos: timestamp codec and paging logic (no emulator needed)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
import requests

from singer_kit.dates import DateFormatError, TimestampCodec
from singer_kit.http.client import RetryPolicy
from singer_kit.redact import Redactor
from tap_flexpos.client import FlexposAPI, FlexposError


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        # Summer (CEST, +02:00) and winter (CET, +01:00) in the default format.
        ("YYYY-MM-DDTHH:mm:ss", "2026-07-01T12:00:00", "2026-07-01T10:00:00+00:00"),
        ("YYYY-MM-DDTHH:mm:ss", "2026-01-01T12:00:00", "2026-01-01T11:00:00+00:00"),
        ("YYYY-MM-DD HH:mm:ss", "2026-01-01 00:30:00", "2025-12-31T23:30:00+00:00"),
        # strptime path and pendulum fallback give the same instant.
        ("DD.MM.YYYY HH:mm", "01.07.2026 12:00", "2026-07-01T10:00:00+00:00"),
        ("D MMMM YYYY, HH:mm", "1 July 2026, 12:00", "2026-07-01T10:00:00+00:00"),
    ],
)
def test_codec_converts_local_time_to_utc_iso(fmt, value, expected):
    codec = TimestampCodec(fmt, "Europe/Copenhagen")
    assert codec.to_iso(value) == expected


@pytest.mark.parametrize("fmt", ["YYYY-MM-DDTHH:mm:ss", "DD.MM.YYYY HH:mm", "D MMMM YYYY, HH:mm"])
def test_codec_round_trips_filter_values(fmt):
    codec = TimestampCodec(fmt, "Europe/Copenhagen")
    moment = dt.datetime(2026, 3, 1, 8, 15, tzinfo=dt.UTC)
    assert codec.to_utc(codec.format_filter(moment)) == moment


@pytest.mark.parametrize(
    "value", ["2026-07-01 12:00:00", "2026-07-01T12:00", "2026-13-01T12:00:00", "01-07-2026"]
)
def test_codec_rejects_values_that_do_not_match_the_format(value):
    codec = TimestampCodec("YYYY-MM-DDTHH:mm:ss", "Europe/Copenhagen")
    with pytest.raises(DateFormatError):
        codec.to_iso(value)


# The rule shared with the mapper and the sandbox (PEP 495 fold=0): a skipped spring time is
# read with the offset before the change (+01:00), a repeated autumn time is its first, summer
# (+02:00) occurrence.
DST_CASES = [
    ((2026, 3, 29, 1, 59, 59), "2026-03-29T00:59:59+00:00"),
    ((2026, 3, 29, 2, 0, 0), "2026-03-29T01:00:00+00:00"),
    ((2026, 3, 29, 2, 21, 34), "2026-03-29T01:21:34+00:00"),
    ((2026, 3, 29, 3, 0, 0), "2026-03-29T01:00:00+00:00"),
    ((2026, 10, 25, 1, 59, 59), "2026-10-24T23:59:59+00:00"),
    ((2026, 10, 25, 2, 30, 0), "2026-10-25T00:30:00+00:00"),
    ((2026, 10, 25, 3, 0, 0), "2026-10-25T02:00:00+00:00"),
]


@pytest.mark.parametrize(("local", "expected"), DST_CASES)
@pytest.mark.parametrize(
    ("fmt", "render"),
    [
        ("YYYY-MM-DDTHH:mm:ss", "{:%Y-%m-%dT%H:%M:%S}"),  # fast path with the per-hour cache
        ("DD.MM.YYYY HH:mm:ss", "{:%d.%m.%Y %H:%M:%S}"),  # strptime path
        ("dddd YYYY-MM-DD HH:mm:ss", "{:%A %Y-%m-%d %H:%M:%S}"),  # pendulum path
    ],
)
def test_codec_reads_the_dst_gap_and_the_repeated_hour_by_the_shared_rule(
    fmt, render, local, expected
):
    codec = TimestampCodec(fmt, "Europe/Copenhagen")
    value = render.format(dt.datetime(*local))
    codec.to_iso(value.replace("01:59:59", "01:00:00"))  # warm the hour cache of a neighbour
    assert codec.to_iso(value) == expected
    assert codec.to_utc(value).isoformat() == expected


def test_unknown_timezone_is_a_clear_error():
    with pytest.raises(DateFormatError, match="unknown timezone 'Mars/Olympus'"):
        TimestampCodec("YYYY-MM-DDTHH:mm:ss", "Mars/Olympus")


class _FakeAuth:
    client_id = "cid"

    def header(self) -> str:
        return "Bearer t"

    def relogin(self) -> None:  # pragma: no cover - not reached in these tests
        raise AssertionError


class _OrderedApiSession(requests.Session):
    """Serves items ordered by (ModifiedDate, Uid) like the contract; can mutate mid-run."""

    def __init__(self, items: list[dict], mutate_after: int | None = None) -> None:
        super().__init__()
        self.items = items
        self.calls = 0
        self.mutate_after = mutate_after

    def request(self, method, url, **kwargs):
        self.calls += 1
        if self.mutate_after is not None and self.calls == self.mutate_after + 1:
            # Another system modifies an early record: it moves to the end of the order.
            self.items[0] = {**self.items[0], "ModifiedDate": "2026-12-31T00:00:00"}
        params = kwargs["params"]
        lower = params.get("filters[ModifiedDate][$gte]", "")
        rows = sorted(
            (i for i in self.items if i["ModifiedDate"] >= lower),
            key=lambda i: (i["ModifiedDate"], i["Uid"]),
        )
        page = rows[params["offset"] : params["offset"] + params["limit"]]
        response = requests.Response()
        response.status_code = 200
        response._content = msgspec.json.encode({"Items": page})
        response.url = url
        return response


def _api(session: requests.Session, page_size: int) -> FlexposAPI:
    return FlexposAPI(
        label="FlexPOS",
        api_url="http://127.0.0.1:1/pos",
        auth=_FakeAuth(),  # type: ignore[arg-type]
        session=session,
        policy=RetryPolicy(max_retries=0),
        redact=Redactor(),
        page_size=page_size,
    )


def _items(n: int, per_second: int) -> list[dict]:
    return [
        {"Uid": f"u{i:04d}", "ModifiedDate": f"2026-01-01T00:00:{i // per_second:02d}"}
        for i in range(n)
    ]


@pytest.mark.parametrize(("n", "per_second", "page_size"), [(23, 1, 5), (23, 7, 5), (40, 40, 6)])
def test_paging_returns_every_item_once_even_with_timestamp_ties(n, per_second, page_size):
    session = _OrderedApiSession(_items(n, per_second))
    got = [i["Uid"] for i in _api(session, page_size).iter_items("customer", {})]
    assert got == [f"u{i:04d}" for i in range(n)]


def test_paging_never_skips_a_record_when_another_moves_mid_run():
    # Plain offset paging would skip one record here: the modified record leaves the front
    # of the order, shifting every later record one position down.
    session = _OrderedApiSession(_items(20, 1), mutate_after=1)
    got = {i["Uid"] for i in _api(session, 5).iter_items("customer", {})}
    assert got == {f"u{i:04d}" for i in range(20)}


def test_paging_stops_with_a_clear_error_when_the_api_ignores_offset():
    class IgnoresOffset(_OrderedApiSession):
        def request(self, method, url, **kwargs):
            kwargs["params"] = {**kwargs["params"], "offset": 0}
            return super().request(method, url, **kwargs)

    session = IgnoresOffset(_items(12, 12))
    with pytest.raises(FlexposError, match="same page twice"):
        list(_api(session, 5).iter_items("customer", {}))
    assert session.calls == 2


def test_one_relogin_on_401_even_with_zero_retries():
    class ExpiresOnce(_OrderedApiSession):
        def request(self, method, url, **kwargs):
            if self.calls == 0:
                self.calls += 1
                response = requests.Response()
                response.status_code = 401
                response._content = b'{"Message": "Authorization has been denied"}'
                return response
            return super().request(method, url, **kwargs)

    class CountingAuth(_FakeAuth):
        relogins = 0

        def relogin(self) -> None:
            self.relogins += 1

    api = _api(ExpiresOnce(_items(3, 1)), 5)
    api.auth = CountingAuth()  # type: ignore[assignment]
    assert [i["Uid"] for i in api.iter_items("customer", {})] == ["u0000", "u0001", "u0002"]
    assert api.auth.relogins == 1


def test_redactor_scrubs_secrets():
    redact = Redactor()
    redact.add("s3cr3t-value")
    assert redact("login failed for s3cr3t-value at x") == "login failed for *** at x"


def test_bad_record_timestamp_names_stream_uid_field_value_and_format():
    from tap_flexpos.client import FlexposDataError
    from tap_flexpos.tap import TapFlexPOS

    items = [
        {
            "Uid": "good-1",
            "CreatedDate": "2026-01-01T10:00:00",
            "ModifiedDate": "2026-01-02T10:00:00",
        },
        {"Uid": "bad-2", "CreatedDate": "01/01/2026 10:00", "ModifiedDate": "2026-01-03T10:00:00"},
    ]
    tap = TapFlexPOS(
        config={"client_id": "c", "client_secret": "s", "start_date": "2025-01-01"},
        parse_env_config=False,
    )
    tap._apis["pos"] = _api(_OrderedApiSession(items), 500)
    records = tap.streams["customers"].get_records(None)
    first = next(iter(records))
    assert first["ModifiedDate"] == "2026-01-02T09:00:00+00:00"
    with pytest.raises(FlexposDataError) as err:
        next(iter(records))
    assert str(err.value) == (
        "stream customers: record Uid='bad-2' field CreatedDate='01/01/2026 10:00' does not "
        "match date_format 'YYYY-MM-DDTHH:mm:ss' (timezone Europe/Copenhagen); "
        "set date_format to the API's format"
    )
