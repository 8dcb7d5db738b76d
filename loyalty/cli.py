"""The `loyalty` command: orchestrates taps, mappings and targets from pipelines.yaml."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import signal
import sys
import time
import typing as t
from pathlib import Path

import click

from loyalty import __version__
from loyalty.config import ConfigError, Project, Resolved, load
from loyalty.state import (
    LockedError,
    StateBackendError,
    StateStore,
    default_state_dir,
)
from singer_kit.redact import Redactor

if t.TYPE_CHECKING:
    from datetime import datetime

    from loyalty.runner import PipelineRun, RunResult

# Exit codes a scheduler can tell apart.
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock; try again later
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; the state stays at the last commit
# `--json`'s "outcome" for each exit code.
OUTCOMES = {
    0: "success",
    EXIT_FAILED: "failed",
    EXIT_CONFIG: "config_error",
    EXIT_LOCKED: "temporary",
    EXIT_INTERRUPTED: "interrupted",
}

ENV_HELP = "Environment from pipelines.yaml (default: $LOYALTY_ENV, else default_environment)."


class Ctx:
    """Options of the `loyalty` group, loaded lazily so `--help` needs no pipelines.yaml."""

    def __init__(self, file: str, state_dir: str | None) -> None:
        self.file = Path(file)
        self.state_dir_opt = state_dir
        self._project: Project | None = None

    @property
    def project(self) -> Project:
        """The parsed pipelines.yaml (config errors become one-line messages)."""
        if self._project is None:
            self._project = _or_exit(lambda: load(self.file))
        return self._project

    @property
    def store(self) -> StateStore:
        """The local state directory: logs, temporary files, state of file-backed pipelines."""
        return StateStore(default_state_dir(self.file, self.state_dir_opt))

    def store_for(self, pipeline: str, env: str) -> StateStore:
        """Where this pipeline keeps state, run records and its lock in this environment: the
        PostgreSQL database of `Project.state_database`, else the local state directory."""
        return self._store_at(_or_exit(lambda: self.project.state_database(pipeline, env)))

    def _store_at(self, url: str | None) -> StateStore:
        if url is None:
            return self.store
        from loyalty.pgstate import PgStateStore

        return PgStateStore(default_state_dir(self.file, self.state_dir_opt), url)

    def runs(self, env: str | None) -> list[dict[str, t.Any]]:
        """Run records, newest first: the state directory's and those of every state database
        the environment's pipelines use (one that cannot be read is one warning)."""
        records = self.store.runs()
        env = env or os.environ.get("LOYALTY_ENV")
        if env is None and self.project.default_environment is None:
            return records  # no environment to go by: the state directory's runs only
        env_name = _env_name(self, env)
        urls: set[str] = set()
        for name in self.project.pipelines:
            with contextlib.suppress(ConfigError):  # `loyalty validate` reports it
                urls.add(self.project.state_database(name, env_name) or "")
        for url in sorted(urls - {""}):
            store = self._store_at(url)
            try:
                records += store.runs()
            except StateBackendError as exc:
                click.echo(f"loyalty: warning: runs not shown: {exc}", err=True)
            finally:
                store.close()
        return sorted(records, key=lambda r: r["run_id"], reverse=True)


class Summary:
    """`--json`: the command's summary as one JSON object on stdout, however it ends.

    Every way out of `run` and `backfill` passes here (``_fail``'s sys.exit included), so a
    machine reads one object with the same ``exit_code`` the shell sees, the ``outcome`` it
    stands for (OUTCOMES) and the ``error`` line stderr got. Anything else (a bug) keeps its
    traceback and prints no object.
    """

    active: t.ClassVar[Summary | None] = None

    def __init__(self, enabled: bool, **fields: t.Any) -> None:
        self.enabled = enabled
        self.data: dict[str, t.Any] = {**fields, "error": None}
        self._started = time.monotonic()

    def __enter__(self) -> Summary:
        if self.enabled:
            Summary.active = self
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> None:
        Summary.active = None
        if not self.enabled:
            return
        if exc_type is None:
            code = 0
        elif isinstance(exc, SystemExit):
            code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
        else:
            return
        self.data.update(
            exit_code=code,
            outcome=OUTCOMES.get(code, "failed"),
            duration_seconds=round(time.monotonic() - self._started, 3),
        )
        click.echo(json.dumps(self.data, sort_keys=True))


def _backfill_totals(data: dict[str, t.Any]) -> None:
    """A backfill summary's totals over its windows: records per stream, rejects, counts."""
    data["windows"].sort(key=lambda entry: entry["window"])  # side by side, any order
    records: dict[str, int] = {}
    for entry in data["windows"]:
        for stream, n in entry.get("records", {}).items():
            records[stream] = records.get(stream, 0) + n
    data.update(
        records=dict(sorted(records.items())),
        rejects=sum(e.get("rejects", 0) for e in data["windows"]),
        windows_done=sum(e["status"] == "done" for e in data["windows"]),
        windows_skipped=sum(e["status"] == "skipped" for e in data["windows"]),
    )


def summarised(
    command: str,
    finish: t.Callable[[dict[str, t.Any]], None] | None = None,
    **fields: t.Callable[[], t.Any],
) -> t.Callable[[t.Callable[..., None]], t.Callable[..., None]]:
    """Run a command (run, backfill) inside its `--json` Summary, handed to it as ``summary``.

    ``fields`` are made fresh for each call (``windows=list``); ``finish`` completes the
    summary however the command ended (a backfill's totals, also when it stopped early).
    """

    def decorate(fn: t.Callable[..., None]) -> t.Callable[..., None]:
        @functools.wraps(fn)
        def wrapper(ctx: Ctx, *, as_json: bool, **options: t.Any) -> None:
            enabled = as_json and not options.get("dry_run")
            initial = {k: make() for k, make in fields.items()}
            with Summary(
                enabled, command=command, pipeline=options["pipeline"], **initial
            ) as summary:
                try:
                    fn(ctx, summary=summary, **options)
                finally:
                    if finish:
                        finish(summary.data)

        return wrapper

    return decorate


def _fail(message: str, code: int) -> t.NoReturn:
    click.echo(f"Error: {message}", err=True)
    if Summary.active is not None:
        Summary.active.data["error"] = message
    sys.exit(code)


T = t.TypeVar("T")


def _or_exit(fn: t.Callable[[], T]) -> T:
    try:
        return fn()
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)


def _env_name(ctx: Ctx, env: str | None) -> str:
    return _or_exit(lambda: ctx.project.environment(env or os.environ.get("LOYALTY_ENV")).name)


pass_ctx = click.make_pass_decorator(Ctx)
# run and backfill: a per-run choice of streams, without editing the committed catalog.
streams_option = click.option(
    "--streams",
    default=None,
    metavar="NAME,NAME",
    help="Only these streams of the tap's catalog (e.g. customers,journals), for this run; "
    "the other streams' bookmarks stay where they are.",
)
# run and backfill: what a person on a terminal, a log and a machine each read.
quiet_option = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress and no result lines; only warnings and errors (stderr). The exit code "
    "says how it went.",
)
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as one JSON object on stdout, whatever the outcome "
    "(exit_code, outcome, records, rejects, error, ...); other lines go to stderr.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty")
@click.option(
    "-f",
    "--file",
    "file",
    envvar="LOYALTY_PIPELINES",
    default="pipelines.yaml",
    show_default=True,
    help="The pipelines file ($LOYALTY_PIPELINES).",
)
@click.option(
    "--state-dir",
    envvar="LOYALTY_STATE_DIR",
    default=None,
    help="Where state, locks, run records and logs live ($LOYALTY_STATE_DIR; "
    "default: .loyalty/ next to the pipelines file).",
)
@click.pass_context
def main(ctx: click.Context, file: str, state_dir: str | None) -> None:
    """Move loyalty and marketing data: taps -> mappings -> targets.

    Start with `loyalty sandbox` to run the local emulators, `loyalty validate` to check
    pipelines.yaml offline, and `loyalty run PIPELINE` to run one pipeline.
    """
    ctx.obj = Ctx(file, state_dir)


@main.command()
@click.argument("pipeline")
@click.option("--env", "env", default=None, help=ENV_HELP)
@click.option("--full-refresh", is_flag=True, help="Ignore the saved state and extract everything.")
@click.option(
    "--dry-run", is_flag=True, help="Print the three commands and configs (secrets redacted)."
)
@click.option(
    "--batch/--no-batch",
    default=None,
    help="Move records as Singer BATCH files (gzip JSONL the store loads in bulk; for "
    "backfills and big windows). Default: the pipeline's `batch:` setting (off).",
)
@streams_option
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Echo the children's stderr (it is always in the run log).",
)
@quiet_option
@json_option
@pass_ctx
@summarised("run")
def run(
    ctx: Ctx,
    pipeline: str,
    env: str | None,
    full_refresh: bool,
    dry_run: bool,
    batch: bool | None,
    streams: str | None,
    verbose: bool,
    quiet: bool,
    summary: Summary,
) -> None:
    """Run PIPELINE once: tap | mapper | target, saving state after each target commit.

    Secrets come from the ${VAR} references in pipelines.yaml and reach the processes only
    in private config files. On a terminal the progress is a live display (one line per
    stream); in a log it is plain `progress` lines. Exit codes: 0 ok, 1 the run failed (with
    the step's last error line; the saved state stays at what the target last committed),
    2 configuration error, 75 try again later (this pipeline and environment is already
    running, here or on another machine, the store stayed locked, or the state database is
    unreachable), 130 interrupted.
    """
    from loyalty.progress import choose
    from loyalty.runner import PipelineRun, parse_streams, select_streams

    project = ctx.project
    env_name = _env_name(ctx, env)
    summary.data["env"] = env_name
    _check_config(ctx, pipeline, env_name)
    resolved = _or_exit(lambda: project.resolve(pipeline, env_name))
    store = ctx.store_for(pipeline, env_name)
    chosen = parse_streams(streams) if streams is not None else None
    if chosen is not None:
        _or_exit(lambda: select_streams(project, resolved, chosen))
    use_batch = _batch_or_note(
        project, resolved, resolved.pipeline.batch if batch is None else batch
    )
    if dry_run:
        _print_dry_run(project, resolved, store, full_refresh, use_batch)
        if chosen:
            click.echo(f"# streams: {','.join(chosen)} only (a temporary copy of the catalog)")
        return
    progress = choose(quiet, _stderr, _stderr if summary.enabled else click.echo)
    runner = PipelineRun(
        project,
        resolved,
        store,
        full_refresh=full_refresh,
        batch=use_batch,
        streams=chosen,
        echo=progress.say,
        verbose=verbose,
        progress=progress,
    )
    _or_exit(runner.check)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    progress.note(f"loyalty: running {pipeline} (env {env_name}), run {runner.run_id}")
    try:
        with progress:
            try:
                result = _run_or_exit(runner)
            finally:
                if runner.result.ended_at:
                    summary.data.update(runner.result.summary())
    except KeyboardInterrupt:
        _fail(f"run {runner.run_id} interrupted; state stays at the last commit", EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = ", ".join(f"{k}={v}" for k, v in sorted(result.records.items())) or "no records"
    progress.result(
        f"loyalty: {pipeline} (env {env_name}) succeeded: {counts}; "
        f"rejects={result.rejects}; log {result.log}"
    )
    progress.warnings(result.warnings)


def _stderr(message: str) -> None:
    click.echo(message, err=True)


@main.command()
@click.argument("pipeline")
@click.option("--start", required=True, help="First instant (ISO 8601 date or date-time; UTC).")
@click.option("--end", required=True, help="End of the range, exclusive (ISO 8601).")
@click.option(
    "--window",
    "window_len",
    default=None,
    help="Split the range into windows of this length: 30d, 12h, 2w (default: one window).",
)
@click.option("--env", "env", default=None, help=ENV_HELP)
@click.option(
    "--batch/--no-batch",
    default=True,
    help="Move records as Singer BATCH files (default for backfills) or RECORD lines.",
)
@streams_option
@click.option("--redo", is_flag=True, help="Also run windows an earlier backfill finished.")
@click.option(
    "--parallel",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Run this many windows side by side (each its own tap | mapper | target). Needs a "
    "PostgreSQL store: a DuckDB file takes one writer at a time.",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Echo the children's stderr (always in the run logs)."
)
@quiet_option
@json_option
@pass_ctx
@summarised("backfill", _backfill_totals, windows=list)
def backfill(
    ctx: Ctx,
    pipeline: str,
    start: str,
    end: str,
    window_len: str | None,
    env: str | None,
    batch: bool,
    streams: str | None,
    redo: bool,
    parallel: int,
    verbose: bool,
    quiet: bool,
    summary: Summary,
) -> None:
    """Re-extract PIPELINE from --start to --end in windows; the bookmark is left alone.

    Each window is one pipeline run with the tap's start_date/end_date set to the window and
    no saved state; the state the target emits is not saved, so scheduled incremental runs
    are unaffected. Finished windows are recorded: run the same command again after a
    failure or a kill and it resumes with the first unfinished window (where the pipeline
    keeps its state: with a PostgreSQL store, in the database, so any machine resumes it).
    --parallel N runs N windows side by side (PostgreSQL store only). On a terminal a live
    display shows the windows done of the total with an ETA. Exit codes: 0 ok, 1 a window
    failed (the finished windows stay recorded), 2 configuration error, 75 try again later
    (the pipeline is running, the store stayed locked, or the state database is
    unreachable), 130 interrupted.
    """
    from loyalty import backfill as bf
    from loyalty.progress import QuietProgress, choose
    from loyalty.runner import PipelineRun, os_error_line, parse_streams, select_streams
    from singer_kit.dates import now, parse_instant

    try:
        cut = bf.windows(
            parse_instant(start, "--start"),
            parse_instant(end, "--end"),
            bf.parse_window(window_len) if window_len else None,
        )
    except ValueError as exc:
        _fail(str(exc), EXIT_CONFIG)
    project = ctx.project
    env_name = _env_name(ctx, env)
    summary.data["env"] = env_name
    _check_config(ctx, pipeline, env_name, backfill=True)
    resolved = _or_exit(lambda: project.resolve(pipeline, env_name))
    chosen = parse_streams(streams) if streams is not None else None
    if chosen is not None:
        _or_exit(lambda: select_streams(project, resolved, chosen))
    try:
        too_early = bf.history_error(project, project.pipeline(pipeline), cut[0][0], now(), chosen)
    except ValueError as exc:  # a bad LOYALTY_NOW
        _fail(str(exc), EXIT_CONFIG)
    if too_early:
        _fail(too_early, EXIT_CONFIG)
    batch = _batch_or_note(project, resolved, batch)
    # A window loaded for some streams is not done for the others: its record names them.
    done_as = f" [{','.join(sorted(chosen))}]" if chosen else ""
    store = ctx.store_for(pipeline, env_name)
    if parallel > 1:
        _or_exit(lambda: bf.parallel_error(resolved))
    try:
        done = set() if redo else store.backfill_done(env_name, pipeline)
    except StateBackendError as exc:
        _fail(f"cannot read the finished windows: {exc}", exc.exit_code)
    except ValueError as exc:
        _fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        _fail(f"cannot read the finished windows: {os_error_line(exc)}", EXIT_FAILED)
    total = summary.data["windows_total"] = len(cut)
    progress = choose(quiet, _stderr, _stderr if summary.enabled else click.echo)
    progress.note(
        f"loyalty: backfill of {pipeline} (env {env_name}): {total} window(s)"
        + (f", {parallel} side by side" if parallel > 1 else "")
    )

    def runner_for(window: tuple[datetime, datetime]) -> PipelineRun:
        return PipelineRun(
            project,
            resolved,
            store,
            batch=batch,
            window=(window[0].isoformat(), window[1].isoformat()),
            streams=chosen,
            echo=progress.say,
            verbose=verbose,
            # Side by side, the windows' stream counts would mix: only the windows done show.
            progress=progress if parallel == 1 else QuietProgress(progress.say),
        )

    _or_exit(runner_for(cut[0]).check)
    windows = bf.Windows(cut, done, done_as, summary.data["windows"], progress, runner_for)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        # Side by side, the windows run under one lock the backfill holds (Windows.run).
        held = store.lock(env_name, pipeline) if parallel > 1 else contextlib.nullcontext()
        with progress, held:
            progress.windows(total)
            windows.run(parallel, lambda w: store.add_backfill_done(env_name, pipeline, w))
    except KeyboardInterrupt:
        _fail(
            "backfill interrupted; finished windows are recorded, run it again to resume",
            EXIT_INTERRUPTED,
        )
    except LockedError as exc:
        _fail(str(exc), EXIT_LOCKED)
    except StateBackendError as exc:
        _fail(str(exc), exc.exit_code)
    except OSError as exc:
        _fail(f"cannot use the state directory: {os_error_line(exc)}", EXIT_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)
        store.close()
    if windows.failure:
        code, why = windows.failure
        _fail(why, code)
    progress.result(f"loyalty: backfill of {pipeline} finished; the saved state was not touched")


def _check_config(ctx: Ctx, pipeline: str, env_name: str, backfill: bool = False) -> None:
    """Exit 2 with one line unless `loyalty validate --env ENV` would pass for this pipeline."""
    from loyalty.validate import check_run

    for note in _or_exit(lambda: check_run(ctx.project, pipeline, env_name, backfill)):
        click.echo(f"loyalty: warning: {note}", err=True)


def _batch_or_note(project: Project, resolved: Resolved, batch: bool) -> bool:
    """BATCH if asked and the target declares it; else RECORD, with a one-line note."""
    from loyalty.validate import batch_fallback

    if not batch:
        return False
    note = batch_fallback(project, resolved.pipeline)
    if note:
        click.echo(f"loyalty: note: {note}", err=True)
    return note is None


def _run_or_exit(
    runner: PipelineRun, failed: t.Callable[[str], str] = lambda why: why
) -> RunResult:
    """Run, or exit with one line: 75 try again later, 2 configuration, 1 failed (``failed``
    words the failures that are not about the lock or the configuration)."""
    from loyalty.runner import RUN_FAILURES, failure_exit

    try:
        return runner.run()
    except RUN_FAILURES as exc:
        code, why = failure_exit(exc)
        if not isinstance(exc, (LockedError, ConfigError)):
            why = failed(why)
    runner.progress.stop()  # a live display's last frame first, the error line under it
    _fail(why, code)


def _sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _print_dry_run(
    project: Project,
    resolved: Resolved,
    store: StateStore,
    full_refresh: bool,
    batch: bool,
) -> None:
    from loyalty.runner import batch_configs, command_lines

    redact = Redactor(resolved.secrets, resolved.configs)
    pipe, env = resolved.pipeline, resolved.env.name
    has_state = not full_refresh and store.may_have_state(env, pipe.name)
    cfg_dir = Path("<tmp>")
    cmds = command_lines(project, resolved, cfg_dir, cfg_dir / "state.json" if has_state else None)
    click.echo(f"# dry run of {pipe.name} (env {env}); nothing is started")
    click.echo(f"# working directory: {project.root}")
    for role, argv in cmds.items():
        click.echo(f"{role + ':':8}{redact(shlex.join(argv))}")
    click.echo("# pipes: tap stdout -> mapper stdin, mapper stdout -> target stdin")
    if has_state:
        click.echo(f"# state: {store.state_where(env, pipe.name)}")
    configs = resolved.redacted
    if batch:
        batch_dir = store.root / "tmp" / "run-<pid>-<random>" / "batch"
        click.echo(
            f"# records travel as BATCH files under {batch_dir} (private to the user, "
            "removed after the run, or by the next run if this one is killed)"
        )
        configs = batch_configs(configs, batch_dir)
    for role, cfg in configs.items():
        click.echo(f"# {role}.json: {redact(json.dumps(cfg, default=str))}")


@main.command()
@click.option("--env", "env", default=None, help="Also require every ${VAR} of this environment.")
@pass_ctx
def validate(ctx: Ctx, env: str | None) -> None:
    """Check pipelines.yaml, the catalogs, the mappings and the schedules, offline.

    Unset ${VAR}s are errors for the environment given with --env and notes otherwise, so the
    file can be checked on a machine that holds no secrets.
    """
    from loyalty.validate import validate_project

    project = ctx.project
    env_name = _env_name(ctx, env) if env else None
    errors, notes = validate_project(project, env_name, strict=env_name is not None)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if errors:
        for err in errors:
            click.echo(f"Error: {err}", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(
        f"{project.path.name}: OK ({len(project.pipelines)} pipeline(s), "
        f"{len(project.environments)} environment(s)"
        + (f"; every variable of env {env_name} is set)" if env_name else ")")
    )


@main.command()
@click.option("-n", "--limit", default=10, show_default=True, help="How many runs to show.")
@click.option("--pipeline", default=None, help="Only this pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print the run records as JSON.")
@click.option(
    "--env", "env", default=None, help="Whose state databases to read as well. " + ENV_HELP
)
@pass_ctx
def status(ctx: Ctx, limit: int, pipeline: str | None, as_json: bool, env: str | None) -> None:
    """Show the latest runs: pipeline, env, start, end, records per stream, rejects, outcome.

    Runs of pipelines whose state lives in PostgreSQL come from that database (every
    machine's); the others from the state directory."""
    runs = [r for r in ctx.runs(env) if not pipeline or r["pipeline"] == pipeline][:limit]
    if as_json:
        click.echo(json.dumps(runs, indent=2))
        return
    if not runs:
        click.echo("no runs recorded yet")
        return
    click.echo(f"{'started':20} {'ended':20} {'pipeline':20} {'env':8} {'outcome':11} records")
    for r in runs:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(r.get("records", {}).items()))
        window = r.get("window")
        backfill = f" [backfill {window[0]} to {window[1]}]" if window else ""
        click.echo(
            f"{r['started_at']:20} {r.get('ended_at') or '-':20} {r['pipeline']:20} "
            f"{r['env']:8} {r['outcome']:11} {counts or '-'} (rejects {r.get('rejects', 0)})"
            f"{backfill}"
        )
        if r.get("error"):
            click.echo(f"{'':20} {r.get('failed_step') or ''}: {r['error']}")


@main.group()
def state() -> None:
    """Show, set or clear a pipeline's saved state (its incremental bookmarks)."""


@state.command("show")
@click.argument("pipeline")
@click.option("--env", "env", default=None, help=ENV_HELP)
@pass_ctx
def state_show(ctx: Ctx, pipeline: str, env: str | None) -> None:
    """Print the saved state of PIPELINE as JSON (`{}` when there is none)."""
    _or_exit(lambda: ctx.project.pipeline(pipeline))
    env_name = _env_name(ctx, env)
    store = ctx.store_for(pipeline, env_name)
    try:
        value = store.read_state(env_name, pipeline)
    except StateBackendError as exc:
        _fail(str(exc), exc.exit_code)
    except ValueError as exc:
        _fail(str(exc), EXIT_FAILED)
    click.echo(json.dumps(value or {}, indent=2, sort_keys=True))


@state.command("set")
@click.argument("pipeline")
@click.argument("state_json", metavar="JSON_OR_FILE")
@click.option("--env", "env", default=None, help=ENV_HELP)
@pass_ctx
def state_set(ctx: Ctx, pipeline: str, state_json: str, env: str | None) -> None:
    """Replace the saved state of PIPELINE with a JSON object (inline, a file, or - for stdin)."""
    _or_exit(lambda: ctx.project.pipeline(pipeline))
    env_name = _env_name(ctx, env)
    if state_json == "-":
        text = sys.stdin.read()
    elif Path(state_json).is_file():
        text = Path(state_json).read_text(encoding="utf-8")
    else:
        text = state_json
    try:
        value = json.loads(text)
    except ValueError as exc:
        _fail(f"state must be a JSON object: {exc}", EXIT_CONFIG)
    if not isinstance(value, dict):
        _fail("state must be a JSON object", EXIT_CONFIG)
    store = ctx.store_for(pipeline, env_name)
    try:
        with store.lock(env_name, pipeline):
            store.write_state(env_name, pipeline, value)
    except LockedError as exc:
        _fail(str(exc), EXIT_LOCKED)
    except StateBackendError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo(f"state of {pipeline} (env {env_name}) replaced")


@state.command("clear")
@click.argument("pipeline")
@click.option("--env", "env", default=None, help=ENV_HELP)
@pass_ctx
def state_clear(ctx: Ctx, pipeline: str, env: str | None) -> None:
    """Forget the saved state of PIPELINE: the next run extracts from the start again."""
    _or_exit(lambda: ctx.project.pipeline(pipeline))
    env_name = _env_name(ctx, env)
    store = ctx.store_for(pipeline, env_name)
    try:
        with store.lock(env_name, pipeline):
            existed = store.clear_state(env_name, pipeline)
    except LockedError as exc:
        _fail(str(exc), EXIT_LOCKED)
    except StateBackendError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo(
        f"state of {pipeline} (env {env_name}) {'cleared' if existed else 'was already empty'}"
    )


@main.command()
@click.option("--env", "env", default=None, help=ENV_HELP)
@click.option(
    "--foreground",
    is_flag=True,
    help="Run the schedules in this process (for containers) instead of printing crontab lines.",
)
@click.option(
    "--max-runs", type=int, default=None, help="With --foreground: stop after this many runs."
)
@pass_ctx
def schedule(ctx: Ctx, env: str | None, foreground: bool, max_runs: int | None) -> None:
    """Print crontab lines for every pipeline with a `schedule:` (checked with croniter).

    Install them with `loyalty schedule --env prod | crontab -`. The ${VAR} secrets must be
    in cron's environment (for example in the crontab itself, or a wrapper script).
    With --foreground the schedules run in this process until SIGTERM; there a schedule may
    also have a sixth, seconds field.
    """
    from loyalty.validate import check_cron

    project = ctx.project
    env_name = _env_name(ctx, env)
    store = ctx.store
    loyalty_bin = Path(sys.executable).parent / "loyalty"
    exe = str(loyalty_bin) if loyalty_bin.exists() else "loyalty"
    schedules: dict[str, str] = {}
    for pipe in project.pipelines.values():
        if not pipe.schedule:
            continue
        problem = check_cron(pipe.schedule)
        if not problem and not foreground and len(pipe.schedule.split()) != 5:
            problem = f"{pipe.schedule!r} has a seconds field; crontab takes five fields"
        if problem:
            _fail(
                f"{project.where(pipe.schedule_line)}: pipelines.{pipe.name}.schedule: {problem}",
                EXIT_CONFIG,
            )
        schedules[pipe.name] = pipe.schedule

    def command(name: str) -> list[str]:
        return [
            exe,
            *("-f", str(project.path), "--state-dir", str(store.root)),
            *("run", name, "--env", env_name),
        ]

    if foreground:
        from loyalty.scheduler import run_forever

        if not schedules:
            _fail("no pipeline has a schedule", EXIT_CONFIG)
        names = ", ".join(f"{k} ({v})" for k, v in schedules.items())
        click.echo(f"loyalty schedule: env {env_name}: {names}", err=True)
        failed = run_forever(schedules, command, lambda m: click.echo(m, err=True), max_runs)
        sys.exit(EXIT_FAILED if failed else 0)
    lines = [f"# loyalty-pipelines: {project.path} (env {env_name})"]
    log = shlex.quote(str(store.root / "cron.log"))
    for name, expr in schedules.items():
        cmd = shlex.join(command(name))
        lines.append(f"{expr} cd {shlex.quote(str(project.root))} && {cmd} >> {log} 2>&1")
    if len(lines) == 1:
        lines.append("# no pipeline has a schedule")
    click.echo("\n".join(lines))


@main.group()
def export() -> None:
    """Write the project's pipelines for another orchestrator."""


@export.command("meltano")
@click.option(
    "--check", is_flag=True, help="Write nothing; exit 1 if meltano.yml is not up to date."
)
@pass_ctx
def export_meltano(ctx: Ctx, check: bool) -> None:
    """meltano.yml next to pipelines.yaml: every tap, mapping and target with its settings
    (secrets masked), the environments, one job per pipeline and the schedules."""
    from loyalty import meltano
    from loyalty.runner import os_error_line
    from loyalty.state import atomic_write

    project = ctx.project
    path = project.root / meltano.MELTANO_FILE
    text = _or_exit(lambda: meltano.export(project))
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if check and current != text:
            _fail(
                f"{path} is not up to date with {project.path.name}: run `loyalty export "
                "meltano` and commit it",
                EXIT_FAILED,
            )
        if current != text:
            atomic_write(path, text.encode())
    except (OSError, UnicodeDecodeError) as exc:
        why = os_error_line(exc) if isinstance(exc, OSError) else f"{path}: not UTF-8 ({exc})"
        _fail(f"cannot {'check' if check else 'write'} {path.name}: {why}", EXIT_FAILED)
    click.echo(f"{path.name}: {'written' if current != text else 'up to date'}")


def _register() -> None:
    # Each command lives in the module of its concern; importing here keeps `loyalty --help` fast
    # enough while the command set stays in one place.
    from loyalty.report import report_command
    from loyalty.segments import segment_command

    main.add_command(segment_command)
    main.add_command(report_command)
    try:
        from sandbox.cli import sandbox_command
    except ModuleNotFoundError as exc:  # only while the sandbox package is not installed
        if exc.name not in ("sandbox", "sandbox.cli"):
            raise
        return
    main.add_command(sandbox_command)


_register()
