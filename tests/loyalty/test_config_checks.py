"""One configuration check: what `loyalty validate` refuses, `loyalty run`, `--dry-run` and
`loyalty backfill` refuse too, with the same one line and exit code 2, before any step starts."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from target_loyalty_store.store import RESERVED_NAMES
from tests.loyalty.fakes.fake_tap import SETTINGS as FAKE_TAP_SETTINGS

RUN_ARGS = (
    ("run", "things"),
    ("run", "things", "--dry-run"),
    ("backfill", "things", "--start", "2026-01-01", "--end", "2026-01-03", "--window", "1d"),
)


def _write(fake_project, text: str) -> None:
    fake_project.pipelines.write_text(
        textwrap.dedent(text).replace("{root}", str(fake_project.root))
    )


def _line_of(fake_project, needle: str) -> int:
    lines = fake_project.pipelines.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def _nothing_ran(fake_project) -> None:
    """No step was started: no run record or log, nothing committed to any store."""
    assert not (fake_project.state_dir / "runs").exists()
    assert not list(fake_project.root.glob("*.jsonl"))
    assert not list(fake_project.root.glob("*.duckdb"))


def _refused_everywhere(fake_project, expected: str) -> None:
    """validate lists `expected`; run, --dry-run and backfill stop with exactly that line."""
    result = fake_project.invoke("validate")
    assert result.returncode == 2, result.stderr
    assert f"Error: {expected}" in result.stderr.splitlines()
    for args in RUN_ARGS:
        result = fake_project.invoke(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip() == f"Error: {expected}", args
    _nothing_ran(fake_project)


def test_environment_settings_for_an_executable_no_pipeline_runs_stop_every_command(
    fake_project,
):
    # The environment means the fake target's `out` (its store) but misspells the executable:
    # the run used to load the pipeline's default store instead.
    _write(
        fake_project,
        """\
        version: 1
        default_environment: test
        environments:
          test:
            config:
              bin/fake-tap: {client_secret: "${FAKE_SECRET}"}
              bin/fake-targt:
                out: {root}/env-store.jsonl
        pipelines:
          things:
            tap: {executable: bin/fake-tap, config: {count: 3}}
            mapper: bin/fake-mapper
            target: {executable: bin/fake-target, config: {out: {root}/default.jsonl}}
        """,
    )
    line = _line_of(fake_project, "bin/fake-targt:")
    _refused_everywhere(
        fake_project,
        f"pipelines.yaml:{line}: environments.test.config: no pipeline runs an executable "
        "'bin/fake-targt', so its settings would apply to nothing "
        "(did you mean 'bin/fake-target'?)",
    )
    # The real console script, as cron calls it.
    result = fake_project.run("run", "things")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "'bin/fake-targt'" in result.stderr
    _nothing_ran(fake_project)


@pytest.mark.parametrize(
    ("tap_config", "env_target", "needle", "message"),
    [
        (
            "{count: 3, stat_every: 1}",
            "{}",
            "stat_every",
            "pipelines.things.tap.config.stat_every: bin/fake-tap has no setting 'stat_every' "
            f"(known: {', '.join(sorted(FAKE_TAP_SETTINGS))})",
        ),
        (
            "{count: 3}",
            "{ot: elsewhere.jsonl}",
            "ot: elsewhere",
            "environments.test.config.bin/fake-target.ot: bin/fake-target has no setting 'ot' "
            "(known: database, fail_after_commits, out, wrap_state)",
        ),
        (
            "{count: many}",
            "{}",
            "count: many",
            "pipelines.things.tap.config.count: 'many' is not of type 'integer'",
        ),
        (
            "{count: 3, client_secret: 48151623}",
            "{}",
            "48151623",
            "pipelines.things.tap.config.client_secret: not valid (type)",
        ),
    ],
    ids=["misspelt-in-pipeline", "misspelt-in-environment", "wrong-type", "secret-not-shown"],
)
def test_a_setting_the_executable_does_not_have_stops_run_as_it_stops_validate(
    fake_project, tap_config, env_target, needle, message
):
    _write(
        fake_project,
        f"""\
        version: 1
        default_environment: test
        environments:
          test:
            config:
              bin/fake-tap: {{client_secret: "${{FAKE_SECRET}}"}}
              bin/fake-target: {env_target}
        pipelines:
          things:
            tap: {{executable: bin/fake-tap, config: {tap_config}}}
            mapper: bin/fake-mapper
            target: {{executable: bin/fake-target, config: {{out: {{root}}/store.jsonl}}}}
        """,
    )
    _refused_everywhere(fake_project, f"pipelines.yaml:{_line_of(fake_project, needle)}: {message}")


def test_an_executable_that_cannot_answer_about_runs_with_a_warning(fake_project):
    """An off-the-shelf Singer program without singer-sdk's --about (here `cat` as the
    mapper) still runs; validate and run say its settings were not checked."""
    mapper = fake_project.root / "bin" / "fake-mapper"
    mapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --about ]; then echo "usage: fake-mapper --config FILE" >&2; exit 3; fi\n'
        "exec cat\n"
    )
    note = (
        "pipelines.yaml:19: pipelines.things.mapper: settings of 'bin/fake-mapper' not "
        "checked: `--about --format json` failed (exit code 3: usage: fake-mapper --config "
        "FILE); they are passed on as written"
    )
    result = fake_project.invoke("validate")
    assert result.returncode == 0, result.stderr
    assert note in result.stdout + result.stderr
    result = fake_project.run("run", "things")
    assert result.returncode == 0, result.stderr
    assert f"loyalty: warning: {note}" in result.stderr.splitlines()
    assert len(fake_project.runs()) == 1


def test_backfill_refuses_a_tap_that_cannot_take_its_windows(fake_project):
    """A tap that does not declare end_date would ignore each window and extract everything,
    once per window; a plain run of it is fine."""
    tap = fake_project.root / "bin" / "fake-tap"
    no_window = fake_project.root / "bin" / "no-window-tap"
    no_window.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "if '--about' in sys.argv:\n"
        "    props = {'client_secret': {}, 'count': {}, 'start_date': {}}\n"
        "    print(json.dumps({'settings': {'properties': props}}))\n"
        "    sys.exit(0)\n"
        f"os.execv({str(tap)!r}, [{str(tap)!r}, *sys.argv[1:]])\n"
    )
    no_window.chmod(0o755)
    fake_project.pipelines.write_text(
        fake_project.pipelines.read_text().replace("bin/fake-tap", "bin/no-window-tap")
    )
    assert fake_project.run("run", "things").returncode == 0
    assert len(fake_project.runs()) == 1
    result = fake_project.invoke(*RUN_ARGS[2])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Error: pipelines.yaml:{_line_of(fake_project, 'executable: bin/no-window-tap')}: "
        "pipelines.things.tap: bin/no-window-tap has no setting 'end_date', so it cannot "
        "extract a backfill window (each window would extract everything)"
    )
    assert len(fake_project.runs()) == 1
    assert not (fake_project.state_dir / "test" / "things" / "backfill.json").exists()


def test_about_is_asked_once_per_executable_version(fake_project):
    """A run asks each executable's --about only when the executable changed, or when the
    cached answer refuses a setting (an editable install adds settings without touching the
    script)."""
    calls = fake_project.root / "about-calls.log"
    settings = fake_project.root / "settings.json"
    settings.write_text('{"client_secret": {}, "count": {"type": "integer"}}')
    tap = fake_project.root / "bin" / "fake-tap"
    tap.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, sys\n"
        f"pathlib.Path({str(calls)!r}).open('a').write('about\\n')\n"
        f"props = json.loads(pathlib.Path({str(settings)!r}).read_text())\n"
        "print(json.dumps({'settings': {'properties': props}}))\n"
    )

    def asked() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    assert fake_project.invoke("validate").returncode == 0
    assert asked() == 1
    assert fake_project.invoke("run", "things", "--dry-run").returncode == 0
    assert asked() == 1  # the cached answer

    settings.write_text('{"client_secret": {}, "count": {}, "region": {}}')
    fake_project.write(tap={"region": "eu"})
    result = fake_project.invoke("run", "things", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert asked() == 2  # the cache said "no setting region"; the executable was asked again

    stat = tap.stat()
    os.utime(tap, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert fake_project.invoke("run", "things", "--dry-run").returncode == 0
    assert asked() == 3  # a new version of the executable


def test_a_mapping_output_the_store_reserves_is_refused_before_the_run(fake_project):
    mapping = fake_project.root / "m.yaml"
    mapping.write_text(
        "version: 1\nstreams:\n  things:\n    to: orders\n    key: [id]\n"
        "    fields:\n      id: {path: id, type: integer}\n"
    )
    _write(
        fake_project,
        """\
        version: 1
        default_environment: test
        environments:
          test:
            config:
              bin/fake-tap: {client_secret: "${FAKE_SECRET}"}
              target-loyalty-store: {database: {root}/store.duckdb}
        pipelines:
          things:
            tap: {executable: bin/fake-tap, config: {count: 3}}
            mapping: m.yaml
            target: target-loyalty-store
        """,
    )
    _refused_everywhere(
        fake_project,
        f"{mapping}:3: stream 'things': to: 'orders' is a name target-loyalty-store keeps "
        f"for itself (reserved: {', '.join(sorted(RESERVED_NAMES))}); pick another output "
        "stream name (pipelines.things)",
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"version: 1\npipelines:\n  things: caf\xe9\n",
            "pipelines.yaml:3: not UTF-8 text (byte 0xe9 at offset 35); save the file as UTF-8",
        ),
        (
            "version: 1\n".encode("utf-16"),
            "pipelines.yaml:1: not UTF-8 text (byte 0xff at offset 0); save the file as UTF-8",
        ),
        (b"version: 1\n? [a, b]: 1\n", "pipelines.yaml:2: a key must be a plain name, got a list"),
        (
            b"version: 1\npipelines:\n  ? {a: 1}\n  : 2\n",
            "pipelines.yaml:3: a key must be a plain name, got a mapping",
        ),
        (
            b"version: 1\n\x00\n",
            "pipelines.yaml:2: invalid YAML: character #x0000 is not allowed",
        ),
        (
            b"version: " + b"[" * 5000 + b"]" * 5000 + b"\n",
            "pipelines.yaml:1: invalid YAML: nested too deeply",
        ),
    ],
    ids=["latin-1", "utf-16", "list-key", "mapping-key", "nul", "deep"],
)
def test_a_hostile_pipelines_yaml_is_one_line(fake_project, content, message):
    fake_project.pipelines.write_bytes(content)
    for args in (("validate",), *RUN_ARGS):
        result = fake_project.invoke(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip() == f"Error: {message}", args
    _nothing_ran(fake_project)
