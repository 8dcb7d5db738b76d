"""The bench chart (bench/chart.py) drawn from a stored results JSON: every measured row is a
bar of the right length, ours and the peers side by side, the 300 MB limit marked, and the
SVG stands alone (valid XML, no reference to anything outside it)."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chart import LABEL_W, MEM_W, RATE_W, write_chart  # noqa: E402
from bench.report import MB300_MIB  # noqa: E402

STORED = ROOT / "bench" / "results" / "2026-12-02-connector-kit.json"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def drawn(tmp_path):
    results = tmp_path / STORED.name
    results.write_bytes(STORED.read_bytes())
    out = write_chart(results)
    assert out == results.with_suffix(".svg")  # next to its JSON
    return json.loads(STORED.read_text()), out.read_text()


def bars(svg: str, kind: str) -> list[dict[str, str]]:
    root = ET.fromstring(svg)  # valid XML, or this raises
    return [r.attrib for r in root.iter(f"{SVG}rect") if r.get("class") == kind]


def test_every_measured_row_is_a_bar_scaled_to_its_value(drawn):
    result, svg = drawn
    rates = bars(svg, "rate")
    measured = [r for r in result["rows"] if r["records_per_s"]]
    assert [(b["data-stage"], b["data-tool"]) for b in rates] == [
        (r["stage"], r["tool"]) for r in measured
    ]
    for stage in {r["stage"] for r in measured}:
        in_stage = [b for b in rates if b["data-stage"] == stage]
        # Within a stage, bar length is proportional to records/s: the ratios are the data's.
        fastest = max(in_stage, key=lambda b: float(b["data-value"]))
        for b in in_stage:
            expected = (
                float(fastest["width"]) * float(b["data-value"]) / float(fastest["data-value"])
            )
            assert float(b["width"]) == pytest.approx(expected, abs=0.01)
            assert float(b["x"]) == LABEL_W and 0 < float(b["width"]) <= RATE_W
    # Ours and each peer side by side in the same stage: e.g. the mappers.
    roles = {(b["data-tool"], b["data-role"]) for b in rates if b["data-stage"] == "map"}
    assert ("mapper-loyalty", "ours") in roles
    assert ("meltano-map-transform 0.12.3", "peer") in roles
    # A row that measured nothing (the incremental run moves no records) is said, not drawn.
    assert "nothing moves" in svg


def test_memory_bars_share_one_scale_with_the_limit_marked(drawn):
    result, svg = drawn
    memory = bars(svg, "memory")
    assert len(memory) == sum(1 for r in result["rows"] if r["peak_rss_mib"])
    root = ET.fromstring(svg)
    limits = [ln.attrib for ln in root.iter(f"{SVG}line") if ln.get("class") == "memory-limit"]
    assert len(limits) == len({r["stage"] for r in result["rows"]})  # one per stage
    # The limit line sits where a 300 MB bar would end; bars over it end past it.
    largest = max(memory, key=lambda m: float(m["data-value"]))
    scale = float(largest["width"]) / float(largest["data-value"])
    start = float(memory[0]["x"])
    assert float(limits[0]["x1"]) == pytest.approx(start + MB300_MIB * scale, abs=0.01)
    assert all(float(m["width"]) <= MEM_W for m in memory)
    over = [m for m in memory if float(m["data-value"]) > MB300_MIB]
    assert over and all(start + float(m["width"]) > float(limits[0]["x1"]) for m in over)
    assert "limit 300 MB" in svg


def test_the_svg_references_nothing_outside_itself(drawn):
    _, svg = drawn
    urls = re.findall(r"(?:https?:)?//[^\s\"'<>]+", svg)
    assert urls == ["http://www.w3.org/2000/svg"]  # the namespace name, never fetched
    assert "<script" not in svg and "href" not in svg
