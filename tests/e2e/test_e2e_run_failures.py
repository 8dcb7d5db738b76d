"""flexpos_to_store when the data or the machine goes wrong: the run must say so."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import REPO


def _use_mapping(project, text: str, **pipeline: object) -> None:
    """Point the project's pipeline at its own copy of the mapping (and set pipeline keys)."""
    mapping = project.root / "mapping.yaml"
    mapping.write_text(text)
    doc = yaml.safe_load((project.root / "pipelines.yaml").read_text())
    doc["pipelines"]["flexpos_to_store"]["mapping"] = str(mapping)
    doc["pipelines"]["flexpos_to_store"].update(pipeline)
    (project.root / "pipelines.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_run_that_rejects_a_whole_stream_fails_and_keeps_its_bookmark(
    fresh_sandbox, store_project
):
    sb = fresh_sandbox()
    project = store_project(sb.env())
    shipped = (REPO / "transforms/mappings/flexpos_to_store.yaml").read_text()
    # The source's birthday format changed: no customer with a birthday can be mapped.
    assert "format: DD-MM-YYYY" in shipped
    _use_mapping(project, shipped.replace("format: DD-MM-YYYY", "format: YYYY/MM/DD"))
    with_birthday = sum(1 for c in sb.flexpos.data.iter_records("customer") if c["Birthday"])
    total = len(list(sb.flexpos.data.iter_records("customer")))

    result = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: run of flexpos_to_store (env sandbox) failed at step mapper: ")
    assert f"customers: {with_birthday} of {total} records rejected" in line
    assert "top reasons: " in line and "YYYY/MM/DD" in line
    assert "more than max_reject_ratio 0.5" in line
    # The bookmark stays where the run started (none), so the fixed mapping re-reads them.
    assert not (project.state_dir / "sandbox" / "flexpos_to_store" / "state.json").exists()
    (record,) = json.loads(project.run("status", "--json").stdout)
    assert record["outcome"] == "failed" and record["failed_step"] == "mapper"
    assert record["rejected_streams"]["mapper customers"] == [with_birthday, total]
    rejected = project.query("SELECT count(*) FROM _rejects WHERE stream = 'customers'")
    assert rejected == [(with_birthday,)]

    # Fixed: the same records are read again and loaded; the few customers without an
    # e-mail are under the threshold, a warning in the summary, not a failure.
    _use_mapping(project, shipped)
    again = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert again.returncode == 0, again.stderr
    no_email = sum(1 for c in sb.flexpos.data.iter_records("customer") if not c["Email"])
    assert no_email
    assert project.query("SELECT count(*) FROM contacts") == [(total - no_email,)]
    assert "warning: " in again.stderr and f"{no_email} of " in again.stderr

    # A pipeline that allows no rejects at all fails on those.
    _use_mapping(project, shipped, max_reject_ratio=0)
    strict = project.run("run", "flexpos_to_store", "--env", "sandbox", "--full-refresh")
    assert strict.returncode == 1
    assert "more than max_reject_ratio 0;" in strict.stderr.strip().splitlines()[-1]


def test_a_bad_bookmark_in_the_saved_state_is_one_line_naming_the_stream_and_value(
    fresh_sandbox, store_project
):
    sb = fresh_sandbox()
    project = store_project(sb.env())
    bad = {
        "bookmarks": {
            "customers": {"replication_key": "ModifiedDate", "replication_key_value": "yesterday"}
        }
    }
    assert (
        project.run(
            "state", "set", "flexpos_to_store", json.dumps(bad), "--env", "sandbox"
        ).returncode
        == 0
    )
    result = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "failed at step tap: tap-flexpos exited with code 1: tap-flexpos: error: " in line
    assert "stream 'customers': the bookmark 'yesterday' in the state (--state) is not an ISO" in (
        line
    )
    (record,) = json.loads(project.run("status", "--json").stdout)
    assert "Traceback" not in Path(record["log"]).read_text()
    # The bookmark was not moved by the failed run.
    saved = project.state_dir / "sandbox" / "flexpos_to_store" / "state.json"
    assert json.loads(saved.read_text()) == bad


def test_the_stores_runs_row_of_a_run_that_failed_upstream_does_not_say_ok(
    fresh_sandbox, store_project
):
    sb = fresh_sandbox()
    project = store_project(sb.env())
    shipped = (REPO / "transforms/mappings/flexpos_to_store.yaml").read_text()
    broken = shipped.replace("format: DD-MM-YYYY", "format: YYYY/MM/DD")
    _use_mapping(project, broken.replace("on_error: reject", "on_error: fail"))
    result = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert result.returncode == 1
    assert "failed at step mapper: mapper-loyalty exited with code 1: " in result.stderr
    (record,) = json.loads(project.run("status", "--json").stdout)
    # The target saw a clean end of input (Singer has no end message): its row says only
    # that, under the run's own id, whose record says how the run ended.
    assert project.query("SELECT run_id, outcome FROM _runs") == [(record["run_id"], "input_ended")]
    assert record["outcome"] == "failed" and record["failed_step"] == "mapper"


@pytest.fixture
def full_tmpdir(tmp_path):
    """A 64 KB TMPDIR: a real full disk (tmpfs), where this machine lets us mount one."""
    path = tmp_path / "tiny-tmp"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_tmpdir_fails_the_run_with_one_line_naming_where(
    fresh_sandbox, store_project, full_tmpdir
):
    sb = fresh_sandbox()
    project = store_project(sb.env())
    project.env["TMPDIR"] = str(full_tmpdir)
    result = project.run("run", "flexpos_to_store", "--env", "sandbox")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "failed at step target: target-loyalty-store exited with code 2: " in line
    assert f"cannot write the staging files in {full_tmpdir}/loyalty-store-" in line
    assert "No space left on device" in line
    (record,) = json.loads(project.run("status", "--json").stdout)
    assert "Traceback" not in Path(record["log"]).read_text()
    # The failed target left no staging files behind on the full disk.
    assert list(full_tmpdir.iterdir()) == []
