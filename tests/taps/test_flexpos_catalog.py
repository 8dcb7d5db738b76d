"""The committed catalog is exactly what `tap-flexpos --discover` prints today."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from flexpos_harness import TAP_EXE

ROOT = Path(__file__).resolve().parents[2]


def test_committed_catalog_matches_discover_output():
    proc = subprocess.run(
        [TAP_EXE, "--discover"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    discovered = json.loads(proc.stdout)
    committed = json.loads((ROOT / "catalogs" / "flexpos.json").read_text())
    assert committed == discovered, (
        "catalogs/flexpos.json is stale: regenerate with "
        "`tap-flexpos --discover > catalogs/flexpos.json`"
    )
    streams = {s["tap_stream_id"]: s for s in committed["streams"]}
    assert set(streams) == {"customers", "journals", "tickets", "memberships"}
    for stream in streams.values():
        top = next(m["metadata"] for m in stream["metadata"] if m["breadcrumb"] == [])
        assert top["selected"] is True
        assert stream["key_properties"] == ["Uid"]
        assert stream["replication_key"] == "ModifiedDate"
