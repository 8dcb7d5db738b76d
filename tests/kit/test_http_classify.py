"""Each response classified once: the verdict table every part of the HTTP client reads."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
import requests

from singer_kit.http.classify import (
    Action,
    Malformed,
    classify,
    classify_error,
    json_object,
    json_records,
    retry_after,
)


def _response(status: int, body: bytes = b"{}", headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (200, Action.DONE),
        (204, Action.DONE),
        (429, Action.RETRY),
        (500, Action.RETRY),
        (503, Action.RETRY),
        (401, Action.REAUTH),
        (400, Action.FAIL),
        (403, Action.FAIL),
        (404, Action.FAIL),
        (422, Action.FAIL),
    ],
)
def test_status_verdicts(status, action):
    verdict, _ = classify(_response(status), "http://h/x")
    assert verdict.action is action


def test_a_body_that_must_parse_and_does_not_is_a_retry():
    verdict, value = classify(_response(200, b'{"Items": [tru'), "http://h/x", json_object)
    assert (verdict.action, verdict.malformed, value) == (Action.RETRY, "a JSON object", None)
    verdict, value = classify(_response(200, b'{"a": 1}'), "http://h/x", json_object)
    assert (verdict.action, value) == (Action.DONE, {"a": 1})
    with pytest.raises(Malformed):
        json_object(_response(200, b"[1, 2]"))


def test_json_records_decodes_only_the_named_fields_and_keeps_the_rest_as_json_text():
    body = b'{"Total": 2, "Items": [{"Uid": "a", "Lines": [{"Qty": 1.50}], "Note": null}]}'
    (record,) = json_records(_response(200, body), "Items", ("Uid", "Note"))
    assert record == {"Uid": "a", "Lines": msgspec.Raw(b'[{"Qty": 1.50}]'), "Note": None}
    for bad in (b'{"Items": {"Uid": "a"}}', b'{"Total": 2}', b'{"Items": [1]}', b"[]"):
        with pytest.raises(Malformed, match="'Items' list"):
            json_records(_response(200, bad), "Items", ())


def test_network_errors_are_retried_other_request_errors_fail():
    assert classify_error(requests.Timeout(), "http://h/x", 2).action is Action.RETRY
    assert classify_error(requests.ConnectionError(), "http://h/x", 2).network
    assert classify_error(requests.exceptions.InvalidURL("bad"), "u", 2).action is Action.FAIL


def test_retry_after_reads_seconds_and_http_dates():
    now = dt.datetime(2026, 12, 2, 4, 0, 0, tzinfo=dt.UTC)
    assert retry_after(_response(429, headers={"Retry-After": "7"}), now) == 7.0
    date = {"Retry-After": "Wed, 02 Dec 2026 04:00:30 GMT"}
    assert retry_after(_response(429, headers=date), now) == 30.0
    past = {"Retry-After": "Wed, 02 Dec 2026 03:00:00 GMT"}
    assert retry_after(_response(429, headers=past), now) == 0.0
    assert retry_after(_response(429, headers={"Retry-After": "soon"}), now) is None
    assert retry_after(_response(429), now) is None
    verdict, _ = classify(_response(429, headers={"Retry-After": "3"}), "http://h/x")
    assert verdict.retry_after == 3.0
