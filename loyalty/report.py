"""`loyalty report`: one static HTML page of what the pipelines did and what the store holds.

A page to open from disk or mail to a manager, like dbt's generated docs: the latest runs per
pipeline and environment (from the run records) with a small chart over time, the store's rows
per source, the top reject reasons with one example record each (secrets and personal data
masked: ``singer_kit.redact.mask_record``), and the segments with their member counts.

It is self-contained: CSS and SVG charts are inline, there is no script, and a Content
Security Policy (``default-src 'none'``) tells the browser to fetch nothing, so the page looks
the same offline and leaks nothing when opened.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import typing as t
from dataclasses import dataclass
from pathlib import Path

import click
import duckdb

from loyalty.config import ConfigError
from singer_kit.redact import Redactor, mask_record

if t.TYPE_CHECKING:
    from loyalty.config import Project

RUNS_PER_CHART = 30  # the newest runs of each pipeline and environment in its chart
RUNS_LISTED = 5  # ... and in its table
TOP_REASONS = 10
# The store's tables per source, in this order; each shown only when the store has it (a store
# an older target created lacks the last two, which came with LoyaltyLion and Billetten).
# contact_ids stands for the contacts: a person is one contact, counted once under every
# source that knows them.
SOURCE_TABLES = (
    ("contacts", "contact_ids", "count(DISTINCT contact_id)"),
    ("order lines", "order_lines", "count(*)"),
    ("loyalty accounts", "loyalty_accounts", "count(*)"),
    ("tracking events", "tracking_events", "count(*)"),
)
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
OUTCOME_COLOURS = {"success": "#2e7d32", "failed": "#c62828", "interrupted": "#ef6c00"}
OTHER_COLOUR = "#757575"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}
main{padding:8px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:14px 18px;
margin:18px 0}
h2{font-size:17px;margin:0 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceff3;vertical-align:top}
th{background:#f0f2f5;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-size:12px}
.pair{display:grid;grid-template-columns:minmax(280px,1fr) 2fr;gap:18px;align-items:start;
border-top:1px solid #eceff3;padding-top:10px;margin-top:10px}
pre{background:#f6f8fa;border:1px solid #eceff3;padding:8px;overflow:auto;font-size:12px;
max-height:260px;margin:4px 0 0}
.muted{color:#666}svg text{font:11px system-ui,sans-serif;fill:#555}
"""


@dataclass
class Report:
    """What the page shows, gathered first so the HTML is only presentation."""

    title: str
    generated_at: str
    runs: list[dict[str, t.Any]]
    store: Path | None
    store_note: str | None = None  # why the store part is missing, if it is
    per_source: dict[str, dict[str, int]] | None = None  # label -> source -> rows
    reasons: list[tuple[str, str, int, t.Any]] | None = None  # stream, reason, count, example
    segments: list[tuple[str, str, str, int | None]] | None = None  # name, question, params, n


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _instant(text: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def duration(run: t.Mapping[str, t.Any]) -> float | None:
    """Seconds from start to end of a run record (None while running)."""
    start, end = _instant(run.get("started_at")), _instant(run.get("ended_at"))
    return (end - start).total_seconds() if start and end else None


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def gather_store(report: Report, con: duckdb.DuckDBPyConnection, redact: Redactor) -> None:
    """The store's part of the report: rows per source, top rejects, segment members."""
    from singer_kit.dates import now
    from target_loyalty_store.segments import catalog, query

    tables = {
        name: {
            c
            for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]
            ).fetchall()
        }
        for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    per_source: dict[str, dict[str, int]] = {}
    for label, table, count in SOURCE_TABLES:
        if table not in tables:
            continue
        by = "source" if "source" in tables[table] else "'all'"
        rows = con.execute(
            f"SELECT coalesce({by}, '(none)'), {count} FROM {table} GROUP BY 1 ORDER BY 1"
        ).fetchall()
        per_source[label] = {str(s): int(n) for s, n in rows}
    report.per_source = per_source
    if "_rejects" in tables:
        rows = con.execute(
            f"""
            SELECT stream, reason, count(*) AS n, arg_min(record::VARCHAR, rejected_at)
            FROM _rejects GROUP BY stream, reason ORDER BY n DESC, stream, reason
            LIMIT {TOP_REASONS}
            """
        ).fetchall()
        reasons = []
        for stream, reason, n, example in rows:
            try:
                record = json.loads(example) if example else None
            except ValueError:
                record = example
            reasons.append(
                (
                    stream or "",
                    mask_record(reason or "", redact),
                    int(n),
                    mask_record(record, redact),
                )
            )
        report.reasons = reasons
    segments = []
    as_of = now()
    for segment in catalog().values():
        required = [p.name for p in segment.params if p.default is None]
        shown = ", ".join(
            f"{p.name}={p.default.strip(chr(39))}"
            for p in segment.params
            if p.default not in (None, "NULL")
        )
        if required:
            segments.append((segment.name, segment.question, f"needs {', '.join(required)}", None))
            continue
        args = {"as_of": as_of} if any(p.name == "as_of" for p in segment.params) else {}
        try:
            _, members = query(con, segment, args)
        except duckdb.Error as exc:  # a store loaded by an older version
            first = str(exc).splitlines()[0]
            segments.append((segment.name, segment.question, f"cannot run: {first}", None))
            continue
        segments.append((segment.name, segment.question, shown, len(members)))
    report.segments = segments


# -- HTML ----------------------------------------------------------------------------------


def _badge(outcome: str) -> str:
    colour = OUTCOME_COLOURS.get(outcome, OTHER_COLOUR)
    return f'<span class="badge" style="background:{colour}">{_esc(outcome)}</span>'


def run_chart(runs: list[dict[str, t.Any]], width: int = 560, height: int = 130) -> str:
    """Records per run as bars (coloured by outcome, oldest left) and the duration as a line.

    Each run is one ``<rect class="point">`` with a ``<title>`` (hover: when, outcome,
    records, rejects, duration), so the chart is readable without any script.
    """
    runs = list(reversed(runs[:RUNS_PER_CHART]))  # oldest first, left to right
    left, right, top, bottom = 44, 44, 10, 22
    inner_w, inner_h = width - left - right, height - top - bottom
    most = max([sum(r.get("records", {}).values()) for r in runs] + [1])
    longest = max([duration(r) or 0 for r in runs] + [1])
    step = inner_w / max(len(runs), 1)
    bar = max(2.0, step * 0.7)
    parts = [
        f'<svg class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="records and duration of the last {len(runs)} runs">',
        f'<line x1="{left}" y1="{top + inner_h}" x2="{left + inner_w}" y2="{top + inner_h}" '
        'stroke="#bbb"/>',
        f'<text x="{left - 4}" y="{top + 9}" text-anchor="end">{most:,}</text>',
        f'<text x="{left - 4}" y="{top + inner_h}" text-anchor="end">0</text>',
        f'<text x="{left + inner_w + 4}" y="{top + 9}">{_esc(_clock(longest))}</text>',
        f'<text x="{left}" y="{height - 6}">records per run (bars), duration (line)</text>',
    ]
    line: list[str] = []
    for i, run in enumerate(runs):
        records = sum(run.get("records", {}).values())
        h = max(1.0, inner_h * records / most)
        x = left + i * step + (step - bar) / 2
        colour = OUTCOME_COLOURS.get(run.get("outcome", ""), OTHER_COLOUR)
        took = duration(run)
        tip = (
            f"{run.get('started_at', '')}: {run.get('outcome', '')}, {records:,} records, "
            f"{run.get('rejects', 0):,} rejects, {_clock(took)}"
        )
        parts.append(
            f'<rect class="point" x="{x:.1f}" y="{top + inner_h - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}" fill="{colour}" data-records="{records}">'
            f"<title>{_esc(tip)}</title></rect>"
        )
        if took is not None:
            line.append(f"{x + bar / 2:.1f},{top + inner_h - inner_h * took / longest:.1f}")
    if len(line) > 1:
        parts.append(
            f'<polyline points="{" ".join(line)}" fill="none" stroke="#1f3a5f" stroke-width="1.5"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _runs_section(runs: list[dict[str, t.Any]]) -> str:
    groups: dict[tuple[str, str], list[dict[str, t.Any]]] = {}
    for run in runs:  # newest first
        groups.setdefault((run.get("pipeline", "?"), run.get("env", "?")), []).append(run)
    out = ["<section id='runs'><h2>Latest runs per pipeline and environment</h2>"]
    if not groups:
        out.append("<p class='muted'>No runs recorded yet (<code>loyalty run</code>).</p>")
    for (pipeline, env), group in sorted(groups.items()):
        latest = group[0]
        out.append(
            f"<div class='pair'><div><h3>{_esc(pipeline)} <span class='muted'>env "
            f"{_esc(env)}</span></h3><p>latest {_badge(latest.get('outcome', '?'))} "
            f"{_esc(latest.get('started_at'))}"
            + (" (backfill window)" if latest.get("window") else "")
            + "</p>"
            + (
                f"<p class='muted'>{_esc(latest.get('failed_step'))}: {_esc(latest['error'])}</p>"
                if latest.get("error")
                else ""
            )
            + "<table><tr><th>started</th><th>outcome</th><th class='n'>records</th>"
            "<th class='n'>rejects</th><th class='n'>duration</th></tr>"
        )
        for run in group[:RUNS_LISTED]:
            out.append(
                f"<tr><td>{_esc(run.get('started_at'))}</td><td>{_badge(run.get('outcome', '?'))}"
                f"</td><td class='n'>{sum(run.get('records', {}).values()):,}</td>"
                f"<td class='n'>{run.get('rejects', 0):,}</td>"
                f"<td class='n'>{_clock(duration(run))}</td></tr>"
            )
        out.append(f"</table></div><div>{run_chart(group)}</div></div>")
    out.append("</section>")
    return "".join(out)


def _store_section(report: Report) -> str:
    out = ["<section id='store'><h2>What the store holds per source</h2>"]
    out.append(f"<p class='muted'>{_esc(report.store)}</p>")
    if report.store_note:
        out.append(f"<p>{_esc(report.store_note)}</p></section>")
        return "".join(out)
    per_source = report.per_source or {}
    sources = sorted({s for counts in per_source.values() for s in counts})
    out.append("<table><tr><th>source</th>")
    out += [f"<th class='n'>{_esc(label)}</th>" for label in per_source]
    out.append("</tr>")
    for source in sources:
        out.append(f"<tr><td>{_esc(source)}</td>")
        out += [f"<td class='n'>{per_source[label].get(source, 0):,}</td>" for label in per_source]
        out.append("</tr>")
    out.append("</table></section>")
    return "".join(out)


def _rejects_section(report: Report) -> str:
    if report.reasons is None:
        return ""
    out = ["<section id='rejects'><h2>Top reject reasons</h2>"]
    if not report.reasons:
        out.append("<p class='muted'>Nothing rejected.</p>")
    else:
        out.append(
            "<p class='muted'>Records kept in <code>_rejects</code> instead of loaded; one "
            "example each, with secrets and personal data masked.</p>"
        )
    for stream, reason, n, example in report.reasons:
        shown = json.dumps(example, indent=2, ensure_ascii=False, default=str)
        out.append(
            f"<h3>{n:,} &times; {_esc(stream)}: {_esc(reason)}</h3>"
            f"<pre class='example'>{_esc(shown)}</pre>"
        )
    out.append("</section>")
    return "".join(out)


def _segments_section(report: Report) -> str:
    if report.segments is None:
        return ""
    out = [
        "<section id='segments'><h2>Segments</h2><table><tr><th>segment</th><th>question</th>"
        "<th>parameters</th><th class='n'>members</th></tr>"
    ]
    for name, question, params, members in report.segments:
        count = f"{members:,}" if members is not None else "-"
        out.append(
            f"<tr><td>{_esc(name)}</td><td>{_esc(question)}</td>"
            f"<td class='muted'>{_esc(params)}</td><td class='n'>{count}</td></tr>"
        )
    out.append("</table></section>")
    return "".join(out)


def render(report: Report) -> str:
    """The whole page: no script, no external URL; the CSP forbids fetching anything."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(report.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_esc(report.title)}</h1><p>generated {_esc(report.generated_at)}</p>"
        "</header><main>"
        + _runs_section(report.runs)
        + _store_section(report)
        + _rejects_section(report)
        + _segments_section(report)
        + "</main></body></html>\n"
    )


# -- the command ---------------------------------------------------------------------------


def secrets_of(project: Project, env: str) -> Redactor:
    """Every secret the environment's pipelines resolve to here (unset ones are unknown, and
    the secret-named keys of a record are masked anyway)."""
    redact = Redactor()
    for name in project.pipelines:
        try:
            resolved = project.resolve(name, env)
        except ConfigError:
            continue
        redact.add(resolved.secrets)
    return redact


def build(project: Project, runs: list[dict[str, t.Any]], database: Path, env: str) -> Report:
    """Gather the report: the run records given, the store at ``database`` (if readable)."""
    from singer_kit.dates import now
    from target_loyalty_store.store import StoreError, open_read_only

    report = Report(
        title=f"Loyalty pipelines: {project.path.name} ({project.root})",
        generated_at=now().astimezone(dt.UTC).isoformat(timespec="seconds"),
        runs=runs,
        store=database,
    )
    try:
        con = open_read_only(str(database))
    except StoreError as exc:  # no store yet, or a load holds it: the runs still show
        report.store_note = str(exc)
        return report
    try:
        gather_store(report, con, secrets_of(project, env))
    finally:
        con.close()
    return report


@click.command("report")
@click.option(
    "--out",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page.",
)
@click.option("--env", "env", default=None, help="Environment whose store to show.")
@click.option("--database", default=None, help="The store's file (instead of the env's).")
@click.pass_obj
def report_command(ctx: t.Any, out: Path, env: str | None, database: str | None) -> None:
    """Write one self-contained HTML page: the latest runs per pipeline and environment with a
    chart over time, the store's rows per source, the top reject reasons with a masked
    example each, and the segments with their member counts. The page loads nothing from
    the network; open it from disk or send it on."""
    from loyalty.segments import store_location
    from singer_kit.pgstore import is_postgres_url, safe_url

    project = ctx.project
    try:
        env_name = project.environment(env or os.environ.get("LOYALTY_ENV")).name
        where = database or store_location(project, env_name)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if is_postgres_url(where):
        raise click.UsageError(
            f"the report reads a DuckDB store; {safe_url(where)} is PostgreSQL "
            "(its segments: loyalty segment show --database URL)"
        )
    path = Path(where)
    report = build(project, ctx.runs(env_name), path, env_name)
    try:
        out.write_text(render(report), encoding="utf-8")
    except OSError as exc:
        click.echo(f"Error: cannot write the report {out}: {exc.strerror or exc}", err=True)
        raise SystemExit(1) from None
    click.echo(str(out.resolve()))
