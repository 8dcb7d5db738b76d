"""`loyalty run --streams`: a per-run stream selection without editing the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

CATALOG = {
    "streams": [
        {
            "tap_stream_id": name,
            "stream": name,
            "schema": {"type": "object", "properties": {}},
            "metadata": [{"breadcrumb": [], "metadata": {"selected": True}}],
        }
        for name in ("things", "others", "more")
    ]
}


def _with_catalog(project) -> str:
    """The fake pipeline with a catalog of three streams; the fake tap ignores it."""
    (project.root / "catalog.json").write_text(json.dumps(CATALOG))
    doc = yaml.safe_load(project.pipelines.read_text())
    doc["pipelines"]["things"]["tap"]["catalog"] = "catalog.json"
    # The fake tap prints the catalog it was given, so the test sees the selection.
    project.pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
    return (project.root / "catalog.json").read_text()


def test_a_subset_run_keeps_the_other_streams_bookmarks_and_the_catalog(fake_project):
    committed_catalog = _with_catalog(fake_project)
    before = {
        "bookmarks": {
            "things": {"last": 4},
            "others": {"updated": "2026-01-01T00:00:00Z"},
            "more": {"updated": "2026-02-01T00:00:00Z"},
        }
    }
    assert fake_project.run("state", "set", "things", json.dumps(before)).returncode == 0

    result = fake_project.run("run", "things", "--streams", "things")
    assert result.returncode == 0, result.stderr
    assert fake_project.committed() == list(range(5, 10))
    # The fake tap's STATE names only `things`: the others are kept exactly as they were.
    assert fake_project.saved_state() == {
        "bookmarks": {
            "things": {"last": 9},
            "others": {"updated": "2026-01-01T00:00:00Z"},
            "more": {"updated": "2026-02-01T00:00:00Z"},
        }
    }
    # The tap was given a temporary catalog with only `things` selected; the file is unchanged.
    log = Path(fake_project.runs()[-1]["log"]).read_text()
    seen = json.loads(
        next(
            line.split("catalog ", 1)[1]
            for line in log.splitlines()
            if "fake-tap: catalog " in line
        )
    )
    assert seen == {"things": True, "others": False, "more": False}
    assert (fake_project.root / "catalog.json").read_text() == committed_catalog
    assert "streams things only" in log


def test_an_unknown_stream_is_one_line_listing_the_known_ones(fake_project):
    _with_catalog(fake_project)
    for command in (
        ("run", "things", "--streams", "things,tickts"),
        ("run", "things", "--streams", "tickts", "--dry-run"),
        ("backfill", "things", "--start", "2026-01-01", "--end", "2026-01-02", "--streams", "x,"),
    ):
        result = fake_project.run(*command)
        assert result.returncode == 2, (command, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert "unknown stream" in line and "(known: things, others, more)" in line
    result = fake_project.run("run", "things", "--streams", " , ")
    assert result.returncode == 2
    assert "no stream named (known: things, others, more)" in result.stderr
    assert fake_project.committed() == [] and fake_project.runs() == []


def test_streams_need_a_catalog(fake_project):
    result = fake_project.run("run", "things", "--streams", "things")
    assert result.returncode == 2
    assert "has no tap catalog to select streams in" in result.stderr.strip().splitlines()[-1]


def test_a_backfill_of_some_streams_selects_them_and_records_its_windows_for_them(fake_project):
    _with_catalog(fake_project)
    args = ("backfill", "things", "--start", "2026-01-01", "--end", "2026-01-03", "--window", "1d")
    result = fake_project.run(*args, "--streams", "others,more")
    assert result.returncode == 0, result.stderr
    for record in fake_project.runs():
        log = Path(record["log"]).read_text()
        assert 'fake-tap: catalog {"things": false, "others": true, "more": true}' in log
    done = json.loads((fake_project.state_dir / "test/things/backfill.json").read_text())
    assert done["windows_done"] == [
        "2026-01-01T00:00:00+00:00/2026-01-02T00:00:00+00:00 [more,others]",
        "2026-01-02T00:00:00+00:00/2026-01-03T00:00:00+00:00 [more,others]",
    ]
    # The same windows for all streams are not done yet; for the same streams they are.
    assert fake_project.run(*args, "--streams", "more,others").stdout.count("skipped") == 2
    assert "skipped" not in fake_project.run(*args).stdout
