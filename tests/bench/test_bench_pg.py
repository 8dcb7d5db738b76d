"""`python -m bench --only pg`: ours and MeltanoLabs' target-postgres into one real PostgreSQL.

Tiny size, two interleaved rounds: proves both targets loaded every record in every round
(the ratio against a peer that lost rows would mean nothing) and that the stage reports the
ratio round by round. No timing asserts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# bench/ is a tool beside the distribution, not part of it: import it from the checkout.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import peerenv  # noqa: E402


def test_pg_stage_loads_every_record_with_both_targets_round_after_round(tmp_path):
    ok, why = peerenv.ensure(peerenv.TARGET_POSTGRES)
    if not ok:
        pytest.skip(f"the target-postgres peer venv could not be built: {why}")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--only", "pg", "--size", "300", "--repeat", "2"),
            *("--data-dir", str(tmp_path / "data"), "--out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = {row["tool"]: row for row in result["rows"]}
    for tool in ("target-loyalty-store (PostgreSQL)", "target-postgres 0.8.1 (MeltanoLabs)"):
        row = rows[tool]
        assert row["status"] == "ok", row
        assert row["rows_out"] == row["rows_expected"] == 300
        assert len(row["walls_s"]) == 2  # one run per round, each counted
    ours = rows["target-loyalty-store (PostgreSQL)"]
    assert ours["note"].startswith("ours/target-postgres per round: ")
    assert ours["note"].count("x") == 2
    assert "password" not in ours["config"] and "***" in ours["config"]
    target = {t["target"]: t for t in result["targets"]}[
        "PostgreSQL store load >= 5x target-postgres"
    ]
    assert target["value"] > 0 and target["met"] is not None
    assert result["peer_versions"]["target-postgres"]["meltanolabs-target-postgres"] == "0.8.1"
