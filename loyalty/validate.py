"""`loyalty validate`: everything that can be checked without touching a remote system.

Catches at the desk what would otherwise fail at 3 a.m. under cron: missing executables,
catalogs and mappings, mapping paths the catalog does not have, bad cron expressions, secrets
written literally into the file, settings an executable does not have (from its own
`--about`), environment settings for an executable no pipeline runs, mapping outputs the target
reserves, and (for the environment checked) unset `${VAR}`s. `loyalty run` and `loyalty
backfill` apply the same checks to their pipeline and environment (`check_run`) before
anything starts, so what cron runs is what validate accepted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import os
import subprocess
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loyalty.config import (
    SECRET_NAME,
    ConfigError,
    Environment,
    Pipeline,
    Project,
    find_executable,
)
from loyalty.state import atomic_write
from singer_kit.redact import URL_PASSWORD

if t.TYPE_CHECKING:
    from mapper_loyalty import CompiledMapping

ABOUT_TIMEOUT = 60  # seconds for one `--about`; a hung executable must not hang validate
# The tap settings a backfill sets for each window [start_date, end_date).
WINDOW_SETTINGS = ("start_date", "end_date")


def check_cron(expr: str) -> str | None:
    """None when croniter accepts the expression, else why not."""
    from croniter import croniter

    try:
        if not croniter.is_valid(expr):
            return f"{expr!r} is not a valid cron expression"
    except Exception as exc:  # croniter raises several types for odd input
        return f"{expr!r} is not a valid cron expression ({exc})"
    return None


def _literal_secrets(value: t.Any, where: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, v in value.items():
            line = getattr(value, "key_lines", {}).get(key, 0)
            if SECRET_NAME.search(str(key)) and isinstance(v, str) and v and "${" not in v:
                out.append(
                    f"line {line}: {where}.{key} holds a literal secret; "
                    "use a ${VAR} reference so the value stays out of the file"
                )
            else:
                _literal_secrets(v, f"{where}.{key}", out)


def validate_project(
    project: Project,
    env: str | None,
    strict: bool = True,
    pipeline: str | None = None,
) -> tuple[list[str], list[str]]:
    """Return (errors, notes); errors fail `loyalty validate` and stop `loyalty run`.

    `loyalty run` calls this too, for its one pipeline and environment (`pipeline` set, `env`
    strict), so a run starts only if `loyalty validate --env ENV` would pass for it: cron never
    runs what the desk check would have refused. Unset `${VAR}`s are errors only for `env`
    when `strict` (a sandbox variable that is not exported on a developer's machine must not
    fail an offline check of the file).
    """
    pipes = [project.pipeline(pipeline)] if pipeline else list(project.pipelines.values())
    envs = list(project.environments.values())
    if pipeline:
        envs = [project.environment(env)]
    errors: list[str] = []
    notes: list[str] = []
    file = project.path.name
    secrets: list[str] = []
    for e in envs:
        _literal_secrets(e.config, f"environments.{e.name}.config", secrets)
        if e.state_database and URL_PASSWORD.search(e.state_database):
            secrets.append(
                f"line {e.state_database_line}: environments.{e.name}.state_database holds a "
                "literal password; use a ${VAR} reference so the value stays out of the file"
            )
        if e.notify and e.notify.email:
            _literal_secrets(e.notify.email, f"environments.{e.name}.notify.email", secrets)
    for p in pipes:
        for step in p.steps:
            _literal_secrets(step.config, f"pipelines.{p.name}.{step.role}.config", secrets)
    errors += [f"{file} {s}" for s in secrets]

    mappings: dict[str, CompiledMapping] = {}
    for p in pipes:
        for step in p.steps:
            if find_executable(step.executable, project.root) is None:
                errors.append(
                    f"{project.where(step.line)}: pipelines.{p.name}.{step.role}: executable "
                    f"{step.executable!r} not found (in the venv or on PATH)"
                )
        catalog: dict[str, t.Any] | None = None
        if p.tap.catalog:
            path = project.root / p.tap.catalog
            try:
                catalog = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
                    raise ValueError("no `streams` list")
            except FileNotFoundError:
                errors.append(f"{project.where(p.tap.line)}: catalog {p.tap.catalog} not found")
                catalog = None
            except ValueError as exc:
                errors.append(f"{p.tap.catalog}: not a valid Singer catalog ({exc})")
                catalog = None
            except OSError as exc:
                errors.append(f"{p.tap.catalog}: cannot read the catalog ({exc.strerror})")
        if p.mapping:
            compiled = _check_mapping(project, p.name, p.mapping, catalog)
            if isinstance(compiled, str):
                errors.append(compiled)
            elif compiled is not None:
                mappings[p.name] = compiled
        if p.schedule:
            problem = check_cron(p.schedule)
            if problem:
                errors.append(
                    f"{project.where(p.schedule_line)}: pipelines.{p.name}.schedule: {problem}"
                )

    settings_errors, settings_notes = check_settings(project, pipes, envs, mappings)
    errors += settings_errors
    notes += settings_notes

    for p in pipes:
        for e in envs:
            try:
                project.resolve(p.name, e.name)
                project.state_database(p.name, e.name)
            except ConfigError as exc:
                if strict and e.name == env:
                    errors.append(str(exc))
                else:
                    notes.append(f"environment {e.name}: {exc}")
    return errors, _dedupe(notes)


def check_run(
    project: Project,
    pipeline: str,
    env: str,
    backfill: bool = False,
) -> list[str]:
    """Raise ConfigError (one line) unless `loyalty validate --env ENV` passes for `pipeline`.

    Called by `loyalty run` (also --dry-run) and `loyalty backfill` before anything starts;
    a backfill also needs a tap that takes its windows. Returns the notes (warnings) that
    do not stop a run, such as an executable whose settings could not be checked.
    """
    errors, notes = validate_project(project, env, True, pipeline)
    if not errors and backfill:
        pipe = project.pipeline(pipeline)
        errors = _checked(Abouts(), lambda abouts: _window_errors(project, pipe, abouts))
    if errors:
        more = (
            f" (and {len(errors) - 1} more; `loyalty validate --env {env}` lists them)"
            if len(errors) > 1
            else ""
        )
        raise ConfigError(errors[0] + more)
    return notes


def batch_fallback(project: Project, pipe: Pipeline) -> str | None:
    """Why records of `pipe` must travel as RECORD messages although BATCH was asked, or None.

    Only a target that declares the `batch` capability in its `--about` (as singer-sdk
    targets do) is sent BATCH messages; any other would fail on the first one, or skip it.
    """
    path = find_executable(pipe.target.executable, project.root)
    if path is None:
        return None  # reported by the checks before any run
    abouts = Abouts()
    if _declares_batch(abouts.get([path])[path]):
        return None
    # A cached answer is trusted only to accept: the target may have learnt BATCH since.
    if abouts.refresh() and _declares_batch(abouts.get([path])[path]):
        return None
    return (
        f"{pipe.target.executable} does not declare BATCH support in its --about "
        "(capability 'batch'): records travel as RECORD messages"
    )


def _declares_batch(about: About | str) -> bool:
    return isinstance(about, About) and "batch" in about.capabilities


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _check_mapping(
    project: Project,
    pipeline: str,
    mapping: str,
    catalog: dict[str, t.Any] | None,
) -> CompiledMapping | str | None:
    """The compiled mapping, or the one-line reason it does not compile."""
    path = project.root / mapping
    if not path.is_file():
        return f"{project.where(0)}: pipelines.{pipeline}.mapping: {mapping} not found"
    try:
        from mapper_loyalty import MappingError, compile_mapping
    except ImportError:
        return f"pipelines.{pipeline}: mapper_loyalty is not installed; cannot check {mapping}"
    try:
        return compile_mapping(str(path), catalog=catalog)
    except MappingError as exc:
        return str(exc)
    except Exception as exc:  # a mapping bug must still come back as one line
        return f"{mapping}: cannot compile ({type(exc).__name__}: {exc})"


@dataclass(frozen=True)
class About:
    """What an executable's `--about --format json` says that the checks need."""

    settings: dict[str, t.Any]  # setting name -> its JSON schema
    # Stream names a target keeps for itself (tables, views, bookkeeping); a pipeline must
    # not send a stream of that name. Not part of singer-sdk's --about: targets add it.
    reserved_streams: frozenset[str] = frozenset()
    # Per stream, how many days back the source serves it (taps add it; none = no limit).
    history_days: t.Mapping[str, int] = dataclasses.field(default_factory=dict)
    # singer-sdk's `capabilities` ("batch": takes BATCH messages, docs/kit/protocol.md).
    capabilities: frozenset[str] = frozenset()


class Abouts:
    """Each executable's `--about`, asked once per executable version and kept on disk.

    An `--about` starts a Python process (~1 s) and `loyalty run` asks before every run, so
    answers are kept in the user's cache (`about_cache_dir`), keyed by the executable's path,
    mtime and size. An editable install changes an executable's settings without touching
    its script, so a cached answer is trusted only to accept: checks that fail on one ask
    again (`refresh`).
    """

    def __init__(self) -> None:
        self.cache_dir = about_cache_dir()
        self._answers: dict[str, About | str] = {}
        self._cached: set[str] = set()  # answers read from the cache
        self._ask: set[str] = set()  # executables to ask again, whatever the cache holds

    def get(self, exes: t.Iterable[str]) -> dict[str, About | str]:
        """About (or why there is none) for each executable path, asked in parallel."""
        missing = [e for e in dict.fromkeys(exes) if e not in self._answers]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for exe, answer in zip(missing, pool.map(self._load, missing), strict=True):
                self._answers[exe] = answer
        return self._answers

    def refresh(self) -> bool:
        """Forget the answers that came from the cache; True if there were any."""
        stale, self._cached = self._cached, set()
        for exe in stale:
            del self._answers[exe]
        self._ask |= stale
        self.get(stale)
        return bool(stale)

    def _cache_file(self, exe: str) -> Path | None:
        if self.cache_dir is None:
            return None
        try:
            st = Path(exe).stat()
        except OSError:
            return None
        key = f"{Path(exe).resolve()}\0{st.st_mtime_ns}\0{st.st_size}"
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def _load(self, exe: str) -> About | str:
        cache = self._cache_file(exe)
        if cache is not None and exe not in self._ask:
            try:
                about = _parse_about(cache.read_bytes())
            except (OSError, ValueError, KeyError, TypeError):
                pass  # no or unreadable cache entry: ask the executable
            else:
                self._cached.add(exe)
                return about
        try:
            proc = subprocess.run(
                [exe, "--about", "--format", "json"],
                capture_output=True,
                timeout=ABOUT_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return f"no answer within {ABOUT_TIMEOUT} s"
        except OSError as exc:
            return f"cannot start it: {exc.strerror}"
        if proc.returncode != 0:
            last = proc.stderr.decode(errors="replace").strip().splitlines()
            return f"exit code {proc.returncode}" + (f": {last[-1][:200]}" if last else "")
        try:
            about = _parse_about(proc.stdout)
        except (ValueError, KeyError, TypeError) as exc:
            return f"not a singer-sdk about document ({type(exc).__name__}: {exc})"
        if cache is not None:
            with contextlib.suppress(OSError):  # only a cache: a read-only state dir is fine
                atomic_write(cache, proc.stdout)
        return about


def about_cache_dir() -> Path | None:
    """$XDG_CACHE_HOME/loyalty-pipelines/about (default ~/.cache/...), None without a home.

    Not the state dir: the key already names the executable, and a fresh state dir (a CI
    job, a benchmark's scratch run) would pay for every --about again.
    """
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no $HOME and no passwd entry: run without a cache
            return None
    return Path(base) / "loyalty-pipelines" / "about"


def _parse_about(raw: bytes) -> About:
    about = json.loads(raw)
    props = about["settings"]["properties"]
    reserved = about.get("reserved_streams", [])
    history = about.get("history_days", {})
    if not isinstance(history, dict) or not all(
        isinstance(d, int) and d > 0 for d in history.values()
    ):
        raise TypeError("history_days is not an object of positive day counts")
    if not isinstance(props, dict):
        raise TypeError("settings.properties is not an object")
    if not isinstance(reserved, list) or not all(isinstance(r, str) for r in reserved):
        raise TypeError("reserved_streams is not a list of names")
    capabilities = about.get("capabilities", [])
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise TypeError("capabilities is not a list of names")
    return About(props, frozenset(reserved), history, frozenset(capabilities))


def check_settings(
    project: Project,
    pipelines: list[Pipeline],
    environments: list[Environment],
    mappings: dict[str, CompiledMapping],
) -> tuple[list[str], list[str]]:
    """(errors, notes): settings against each executable's own `--about`, and mapping outputs
    against the target.

    Catches at its line in pipelines.yaml what the executables would ignore silently: an
    environment's settings for an executable no pipeline runs (a typo there drops the
    `database` setting and loads the default store), a misspelt setting, a wrong type, and
    a mapping output stream the target reserves. An executable that cannot answer `--about`
    (an off-the-shelf singer-python tap, `cat` as a mapper) is a note, not an error: it is a
    Singer program like any other, only its settings cannot be checked here. `${VAR}` values
    are checked by the executable itself at run time. Settings the orchestrator adds (mapping_file,
    batch_config, a backfill's start_date/end_date) are not the user's and not checked here.
    """
    notes: list[str] = []
    errors = _checked(
        Abouts(),
        lambda abouts: _settings_errors(project, pipelines, environments, mappings, abouts, notes),
    )
    return _unused_settings(project, environments) + errors, _dedupe(notes)


def _checked(abouts: Abouts, check: t.Callable[[Abouts], list[str]]) -> list[str]:
    """Errors of `check`, confirmed with fresh `--about` answers if cached ones gave any."""
    errors = check(abouts)
    if errors and abouts.refresh():
        errors = check(abouts)
    return errors


def _window_errors(project: Project, pipe: Pipeline, abouts: Abouts) -> list[str]:
    """A backfill passes each window as the tap's start_date/end_date; a tap without them
    would ignore the window and extract everything, once per window."""
    path = find_executable(pipe.tap.executable, project.root)
    about = abouts.get([path])[path] if path else None
    if not isinstance(about, About):
        return []  # already reported by validate_project
    missing = [s for s in WINDOW_SETTINGS if s not in about.settings]
    if not missing:
        return []
    return [
        f"{project.where(pipe.tap.line)}: pipelines.{pipe.name}.tap: {pipe.tap.executable} has "
        f"no setting {' or '.join(map(repr, missing))}, so it cannot extract a backfill window "
        "(each window would extract everything)"
    ]


def _unused_settings(project: Project, environments: list[Environment]) -> list[str]:
    """Environment settings for an executable that no pipeline of the file runs."""
    errors: list[str] = []
    run = {s.executable for p in project.pipelines.values() for s in p.steps}
    for e in environments:
        lines = getattr(e.config, "key_lines", {})
        for exe in e.config:
            if exe not in run:
                near = difflib.get_close_matches(str(exe), sorted(run), n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"run: {', '.join(sorted(run))}"
                errors.append(
                    f"{project.where(lines.get(exe, e.line))}: environments.{e.name}.config: "
                    f"no pipeline runs an executable {exe!r}, so its settings would apply to "
                    f"nothing ({hint})"
                )
    return errors


def _settings_errors(
    project: Project,
    pipelines: list[Pipeline],
    environments: list[Environment],
    mappings: dict[str, CompiledMapping],
    abouts: Abouts,
    notes: list[str],
) -> list[str]:
    import jsonschema

    errors: list[str] = []
    paths = {
        s.executable: path
        for p in pipelines
        for s in p.steps
        if (path := find_executable(s.executable, project.root))
    }
    answers = abouts.get(paths.values())
    checked: set[tuple[str, int, str]] = set()
    for p in pipelines:
        for step in p.steps:
            if step.executable not in paths:
                continue  # reported as not found
            about = answers[paths[step.executable]]
            if isinstance(about, str):
                notes.append(
                    f"{project.where(step.line)}: pipelines.{p.name}.{step.role}: settings of "
                    f"{step.executable!r} not checked: `--about --format json` failed "
                    f"({about}); they are passed on as written"
                )
                continue
            props = about.settings
            sources = [(f"pipelines.{p.name}.{step.role}.config", step.config)]
            sources += [
                (f"environments.{e.name}.config.{step.executable}", e.config[step.executable])
                for e in environments
                if step.executable in e.config
            ]
            for where, cfg in sources:
                for key, value in cfg.items():
                    line = getattr(cfg, "key_lines", {}).get(key, 0)
                    if (where, line, str(key)) in checked:
                        continue
                    checked.add((where, line, str(key)))
                    at = f"{project.where(line)}: {where}.{key}"
                    if key not in props:
                        known = ", ".join(sorted(props))
                        errors.append(
                            f"{at}: {step.executable} has no setting {key!r} (known: {known})"
                        )
                        continue
                    if isinstance(value, str) and "${" in value:
                        continue
                    try:
                        jsonschema.validate(value, props[key])
                    except jsonschema.ValidationError as exc:
                        # jsonschema quotes the value; a secret's stays out of logs (cron.log).
                        secret = SECRET_NAME.search(str(key))
                        why = f"not valid ({exc.validator})" if secret else exc.message
                        errors.append(f"{at}: {why}")
                    except jsonschema.SchemaError:
                        continue
            if step.role == "target" and p.name in mappings and about.reserved_streams:
                errors += _reserved_outputs(p, mappings[p.name], about.reserved_streams)
    return errors


def _reserved_outputs(
    pipe: Pipeline, mapping: CompiledMapping, reserved: frozenset[str]
) -> list[str]:
    """A mapping output the pipeline's target keeps for itself (the target would refuse it
    at its first SCHEMA, after the tap has started)."""
    out: list[str] = []
    for output, members in mapping.outputs().items():
        if output in reserved:
            out.append(
                f"{members[0].where()}: to: {output!r} is a name {pipe.target.executable} keeps "
                f"for itself (reserved: {', '.join(sorted(reserved))}); pick another output "
                f"stream name (pipelines.{pipe.name})"
            )
    return out
