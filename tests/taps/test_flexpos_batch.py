"""tap-flexpos in BATCH mode (`batch_config`): the same records as RECORD mode, as files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import urlparse

from flexpos_harness import run_tap
from test_flexpos_tap import config_for


def _batches(stdout: str) -> list[dict]:
    return [m for m in map(json.loads, stdout.splitlines()) if m["type"] in ("BATCH", "STATE")]


def _read(url: str, compression: str) -> list[dict]:
    path = Path(urlparse(url).path)
    data = path.read_bytes()
    if compression == "gzip":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]


def _batch_config(root: Path, compression: str, size: int) -> dict:
    return {
        "encoding": {"format": "jsonl", "compression": compression},
        "storage": {"root": root.as_uri()},
        "batch_size": size,
    }


def test_batch_files_hold_exactly_the_records_of_a_record_run(sandbox, tmp_path):
    config = config_for(sandbox)
    streams = ["customers", "journals"]
    plain = run_tap(config, tmp_path / "records", streams=streams)
    assert plain.returncode == 0, plain.stderr[-2000:]

    root = tmp_path / "files"
    batched = run_tap(
        {**config, "batch_config": _batch_config(root, "gzip", 7)},
        tmp_path / "batch",
        streams=streams,
    )
    assert batched.returncode == 0, batched.stderr[-2000:]
    assert not batched.records, "BATCH mode emits no RECORD messages"
    messages = _batches(batched.stdout)
    from_files: dict[str, list[dict]] = {}
    for i, msg in enumerate(messages):
        if msg["type"] != "BATCH":
            continue
        # Every BATCH is followed by the STATE that covers it.
        assert messages[i + 1]["type"] == "STATE"
        assert msg["encoding"] == {"format": "jsonl", "compression": "gzip"}
        (url,) = msg["manifest"]
        assert url.endswith(".jsonl.gz") and Path(urlparse(url).path).parent == root
        records = _read(url, "gzip")
        assert 1 <= len(records) <= 7
        from_files.setdefault(msg["stream"], []).extend(records)
    for stream in streams:
        assert len(plain.records[stream]) > 7
        assert from_files[stream] == plain.records[stream]
    assert batched.final_state["bookmarks"] == plain.final_state["bookmarks"]


def test_uncompressed_batches_and_deselected_fields(sandbox, tmp_path):
    config = config_for(sandbox)
    root = tmp_path / "files"
    run = run_tap(
        {**config, "batch_config": _batch_config(root, "none", 1000)},
        tmp_path,
        streams=["customers"],
        deselect={"customers": ["Email"]},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (batch,) = [m for m in _batches(run.stdout) if m["type"] == "BATCH"]
    records = _read(batch["manifest"][0], "none")
    assert records and all("Email" not in r and "Mobile" in r for r in records)
