"""`loyalty validate`: everything that can be checked without touching a remote system.

Catches at the desk what would otherwise fail at 3 a.m. under cron: missing executables,
catalogs and mappings, mapping paths the catalog does not have, bad cron expressions, secrets
written literally into the file, and (for the environment checked) unset `${VAR}`s.
"""

from __future__ import annotations

import functools
import json
import subprocess
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loyalty.config import SECRET_NAME, ConfigError, Project, find_executable


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
            line = getattr(value, "lines", {}).get(key, 0)
            if SECRET_NAME.search(str(key)) and isinstance(v, str) and v and "${" not in v:
                out.append(
                    f"line {line}: {where}.{key} holds a literal secret; "
                    "use a ${VAR} reference so the value stays out of the file"
                )
            else:
                _literal_secrets(v, f"{where}.{key}", out)


def validate_project(
    project: Project, env: str | None, strict: bool = True
) -> tuple[list[str], list[str]]:
    """Return (errors, notes) for the whole file; errors fail `loyalty validate`.

    Unset `${VAR}`s are errors only for `env` when `strict` (a sandbox variable that is not
    exported on a developer's machine must not fail an offline check of the file).
    """
    errors: list[str] = []
    notes: list[str] = []
    file = project.path.name
    secrets: list[str] = []
    for e in project.environments.values():
        _literal_secrets(e.config, f"environments.{e.name}.config", secrets)
    for p in project.pipelines.values():
        for step in p.steps:
            _literal_secrets(step.config, f"pipelines.{p.name}.{step.role}.config", secrets)
    errors += [f"{file} {s}" for s in secrets]

    for p in project.pipelines.values():
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
        if p.mapping:
            errors += _check_mapping(project, p.name, p.mapping, p.tap.catalog, catalog)
        if p.schedule:
            problem = check_cron(p.schedule)
            if problem:
                errors.append(
                    f"{project.where(p.schedule_line)}: pipelines.{p.name}.schedule: {problem}"
                )

    settings_errors, settings_notes = _check_settings(project)
    errors += settings_errors
    notes += settings_notes

    for p in project.pipelines.values():
        for e in project.environments.values():
            try:
                project.resolve(p.name, e.name)
            except ConfigError as exc:
                if strict and e.name == env:
                    errors.append(str(exc))
                else:
                    notes.append(f"environment {e.name}: {exc}")
    return errors, _dedupe(notes)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _check_mapping(
    project: Project,
    pipeline: str,
    mapping: str,
    catalog_rel: str | None,
    catalog: dict[str, t.Any] | None,
) -> list[str]:
    path = project.root / mapping
    if not path.is_file():
        return [f"{project.where(0)}: pipelines.{pipeline}.mapping: {mapping} not found"]
    try:
        from mapper_loyalty import MappingError, compile_mapping
    except ImportError:
        return [f"pipelines.{pipeline}: mapper_loyalty is not installed; cannot check {mapping}"]
    try:
        compile_mapping(str(path), catalog=catalog)
    except MappingError as exc:
        return [str(exc)]
    except Exception as exc:  # a mapping bug must still come back as one line
        return [f"{mapping}: cannot compile ({type(exc).__name__}: {exc})"]
    return []


def _about(exe: str) -> dict[str, t.Any] | str:
    """The executable's settings schema from singer-sdk's `--about`, or why it is unavailable."""
    try:
        stamp = Path(exe).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _about_cached(exe, stamp)


@functools.lru_cache(maxsize=32)
def _about_cached(exe: str, _mtime: int) -> dict[str, t.Any] | str:
    # Each --about starts a Python process (~1 s); one answer per executable version is enough.
    try:
        proc = subprocess.run(
            [exe, "--about", "--format", "json"], capture_output=True, timeout=60, check=False
        )
        about = json.loads(proc.stdout)
        props = about["settings"]["properties"]
        if not isinstance(props, dict):
            raise TypeError("settings.properties is not an object")
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return props


def _check_settings(project: Project) -> tuple[list[str], list[str]]:
    """Each literal setting against the executable's own config schema (`--about`).

    Catches a misspelt key (singer-sdk would ignore it silently) or a wrong type at the line
    in pipelines.yaml, instead of as a failed run. `${VAR}` values are checked at run time.
    """
    import jsonschema

    exes: dict[str, str] = {}
    for p in project.pipelines.values():
        for step in p.steps:
            path = find_executable(step.executable, project.root)
            if path:
                exes[step.executable] = path
    with ThreadPoolExecutor(max_workers=4) as pool:
        abouts = dict(zip(exes, pool.map(_about, exes.values()), strict=True))
    errors: list[str] = []
    notes: list[str] = []
    for exe, about in abouts.items():
        if isinstance(about, str):
            notes.append(f"{exe}: settings not checked (no usable --about: {about[:120]})")
    checked: set[tuple[str, int, str]] = set()
    for p in project.pipelines.values():
        for step in p.steps:
            props = abouts.get(step.executable)
            if not isinstance(props, dict):
                continue
            sources = [(f"pipelines.{p.name}.{step.role}.config", step.config)]
            sources += [
                (f"environments.{e.name}.config.{step.executable}", e.config[step.executable])
                for e in project.environments.values()
                if step.executable in e.config
            ]
            for where, cfg in sources:
                for key, value in cfg.items():
                    line = getattr(cfg, "lines", {}).get(key, 0)
                    if (where, line, key) in checked:
                        continue
                    checked.add((where, line, key))
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
                        errors.append(f"{at}: {exc.message}")
                    except jsonschema.SchemaError:
                        continue
    return errors, notes
