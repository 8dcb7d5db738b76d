"""tap-billetten, the real executable against the Billetten emulator on 127.0.0.1: records and
STATE, incremental runs, the permission-group switch and field names, retries and one-line
errors with the key never shown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from flexpos_harness import run_tap

from sandbox.billetten import API_KEY, BillettenSettings

TAP = str(Path(sys.executable).parent / "tap-billetten")
ROOT = Path(__file__).resolve().parents[2]
STREAMS = ["buyers", "order_lines", "cancellations", "tracking_events"]


def billetten(fresh_full_sandbox, **settings):
    return fresh_full_sandbox(BillettenSettings(**settings), only=["billetten"]).billetten


def config(server, **extra) -> dict:
    return {"api_url": server.api_url, "api_key": API_KEY, "backoff_seconds": 0, **extra}


def tap(server, tmp_path, streams=STREAMS, **kwargs):
    cfg = kwargs.pop("cfg", None) or config(server)
    return run_tap(cfg, tmp_path, streams=streams, exe=TAP, catalog="billetten", **kwargs)


def test_every_record_once_in_api_order_with_a_state(fresh_full_sandbox, tmp_path):
    server = billetten(fresh_full_sandbox)
    run = tap(server, tmp_path, cfg=config(server, page_size=7))
    assert run.returncode == 0, run.stderr
    for stream in STREAMS:
        expected = server.data.all(stream)
        assert [r["id"] for r in run.records[stream]] == [r["id"] for r in expected]
        mark = run.final_state["bookmarks"][stream]["replication_key_value"]
        assert mark == expected[-1]["updated_at"]
    lines = {r["id"]: r for r in run.records["order_lines"]}
    seat = lines["T300001"]
    assert {"event_name", "performance_at", "zone", "row", "seat", "price", "fee"} <= seat.keys()
    assert seat["performance_at"].endswith(("+01:00", "+02:00"))  # local time of the show


def test_an_incremental_run_reads_only_what_changed(fresh_full_sandbox, tmp_path):
    server = billetten(fresh_full_sandbox)
    first = tap(server, tmp_path)
    assert first.returncode == 0, first.stderr
    server.data.cancel_line("T300005")
    server.data.unsubscribe("B100010", "partial")
    second = tap(server, tmp_path, state=first.final_state)
    assert second.returncode == 0, second.stderr

    def new(stream: str) -> list[dict]:
        """Records past the bookmark; those at its very second are read again (at least
        once: one written in that second after the first run must not be missed)."""
        mark = first.final_state["bookmarks"][stream]["replication_key_value"]
        again = second.records.get(stream, [])
        assert all(r["updated_at"] >= mark for r in again)
        return [r for r in again if r["updated_at"] > mark]

    assert [(r["id"], r["status"]) for r in new("order_lines")] == [("T300005", "cancelled")]
    assert [r["order_line_id"] for r in new("cancellations")] == ["T300005"]
    assert [r["id"] for r in new("buyers")] == ["B100010"]
    history = new("buyers")[0]["permission_history"]
    assert history[-1]["changed_by"] == "update_form"
    assert history[-1]["consent_email"] == "no"
    assert new("tracking_events") == []


def groups(records: list[dict]) -> dict[str, set[str]]:
    """Buyer ids by permission group, from the permissions the tap wrote."""
    out: dict[str, set[str]] = {}
    for r in records:
        given = r["permissions"]["10_2"] == "yes", r["permissions"]["consent_email"] == "yes"
        key = {
            (True, True): "both",
            (False, True): "newsletter_only",
            (True, False): "related_only",
            (False, False): "terms_only",
        }[given]
        out.setdefault(key, set()).add(r["id"])
    return out


def test_every_buyer_by_default_and_the_guides_opt_out_of_10_2_only(fresh_full_sandbox, tmp_path):
    server = billetten(fresh_full_sandbox)
    every = tap(server, tmp_path, streams=["buyers"])
    assert every.returncode == 0, every.stderr
    assert len(every.records["buyers"]) == server.data.count("buyers")
    found = groups(every.records["buyers"])
    assert {"B100000"} <= found["both"] and "B100003" in found["terms_only"]
    assert "B100002" in found["related_only"] and "B100001" in found["newsletter_only"]

    groups_left = ["both", "newsletter_only", "terms_only"]
    cfg = config(server, permission_groups=groups_left)
    opted = tap(server, tmp_path, streams=["buyers"], cfg=cfg)
    assert opted.returncode == 0, opted.stderr
    ids = {r["id"] for r in opted.records["buyers"]}
    assert ids == set().union(*(found.get(g, set()) for g in groups_left))
    assert not ids & found["related_only"]
    assert f"buyers: {len(found['related_only'])} not transferred" in opted.stderr


def test_permission_field_names_are_configuration(fresh_full_sandbox, tmp_path):
    server = billetten(fresh_full_sandbox, related_field="perm_1", newsletter_field="perm_2")
    cfg = config(
        server, related_field="perm_1", newsletter_field="perm_2", permission_groups=["both"]
    )
    run = tap(server, tmp_path, streams=["buyers"], cfg=cfg)
    assert run.returncode == 0, run.stderr
    assert "B100000" in {r["id"] for r in run.records["buyers"]}
    assert all(
        r["permissions"] == {"perm_1": "yes", "perm_2": "yes"} for r in run.records["buyers"]
    )

    wrong = tap(server, tmp_path, streams=["buyers"], cfg=config(server))
    assert wrong.returncode == 1
    assert wrong.error_lines() == [
        "tap-billetten: error: stream buyers: buyer id='B100000' has no permission field "
        "'10_2' and 'consent_email' (it sends 'perm_1', 'perm_2'); set related_field and "
        "newsletter_field to the names of the fields in your Heyloyalty list"
    ]


def test_server_errors_and_429_are_retried(fresh_full_sandbox, tmp_path):
    server = billetten(fresh_full_sandbox)
    server.inject_fault("/v1/order-lines", status=500, times=2)
    server.inject_fault("/v1/buyers", status=429, times=1)
    server.inject_fault("/v1/cancellations", malformed=True, times=1)
    run = tap(server, tmp_path, cfg=config(server, page_size=50))
    assert run.returncode == 0, run.stderr
    assert len(run.records["order_lines"]) == server.data.count("order_lines")
    assert len(run.records["buyers"]) == server.data.count("buyers")
    assert "Billetten GET order-lines" in run.stderr and "retry 2/5" in run.stderr
    statuses = [r.status for r in server.requests if r.path == "/v1/buyers"]
    assert statuses[0] == 429 and set(statuses[1:]) == {200}


def test_the_rate_limit_answers_429_with_retry_after_and_the_tap_waits(
    fresh_full_sandbox, tmp_path
):
    server = billetten(fresh_full_sandbox, rate_limit_per_second=5)
    cfg = config(server, page_size=25, requests_per_second=0, backoff_seconds=0.1)
    run = tap(server, tmp_path, streams=["order_lines"], cfg=cfg)
    assert run.returncode == 0, run.stderr
    assert len(run.records["order_lines"]) == server.data.count("order_lines")


def test_a_wrong_key_is_one_line_without_the_key(fresh_full_sandbox, tmp_path):
    server = billetten(fresh_full_sandbox)
    secret = "wrong-key-0123456789"
    run = tap(server, tmp_path, streams=["buyers"], cfg=config(server, api_key=secret))
    assert run.returncode == 1
    assert len(run.error_lines()) == 1
    line = run.error_lines()[0]
    assert "HTTP 401" in line and "check api_key" in line
    run.assert_no_secret(secret)
    assert "Traceback" not in run.stderr


def test_a_server_that_keeps_failing_stops_with_one_line_and_no_state_past_it(
    fresh_full_sandbox, tmp_path
):
    server = billetten(fresh_full_sandbox)
    server.inject_fault("/v1/order-lines", status=503, times=10)
    run = tap(server, tmp_path, cfg=config(server, max_retries=2))
    assert run.returncode == 1
    assert run.error_lines() == [
        line for line in run.error_lines() if "Billetten GET order-lines failed after 3" in line
    ]
    assert len(run.error_lines()) == 1
    assert "order_lines" not in run.final_state.get("bookmarks", {})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"permission_groups": ["everyone"]}, "everyone"),
        ({"related_field": "x", "newsletter_field": "x"}, "must name different fields"),
        ({"api_url": "ftp://x"}, "is not an http(s) URL"),
    ],
)
def test_bad_config_is_one_line(tmp_path, extra, message):
    cfg = {"api_key": "k", **extra}
    run = run_tap(cfg, tmp_path, streams=["buyers"], exe=TAP, catalog="billetten")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("tap-billetten: config error:")
    assert message in run.stderr


def test_committed_catalog_matches_discover_output():
    import subprocess

    proc = subprocess.run([TAP, "--discover"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    committed = json.loads((ROOT / "catalogs" / "billetten.json").read_text())
    assert committed == json.loads(proc.stdout), (
        "catalogs/billetten.json is stale: regenerate with "
        "`tap-billetten --discover > catalogs/billetten.json`"
    )
