"""The real `mapper-loyalty` executable: config forms, errors, rejects summary on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mapper_helpers import CATALOG, FLEXPOS_MAPPING, rec, write_mapping

MAPPER = str(Path(sys.executable).parent / "mapper-loyalty")

MAPPING = """
streams:
  customers:
    to: contacts
    key: [id]
    fields:
      id: Uid
      born: {path: Birthday, type: date, format: DD-MM-YYYY}
"""


def run_mapper(args: list[str], messages: list[dict], cwd: Path) -> subprocess.CompletedProcess:
    stdin = "".join(json.dumps(m) + "\n" for m in messages)
    return subprocess.run(
        [MAPPER, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )


def output(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


ROWS = [
    rec("customers", {"Uid": "u1", "Birthday": "24-12-1980"}),
    rec("customers", {"Uid": "u2", "Birthday": "1980-12-24"}),
    {"type": "STATE", "value": {"bookmarks": {"customers": "x"}}},
]


def test_json_config_with_relative_mapping_and_catalog(tmp_path):
    write_mapping(tmp_path, MAPPING)
    (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
    (tmp_path / "config.json").write_text(
        json.dumps({"mapping_file": "m.yaml", "catalog_file": "catalog.json"})
    )
    proc = run_mapper(["--config", "config.json"], ROWS, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = output(proc)
    assert [
        m["record"] for m in out if m.get("stream") == "contacts" and m["type"] == "RECORD"
    ] == [{"id": "u1", "born": "1980-12-24"}]
    rejects = [m["record"] for m in out if m.get("stream") == "_rejects" and m["type"] == "RECORD"]
    assert [(r["record"]["Uid"], r["rule"]) for r in rejects] == [("u2", "born")]
    assert out[-1] == {"type": "STATE", "value": {"bookmarks": {"customers": "x"}}}
    assert "2 records in, 1 out, 0 filtered, 0 empty, 1 rejected" in proc.stderr


def test_mapping_yaml_given_directly_as_config(tmp_path):
    write_mapping(tmp_path, MAPPING)
    proc = run_mapper(["--config", "m.yaml"], ROWS[:1], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert output(proc)[-1]["record"] == {"id": "u1", "born": "1980-12-24"}


def test_bad_mapping_is_one_clear_line_and_exit_1(tmp_path):
    write_mapping(tmp_path, MAPPING + "      born: Birthday\n")
    proc = run_mapper(["--config", "m.yaml"], ROWS, tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        "mapper-loyalty: error: m.yaml:8: duplicate key 'born' (first defined on line 7)"
    ]
    assert "Traceback" not in proc.stderr


def test_on_error_fail_stops_after_flushing_earlier_records(tmp_path):
    write_mapping(tmp_path, "on_error: fail\n" + MAPPING)
    proc = run_mapper(["--config", "m.yaml"], ROWS, tmp_path)
    assert proc.returncode == 1
    assert [m["record"]["id"] for m in output(proc) if m["type"] == "RECORD"] == ["u1"]
    assert "rule 'born'" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_mapping_file_and_about(tmp_path):
    proc = run_mapper(["--config", "nope.yaml"], [], tmp_path)
    assert proc.returncode == 1
    assert "mapper-loyalty: error: nope.yaml: mapping file not found" in proc.stderr
    about = subprocess.run(
        [MAPPER, "--about", "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert about.returncode == 0
    assert "mapping_file" in json.loads(about.stdout)["settings"]["properties"]


def test_shipped_flexpos_mapping_starts_against_its_catalog(tmp_path):
    proc = run_mapper(["--config", str(FLEXPOS_MAPPING)], [], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "0 records in" in proc.stderr
