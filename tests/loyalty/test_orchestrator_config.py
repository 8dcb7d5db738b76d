"""pipelines.yaml errors and the small commands: one clear line, never a traceback."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from loyalty.config import ConfigError, load

REPO = Path(__file__).resolve().parents[2]


def _bad(fake_project, text: str, *args: str):
    fake_project.pipelines.write_text(textwrap.dedent(text))
    result = fake_project.invoke(*(args or ("run", "things")))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


GOOD_TOP = """\
version: 1
default_environment: test
environments:
  test: {}
"""


def test_unknown_pipeline_names_the_defined_ones(fake_project):
    result = fake_project.run("run", "nope")
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "Error: pipelines.yaml: unknown pipeline 'nope' (defined: things)"
    )


def test_unknown_environment_names_the_defined_ones(fake_project):
    result = fake_project.run("run", "things", "--env", "staging")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: pipelines.yaml: unknown environment 'staging' (defined: other, test)"
    )


def test_missing_env_var_is_named_with_file_line_and_setting(fake_project):
    fake_project.env.pop("FAKE_SECRET")
    result = fake_project.run("run", "things")
    assert result.returncode == 2
    msg = result.stderr.strip()
    assert msg.startswith("Error: pipelines.yaml:")
    assert "environment variable FAKE_SECRET is not set" in msg
    assert "environments.test.config.bin/fake-tap.client_secret" in msg
    assert not fake_project.out.exists()


def test_wrong_type_names_line_and_setting(fake_project):
    line = _bad(
        fake_project,
        GOOD_TOP
        + """\
pipelines:
  things:
    tap:
      executable: bin/fake-tap
      config: [count, 10]
    target: bin/fake-target
""",
    )
    assert (
        line == "Error: pipelines.yaml:9: pipelines.things.tap.config must be a mapping, got a list"
    )


def test_wrong_schedule_type_and_bad_cron(fake_project):
    line = _bad(
        fake_project,
        GOOD_TOP + "pipelines:\n  things:\n    tap: bin/fake-tap\n    target: bin/fake-target\n"
        "    schedule: 15\n",
    )
    assert "pipelines.yaml:9: pipelines.things.schedule must be a cron expression string" in line
    line = _bad(
        fake_project,
        GOOD_TOP + "pipelines:\n  things:\n    tap: bin/fake-tap\n    target: bin/fake-target\n"
        "    schedule: '61 * * * *'\n    mapper: bin/fake-mapper\n",
        "schedule",
    )
    assert "pipelines.yaml:9: pipelines.things.schedule: '61 * * * *' is not a valid cron" in line


def test_batch_must_be_a_boolean(fake_project):
    line = _bad(
        fake_project,
        GOOD_TOP + "pipelines:\n  things:\n    tap: bin/fake-tap\n    target: bin/fake-target\n"
        "    batch: 'yes please'\n",
    )
    assert "pipelines.yaml:9: pipelines.things.batch must be true or false, got a string" in line


def test_yaml_syntax_error_and_duplicate_key_and_unknown_key(fake_project):
    line = _bad(fake_project, GOOD_TOP + "pipelines:\n  things: [\n")
    assert line.startswith("Error: pipelines.yaml:") and "invalid YAML" in line
    line = _bad(fake_project, GOOD_TOP + "environments:\n  x: {}\npipelines: {}\n")
    assert line == "Error: pipelines.yaml:5: duplicate key 'environments' (first defined on line 3)"
    line = _bad(
        fake_project,
        GOOD_TOP + "pipelines:\n  things:\n    tap: bin/fake-tap\n    taget: bin/fake-target\n",
    )
    assert "pipelines.yaml:8: unknown key 'taget' in pipelines.things" in line
    line = _bad(
        fake_project,
        GOOD_TOP + "pipelines:\n  things:\n    tap: bin/fake-tap\n    target: bin/fake-target\n",
    )
    assert line.startswith("Error: pipelines.yaml:6: pipelines.things.mapping is missing")


def test_missing_file_is_one_line(fake_project, tmp_path):
    result = fake_project.invoke("-f", str(tmp_path / "absent.yaml"), "validate")
    assert result.returncode == 2
    assert "absent.yaml: file not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_environment_overrides_pipeline_config_and_secrets_are_collected(tmp_path):
    path = tmp_path / "pipelines.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            environments:
              prod:
                config:
                  tap-x: {url: "https://real", api_key: "${X_KEY}", opt: "${X_OPT:-7}"}
            pipelines:
              p:
                tap: {executable: tap-x, config: {url: "http://default", page: 5}}
                mapping: m.yaml
                target: target-y
            """
        )
    )
    project = load(path)
    resolved = project.resolve("p", "prod", {"X_KEY": "k-123456"})
    assert resolved.configs["tap"] == {
        "url": "https://real",
        "page": 5,
        "api_key": "k-123456",
        "opt": "7",
    }
    assert resolved.redacted["tap"]["api_key"] == "***"
    assert resolved.secrets == ["k-123456"]
    assert resolved.pipeline.mapper.executable == "mapper-loyalty"
    with pytest.raises(ConfigError, match=r"pipelines.yaml:5: environment variable X_KEY"):
        project.resolve("p", "prod", {})
    with pytest.raises(ConfigError, match="no --env given and no default_environment"):
        project.resolve("p", None, {})


def test_validate_accepts_the_projects_own_pipelines_yaml_and_checks_settings(
    fake_project, tmp_path
):
    result = fake_project.invoke("-f", str(REPO / "pipelines.yaml"), "validate")
    assert result.returncode == 0, result.stderr
    assert "pipelines.yaml: OK" in result.stdout

    # The same file with a wrong type and a misspelt key: caught at their lines, offline,
    # against the executables' own settings schemas.
    text = (REPO / "pipelines.yaml").read_text()
    text = text.replace("page_size: 500", "page_size: many")
    text = text.replace("only_active: false", "only_activ: false")
    bad = tmp_path / "bad" / "pipelines.yaml"
    bad.parent.mkdir()
    bad.write_text(text)
    for sub in ("catalogs", "transforms"):
        (bad.parent / sub).symlink_to(REPO / sub)
    lines = text.splitlines()
    page_line = next(i for i, x in enumerate(lines, 1) if "page_size: many" in x)
    activ_line = next(i for i, x in enumerate(lines, 1) if "only_activ:" in x)
    result = fake_project.invoke("-f", str(bad), "validate")
    assert result.returncode == 2
    assert (
        f"Error: pipelines.yaml:{page_line}: pipelines.flexpos_to_store.tap.config.page_size: "
        "'many' is not of type 'integer', 'null'" in result.stderr
    )
    assert (
        f"Error: pipelines.yaml:{activ_line}: pipelines.flexpos_to_store.tap.config.only_activ: "
        "tap-flexpos has no setting 'only_activ'" in result.stderr
    )


def test_validate_reports_literal_secrets_missing_catalog_and_bad_mapping(fake_project):
    bad_mapping = fake_project.root / "bad.yaml"
    bad_mapping.write_text(
        (REPO / "transforms/mappings/flexpos_to_store.yaml")
        .read_text()
        .replace("source_id: Uid", "source_id: NoSuchField")
    )
    fake_project.pipelines.write_text(
        GOOD_TOP
        + textwrap.dedent(
            f"""\
            pipelines:
              things:
                tap:
                  executable: bin/fake-tap
                  catalog: {REPO}/catalogs/flexpos.json
                  config: {{client_secret: hunter2hunter2}}
                mapping: bad.yaml
                target: bin/fake-target
              other:
                tap: {{executable: bin/fake-tap, catalog: missing.json}}
                mapper: bin/fake-mapper
                target: bin/fake-target
            """
        )
    )
    result = fake_project.invoke("validate")
    assert result.returncode == 2
    err = result.stderr
    assert "pipelines.things.tap.config.client_secret holds a literal secret" in err
    assert "hunter2hunter2" not in err
    assert "catalog missing.json not found" in err
    assert "bad.yaml" in err and "NoSuchField" in err


def test_validate_with_env_requires_its_variables(fake_project):
    assert fake_project.invoke("validate").returncode == 0
    result = fake_project.invoke("validate", "--env", "other")
    assert result.returncode == 2
    assert "environment variable OTHER_SECRET is not set" in result.stderr


def test_status_state_and_schedule_commands(fake_project):
    assert "no runs recorded yet" in fake_project.invoke("status").stdout
    assert fake_project.run("run", "things").returncode == 0
    status = fake_project.invoke("status")
    assert "things" in status.stdout and "success" in status.stdout and "things=10" in status.stdout
    runs = json.loads(fake_project.invoke("status", "--json").stdout)
    assert runs[0]["records"] == {"things": 10} and runs[0]["outcome"] == "success"

    shown = json.loads(fake_project.invoke("state", "show", "things").stdout)
    assert shown == {"bookmarks": {"things": {"last": 9}}}
    new = '{"bookmarks": {"things": {"last": 4}}}'
    assert fake_project.invoke("state", "set", "things", new).returncode == 0
    assert fake_project.saved_state() == {"bookmarks": {"things": {"last": 4}}}
    bad = fake_project.invoke("state", "set", "things", "[1, 2]")
    assert bad.returncode == 2 and "must be a JSON object" in bad.stderr
    assert fake_project.invoke("state", "clear", "things").returncode == 0
    assert fake_project.saved_state() is None
    assert json.loads(fake_project.invoke("state", "show", "things").stdout) == {}
    assert fake_project.invoke("state", "show", "nope").returncode == 2

    fake_project.write(schedule="*/15 * * * *")
    cron = fake_project.invoke("schedule").stdout.splitlines()
    (line,) = [c for c in cron if not c.startswith("#")]
    assert line.startswith("*/15 * * * * cd ")
    assert "run things --env test" in line and str(fake_project.pipelines) in line


def test_every_command_has_help(fake_project):
    for args in (
        [],
        ["run"],
        ["validate"],
        ["status"],
        ["state"],
        ["state", "show"],
        ["state", "set"],
        ["state", "clear"],
        ["schedule"],
        ["backfill"],
    ):
        result = fake_project.invoke(*args, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, args


def test_corrupt_saved_state_is_one_line_naming_the_file(fake_project):
    state = fake_project.state_dir / "test" / "things" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    for args in (("run", "things"), ("state", "show", "things")):
        result = fake_project.invoke(*args)
        assert result.returncode == 1
        assert f"{state}: saved state is not valid JSON" in result.stderr
        assert "Traceback" not in result.stderr
    assert not fake_project.out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "2025-13-01", "--end", "2026-01-01"], "--start: '2025-13-01' is not an ISO"),
        (["--start", "2026-01-01", "--end", "2025-01-01"], "must be before --end"),
        (["--start", "2025-01-01", "--end", "2026-01-01", "--window", "3 months"], "--window:"),
        (["--start", "2025-01-01", "--end", "2026-01-01", "--window", "0d"], "like 30d, 12h"),
    ],
)
def test_backfill_arguments_are_checked_before_anything_runs(fake_project, extra, message):
    result = fake_project.invoke("backfill", "things", *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert not list(fake_project.state_dir.rglob("*.json"))  # no run was recorded
