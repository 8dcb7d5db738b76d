"""`loyalty segment list|show`: the store's segments from the command line.

The segments themselves are the store's table macros (targets/target_loyalty_store/
segments.sql, installed by every load); this module only finds the store of an environment,
turns `--param k=v` into typed macro arguments and prints the members. The store is opened
read-only and briefly, so it never blocks a load for longer than one query. A PostgreSQL store
(`database: postgresql://...`) is asked the same question through its seg_<name> functions,
in one read-only transaction (a plain MVCC read: loads go on meanwhile).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import sys
import typing as t
from pathlib import Path

import click
import duckdb

from loyalty.config import ConfigError, Project, substitute
from singer_kit import pgstore
from singer_kit.dates import now
from target_loyalty_store.segments import Segment, catalog, query
from target_loyalty_store.store import StoreError, open_read_only

TARGET = "target-loyalty-store"
EXIT_CONFIG = 2


def _fail(message: str, code: int) -> t.NoReturn:
    """Stop with one `Error: ...` line on stderr and ``code``: click's own way, as a scheduler
    tells the codes apart."""
    error = click.ClickException(message)
    error.exit_code = code
    raise error


def store_location(project: Project, env: str | None) -> str:
    """The store of an environment: its target-loyalty-store `database`, else the pipelines'
    own, else the target's default. A file is made absolute (relative to pipelines.yaml, like
    a run's); a PostgreSQL URL is returned as it is."""
    environment = project.environment(env or os.environ.get("LOYALTY_ENV"))
    value = environment.config.get(TARGET, {}).get("database")
    where = f"environments.{environment.name}.config.{TARGET}.database"
    if value is None:
        for pipe in project.pipelines.values():
            if pipe.target.executable == TARGET and "database" in pipe.target.config:
                value = pipe.target.config["database"]
                where = f"pipelines.{pipe.name}.target.config.database"
                break
    value = str(substitute(value or "./loyalty.duckdb", project.where(0), where, os.environ))
    if pgstore.is_postgres_url(value):
        return value
    path = Path(value)
    return str(path if path.is_absolute() else project.root / path)


def _segment(name: str) -> Segment:
    segments = catalog()
    if name not in segments:
        _fail(f"unknown segment {name!r} (known: {', '.join(segments)})", EXIT_CONFIG)
    return segments[name]


def _arguments(segment: Segment, given: tuple[str, ...]) -> dict[str, t.Any]:
    """--param k=v as typed macro arguments; as_of defaults to the (pinnable) clock."""
    params = {p.name: p for p in segment.params}
    values: dict[str, t.Any] = {}
    for item in given:
        key, sep, text = item.partition("=")
        if not sep:
            _fail(f"--param {item!r}: expected NAME=VALUE", EXIT_CONFIG)
        if key not in params:
            known = ", ".join(params) or "none"
            _fail(f"segment {segment.name} has no parameter {key!r} (known: {known})", EXIT_CONFIG)
        try:
            values[key] = params[key].convert(text)
        except ValueError as exc:
            _fail(f"segment {segment.name}: {exc}", EXIT_CONFIG)
    missing = [p.name for p in segment.params if p.default is None and p.name not in values]
    if missing:
        _fail(f"segment {segment.name} needs --param {missing[0]}=...", EXIT_CONFIG)
    if "as_of" in params and "as_of" not in values:
        values["as_of"] = now()
    return values


def _members(
    where: str, segment: Segment, values: dict[str, t.Any]
) -> tuple[list[str], list[tuple[str | None, ...]]]:
    """The segment's columns and rows from the store at ``where`` (file or PostgreSQL URL)."""
    if pgstore.is_postgres_url(where):
        from target_loyalty_store.pgsegments import query_postgres

        pg = pgstore.connect(where, application_name="loyalty segment")
        try:
            pg.read_only = True
            return query_postgres(pg, segment, values)
        finally:
            pg.close()
    con = open_read_only(where)
    try:
        return query(con, segment, values)
    finally:
        con.close()


def _is_store_error(exc: Exception) -> bool:
    """An error the store's database raised (DuckDB's, or PostgreSQL's when it is one)."""
    if isinstance(exc, duckdb.Error):
        return True
    import psycopg  # loaded already when the store is PostgreSQL

    return isinstance(exc, psycopg.Error)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value)


@click.group("segment")
def segment_command() -> None:
    """The guide's segments over the loyalty store (docs/segments.md)."""


@segment_command.command("list")
def segment_list() -> None:
    """Every segment: its name, its question, its parameters with their defaults."""
    for segment in catalog().values():
        click.echo(f"{segment.name}\n  {segment.question}")
        for p in segment.params:
            if p.default is None:
                default = "required"
            elif p.name == "as_of":
                default = "default: now"
            elif p.default == "NULL":
                default = "optional"
            else:
                default = f"default: {p.default.strip(chr(39))}"
            click.echo(f"  --param {p.name}=<{p.type}>  {p.help} ({default})")


@segment_command.command("show")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter.")
@click.option("--csv", "as_csv", is_flag=True, help="Members as CSV on stdout (count on stderr).")
@click.option("--env", "env", default=None, help="Environment whose store to read.")
@click.option(
    "--database", default=None, help="The store's file or PostgreSQL URL (instead of the env's)."
)
@click.pass_obj
def segment_show(
    ctx: t.Any,
    name: str,
    params: tuple[str, ...],
    as_csv: bool,
    env: str | None,
    database: str | None,
) -> None:
    """Members of segment NAME: contact_id, email and the segment's evidence columns."""
    segment = _segment(name)
    values = _arguments(segment, params)
    try:
        where = database or store_location(ctx.project, env)
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    try:
        columns, rows = _members(where, segment, values)
    except (StoreError, pgstore.PgStoreError) as exc:
        _fail(str(exc), exc.exit_code)
    except Exception as exc:  # the store's own SQL error: a store no load has brought up to date
        if not _is_store_error(exc):
            raise
        first = str(exc).strip().splitlines()[0]
        _fail(
            f"segment {name} cannot run on {pgstore.safe_url(where)}: {first} (a load with "
            "this version of target-loyalty-store installs the current segments)",
            EXIT_CONFIG,
        )
    shown = ", ".join(f"{k}={_text(v)}" for k, v in values.items())
    count = f"{len(rows)} member(s) in {segment.name}" + (f" ({shown})" if shown else "")
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(v) for v in row] for row in rows)
        click.echo(count, err=True)
        return
    cells = [columns, *([_text(v) for v in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    click.echo(count)
