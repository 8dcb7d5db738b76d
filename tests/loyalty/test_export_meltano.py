"""`loyalty export meltano`: meltano.yml derived from pipelines.yaml, and kept so.

Meltano itself runs the exported file in tests/e2e/test_e2e_meltano.py; these tests check the
translation and its refusals without starting Meltano.
"""

from __future__ import annotations

import copy
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from loyalty import meltano
from loyalty.config import ConfigError, load
from tests.loyalty.conftest import LOYALTY, REPO

PIPELINE = "flexpos_to_store"


def _doc() -> dict[str, t.Any]:
    """The shipped pipelines.yaml, its catalog and mapping paths made absolute."""
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    for pipe in doc["pipelines"].values():
        if "catalog" in pipe["tap"]:
            pipe["tap"]["catalog"] = str(REPO / pipe["tap"]["catalog"])
        if "mapping" in pipe:
            pipe["mapping"] = str(REPO / pipe["mapping"])
    return doc


def _write(tmp_path: Path, doc: dict[str, t.Any]) -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def abouts() -> dict[str, t.Any]:
    """Each executable's --about, asked once for the module's exports."""
    return meltano.read_abouts(load(REPO / "pipelines.yaml"))


def _export(tmp_path: Path, doc: dict[str, t.Any], abouts: dict[str, t.Any]) -> dict[str, t.Any]:
    return yaml.safe_load(meltano.export(load(_write(tmp_path, doc)), abouts))


def _plugin(doc: dict[str, t.Any], kind: str, name: str) -> dict[str, t.Any]:
    return next(p for p in doc["plugins"][kind] if p["name"] == name)


def _loyalty(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOYALTY, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_committed_meltano_yml_is_what_pipelines_yaml_exports():
    result = _loyalty("export", "meltano", "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "meltano.yml: up to date"
    doc = yaml.safe_load((REPO / "meltano.yml").read_text())
    # Secrets are settings Meltano masks, and only ever ${VAR} references in the file.
    tap = _plugin(doc, "extractors", "tap-flexpos")
    kinds = {s["name"]: s["kind"] for s in tap["settings"]}
    assert kinds["client_secret"] == kinds["attraction_client_secret"] == "password"
    assert kinds["client_id"] == "string" and kinds["page_size"] == "integer"
    for env in doc["environments"]:
        extractors = env["config"]["plugins"]["extractors"]
        (config,) = [e["config"] for e in extractors if e["name"] == "tap-flexpos"]
        assert config["client_secret"] == "${FLEXPOS_CLIENT_SECRET}"
        assert config["attraction_client_secret"] == "${FLEXPOS_ATTRACTION_CLIENT_SECRET}"
    # Each pipeline is a job (tap, mapping, target) on the pipeline's own schedule.
    pipelines = _doc()["pipelines"]
    jobs = {job["name"]: job["tasks"] for job in doc["jobs"]}
    assert list(jobs) == list(pipelines)
    assert jobs[PIPELINE] == ["tap-flexpos flexpos_to_store-mapping target-loyalty-store"]
    assert doc["schedules"] == [
        {"name": name, "interval": pipe["schedule"], "job": name}
        for name, pipe in pipelines.items()
        if pipe.get("schedule")
    ]
    assert {"name": PIPELINE, "interval": "*/5 * * * *", "job": PIPELINE} in doc["schedules"]
    assert tap["catalog"] == "catalogs/flexpos.json" and "pip_url" not in tap
    assert tap["executable"] == ".venv/bin/tap-flexpos"
    # A team's own Meltano plugins go in files the export never writes.
    assert doc["include_paths"] == ["./meltano/*.meltano.yml"]


def test_check_fails_on_a_stale_file_and_export_rewrites_it(tmp_path):
    doc = _doc()
    _write(tmp_path, doc)
    (tmp_path / "meltano.yml").write_text((REPO / "meltano.yml").read_text())
    doc["pipelines"][PIPELINE]["tap"]["config"]["page_size"] = 100
    _write(tmp_path, doc)
    stale = _loyalty("export", "meltano", "--check", cwd=tmp_path)
    assert stale.returncode == 1
    assert stale.stderr.strip() == (
        f"Error: {tmp_path / 'meltano.yml'} is not up to date with pipelines.yaml: run "
        "`loyalty export meltano` and commit it"
    )
    written = _loyalty("export", "meltano", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == "meltano.yml: written"
    exported = yaml.safe_load((tmp_path / "meltano.yml").read_text())
    assert _plugin(exported, "extractors", "tap-flexpos")["config"]["page_size"] == 100


def _flexpos_only() -> dict[str, t.Any]:
    """The shipped file with only flexpos_to_store and its executables' environment config."""
    doc = _doc()
    doc["pipelines"] = {PIPELINE: doc["pipelines"][PIPELINE]}
    used = {"tap-flexpos", "mapper-loyalty", "target-loyalty-store"}
    for env in doc["environments"].values():
        env["config"] = {k: v for k, v in env["config"].items() if k in used}
    return doc


def test_pipelines_configured_differently_get_their_own_plugin_and_meltano_state(tmp_path, abouts):
    doc = _flexpos_only()
    other = copy.deepcopy(doc["pipelines"][PIPELINE])
    other["tap"]["config"]["only_club_members"] = True
    other.pop("schedule")
    doc["pipelines"]["members_to_store"] = other
    # A literal `$` Meltano would read as a variable is escaped; `$$` is pipelines.yaml's `$`.
    doc["pipelines"][PIPELINE]["target"]["config"]["staging_dir"] = "/tmp/a$$b/$$Cd/$Ef"
    other["target"]["config"]["staging_dir"] = "/tmp/a$$b/$$Cd/$Ef"
    exported = _export(tmp_path, doc, abouts)

    taps = {p["name"]: p for p in exported["plugins"]["extractors"]}
    assert set(taps) == {
        "tap-flexpos",
        "tap-flexpos--flexpos_to_store",
        "tap-flexpos--members_to_store",
    }
    assert "config" not in taps["tap-flexpos"] and taps["tap-flexpos"]["settings"]
    members = taps["tap-flexpos--members_to_store"]
    assert members["inherit_from"] == "tap-flexpos" and members["config"]["only_club_members"]
    assert taps["tap-flexpos--flexpos_to_store"]["config"]["only_club_members"] is False
    # Both run into the one target: its plugin is shared, the state ids differ by tap.
    (target,) = exported["plugins"]["loaders"]
    assert target["config"]["staging_dir"] == "/tmp/a$b/\\$Cd/\\$Ef"
    assert [j["tasks"] for j in exported["jobs"]] == [
        ["tap-flexpos--flexpos_to_store flexpos_to_store-mapping target-loyalty-store"],
        ["tap-flexpos--members_to_store members_to_store-mapping target-loyalty-store"],
    ]
    (mapper,) = exported["plugins"]["mappers"]
    assert [m["name"] for m in mapper["mappings"]] == [
        "flexpos_to_store-mapping",
        "members_to_store-mapping",
    ]
    assert [s["job"] for s in exported["schedules"]] == [PIPELINE]
    # Each pipeline's tap plugin gets the environment's settings for tap-flexpos.
    sandbox = exported["environments"][0]["config"]["plugins"]
    assert [p["name"] for p in sandbox["extractors"]] == [
        "tap-flexpos--flexpos_to_store",
        "tap-flexpos--members_to_store",
    ]
    assert all(
        p["config"]["client_secret"] == "${FLEXPOS_CLIENT_SECRET}" for p in sandbox["extractors"]
    )
    # ${LOYALTY_STORE:-loyalty.duckdb}: the default in the environment, the variable as alias.
    database = next(s for s in target["settings"] if s["name"] == "database")
    assert database["env_aliases"] == ["LOYALTY_STORE"]
    assert sandbox["loaders"] == [
        {"name": "target-loyalty-store", "config": {"database": "loyalty.duckdb"}}
    ]


def _store(value: str) -> t.Callable[[dict[str, t.Any]], None]:
    def change(doc: dict[str, t.Any]) -> None:
        doc["environments"]["prod"]["config"]["target-loyalty-store"]["database"] = value

    return change


def _seconds(doc: dict[str, t.Any]) -> None:
    doc["pipelines"][PIPELINE]["schedule"] = "*/5 * * * * */30"


def _literal_secret(doc: dict[str, t.Any]) -> None:
    doc["environments"]["prod"]["config"]["tap-flexpos"]["client_secret"] = "hunter2-literal"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _store("data/${LOYALTY_STORE:-prod}.duckdb"),
            "environments.prod.config.target-loyalty-store.database: a ${{VAR:-default}} must "
            "be the whole value for Meltano (in 'data/${{LOYALTY_STORE:-prod}}.duckdb')",
        ),
        (
            _store("${PROD_STORE:-prod.duckdb}"),
            "environments.prod.config.target-loyalty-store.database: target-loyalty-store."
            "database defaults from ${{LOYALTY_STORE}} elsewhere; Meltano reads one variable "
            "per setting, not also ${{PROD_STORE}}",
        ),
        (
            _seconds,
            "pipelines.yaml:{line}: pipelines.flexpos_to_store.schedule: '*/5 * * * * */30' has a "
            "seconds field; Meltano schedules take five fields",
        ),
        (
            _literal_secret,
            "pipelines.yaml line {line}: environments.prod.config.tap-flexpos.client_secret "
            "holds a literal secret; use a ${{VAR}} reference so the value stays out of the "
            "file; fix pipelines.yaml before exporting",
        ),
    ],
    ids=["default-inside-a-value", "two-variables-one-setting", "seconds-field", "literal-secret"],
)
def test_what_meltano_cannot_say_is_one_line_and_no_file(tmp_path, abouts, change, message):
    doc = _doc()
    change(doc)
    path = _write(tmp_path, doc)
    lines = path.read_text().splitlines()
    with pytest.raises(ConfigError) as err:
        meltano.export(load(path), abouts)
    # The line of the setting named, in the file as written.
    key = "schedule:" if "schedule" in message else "client_secret: hunter2"
    line = next((n for n, text in enumerate(lines, 1) if key in text), 0)
    assert str(err.value) == message.format(line=line)
    assert not (tmp_path / "meltano.yml").exists()
