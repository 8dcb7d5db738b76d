"""`loyalty sandbox` / `python -m sandbox` as a user runs them: a real foreground process."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sandbox_http_helpers import start_foreground as _start

ROOT = Path(__file__).resolve().parents[2]
LOYALTY = Path(sys.executable).parent / "loyalty"


def test_python_m_sandbox_prints_working_exports_and_stops_on_sigterm():
    proc, env, lines = _start(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--customers",
            "7",
            "--journals",
            "3",
            "--token-ttl",
            "60",
        ]
    )
    try:
        assert "FLEXPOS_API_URL" in env, lines
        assert any("fake" in line for line in lines)
        r = requests.post(
            f"{env['FLEXPOS_AUTH_URL']}/api/v2/auth/login",
            params={"audience": "https://api.flexpos.com"},
            auth=(env["FLEXPOS_CLIENT_ID"], env["FLEXPOS_CLIENT_SECRET"]),
            data={"scope": "customer:read"},
            timeout=10,
        )
        assert r.json()["expires_in"] == 60
        items = requests.get(
            f"{env['FLEXPOS_API_URL']}/customer",
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
            timeout=10,
        ).json()["Items"]
        assert len(items) == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "sandbox stopped" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--customers", "0", "--tickets", "5"],
            "tickets and memberships need at least one customer",
        ),
        (["--date-format", "HH:mm"], "date format 'HH:mm' cannot be read back"),
    ],
)
def test_loyalty_sandbox_refuses_bad_options_with_one_clear_line(args, message):
    r = subprocess.run(
        [str(LOYALTY), "sandbox", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert f"cannot start the sandbox: {message}" in r.stderr
    assert "Traceback" not in r.stderr


def test_loyalty_sandbox_now_fixes_the_clock_and_hands_it_to_the_taps():
    proc, env, lines = _start([str(LOYALTY), "sandbox", "--customers", "5", "--now", "2028-02-29"])
    try:
        assert env.get("LOYALTY_NOW") == "2028-02-29T00:00:00+00:00", lines
        info = requests.get(
            f"{env['FLEXPOS_AUTH_URL'][: -len('/auth')]}/_sandbox/flexpos", timeout=10
        )
        assert info.json()["now"] == "2028-02-29T00:00:00+00:00"
        token = requests.post(
            f"{env['FLEXPOS_AUTH_URL']}/api/v2/auth/login",
            params={"audience": "https://api.flexpos.com"},
            auth=(env["FLEXPOS_CLIENT_ID"], env["FLEXPOS_CLIENT_SECRET"]),
            data={"scope": "customer:read"},
            timeout=10,
        ).json()["access_token"]
        items = requests.get(
            f"{env['FLEXPOS_API_URL']}/customer",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["Items"]
        # The data ends an hour before "now": 5 customers over ~13 months, the newest of them
        # within the last 82 days.
        assert "2027-12-01" < items[-1]["ModifiedDate"] < "2028-02-29T00:00:00"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_loyalty_sandbox_refuses_a_now_that_is_not_iso_8601():
    r = subprocess.run(
        [str(LOYALTY), "sandbox", "--now", "next tuesday"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "'next tuesday' is not an ISO 8601 date or date-time" in r.stderr
    assert "Traceback" not in r.stderr
