"""Meltano runs flexpos_to_store from the committed meltano.yml, unchanged.

Meltano is installed in its own venv (never the project's), pinned, and kept between runs in
the git-ignored ``.tools/`` folder, keyed by Meltano's and Python's versions: the first run on
a fresh clone installs it (about 20 s from PyPI), later runs reuse it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import zoneinfo
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from sandbox.registry import env_prefixes

REPO = Path(__file__).resolve().parents[2]
LOYALTY = str(Path(sys.executable).parent / "loyalty")
MELTANO_VERSION = "4.4.1"
TOOLS = REPO / ".tools"
PIPELINE = "flexpos_to_store"
# The store's tables, compared row for row; _rejects without its random id and load time.
TABLES = {
    "contacts": "SELECT * FROM contacts",
    "contact_ids": "SELECT * FROM contact_ids",
    "contact_consents": "SELECT * FROM contact_consents",
    "order_lines": "SELECT * FROM order_lines",
    "_rejects": "SELECT stream, rule, reason, record FROM _rejects",
}

pytestmark = pytest.mark.meltano


@pytest.fixture(scope="session")
def meltano() -> Path:
    """The pinned Meltano's executable, installed into .tools/ on first use (under a lock, so
    two test processes never install into the same folder at once)."""
    py = f"py{sys.version_info.major}.{sys.version_info.minor}"
    venv = TOOLS / f"meltano-{MELTANO_VERSION}-{py}"
    exe = venv / "bin" / "meltano"
    done = venv / ".installed"
    TOOLS.mkdir(exist_ok=True)
    with (TOOLS / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)  # a half-made one from an interrupted run
            for argv in (
                [sys.executable, "-m", "venv", str(venv)],
                [
                    str(venv / "bin" / "python"),
                    *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                    f"meltano=={MELTANO_VERSION}",
                ],
            ):
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
                assert proc.returncode == 0, f"installing Meltano failed: {proc.stderr[-2000:]}"
            done.touch()
    return exe


def _project_copy(root: Path) -> Path:
    """The repository as Meltano sees it, in ``root``: meltano.yml copied (to catch Meltano
    rewriting it), everything else linked, `.venv` the venv running the tests."""
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in ("meltano.yml", ".venv", ".meltano", ".tools"):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shutil.copyfile(REPO / "meltano.yml", root / "meltano.yml")
    return root


def _environ(sandbox_env: dict[str, str], **more: str) -> dict[str, str]:
    """The caller's environment without its LOYALTY_*, MELTANO_* and emulator variables (a
    shell may hold a running sandbox's), plus the test sandbox's."""
    drop = ("LOYALTY_", "MELTANO_", "TAP_", "TARGET_", "MAPPER_", *env_prefixes())
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.pop("VIRTUAL_ENV", None)
    return {**env, **sandbox_env, **more}


def _redacted(text: str, secrets: list[str]) -> str:
    """The last lines of a log for an assertion message, secrets blanked."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text[-3000:]


def _rows(db: Path) -> dict[str, list[str]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            table: sorted(
                r[0] for r in con.execute(f"SELECT to_json(t)::VARCHAR FROM ({sql}) t").fetchall()
            )
            for table, sql in TABLES.items()
        }
    finally:
        con.close()


def _local(instant: str) -> str:
    """A bookmark (UTC ISO) as the tap filters on it: FlexPOS's local time, no offset."""
    cph = zoneinfo.ZoneInfo("Europe/Copenhagen")
    return datetime.fromisoformat(instant).astimezone(cph).strftime("%Y-%m-%dT%H:%M:%S")


def test_meltano_run_loads_what_loyalty_run_loads_and_continues_from_its_state(
    meltano, fresh_sandbox, tmp_path
):
    sb = fresh_sandbox(customers=60)
    secrets = [v for k, v in sb.env().items() if k.endswith("SECRET")]
    assert len(secrets) == 2
    project = _project_copy(tmp_path / "project")
    sysdir = tmp_path / "meltano-sys"
    env = _environ(
        sb.env(),
        LOYALTY_STORE=str(tmp_path / "meltano.duckdb"),
        MELTANO_SYS_DIR_ROOT=str(sysdir),
        MELTANO_CLI_DISABLE_VERSION_CHECK="true",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
    )

    def meltano_run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(meltano), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, _redacted(out, secrets)
        assert not any(s in out for s in secrets), "a secret in Meltano's output"
        return proc

    def loyalty_run() -> None:
        proc = subprocess.run(
            [LOYALTY, "--state-dir", str(tmp_path / "state"), "run", PIPELINE, "--env", "sandbox"],
            cwd=REPO,
            env=_environ(sb.env(), LOYALTY_STORE=str(tmp_path / "loyalty.duckdb")),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, _redacted(proc.stderr, secrets)

    meltano_run("install")  # nothing to download: the plugins are the project's venv
    meltano_run("run", PIPELINE)
    loyalty_run()
    first = _rows(tmp_path / "meltano.duckdb")
    assert len(first["contacts"]) > 30 and len(first["order_lines"]) > 100
    assert first == _rows(tmp_path / "loyalty.duckdb")

    # Meltano saved the target's state: the bookmarks of every stream.
    state_id = "sandbox:tap-flexpos-to-target-loyalty-store"
    saved = json.loads(meltano_run("state", "get", state_id).stdout)["singer_state"]
    assert set(saved["bookmarks"]) == {"customers", "journals", "tickets", "memberships"}

    # The schedule is Meltano's, as its Airflow DAG generator and Dagster read them.
    listed = json.loads(meltano_run("schedule", "list", "--format=json").stdout)
    (job,) = [j for j in listed["schedules"]["job"] if j["name"] == PIPELINE]
    assert job["interval"] == "*/5 * * * *"
    assert job["job"]["tasks"] == ["tap-flexpos flexpos_to_store-mapping target-loyalty-store"]

    # Secrets are masked by Meltano and in none of its files.
    listed = meltano_run("--environment", "sandbox", "config", "list", "tap-flexpos").stdout
    assert "client_secret [env: TAP_FLEXPOS_CLIENT_SECRET] current value: (redacted)" in listed
    for path in sysdir.rglob("*"):
        if path.is_file():
            assert not any(s.encode() in path.read_bytes() for s in secrets), path

    # The source changes; the next Meltano run reads from the saved bookmarks only and
    # loads exactly what a loyalty run of the same data loads.
    data = sb.flexpos.data
    changed = next(iter(data.iter_records("customer")))["Uid"]
    data.update_customer(changed, FirstName="Zelda")
    data.add_customers(3)
    data.add_journals(2)
    sb.flexpos.clear_requests()
    meltano_run("run", PIPELINE)
    reads = [r for r in sb.flexpos.requests if "filters[ModifiedDate][$gte]" in r.query]
    assert reads
    bookmarks = {
        stream: _local(mark["replication_key_value"]) for stream, mark in saved["bookmarks"].items()
    }
    # Every page of every stream starts at or after that stream's bookmark (a keyset pager
    # moves the lower bound forward page by page, never back).
    by_resource = {
        "customers": "customer",
        "journals": "journal",
        "tickets": "ticket",
        "memberships": "membership",
    }
    for stream, resource in by_resource.items():
        lows = [
            r.query["filters[ModifiedDate][$gte]"]
            for r in reads
            if f"/{resource}" in r.path.lower()
        ]
        assert lows and min(lows) == bookmarks[stream], (stream, lows, bookmarks[stream])
    loyalty_run()
    second = _rows(tmp_path / "meltano.duckdb")
    assert second == _rows(tmp_path / "loyalty.duckdb")
    assert any("Zelda" in row for row in second["contacts"])
    # Meltano found nothing to add to the committed file (it rewrites one that lacks a
    # project_id, and `loyalty export meltano --check` would then fail).
    assert (project / "meltano.yml").read_bytes() == (REPO / "meltano.yml").read_bytes()
