"""The bench as a picture: one self-contained SVG per results JSON, written beside it.

Per stage, one line per tool (ours, each peer, the limits) with two bars side by side:
records/s (scaled within the stage, where the tools did the same work) and peak memory of the
largest process (one scale for the whole chart, with the 300 MB target drawn across it). The
limit rows (DuckDB's own reader, a pass-through floor, the emulator alone) are drawn hatched
and their rec/s marked with a dashed line, so ours reads against what is possible. No
plotting library: the chart is a few rectangles, and the SVG needs nothing to be viewed.

`python -m bench.chart bench/results/<file>.json` draws a stored result again.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from bench.core import FLOOR, LIMIT, OURS, PEER, SOURCE
from bench.report import MB300_MIB

COLOURS = {OURS: "#1f6fb2", PEER: "#e07b22", LIMIT: "#7a7a7a", FLOOR: "#7a7a7a", SOURCE: "#7a7a7a"}
LIMIT_ROLES = (LIMIT, FLOOR, SOURCE)
LABEL_W, RATE_W, MEM_W, GAP, VALUE_W = 330, 300, 200, 24, 90
ROW_H, HEAD_H, TOP = 20, 30, 64
WIDTH = LABEL_W + RATE_W + VALUE_W + GAP + MEM_W + VALUE_W


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _label(row: dict, stage_rows: list[dict]) -> str:
    """The tool, and its N when the stage's rows differ in N (subsets, memory sizes)."""
    label = row["tool"]
    if len({r["n"] for r in stage_rows}) > 1:
        label += f"  (N {row['n']:,})"
    if row["status"] != "ok":
        label += f"  [{row['status']}]"
    return label


def svg(result: dict) -> str:
    """The chart of one results JSON (``bench/cli.py``'s format) as SVG text."""
    rows = result["rows"]
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    mem_max = max([r.get("peak_rss_mib") or 0 for r in rows] + [MB300_MIB]) * 1.08
    height = TOP + sum(HEAD_H + ROW_H * len([r for r in rows if r["stage"] == s]) for s in stages)
    height += 30
    mem_x = LABEL_W + RATE_W + VALUE_W + GAP
    args = result.get("args", {})
    title = (
        f"make bench {result.get('date', '')[:10]} (git {result.get('git', '?')}, "
        f"N {args.get('size', 0):,}, {result.get('machine', {}).get('nproc', '?')} cores)"
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="system-ui, sans-serif" font-size="12">',
        "<defs><pattern id='hatch' width='6' height='6' patternUnits='userSpaceOnUse' "
        "patternTransform='rotate(45)'><rect width='6' height='6' fill='#d8d8d8'/>"
        "<line x1='0' y1='0' x2='0' y2='6' stroke='#7a7a7a' stroke-width='2'/></pattern></defs>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="20" font-size="15" font-weight="bold">{_esc(title)}</text>',
        f'<text x="{LABEL_W}" y="{TOP - 10}" font-weight="bold">records/s (longer is faster)'
        "</text>",
        f'<text x="{mem_x}" y="{TOP - 10}" font-weight="bold">peak MiB, largest process</text>',
    ]
    legend = ((OURS, "ours"), (PEER, "peer"), (LIMIT, "limit / floor / source (hatched)"))
    x = 8
    for role, text in legend:
        fill = "url(#hatch)" if role == LIMIT else COLOURS[role]
        out.append(f'<rect x="{x}" y="32" width="12" height="12" fill="{fill}"/>')
        out.append(f'<text x="{x + 16}" y="42">{_esc(text)}</text>')
        x += 30 + 7 * len(text)
    y = TOP
    for stage in stages:
        stage_rows = [r for r in rows if r["stage"] == stage]
        rate_max = max([r.get("records_per_s") or 0 for r in stage_rows] + [1]) * 1.02
        body = len(stage_rows) * ROW_H
        out.append(
            f'<text x="8" y="{y + 20}" font-size="13" font-weight="bold">{_esc(stage)}</text>'
        )
        out.append(f'<line x1="8" y1="{y + 25}" x2="{WIDTH - 8}" y2="{y + 25}" stroke="#dddddd"/>')
        y += HEAD_H
        for row in stage_rows:
            role = row["role"]
            fill = "url(#hatch)" if role in LIMIT_ROLES else COLOURS.get(role, "#999999")
            rate = row.get("records_per_s") or 0
            mem = row.get("peak_rss_mib") or 0
            tool = _esc(row["tool"])
            out.append(
                f'<text x="{LABEL_W - 8}" y="{y + 14}" text-anchor="end">'
                f"{_esc(_label(row, stage_rows))}</text>"
            )
            if rate:
                w = RATE_W * rate / rate_max
                out.append(
                    f'<rect class="rate" data-stage="{_esc(stage)}" data-tool="{tool}" '
                    f'data-role="{role}" data-value="{rate:.1f}" x="{LABEL_W}" y="{y + 3}" '
                    f'width="{w:.2f}" height="{ROW_H - 6}" fill="{fill}"/>'
                )
                out.append(f'<text x="{LABEL_W + w + 4:.1f}" y="{y + 14}">{rate:,.0f}/s</text>')
            else:
                reason = "nothing moves" if row["status"] == "ok" else "not measured"
                out.append(f'<text x="{LABEL_W}" y="{y + 14}" fill="#888">{reason}</text>')
            if mem:
                w = MEM_W * mem / mem_max
                out.append(
                    f'<rect class="memory" data-stage="{_esc(stage)}" data-tool="{tool}" '
                    f'data-role="{role}" data-value="{mem:.1f}" x="{mem_x}" y="{y + 3}" '
                    f'width="{w:.2f}" height="{ROW_H - 6}" fill="{fill}"/>'
                )
                out.append(f'<text x="{mem_x + w + 4:.1f}" y="{y + 14}">{mem:,.0f}</text>')
            y += ROW_H
        for row in stage_rows:  # the limit's speed, across the stage's rec/s bars
            if row["role"] in LIMIT_ROLES and row.get("records_per_s"):
                lx = LABEL_W + RATE_W * row["records_per_s"] / rate_max
                out.append(
                    f'<line class="rate-limit" x1="{lx:.2f}" y1="{y - body}" x2="{lx:.2f}" '
                    f'y2="{y}" stroke="#555555" stroke-dasharray="3 3"/>'
                )
        limit_x = mem_x + MEM_W * MB300_MIB / mem_max
        out.append(
            f'<line class="memory-limit" data-value="{MB300_MIB:.1f}" x1="{limit_x:.2f}" '
            f'y1="{y - body}" x2="{limit_x:.2f}" y2="{y}" stroke="#c62828" '
            'stroke-dasharray="5 3" stroke-width="1.5"/>'
        )
    out.append(
        f'<text x="{mem_x + MEM_W * MB300_MIB / mem_max:.2f}" y="{y + 16}" fill="#c62828" '
        'text-anchor="middle">limit 300 MB</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_chart(results: Path) -> Path:
    """Draw ``results`` (a bench JSON) to the same name with ``.svg``; returns that path."""
    out = results.with_suffix(".svg")
    out.write_text(svg(json.loads(results.read_text(encoding="utf-8"))), encoding="utf-8")
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(write_chart(Path(arg)))
