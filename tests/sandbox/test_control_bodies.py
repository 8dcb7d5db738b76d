"""The control API refuses bodies it cannot read instead of applying defaults silently."""

from __future__ import annotations

import pytest
import requests
from sandbox_http_helpers import TIMEOUT


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "rate-limit", b"per_second=5"),
        ("POST", "rate-limit", b"per_second=5"),
        ("POST", "faults", b"path_contains=/customer&status=500"),
        ("POST", "flexpos/expire-tokens", b"include_refresh_tokens=true"),
        ("POST", "flexpos/customers", b"count=3"),
        ("POST", "flexpos/journals", b"count=3"),
    ],
)
def test_a_form_encoded_control_body_is_refused_with_415_and_changes_nothing(
    fresh_sandbox, method, path, body
):
    sb = fresh_sandbox(customers=3, journals=3, tickets=0, memberships=0, rate_limit_per_second=50)
    ctl = f"{sb.flexpos.base_url}/_sandbox"
    before = requests.get(f"{ctl}/", timeout=TIMEOUT).json()
    r = requests.request(
        method,
        f"{ctl}/{path}",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["Message"]
    after = requests.get(f"{ctl}/", timeout=TIMEOUT).json()
    assert after["rate_limit_per_second"] == 50
    assert after["counts"] == before["counts"]
    assert sb.flexpos.faults == []


def test_a_customer_update_sent_as_text_is_refused(fresh_sandbox):
    sb = fresh_sandbox(customers=2, journals=0, tickets=0, memberships=0)
    uid = next(sb.flexpos.data.iter_records("customer"))["Uid"]
    r = requests.patch(
        f"{sb.flexpos.base_url}/_sandbox/flexpos/customers/{uid}",
        data=b'{"City": "Nowhere-415"}',
        headers={"Content-Type": "text/plain"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 415 and "text/plain" in r.json()["Message"]
    assert sb.flexpos.data.get("customer", uid)["City"] != "Nowhere-415"


@pytest.mark.parametrize("body", [b"", b"{}"])
def test_a_rate_limit_write_without_per_second_is_400_and_keeps_the_limit(fresh_sandbox, body):
    sb = fresh_sandbox(customers=1, journals=0, tickets=0, memberships=0, rate_limit_per_second=7)
    r = requests.put(
        f"{sb.flexpos.base_url}/_sandbox/rate-limit",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and "per_second" in r.json()["Message"]
    assert sb.flexpos.rate_limit == 7
