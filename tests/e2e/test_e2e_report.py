"""`loyalty report` after real runs against the FlexPOS emulator, opened in a real headless
Chromium (Debian's package; `.ci/run` installs it): the page renders, its charts have one
drawn point per run, its numbers are the store's, personal data is masked, and the page
requests nothing but itself."""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from target_loyalty_store.segments import catalog, query
from tests.e2e.chromium import find_chromium, open_page

BROWSER = find_chromium()
needs_chromium = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium on this machine (Debian: apt-get install chromium; .ci/run does)",
)

# Everything the test reads off the rendered page, in one evaluation.
READ_PAGE = """JSON.stringify({
  title: document.title,
  csp: document.querySelector('meta[http-equiv="Content-Security-Policy"]').content,
  scripts: document.scripts.length,
  charts: [...document.querySelectorAll('svg.chart')].map(svg => [...svg.querySelectorAll(
    'rect.point')].map(r => { const b = r.getBoundingClientRect();
      return {w: b.width, h: b.height, records: +r.dataset.records}; })),
  sources: Object.fromEntries([...document.querySelectorAll('#store tr')].slice(1).map(
    tr => [tr.cells[0].textContent, [...tr.cells].slice(1).map(c => c.textContent)])),
  sourceHeads: [...document.querySelectorAll('#store th')].map(th => th.textContent),
  segments: Object.fromEntries([...document.querySelectorAll('#segments tr')].slice(1).map(
    tr => [tr.cells[0].textContent, tr.cells[3].textContent])),
  examples: [...document.querySelectorAll('#rejects pre.example')].map(p => p.textContent),
  text: document.body.innerText,
})"""


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@needs_chromium
def test_report_renders_offline_with_the_stores_numbers_and_masked_examples(sandbox, store_project):
    project = store_project(sandbox.env())
    for _ in range(2):
        run = project.run("run", "flexpos_to_store", "--env", "sandbox", "--full-refresh", "-q")
        assert run.returncode == 0, run.stderr
    out = project.root / "out" / "report.html"
    out.parent.mkdir()
    result = project.run("report", "--out", str(out), "--env", "sandbox")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    source = out.read_text()
    # No address of anything outside the page: no http(s)://, no protocol-relative //host.
    assert not re.search(r"""(?i)(https?:)?//[a-z0-9]""", source.replace("file://", ""))

    page = open_page(out.as_uri(), READ_PAGE, BROWSER)
    assert page.requests == [out.as_uri()]  # nothing left the page
    seen = json.loads(page.value)
    assert seen["csp"].startswith("default-src 'none'") and seen["scripts"] == 0
    runs = json.loads(project.run("status", "--json").stdout)
    (chart,) = seen["charts"]  # one pipeline in one environment
    assert len(chart) == len(runs) == 2
    assert all(p["w"] > 0 and p["h"] > 0 for p in chart)  # drawn, not just in the markup
    assert [p["records"] for p in chart] == [sum(r["records"].values()) for r in runs[::-1]]

    (contacts,) = project.query(
        "SELECT count(DISTINCT contact_id) FROM contact_ids WHERE source = 'flexpos'"
    )[0]
    (lines,) = project.query("SELECT count(*) FROM order_lines WHERE source = 'flexpos'")[0]
    heads = ["source", "contacts", "order lines", "loyalty accounts", "tracking events"]
    assert seen["sourceHeads"] == heads
    assert [_number(n) for n in seen["sources"]["flexpos"]] == [contacts, lines, 0, 0]

    # The rejects' examples: the real records' names and addresses never reach the page.
    rejected = [json.loads(r) for (r,) in project.query("SELECT record::VARCHAR FROM _rejects")]
    assert rejected and seen["examples"]
    for record in rejected:
        for key in ("first_name", "last_name", "address", "email", "mobile"):
            value = record.get(key)
            if value and len(value) > 1:
                assert value not in seen["text"], key
    assert '"first_name": "' in seen["examples"][0] and "***" in seen["examples"][0]

    con = duckdb.connect(str(project.db), read_only=True)
    try:
        from singer_kit.dates import now

        _, members = query(con, catalog()["updated_profile"], {"as_of": now()})
    finally:
        con.close()
    assert _number(seen["segments"]["updated_profile"]) == len(members) > 0
    assert seen["segments"]["booked_event"] == "-"  # needs a parameter: no count

    # Another source's rows show up under that source.
    con = duckdb.connect(str(project.db))
    try:
        con.execute("INSERT INTO tracking_events (tracking_event_id, source) VALUES ('e1', 'x')")
    finally:
        con.close()
    assert project.run("report", "--out", str(out), "--env", "sandbox").returncode == 0
    seen = json.loads(open_page(out.as_uri(), READ_PAGE, BROWSER).value)
    assert seen["sources"]["x"] == ["0", "0", "0", "1"]


@needs_chromium
def test_the_browser_check_would_see_a_request_that_leaves_the_page(tmp_path):
    """The control for the test above: a page with one remote image is caught."""
    page = tmp_path / "leaky.html"
    page.write_text('<img src="http://127.0.0.1:9/pixel.png">')
    seen = open_page(page.as_uri(), "document.images.length", BROWSER)
    assert seen.requests == [page.as_uri(), "http://127.0.0.1:9/pixel.png"]


def test_report_without_a_store_yet_still_shows_the_runs(sandbox, store_project):
    project = store_project(sandbox.env())
    out = project.root / "report.html"
    result = project.run("report", "--out", str(out), "--env", "sandbox")
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "No runs recorded yet" in text
    assert f"no loyalty store at {project.db}: run a load first" in text
