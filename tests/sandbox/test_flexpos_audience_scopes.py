"""A token asked for the wrong audience, or without a resource's scope, cannot read it."""

from __future__ import annotations

import pytest
import requests
from sandbox_http_helpers import TIMEOUT, url

from sandbox.flexpos import AUDIENCE, DENIED


def token(sb, *, audience: str | None, scope: str, which: str = "pos") -> str:
    env = sb.env()
    prefix = "FLEXPOS_" if which == "pos" else "FLEXPOS_ATTRACTION_"
    r = requests.post(
        f"{env['FLEXPOS_AUTH_URL']}/api/v2/auth/login",
        params={} if audience is None else {"audience": audience},
        auth=(env[f"{prefix}CLIENT_ID"], env[f"{prefix}CLIENT_SECRET"]),
        data={"scope": scope},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def get(sb, resource: str, access: str) -> requests.Response:
    return requests.get(
        url(sb, resource), headers={"Authorization": f"Bearer {access}"}, timeout=TIMEOUT
    )


@pytest.mark.parametrize(
    "audience", [None, "http://127.0.0.1/pos/api/v1.0", "https://api.flexpos.com/api/v1.0"]
)
def test_a_token_for_another_audience_gets_401(sandbox, audience):
    access = token(sandbox, audience=audience, scope="customer:read journal:read")
    r = get(sandbox, "customer", access)
    assert r.status_code == 401 and r.json() == DENIED


@pytest.mark.parametrize(
    ("which", "scope", "resource", "needed"),
    [
        ("pos", "journal:read", "customer", "customer:read"),
        ("pos", "customer:read", "journal", "journal:read"),
        ("pos", "", "customer", "customer:read"),
        ("attraction", "membership:read", "ticket", "ticket:read"),
        ("attraction", "ticket:read", "membership", "membership:read"),
    ],
)
def test_a_token_without_the_resources_scope_gets_403_naming_it(
    sandbox, which, scope, resource, needed
):
    access = token(sandbox, audience=AUDIENCE, scope=scope, which=which)
    r = get(sandbox, resource, access)
    assert r.status_code == 403 and needed in r.json()["Message"]


def test_the_right_audience_and_scope_read_and_refresh_keeps_them(sandbox):
    env = sandbox.env()
    r = requests.post(
        f"{env['FLEXPOS_AUTH_URL']}/api/v2/auth/login",
        params={"audience": AUDIENCE},
        auth=(env["FLEXPOS_CLIENT_ID"], env["FLEXPOS_CLIENT_SECRET"]),
        data={"scope": "customer:read"},
        timeout=TIMEOUT,
    )
    assert get(sandbox, "customer", r.json()["access_token"]).status_code == 200
    assert get(sandbox, "journal", r.json()["access_token"]).status_code == 403
    renewed = requests.post(
        f"{env['FLEXPOS_AUTH_URL']}/api/v2/auth/refresh",
        data={"refresh_token": r.json()["refresh_token"]},
        timeout=TIMEOUT,
    ).json()["access_token"]
    assert get(sandbox, "customer", renewed).status_code == 200
    assert get(sandbox, "journal", renewed).status_code == 403
