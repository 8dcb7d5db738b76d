"""The tap's paging relies on the API's ModifiedDate order; a page that breaks it stops the run.

The API's pages are replaced with injected 200 bodies built from the emulator's own records.
"""

from __future__ import annotations

from flexpos_harness import run_tap
from test_flexpos_tap import config_for, expected, one_error_line, start_of


def journals_with(sb, stamps: list[str]) -> list[dict]:
    """Real journal records, in this order, with these ModifiedDates."""
    records = expected(sb, "journals", start=start_of(config_for(sb)))[: len(stamps)]
    return [{**r, "ModifiedDate": stamp} for r, stamp in zip(records, stamps, strict=True)]


def test_a_page_that_goes_back_in_time_stops_the_run_naming_the_record(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(customers=10, journals=10, tickets=0, memberships=0)
    items = journals_with(sb, ["2026-05-02T10:00:00", "2026-05-01T09:00:00"])
    sb.flexpos.inject_fault("/journal", status=200, body={"Items": items})
    run = run_tap(config_for(sb), tmp_path, streams=["journals"])
    assert run.returncode == 1
    line = one_error_line(run)
    assert f"Uid={items[1]['Uid']!r} ModifiedDate='2026-05-01T09:00:00'" in line
    assert "'2026-05-02T10:00:00'" in line and "ModifiedDate order" in line


def test_a_next_page_older_than_the_previous_one_stops_the_run(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(customers=10, journals=10, tickets=0, memberships=0)
    first = journals_with(sb, ["2026-05-02T10:00:00", "2026-05-03T10:00:00"])
    second = journals_with(sb, ["2026-05-03T10:00:00", "2026-04-30T08:00:00"])
    second[0] = {**first[1]}  # the tie the next page starts with is read again, as usual
    sb.flexpos.inject_fault("/journal", status=200, body={"Items": first})
    sb.flexpos.inject_fault("/journal", status=200, body={"Items": second})
    run = run_tap(config_for(sb, page_size=2), tmp_path, streams=["journals"])
    assert run.returncode == 1
    assert "ModifiedDate='2026-04-30T08:00:00'" in one_error_line(run)


def test_the_repeated_autumn_hour_is_not_disorder_but_a_real_step_back_is(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(customers=10, journals=10, tickets=0, memberships=0)
    # Ordered by instant through the autumn change: 02:50 summer time, then 02:05 winter time.
    items = journals_with(sb, ["2026-10-25T02:10:00", "2026-10-25T02:50:00", "2026-10-25T02:05:00"])
    sb.flexpos.inject_fault("/journal", status=200, body={"Items": items})
    run = run_tap(config_for(sb), tmp_path / "a", streams=["journals"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.uids("journals") == [r["Uid"] for r in items]
    # 02:05 cannot follow 03:30 in either reading.
    items = journals_with(sb, ["2026-10-25T02:10:00", "2026-10-25T03:30:00", "2026-10-25T02:05:00"])
    sb.flexpos.inject_fault("/journal", status=200, body={"Items": items})
    run = run_tap(config_for(sb), tmp_path / "b", streams=["journals"])
    assert run.returncode == 1 and "ModifiedDate order" in one_error_line(run)
