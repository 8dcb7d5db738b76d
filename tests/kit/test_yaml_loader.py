"""The kit's one YAML loader: lines kept, and every unreadable file is one `FILE:LINE:` line.

The loader is shared by pipelines.yaml (`loyalty`) and mapping files (`mapper-loyalty`); the
end-to-end tests run both real executables on the same hostile inputs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from singer_kit.yamlio import MAX_DEPTH, LineDict, YamlError, load_mapping, load_yaml

BIN = Path(sys.executable).parent

# (file content, the one line expected after "FILE:")
HOSTILE = [
    pytest.param(b"a: 1\nb: [1,\n", "3: invalid YAML: ", id="syntax"),
    pytest.param(
        b"a: 1\nb: 2\na: 3\n",
        "3: duplicate key 'a' (first defined on line 1)",
        id="duplicate",
    ),
    pytest.param(b"a: 1\n? [x, y]\n: 2\n", "2: a key must be a plain name, got a list", id="list"),
    pytest.param(
        b"a:\n  b: 1\n  ? {x: 1}\n  : 2\n", "3: a key must be a plain name, got a mapping", id="map"
    ),
    # A set is unhashable too: it used to escape pipelines.yaml's check as a raw TypeError.
    pytest.param(
        b"a: 1\n? !!set {x: null}\n: 2\n", "2: a key must be a plain name, got a set", id="set"
    ),
    pytest.param(
        b"a: 1\nb: caf\xe9\n",
        "2: not UTF-8 text (byte 0xe9 at offset 11); save the file as UTF-8",
        id="utf8",
    ),
    pytest.param(
        b"a: 1\nb: x\x07y\n", "2: invalid YAML: character #x0007 is not allowed", id="control"
    ),
    pytest.param(
        b"a: 1\nb:\n" + b"  " * 3 + b"[" * 5000 + b"]" * 5000 + b"\n",
        "3: invalid YAML: nested too deeply",
        id="deep",
    ),
]


@pytest.mark.parametrize(("content", "expected"), HOSTILE)
def test_each_kind_of_bad_yaml_is_one_line_with_its_line(content, expected):
    with pytest.raises(YamlError) as info:
        load_yaml(content, "f.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"f.yaml:{expected}")


def test_nesting_up_to_the_limit_loads():
    depth = MAX_DEPTH - 1
    assert load_yaml("[" * depth + "]" * depth, "f.yaml") is not None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "f.yaml:1: the file is empty"),
        (b"# only a comment\n", "f.yaml:1: the file is empty"),
        (b"- a\n- b\n", "f.yaml:1: the top level must be a mapping, got a list"),
        (b"just text\n", "f.yaml:1: the top level must be a mapping, got a string"),
    ],
)
def test_a_settings_file_must_be_a_mapping(content, expected):
    with pytest.raises(YamlError) as info:
        load_mapping(content, "f.yaml")
    assert str(info.value) == expected


def test_mappings_remember_their_lines_and_merge_keys_work():
    doc = load_mapping("# header\nbase: &b\n  x: 1\nthing:\n  <<: *b\n  y: [1, {z: 2}]\n", "f.yaml")
    assert isinstance(doc, LineDict)
    assert (doc.line, doc.line_of("base"), doc.line_of("thing")) == (2, 2, 4)
    thing = doc["thing"]
    assert thing == {"x": 1, "y": [1, {"z": 2}]}
    assert (thing.line_of("y"), thing.line_of("absent")) == (6, 5)
    assert thing["y"][1].line_of("z") == 6


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "rror" in line]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(("content", "expected"), HOSTILE)
def test_loyalty_validate_reports_a_hostile_pipelines_yaml_in_one_line(tmp_path, content, expected):
    (tmp_path / "pipelines.yaml").write_bytes(content)
    proc = subprocess.run(
        [str(BIN / "loyalty"), "-f", "pipelines.yaml", "validate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert _one_error_line(proc).startswith(f"Error: pipelines.yaml:{expected}")


@pytest.mark.parametrize(("content", "expected"), HOSTILE)
def test_mapper_reports_a_hostile_mapping_file_in_one_line(tmp_path, content, expected):
    (tmp_path / "m.yaml").write_bytes(content)
    proc = subprocess.run(
        [str(BIN / "mapper-loyalty"), "--config", "m.yaml"],
        cwd=tmp_path,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"error: m.yaml:{expected}" in _one_error_line(proc)
