"""What the runner reads from our executables: the `--about` version and the
METRIC lines a target writes per commit (docs/kit/protocol.md)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from singer_sdk import metrics
from singer_sdk.logging import ConsoleFormatter, StructuredFormatter

from singer_kit.metrics import LOADED, REJECTED, RecordCount, log_commit, read_point, record_count

BIN = Path(sys.executable).parent
EXECUTABLES = ("tap-flexpos", "mapper-loyalty", "target-loyalty-store")


def _about(exe: str) -> dict:
    proc = subprocess.run(
        [str(BIN / exe), "--about", "--format", "json"],
        capture_output=True,
        check=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize("exe", EXECUTABLES)
def test_about_reports_the_installed_package_version(exe):
    # singer-sdk looks the version up by the plugin's name unless package_name says otherwise;
    # "target-loyalty-store" is no distribution, so it said "[could not be detected]".
    assert _about(exe)["version"] == metadata.version("loyalty-pipelines")


def _counts(stderr: str) -> list[tuple[str, int, str | None]]:
    found = []
    for line in stderr.splitlines():
        point = read_point(line)
        count = record_count(point) if point is not None else None
        if count is not None:
            found.append((count.stream, count.value, count.status))
    return found


def test_target_loyalty_store_reports_each_commit_in_metric_lines(tmp_path):
    config = tmp_path / "config.json"  # max_batch_seconds 0: a commit at each STATE
    config.write_text(json.dumps({"database": str(tmp_path / "db.duckdb"), "max_batch_seconds": 0}))
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    lines = [
        {"type": "SCHEMA", "stream": "things", "schema": schema, "key_properties": ["id"]},
        {"type": "RECORD", "stream": "things", "record": {"id": 1}},
        {"type": "RECORD", "stream": "things", "record": {"id": None}},  # no key: rejected
        {"type": "STATE", "value": {"n": 1}},
        {"type": "RECORD", "stream": "things", "record": {"id": 2}},
        {"type": "STATE", "value": {"n": 2}},
    ]
    proc = subprocess.run(
        [str(BIN / "target-loyalty-store"), "--config", str(config)],
        input="".join(json.dumps(m) + "\n" for m in lines),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert _counts(proc.stderr) == [
        ("things", 1, LOADED),
        ("things", 1, REJECTED),
        ("things", 1, LOADED),
        ("things", 0, REJECTED),
    ]


@pytest.mark.parametrize("formatter", [ConsoleFormatter(), StructuredFormatter()])
def test_commit_counts_read_back_from_either_sdk_log_format(formatter):
    # singer-sdk writes metrics as "METRIC: {json}" text, or with structured logging as one
    # JSON line per record ("metric_info"); the runner must read both.
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(formatter.format(record))  # type: ignore[method-assign]
    logger = metrics.get_metrics_logger()
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        log_commit("contacts", 5, 1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert _counts("\n".join(lines)) == [("contacts", 5, LOADED), ("contacts", 1, REJECTED)]


def test_a_plain_sdk_record_count_has_no_status_and_other_metrics_are_not_counts():
    plain = read_point(
        'x | METRIC: {"type":"counter","metric":"record_count","value":3,'
        '"tags":{"stream":"a","pid":1}}'
    )
    assert plain is not None and record_count(plain) == RecordCount("a", 3, None)
    timer = read_point(
        'METRIC: {"type":"timer","metric":"sync_duration","value":1.5,"tags":{"stream":"a"}}'
    )
    assert timer is not None and record_count(timer) is None
    assert read_point("committed things: 5 loaded, 0 rejected in 0.1s") is None
    assert read_point("METRIC: {not json") is None
