"""The login's audience and scopes are settings of their own, and a wrong one fails clearly."""

from __future__ import annotations

import pytest
from flexpos_harness import run_tap
from test_flexpos_tap import SECRETS, config_for, one_error_line


def logins(sb) -> list[dict[str, str]]:
    return [r.query for r in sb.flexpos.requests if r.path.endswith("/auth/login")]


def test_the_default_audience_is_the_contracts_not_the_api_url(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(customers=20, journals=0, tickets=10, memberships=0)
    run = run_tap(config_for(sb), tmp_path, streams=["customers", "tickets"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.records["customers"] and run.records["tickets"]
    sent = [q["audience"] for q in logins(sb)]
    assert len(sent) == 2 and set(sent) == {"https://api.flexpos.com"}


@pytest.mark.parametrize(
    ("setting", "stream", "api"),
    [("audience", "customers", "FlexPOS"), ("attraction_audience", "tickets", "Attraction")],
)
def test_a_wrong_audience_fails_with_one_line_naming_it(sandbox, tmp_path, setting, stream, api):
    wrong = "https://api.example.com"
    run = run_tap(config_for(sandbox, **{setting: wrong}), tmp_path, streams=[stream])
    assert run.returncode == 1
    line = one_error_line(run)
    assert api in line and "HTTP 401" in line and f"audience {wrong!r}" in line
    assert stream not in run.records
    run.assert_no_secret(*SECRETS)


@pytest.mark.parametrize(
    ("setting", "value", "stream", "needed"),
    [
        ("scope", "customer:read", "journals", "journal:read"),
        ("attraction_scope", "ticket:read", "memberships", "membership:read"),
    ],
)
def test_a_scope_without_the_streams_scope_fails_with_403_naming_it(
    sandbox, tmp_path, setting, value, stream, needed
):
    run = run_tap(config_for(sandbox, **{setting: value}), tmp_path, streams=[stream])
    assert run.returncode == 1
    line = one_error_line(run)
    assert "HTTP 403" in line and needed in line and "scope setting" in line
    assert stream not in run.records
