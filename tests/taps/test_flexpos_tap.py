"""End-to-end: the real `tap-flexpos` executable against the FlexPOS emulator.

Expected records are computed from the emulator's own data (`sb.flexpos.data`) with zoneinfo,
independently of the tap's timestamp codec.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import socket
from collections import Counter
from zoneinfo import ZoneInfo

import pendulum
import pytest
from flexpos_harness import _catalog, run_tap

from sandbox.flexpos import ATTRACTION_CLIENT_SECRET, POS_CLIENT_SECRET
from tap_flexpos.streams import load_schema

RESOURCES = {
    "customers": "customer",
    "journals": "journal",
    "tickets": "ticket",
    "memberships": "membership",
}
TS_FIELDS = {"CreatedDate", "ModifiedDate", "Date", "EventDate", "CancelledDate"}
SECRETS = (POS_CLIENT_SECRET, ATTRACTION_CLIENT_SECRET)
SMALL = {"customers": 40, "journals": 30, "tickets": 20, "memberships": 10}


CPH = ZoneInfo("Europe/Copenhagen")


def utc(value: str) -> dt.datetime:
    """The instant an API timestamp (default format) denotes, independent of the tap's codec
    (zoneinfo's fold=0: the rule the tap, mapper and sandbox share, see the tap's README)."""
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=CPH).astimezone(dt.UTC)


def fmt_local(moment: dt.datetime) -> str:
    """An instant as the API's local format (what the tap sends as a filter)."""
    return moment.astimezone(CPH).strftime("%Y-%m-%dT%H:%M:%S")


def config_for(sb, **extra) -> dict:
    env = sb.env()
    start = sb.flexpos.data.now - dt.timedelta(days=365)
    config = {
        "auth_url": env["FLEXPOS_AUTH_URL"],
        "api_url": env["FLEXPOS_API_URL"],
        "client_id": env["FLEXPOS_CLIENT_ID"],
        "client_secret": env["FLEXPOS_CLIENT_SECRET"],
        "attraction_api_url": env["FLEXPOS_ATTRACTION_API_URL"],
        "attraction_client_id": env["FLEXPOS_ATTRACTION_CLIENT_ID"],
        "attraction_client_secret": env["FLEXPOS_ATTRACTION_CLIENT_SECRET"],
        "start_date": start.isoformat(),
        "max_retries": 3,
        "backoff_seconds": 0.05,
        "request_timeout": 10,
    }
    config.update(extra)
    return config


def expected(sb, stream: str, *, start: dt.datetime, end: dt.datetime | None = None, **match):
    """API records of `stream` in API order within [start, end) that match field values."""
    out = []
    for rec in sb.flexpos.data.iter_records(RESOURCES[stream]):
        modified = utc(rec["ModifiedDate"])
        if modified < start or (end is not None and modified >= end):
            continue
        if all(rec[k] == v for k, v in match.items()):
            out.append(rec)
    return out


def start_of(config: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(config["start_date"])


def one_error_line(run) -> str:
    lines = run.error_lines()
    assert len(lines) == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    return lines[0]


def api_requests(sb, fragment: str):
    return [r for r in sb.flexpos.requests if fragment in r.path]


# --- happy path ---------------------------------------------------------------------------


def test_full_run_emits_every_record_with_converted_timestamps(sandbox, tmp_path):
    config = config_for(sandbox)
    run = run_tap(config, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    run.assert_no_secret(*SECRETS)
    for stream in RESOURCES:
        want = expected(sandbox, stream, start=start_of(config))
        assert want, f"emulator has no {stream} in the window"
        assert run.uids(stream) == [r["Uid"] for r in want], stream
        got = {r["Uid"]: r for r in run.records[stream]}
        declared = load_schema(stream)["properties"]
        for api_rec in want:
            rec = got[api_rec["Uid"]]
            for field, value in api_rec.items():
                if field not in declared:  # PreferredStore: kept only when a catalog adds it
                    assert field not in rec, (stream, field)
                elif field in TS_FIELDS and value is not None:
                    assert rec[field].endswith("+00:00"), (stream, field, rec[field])
                    got_at = dt.datetime.fromisoformat(rec[field])
                    assert got_at == utc(value), (stream, field)
                else:
                    assert rec[field] == value, (stream, field)
        bookmark = run.final_state["bookmarks"][stream]["replication_key_value"]
        assert bookmark == got[want[-1]["Uid"]]["ModifiedDate"]
    # Date-only fields stay as the API sends them (DD-MM-YYYY) for the mapping to parse.
    birthdays = [r["Birthday"] for r in run.records["customers"] if r["Birthday"]]
    assert birthdays and all(len(b) == 10 and b[2] == "-" and b[5] == "-" for b in birthdays)
    assert all(r["Lines"] for r in run.records["journals"])


def test_default_window_is_all_customers_and_365_days_of_order_data(dated_sandbox, tmp_path):
    # The sandbox hands its fixed clock to the tap (LOYALTY_NOW), so the order window starts
    # exactly 365 days before the data's "now" on every pinned date (DST changes, leap day);
    # members are read however long ago they changed (the guide: all members by default).
    config = config_for(dated_sandbox)
    del config["start_date"]
    streams = ["customers", "journals", "tickets"]
    run = run_tap(config, tmp_path, streams=streams, env=dated_sandbox.env())
    assert run.returncode == 0, run.stderr[-2000:]
    start = dated_sandbox.flexpos.data.now - dt.timedelta(days=365)
    everyone = expected(dated_sandbox, "customers", start=start - dt.timedelta(days=3650))
    assert run.uids("customers") == [r["Uid"] for r in everyone]
    assert expected(dated_sandbox, "customers", start=start - dt.timedelta(days=3650), end=start)
    for stream in ("journals", "tickets"):
        want = expected(dated_sandbox, stream, start=start)
        assert run.uids(stream) == [r["Uid"] for r in want], stream
    lines = run.stderr.splitlines()
    assert any("customers: ModifiedDate any" in line for line in lines)
    assert any(f"journals: ModifiedDate $gte {fmt_local(start)}" in line for line in lines)


def test_a_bad_loyalty_now_is_one_config_error_line(sandbox, tmp_path):
    config = config_for(sandbox)
    del config["start_date"]
    run = run_tap(config, tmp_path, env={"LOYALTY_NOW": "yesterday"})
    assert run.returncode == 1
    assert "LOYALTY_NOW: 'yesterday' is not an ISO 8601 date" in one_error_line(run)


@pytest.mark.parametrize(
    ("switches", "match"),
    [
        ({"only_active": True}, {"IsActive": True}),
        ({"only_club_members": True}, {"IsClubMember": 1}),
        ({"only_newsletter": True}, {"GetsNewsletter": 1}),
        (
            {"only_active": True, "only_club_members": True, "only_newsletter": True},
            {"IsActive": True, "IsClubMember": 1, "GetsNewsletter": 1},
        ),
    ],
    ids=["active", "club", "newsletter", "all-three"],
)
def test_customer_switches_select_exactly_the_matching_customers(
    sandbox, tmp_path, switches, match
):
    config = config_for(sandbox, **switches)
    run = run_tap(config, tmp_path, streams=["customers"])
    assert run.returncode == 0, run.stderr[-2000:]
    want = expected(sandbox, "customers", start=start_of(config), **match)
    everyone = expected(sandbox, "customers", start=start_of(config))
    assert 0 < len(want) < len(everyone)
    assert run.uids("customers") == [r["Uid"] for r in want]


def test_a_field_the_catalog_declares_is_kept(sandbox, tmp_path):
    # PreferredStore is served but not in the packaged schema: naming it in the catalog is
    # enough (README: Adding a field); without it, it is dropped (the full-run test).
    catalog = _catalog("flexpos", ["customers"], {})
    customers = next(s for s in catalog["streams"] if s["tap_stream_id"] == "customers")
    customers["schema"]["properties"]["PreferredStore"] = {"type": ["string", "null"]}
    path = tmp_path / "my-catalog.json"
    path.write_text(json.dumps(catalog))
    config = config_for(sandbox)
    run = run_tap(config, tmp_path, args=["--catalog", str(path)])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.schemas["customers"]["properties"]["PreferredStore"] == {"type": ["string", "null"]}
    want = {
        r["Uid"]: r["PreferredStore"]
        for r in expected(sandbox, "customers", start=start_of(config))
    }
    got = {r["Uid"]: r["PreferredStore"] for r in run.records["customers"]}
    assert got == want and any(want.values())
    assert "ignoring fields not in the schema" not in run.stderr


def test_deselected_fields_are_not_emitted(sandbox, tmp_path):
    config = config_for(sandbox)
    run = run_tap(config, tmp_path, streams=["customers"], deselect={"customers": ["Email"]})
    assert run.returncode == 0, run.stderr[-2000:]
    want = expected(sandbox, "customers", start=start_of(config))
    assert run.uids("customers") == [r["Uid"] for r in want]
    assert all("Email" not in r and "Mobile" in r for r in run.records["customers"])
    assert "Email" not in run.schemas["customers"]["properties"]


def test_end_date_bounds_the_window(sandbox, tmp_path):
    everyone = expected(sandbox, "journals", start=sandbox.flexpos.data.now - dt.timedelta(365))
    end = utc(everyone[len(everyone) // 2]["ModifiedDate"])
    config = config_for(sandbox, end_date=end.isoformat())
    run = run_tap(config, tmp_path, streams=["journals"])
    assert run.returncode == 0, run.stderr[-2000:]
    want = expected(sandbox, "journals", start=start_of(config), end=end)
    assert 0 < len(want) < len(everyone)
    assert run.uids("journals") == [r["Uid"] for r in want]
    bookmark = run.final_state["bookmarks"]["journals"]["replication_key_value"]
    assert dt.datetime.fromisoformat(bookmark) < end


def test_second_run_with_state_fetches_only_changed_and_new_records(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL)
    config = config_for(sb, page_size=7)
    first = run_tap(config, tmp_path / "first")
    assert first.returncode == 0, first.stderr[-2000:]
    assert len(first.uids("customers")) > 10

    data = sb.flexpos.data
    changed_customer = first.uids("customers")[0]
    data.update_customer(changed_customer, City="Odense C", GetsNewsletter=1)
    new_customers = data.add_customers(2)
    new_journals = data.add_journals(1)
    active = [r for r in first.records["tickets"] if r["Status"] == "Active"]
    cancelled = active[0]["Uid"]
    data.cancel_ticket(cancelled)

    second = run_tap(config, tmp_path / "second", state=first.final_state)
    assert second.returncode == 0, second.stderr[-2000:]
    # `$gte` on the bookmark re-reads the record(s) sharing the bookmark's exact timestamp.
    boundary = {stream: first.uids(stream)[-1] for stream in RESOURCES}
    assert Counter(second.uids("customers")) == Counter(
        [boundary["customers"], changed_customer, *new_customers]
    )
    assert set(second.uids("journals")) == {boundary["journals"], *new_journals}
    assert set(second.uids("tickets")) == {boundary["tickets"], cancelled}
    assert second.uids("memberships") == [boundary["memberships"]]
    changed = next(r for r in second.records["customers"] if r["Uid"] == changed_customer)
    assert changed["City"] == "Odense C"
    ticket = next(r for r in second.records["tickets"] if r["Uid"] == cancelled)
    assert ticket["Status"] == "Cancelled"
    assert dt.datetime.fromisoformat(ticket["CancelledDate"]).tzinfo is not None
    for stream in RESOURCES:
        before = first.final_state["bookmarks"][stream]["replication_key_value"]
        after = second.final_state["bookmarks"][stream]["replication_key_value"]
        assert after >= before


def test_config_from_env_variables(sandbox, tmp_path):
    env = sandbox.env() | {"FLEXPOS_START_DATE": config_for(sandbox)["start_date"]}
    run = run_tap({}, tmp_path, streams=["memberships"], env=env, args=["--config", "ENV"])
    assert run.returncode == 0, run.stderr[-2000:]
    want = expected(sandbox, "memberships", start=start_of(config_for(sandbox)))
    assert run.uids("memberships") == [r["Uid"] for r in want]
    run.assert_no_secret(*SECRETS)


def test_custom_date_format_and_timezone_round_trip(fresh_sandbox, tmp_path):
    fmt = "DD.MM.YYYY HH:mm:ss"
    sb = fresh_sandbox(**SMALL, date_format=fmt, timezone="America/New_York")
    config = config_for(sb, date_format=fmt, timezone="America/New_York")
    run = run_tap(config, tmp_path, streams=["tickets"])
    assert run.returncode == 0, run.stderr[-2000:]
    api = {r["Uid"]: r for r in sb.flexpos.data.iter_records("ticket")}
    assert run.records["tickets"]
    for rec in run.records["tickets"]:
        raw = api[rec["Uid"]]["EventDate"]
        want = pendulum.from_format(raw, fmt, tz="America/New_York").in_timezone("UTC")
        assert dt.datetime.fromisoformat(rec["EventDate"]).timestamp() == want.timestamp()


def test_wrong_date_format_is_a_clear_error(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL, date_format="DD.MM.YYYY HH:mm:ss")
    run = run_tap(config_for(sb), tmp_path, streams=["customers"])
    assert run.returncode == 1
    line = one_error_line(run)
    assert "HTTP 400" in line and "date format" in line and "ModifiedDate" in line
    run.assert_no_secret(*SECRETS)


# --- configuration errors -----------------------------------------------------------------


def test_missing_attraction_credentials(sandbox, tmp_path):
    config = config_for(sandbox)
    for key in ("attraction_api_url", "attraction_client_id", "attraction_client_secret"):
        del config[key]
    run = run_tap(config, tmp_path)
    assert run.returncode == 1
    line = one_error_line(run)
    assert "tickets and memberships need attraction_api_url" in line
    assert "RECORD" not in run.stdout
    ok = run_tap(config, tmp_path, streams=["customers", "journals"])
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.records["customers"] and ok.records["journals"]


def test_invalid_config_values_are_reported_together(tmp_path):
    config = {
        "client_id": "x",
        "client_secret": "never-printed-secret",
        "start_date": "2026-05-01",
        "end_date": "2026-01-01",
        "timezone": "Mars/Olympus",
        "page_size": 900,
    }
    run = run_tap(config, tmp_path)
    assert run.returncode == 1
    line = one_error_line(run)
    for part in ("end_date must be later than start_date", "Mars/Olympus", "page_size"):
        assert part in line
    run.assert_no_secret("never-printed-secret")


# --- faults -------------------------------------------------------------------------------


def test_wrong_credentials(sandbox, tmp_path):
    bad = "wrong-secret-4711"
    run = run_tap(config_for(sandbox, client_secret=bad), tmp_path, streams=["customers"])
    assert run.returncode == 1
    line = one_error_line(run)
    assert "FlexPOS login rejected" in line and "HTTP 401" in line
    assert "check client_id 'sandbox-pos'" in line
    assert "RECORD" not in run.stdout
    run.assert_no_secret(bad, *SECRETS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_url(sandbox, tmp_path):
    dead = f"http://127.0.0.1:{_free_port()}"
    config = config_for(sandbox, auth_url=dead, api_url=f"{dead}/api/v1.0", max_retries=1)
    run = run_tap(config, tmp_path, streams=["customers"])
    assert run.returncode == 1
    line = one_error_line(run)
    assert f"cannot connect to {dead}/api/v2/auth/login" in line
    assert "check that the URL is right" in line
    run.assert_no_secret(*SECRETS)


def test_burst_of_500s_is_retried(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL)
    sb.flexpos.inject_fault("/customer", status=500, times=3)
    config = config_for(sb)
    run = run_tap(config, tmp_path, streams=["customers"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.uids("customers") == [
        r["Uid"] for r in expected(sb, "customers", start=start_of(config))
    ]
    assert [r.status for r in api_requests(sb, "/customer")] == [500, 500, 500, 200]
    run.assert_no_secret(*SECRETS)


def test_persistent_500_fails_cleanly(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL)
    sb.flexpos.inject_fault("/customer", status=500, times=50)
    run = run_tap(config_for(sb, max_retries=2), tmp_path, streams=["customers"])
    assert run.returncode == 1
    line = one_error_line(run)
    assert "FlexPOS GET customer failed after 3 attempts: HTTP 500" in line
    assert sb.flexpos.api_url + "/customer" in line
    assert len(api_requests(sb, "/customer")) == 3
    run.assert_no_secret(*SECRETS)


def test_dropped_connection_and_timeout_are_retried(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL)
    sb.flexpos.inject_fault("/journal", drop=True, times=1)
    sb.flexpos.inject_fault("/journal", delay_seconds=2.0, times=1)
    config = config_for(sb, request_timeout=0.5)
    run = run_tap(config, tmp_path, streams=["journals"])
    assert run.returncode == 0, run.stderr[-2000:]
    want = expected(sb, "journals", start=start_of(config))
    assert run.uids("journals") == [r["Uid"] for r in want]
    # (The held request is logged only when its delay ends, possibly after the tap finished.)
    assert api_requests(sb, "/journal")[0].fault == "drop"
    assert f"connection to {sb.flexpos.api_url}/journal dropped before a response" in run.stderr
    assert "no response from" in run.stderr and "within 0.5s" in run.stderr


def test_malformed_json_page_is_retried_then_reported(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL)
    sb.flexpos.inject_fault("/membership", malformed=True, times=1)
    config = config_for(sb)
    run = run_tap(config, tmp_path, streams=["memberships"])
    assert run.returncode == 0, run.stderr[-2000:]
    want = expected(sb, "memberships", start=start_of(config))
    assert run.uids("memberships") == [r["Uid"] for r in want]

    sb.flexpos.inject_fault("/membership", malformed=True, times=50)
    bad = run_tap(config_for(sb, max_retries=1), tmp_path, streams=["memberships"])
    assert bad.returncode == 1
    line = one_error_line(bad)
    assert "not a JSON object with an 'Items' list after 2 attempts" in line
    bad.assert_no_secret(*SECRETS)


def test_token_expiring_mid_run_triggers_one_relogin(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL, token_ttl_seconds=1)
    # The first page is held longer than the token lives: the API answers 401 mid-run.
    sb.flexpos.inject_fault("offset=", delay_seconds=1.3, times=1)
    config = config_for(sb, page_size=5)
    run = run_tap(config, tmp_path, streams=["customers"])
    assert run.returncode == 0, run.stderr[-2000:]
    want = [r["Uid"] for r in expected(sb, "customers", start=start_of(config))]
    assert sorted(set(run.uids("customers"))) == sorted(want)
    statuses = [r.status for r in api_requests(sb, "/customer")]
    assert statuses.count(401) == 1 and statuses[-1] == 200
    assert len(api_requests(sb, "/auth/api/v2/auth/login")) == 2
    run.assert_no_secret(*SECRETS)


def test_401_after_a_fresh_login_fails_cleanly(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL)
    sb.flexpos.inject_fault("/ticket", status=401, times=10)
    run = run_tap(config_for(sb), tmp_path, streams=["tickets"])
    assert run.returncode == 1
    line = one_error_line(run)
    assert "FlexPOS Attraction GET ticket failed" in line and "even after a fresh login" in line
    assert "check that client 'sandbox-attraction' may read this API" in line
    # Exactly one re-login, not a loop of them.
    assert len(api_requests(sb, "/auth/api/v2/auth/login")) == 2
    assert len(api_requests(sb, "/ticket")) == 2
    run.assert_no_secret(*SECRETS)


def test_token_is_refreshed_before_it_expires(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL, token_ttl_seconds=3)
    # One slow page ages the token past 90% of its life without letting it expire.
    sb.flexpos.inject_fault("offset=", delay_seconds=2.7, times=1)
    config = config_for(sb, page_size=5)
    run = run_tap(config, tmp_path, streams=["customers"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(api_requests(sb, "/auth/api/v2/auth/refresh")) >= 1
    assert len(api_requests(sb, "/auth/api/v2/auth/login")) == 1
    assert 401 not in [r.status for r in api_requests(sb, "/customer")]


def test_rate_limit_429_honours_retry_after(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(**SMALL, rate_limit_per_second=3.0)
    config = config_for(sb, page_size=10, backoff_seconds=0.01, max_retries=2)
    run = run_tap(config, tmp_path, streams=["customers"])
    assert run.returncode == 0, run.stderr[-2000:]
    want = [r["Uid"] for r in expected(sb, "customers", start=start_of(config))]
    assert run.uids("customers") == want
    statuses = [r.status for r in sb.flexpos.requests]
    assert 429 in statuses
    # Waiting the server's Retry-After means the retry succeeds: never two 429s in a row
    # (a client that used its own 10 ms backoff would be refused again).
    assert all(not (a == b == 429) for a, b in itertools.pairwise(statuses))
