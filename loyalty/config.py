"""The pipelines.yaml model: environments, pipelines, `${VAR}` secrets, with file:line errors.

A data engineer edits pipelines.yaml by hand and runs it from cron, so every mistake must come
back as one line that names the file, the line and the setting - never a traceback. The file is
therefore loaded with a line-tracking YAML loader and checked field by field here, once, before
any process starts.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from singer_kit.pgstore import is_postgres_url
from singer_kit.redact import SECRET_NAME, strings
from singer_kit.yamlio import LineDict, YamlError, kind, load_mapping

# A value is treated as a secret when its key or its `${VAR}` name looks like one
# (SECRET_NAME). Secrets are written only to 0600 config files for the child processes, never
# printed or logged.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ROLES = ("tap", "mapper", "target")
DEFAULT_MAPPER = "mapper-loyalty"


class ConfigError(Exception):
    """A problem in pipelines.yaml, already phrased as one line for the user."""


class _MissingVar(ConfigError):
    """One unset `${VAR}`; resolve() gathers them into one message."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Step:
    """One Singer process of a pipeline: an executable and its (unresolved) config."""

    role: str
    executable: str
    config: dict[str, t.Any]
    line: int
    catalog: str | None = None


# More than half of a stream rejected means the mapping or the source changed (a date format
# that no longer matches), not the usual few records without an e-mail address.
DEFAULT_MAX_REJECT_RATIO = 0.5


@dataclass(frozen=True)
class Pipeline:
    """tap | mapper | target, plus the mapping file and an optional cron schedule."""

    name: str
    tap: Step
    mapper: Step
    target: Step
    mapping: str | None
    schedule: str | None
    description: str
    line: int
    schedule_line: int = 0
    # Move records as Singer BATCH files (tap -> mapper -> store) instead of RECORD lines.
    batch: bool = False
    # Rejected share of one stream's records above which the run fails.
    max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO

    @property
    def steps(self) -> tuple[Step, Step, Step]:
        """The three steps in pipe order."""
        return (self.tap, self.mapper, self.target)


@dataclass(frozen=True)
class Notifications:
    """Whom to tell about a failed run, or one with many rejects (`environments.<env>.notify`).

    Per environment, like the other settings that differ per place: prod tells the people on
    call, the sandbox usually tells nobody. Values may hold `${VAR}`s; they are substituted
    when a pipeline is resolved, so an unset one is an error of `loyalty validate --env`.
    """

    line: int
    # A successful run whose rejected share of some stream is above this also notifies
    # (None: only failed runs notify).
    rejects_above: float | None
    webhook: LineDict | None
    email: LineDict | None
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class Environment:
    """Per-executable settings (URLs, credentials, database) for one place the code runs."""

    name: str
    description: str
    config: dict[str, dict[str, t.Any]]
    line: int
    notify: Notifications | None = None
    # Where the pipelines' state, run records and locks live (a PostgreSQL URL, may hold
    # ${VAR}s); None: the pipeline's store when that is PostgreSQL, else `.loyalty/`.
    state_database: str | None = None
    state_database_line: int = 0


@dataclass
class Resolved:
    """A pipeline bound to an environment: final configs, ready to write for the children."""

    pipeline: Pipeline
    env: Environment
    configs: dict[str, dict[str, t.Any]]
    secrets: list[str]
    redacted: dict[str, dict[str, t.Any]]
    # The environment's notifications with `${VAR}`s substituted ({} when there are none).
    notify: dict[str, t.Any] = field(default_factory=dict)


@dataclass
class Project:
    """A loaded pipelines.yaml."""

    path: Path
    environments: dict[str, Environment]
    pipelines: dict[str, Pipeline]
    default_environment: str | None
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The directory of pipelines.yaml; children run there and relative paths start there."""
        return self.path.parent

    def where(self, line: int) -> str:
        """`file:line` prefix for messages."""
        return f"{self.path.name}:{line}" if line else self.path.name

    def pipeline(self, name: str) -> Pipeline:
        """Look a pipeline up, or fail naming the ones that exist."""
        if name not in self.pipelines:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise ConfigError(f"{self.path.name}: unknown pipeline {name!r} (defined: {known})")
        return self.pipelines[name]

    def environment(self, name: str | None) -> Environment:
        """Look an environment up (default: default_environment), or fail naming the known ones."""
        name = name or self.default_environment
        known = ", ".join(sorted(self.environments)) or "none"
        if not name:
            raise ConfigError(
                f"{self.path.name}: no --env given and no default_environment set (known: {known})"
            )
        if name not in self.environments:
            raise ConfigError(f"{self.path.name}: unknown environment {name!r} (defined: {known})")
        return self.environments[name]

    def resolve(
        self,
        pipeline: str,
        env: str | None,
        environ: t.Mapping[str, str] | None = None,
    ) -> Resolved:
        """Merge pipeline and environment settings and substitute `${VAR}` references.

        The environment's settings for an executable override the pipeline's own (like Meltano
        environments): the pipeline says *what* to move, the environment says *where*.
        """
        pipe = self.pipeline(pipeline)
        environment = self.environment(env)
        environ = os.environ if environ is None else environ
        configs: dict[str, dict[str, t.Any]] = {}
        redacted: dict[str, dict[str, t.Any]] = {}
        secrets: list[str] = []
        missing: list[_MissingVar] = []
        for step in pipe.steps:
            merged: dict[str, t.Any] = dict(step.config)
            overlay = environment.config.get(step.executable, {})
            merged.update(overlay)
            if step.role == "mapper" and pipe.mapping:
                merged.setdefault("mapping_file", str(self.root / pipe.mapping))
                if pipe.tap.catalog:
                    merged.setdefault("catalog_file", str(self.root / pipe.tap.catalog))
            out: dict[str, t.Any] = {}
            red: dict[str, t.Any] = {}
            for key, value in merged.items():
                source = overlay if key in overlay else step.config
                line = getattr(source, "key_lines", {}).get(key, 0)
                where = (
                    f"environments.{environment.name}.config.{step.executable}.{key}"
                    if key in overlay
                    else f"pipelines.{pipe.name}.{step.role}.config.{key}"
                )
                try:
                    value_out, is_secret = _substitute(value, environ, self.where(line), where)
                except _MissingVar as exc:
                    missing.append(exc)
                    continue
                out[key] = value_out
                if is_secret or SECRET_NAME.search(str(key)):
                    _collect(value_out, secrets)
                    red[key] = "***"
                else:
                    red[key] = value_out
            configs[step.role] = out
            redacted[step.role] = red
        notify: dict[str, t.Any] = {}
        if environment.notify:
            notify, more_secrets = self._resolve_notify(environment, environ, missing)
            secrets += more_secrets
        if missing:
            first = missing[0]
            others = sorted({m.name for m in missing[1:]} - {first.name})
            also = f"; also unset: {', '.join(others)}" if others else ""
            raise ConfigError(f"{first}{also}")
        # Longest first, so a secret that contains another is redacted whole.
        secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        return Resolved(pipe, environment, configs, secrets, redacted, notify)

    def _resolve_notify(
        self, environment: Environment, environ: t.Mapping[str, str], missing: list[_MissingVar]
    ) -> tuple[dict[str, t.Any], list[str]]:
        """The notification channels with `${VAR}`s substituted, and the values to redact.

        A webhook URL often is the credential (a token in its path), so it is redacted like
        the SMTP password; unset variables join the others in `missing`.
        """
        notify = environment.notify
        assert notify is not None
        out: dict[str, t.Any] = {
            "rejects_above": notify.rejects_above,
            "timeout_seconds": notify.timeout_seconds,
        }
        secrets: list[str] = []
        for channel in ("webhook", "email"):
            raw = getattr(notify, channel)
            if raw is None:
                continue
            where = f"environments.{environment.name}.notify.{channel}"
            values: dict[str, t.Any] = {}
            for key, value in raw.items():
                line = self.where(raw.line_of(key))
                try:
                    values[key], _ = _substitute(value, environ, line, f"{where}.{key}")
                except _MissingVar as exc:
                    missing.append(exc)
                    continue
                if key in ("url", "password"):
                    _collect(values[key], secrets)
            if channel == "webhook" and "url" in values:
                problem = url_problem(values["url"])
                if problem:
                    raise ConfigError(f"{self.where(raw.line_of('url'))}: {where}.url: {problem}")
            out[channel] = values
        return out, secrets

    def state_database(
        self, pipeline: str, env: str | None, environ: t.Mapping[str, str] | None = None
    ) -> str | None:
        """The PostgreSQL URL where this pipeline keeps its state, run records and lock, or
        None for the local state directory.

        The environment's `state_database` when set; else the store the pipeline writes or
        reads (its target's, else its tap's `database` setting) when that is PostgreSQL, so
        every machine running the pipeline against one store shares one bookmark and lock.
        Only these settings are substituted: `loyalty state` and `loyalty status` work
        without the pipeline's other secrets.
        """
        pipe = self.pipeline(pipeline)
        environment = self.environment(env)
        environ = os.environ if environ is None else environ
        if environment.state_database is not None:
            where = f"environments.{environment.name}.state_database"
            line = self.where(environment.state_database_line)
            url, _ = _substitute(environment.state_database, environ, line, where)
            if not is_postgres_url(url):
                raise ConfigError(
                    f"{line}: {where} must be a PostgreSQL URL (postgresql://user:password@host/"
                    "db), got a value without that scheme"
                )
            return str(url)
        for step in (pipe.target, pipe.tap):
            overlay = environment.config.get(step.executable, {})
            source = overlay if "database" in overlay else step.config
            if "database" not in source:
                continue
            where = (
                f"environments.{environment.name}.config.{step.executable}.database"
                if source is overlay
                else f"pipelines.{pipe.name}.{step.role}.config.database"
            )
            line = self.where(getattr(source, "key_lines", {}).get("database", 0))
            database, _ = _substitute(source["database"], environ, line, where)
            if is_postgres_url(database):
                return str(database)
        return None

    def variables(self, env: str | None = None) -> dict[str, list[str]]:
        """Every `${VAR}` without a default the file references (optionally one environment's)."""
        found: dict[str, list[str]] = {}
        for e in self.environments.values():
            if env and e.name != env:
                continue
            for exe, cfg in e.config.items():
                _find_vars(cfg, f"environments.{e.name}.config.{exe}", found)
        for p in self.pipelines.values():
            for step in p.steps:
                base = f"pipelines.{p.name}.{step.role}.config"
                _find_vars(step.config, base, found)
        return found


def _collect(value: t.Any, into: list[str]) -> None:
    into.extend(strings(value))


def _find_vars(
    value: t.Any,
    where: str,
    found: dict[str, list[str]],
) -> None:
    if isinstance(value, str):
        for m in _VAR.finditer(value):
            if m.group(1) and m.group(2) is None:
                found.setdefault(m.group(1), []).append(where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _find_vars(v, f"{where}.{k}", found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _find_vars(v, f"{where}[{i}]", found)


def substitute(value: t.Any, where_line: str, where: str, environ: t.Mapping[str, str]) -> t.Any:
    """``value`` with its `${VAR}`s substituted, for a setting read outside a pipeline run
    (the store path of `loyalty segment`); an unset variable is a ConfigError naming it."""
    return _substitute(value, environ, where_line, where)[0]


def _substitute(
    value: t.Any,
    environ: t.Mapping[str, str],
    where_line: str,
    where: str,
) -> tuple[t.Any, bool]:
    """Replace `${VAR}` / `${VAR:-default}` in strings; `$$` is a literal `$`.

    Returns the value and whether a secret-looking variable was substituted into it.
    """
    if isinstance(value, dict):
        out, secret = {}, False
        for k, v in value.items():
            out[k], s = _substitute(v, environ, where_line, f"{where}.{k}")
            secret = secret or s
        return out, secret
    if isinstance(value, list):
        items = [_substitute(v, environ, where_line, f"{where}[{i}]") for i, v in enumerate(value)]
        return [v for v, _ in items], any(s for _, s in items)
    if not isinstance(value, str):
        return value, False
    secret = False

    def repl(m: re.Match[str]) -> str:
        nonlocal secret
        name, default = m.group(1), m.group(2)
        if name is None:
            return "$"
        if SECRET_NAME.search(name):
            secret = True
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise _MissingVar(
            name, f"{where_line}: environment variable {name} is not set (needed by {where})"
        )

    return _VAR.sub(repl, value), secret


def _expect(
    value: t.Any,
    expected: type | tuple[type, ...],
    file: str,
    line: int,
    where: str,
    what: str,
) -> None:
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{file}:{line}: {where} must be {what}, got {kind(value)}")


def _unknown_keys(m: LineDict, allowed: t.Iterable[str], file: str, where: str) -> None:
    allowed = set(allowed)
    for key in m:
        if key not in allowed:
            raise ConfigError(
                f"{file}:{m.line_of(key)}: unknown key {key!r} in {where} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )


def _step(
    raw: t.Any,
    role: str,
    file: str,
    line: int,
    where: str,
) -> Step:
    if raw is None and role == "mapper":
        return Step(role, DEFAULT_MAPPER, LineDict(), line)
    if isinstance(raw, str):
        return Step(role, raw, LineDict(), line)
    _expect(raw, dict, file, line, where, "a mapping (executable, config)")
    allowed = {"executable", "config"} | ({"catalog"} if role == "tap" else set())
    _unknown_keys(raw, allowed, file, where)
    exe = raw.get("executable", DEFAULT_MAPPER if role == "mapper" else None)
    if exe is None:
        raise ConfigError(f"{file}:{raw.line}: {where}.executable is missing")
    _expect(exe, str, file, raw.line_of("executable"), f"{where}.executable", "a string")
    config = raw.get("config", LineDict())
    if config is None:
        config = LineDict()
    cline = raw.line_of("config")
    _expect(config, dict, file, cline, f"{where}.config", "a mapping")
    catalog = raw.get("catalog")
    if catalog is not None:
        _expect(catalog, str, file, raw.key_lines["catalog"], f"{where}.catalog", "a file path")
    return Step(role, exe, config, raw.line, catalog)


def url_problem(url: t.Any) -> str | None:
    """None for an http(s) URL with a host; else what is wrong with it (for one line)."""
    from urllib.parse import urlsplit

    if not isinstance(url, str) or not url:
        return f"must be an http(s) URL, got {kind(url)}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host, like https://hooks.example.com/loyalty"
    return None


def _notifications(raw: LineDict, file: str, where: str) -> Notifications:
    """`notify:` of one environment, checked field by field (values may be `${VAR}`s)."""
    notify = raw["notify"]
    line = raw.key_lines["notify"]
    where = f"{where}.notify"
    _expect(notify, dict, file, line, where, "a mapping (webhook, email, rejects_above)")
    _unknown_keys(notify, {"webhook", "email", "rejects_above", "timeout_seconds"}, file, where)
    if notify.get("webhook") is None and notify.get("email") is None:
        raise ConfigError(f"{file}:{line}: {where} needs a webhook or an email (or both)")
    above = notify.get("rejects_above")
    aline = notify.key_lines.get("rejects_above", line)
    if above is not None and (
        isinstance(above, bool) or not isinstance(above, (int, float)) or not 0 <= above <= 1
    ):
        raise ConfigError(
            f"{file}:{aline}: {where}.rejects_above must be a number from 0 to 1 (the rejected "
            f"share of a stream above which a successful run notifies too), got {above!r}"
        )
    timeout = notify.get("timeout_seconds", 10)
    tline = notify.key_lines.get("timeout_seconds", line)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        raise ConfigError(
            f"{file}:{tline}: {where}.timeout_seconds must be a number of seconds from 0 to 60, "
            f"got {timeout!r}"
        )
    webhook = notify.get("webhook")
    if webhook is not None:
        wline = notify.key_lines["webhook"]
        wwhere = f"{where}.webhook"
        _expect(webhook, dict, file, wline, wwhere, "a mapping (url)")
        _unknown_keys(webhook, {"url"}, file, wwhere)
        if "url" not in webhook:
            raise ConfigError(f"{file}:{wline}: {wwhere}.url is missing")
        url = webhook["url"]
        problem = None if isinstance(url, str) and "${" in url else url_problem(url)
        if problem:
            raise ConfigError(f"{file}:{webhook.key_lines['url']}: {wwhere}.url: {problem}")
    email = notify.get("email")
    if email is not None:
        _check_email(email, file, notify.key_lines["email"], f"{where}.email")
    return Notifications(line, above, webhook, email, float(timeout))


def _check_email(email: t.Any, file: str, line: int, where: str) -> None:
    _expect(email, dict, file, line, where, "a mapping (host, port, from, to, ...)")
    allowed = {"host", "port", "from", "to", "starttls", "username", "password", "subject_prefix"}
    _unknown_keys(email, allowed, file, where)
    for required in ("host", "from", "to"):
        if required not in email:
            raise ConfigError(f"{file}:{line}: {where}.{required} is missing")
    for key in ("host", "from", "username", "password", "subject_prefix"):
        if key in email:
            _expect(email[key], str, file, email.key_lines[key], f"{where}.{key}", "a string")
    to = email["to"]
    tline = email.key_lines["to"]
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(x, str) and x for x in to):
        raise ConfigError(f"{file}:{tline}: {where}.to must be an address or a list of them")
    for address in [email["from"], *to]:
        if "${" not in address and "@" not in address:
            raise ConfigError(
                f"{file}:{email.key_lines['from' if address == email['from'] else 'to']}: "
                f"{where}: {address!r} is not an e-mail address"
            )
    port = email.get("port", 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(
            f"{file}:{email.key_lines.get('port', line)}: {where}.port must be a port number "
            f"(1-65535), got {port!r}"
        )
    starttls = email.get("starttls", False)
    _expect(
        starttls,
        bool,
        file,
        email.key_lines.get("starttls", line),
        f"{where}.starttls",
        "true or false",
    )
    if ("username" in email) != ("password" in email):
        raise ConfigError(f"{file}:{line}: {where}: username and password go together (SMTP login)")


def load(path: str | os.PathLike[str]) -> Project:
    """Parse and structurally check pipelines.yaml (no environment variables needed)."""
    path = Path(path).absolute()
    file = path.name
    doc = _read(path)
    _unknown_keys(
        doc, {"version", "default_environment", "environments", "pipelines"}, file, "the top level"
    )
    version = doc.get("version", 1)
    if version != 1:
        raise ConfigError(f"{file}:{doc.line_of('version')}: version must be 1, got {version!r}")
    environments = _named(doc, "environments", file, _environment)
    if not doc.get("pipelines"):
        raise ConfigError(f"{file}: no pipelines defined (add a `pipelines:` mapping)")
    pipelines = _named(doc, "pipelines", file, _pipeline)
    default_env = _default_environment(doc, file, environments)
    return Project(path, environments, pipelines, default_env, dict(doc.key_lines))


def _read(path: Path) -> LineDict:
    """The top-level mapping of the file, or one line saying why it cannot be read as one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (use --file or LOYALTY_PIPELINES)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return load_mapping(raw, path.name)
    except YamlError as exc:
        raise ConfigError(str(exc)) from None


T = t.TypeVar("T")


def _named(
    doc: LineDict, section: str, file: str, check: t.Callable[[str, t.Any, int, str], T]
) -> dict[str, T]:
    """A section of named entries (`environments:`, `pipelines:`), each entry checked."""
    entries = doc.get(section) or LineDict()
    _expect(entries, dict, file, doc.line_of(section), section, "a mapping")
    what = section.removesuffix("s")
    out: dict[str, T] = {}
    for name, raw in entries.items():
        line = entries.key_lines[name]
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{file}:{line}: {what} name {name!r} must be a plain word")
        out[name] = check(name, raw, line, file)
    return out


def _environment(name: str, raw: t.Any, line: int, file: str) -> Environment:
    """One environment: a description, per-executable settings, notifications."""
    where = f"environments.{name}"
    raw = LineDict() if raw is None else raw
    _expect(raw, dict, file, line, where, "a mapping")
    _unknown_keys(raw, {"description", "config", "notify", "state_database"}, file, where)
    notify = _notifications(raw, file, where) if raw.get("notify") is not None else None
    state_db = raw.get("state_database")
    sline = raw.key_lines.get("state_database", line)
    if state_db is not None:
        _expect(state_db, str, file, sline, f"{where}.state_database", "a PostgreSQL URL")
        if "${" not in state_db and not is_postgres_url(state_db):
            raise ConfigError(
                f"{file}:{sline}: {where}.state_database must be a PostgreSQL URL "
                "(postgresql://user:password@host/db), usually a ${VAR} holding one"
            )
    desc = _description(raw, file, line, where)
    cfg = raw.get("config") or LineDict()
    _expect(cfg, dict, file, raw.key_lines.get("config", line), f"{where}.config", "a mapping")
    for exe, settings in cfg.items():
        eline = cfg.key_lines.get(exe, line)
        _expect(settings, dict, file, eline, f"{where}.config.{exe}", "a mapping of settings")
    return Environment(name, desc, cfg, line, notify, state_db, sline)


def _description(raw: LineDict, file: str, line: int, where: str) -> str:
    desc = raw.get("description", "")
    dline = raw.key_lines.get("description", line)
    _expect(desc, str, file, dline, f"{where}.description", "a string")
    return t.cast("str", desc)


_PIPELINE_KEYS = (
    "description",
    "tap",
    "mapper",
    "mapping",
    "target",
    "schedule",
    "batch",
    "max_reject_ratio",
)


def _pipeline(name: str, raw: t.Any, line: int, file: str) -> Pipeline:
    """One pipeline: its three steps, mapping file, schedule and run options."""
    where = f"pipelines.{name}"
    _expect(raw, dict, file, line, where, "a mapping (tap, mapping, target)")
    _unknown_keys(raw, _PIPELINE_KEYS, file, where)
    for required in ("tap", "target"):
        if required not in raw:
            raise ConfigError(f"{file}:{line}: {where}.{required} is missing")
    steps = {
        role: _step(raw.get(role), role, file, raw.key_lines.get(role, line), f"{where}.{role}")
        for role in ROLES
    }
    mapping = raw.get("mapping")
    if mapping is not None:
        _expect(mapping, str, file, raw.key_lines["mapping"], f"{where}.mapping", "a file path")
    schedule = raw.get("schedule")
    sline = raw.key_lines.get("schedule", line)
    if schedule is not None:
        _expect(schedule, str, file, sline, f"{where}.schedule", "a cron expression string")
    batch = raw.get("batch", False)
    _expect(batch, bool, file, raw.key_lines.get("batch", line), f"{where}.batch", "true or false")
    ratio = _max_reject_ratio(raw, file, line, where)
    desc = _description(raw, file, line, where)
    _require_mapping_file(steps["mapper"], mapping, file, line, where)
    return Pipeline(
        name,
        steps["tap"],
        steps["mapper"],
        steps["target"],
        mapping,
        schedule,
        desc,
        line,
        sline,
        batch,
        ratio,
    )


def _max_reject_ratio(raw: LineDict, file: str, line: int, where: str) -> float:
    ratio = raw.get("max_reject_ratio", DEFAULT_MAX_REJECT_RATIO)
    rline = raw.key_lines.get("max_reject_ratio", line)
    _expect(ratio, (int, float), file, rline, f"{where}.max_reject_ratio", "a number")
    if isinstance(ratio, bool) or not 0 <= ratio <= 1:
        raise ConfigError(
            f"{file}:{rline}: {where}.max_reject_ratio must be a number from 0 to 1 "
            f"(the share of a stream's records that may be rejected), got {ratio!r}"
        )
    return float(ratio)


def _require_mapping_file(
    mapper: Step, mapping: str | None, file: str, line: int, where: str
) -> None:
    """mapper-loyalty without a mapping file would fail only when the pipeline runs."""
    if mapper.executable == DEFAULT_MAPPER and not mapping and "mapping_file" not in mapper.config:
        raise ConfigError(
            f"{file}:{line}: {where}.mapping is missing (the mapping file mapper-loyalty "
            "applies, e.g. transforms/mappings/<pipeline>.yaml)"
        )


def _default_environment(
    doc: LineDict, file: str, environments: dict[str, Environment]
) -> str | None:
    """`default_environment:`, which must name a defined environment."""
    default_env = doc.get("default_environment")
    if default_env is not None:
        dline = doc.line_of("default_environment")
        _expect(default_env, str, file, dline, "default_environment", "a string")
        if default_env not in environments:
            known = ", ".join(sorted(environments)) or "none"
            raise ConfigError(
                f"{file}:{dline}: default_environment {default_env!r} is not defined "
                f"(defined: {known})"
            )
    return default_env


def find_executable(name: str, root: Path) -> str | None:
    """Find a step's executable: a path (relative to the project), the venv's bin, then PATH.

    The venv's own bin comes first so `.venv/bin/python -m loyalty.demo` finds `tap-flexpos`
    without the venv being activated.
    """
    if os.sep in name or (os.altsep and os.altsep in name):
        candidate = (root / name).absolute()
        return str(candidate) if os.access(candidate, os.X_OK) else None
    local = Path(sys.executable).parent / name
    if os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)
