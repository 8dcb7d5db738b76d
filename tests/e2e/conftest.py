"""End-to-end fixtures: the real pipelines.yaml pipeline, run by the real `loyalty` console
script (tap-flexpos | mapper-loyalty | target-loyalty-store) against the FlexPOS emulator.

A test's environment drops the caller's LOYALTY_* and every emulator's variables (a shell may
have exported a running sandbox's), then takes the ones of the sandbox the test started."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml

from sandbox.registry import env_prefixes

REPO = Path(__file__).resolve().parents[2]
# pytest puts tests/ on sys.path (for tests/conftest.py), where tests/loyalty would shadow the
# real `loyalty` package as a namespace package; the repository root must come first.
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))
LOYALTY = str(Path(sys.executable).parent / "loyalty")
NOW_ENV = "LOYALTY_NOW"


@dataclass
class StoreProject:
    """A copy of the project's pipelines.yaml in tmp_path, pointed at one emulator."""

    root: Path
    env: dict[str, str]

    @property
    def db(self) -> Path:
        return self.root / "loyalty.duckdb"

    @property
    def state_dir(self) -> Path:
        return self.root / ".loyalty"

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [LOYALTY, "-f", str(self.root / "pipelines.yaml"), *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = self.popen(*args)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def query(self, sql: str) -> list[tuple]:
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def rows(self, table: str, key: str) -> dict[str, str]:
        """Every row of a table as JSON text, by key (timestamps as text: no pytz needed)."""
        return dict(self.query(f"SELECT {key}, to_json(t)::VARCHAR FROM {table} AS t"))


def make_store_project(
    tmp_path: Path,
    sandbox_env: dict[str, str],
    tap: dict[str, object] | None = None,
    *,
    pipeline: str = "flexpos_to_store",
    **target: object,
) -> StoreProject:
    """pipelines.yaml as shipped: the tap's default window (every customer, one year of order
    data, all the emulator serves), measured from the sandbox's clock. ``pipeline`` is the one
    whose tap and target settings ``tap`` and ``target`` change."""
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    for each in doc["pipelines"].values():  # the copy's relative paths point at the repo
        if "catalog" in each["tap"]:
            each["tap"]["catalog"] = str(REPO / each["tap"]["catalog"])
        if "mapping" in each:
            each["mapping"] = str(REPO / each["mapping"])
        if "models_dir" in each["tap"].get("config", {}):
            each["tap"]["config"]["models_dir"] = str(REPO / each["tap"]["config"]["models_dir"])
    pipe = doc["pipelines"][pipeline]
    pipe["tap"]["config"].update(tap or {})
    pipe["target"]["config"].update(target)
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", *env_prefixes()))}
    env.update(sandbox_env)
    env["LOYALTY_STORE"] = str(tmp_path / "loyalty.duckdb")
    return StoreProject(tmp_path, env)


@pytest.fixture
def store_project(tmp_path: Path):
    def _make(
        sandbox_env: dict[str, str],
        tap: dict[str, object] | None = None,
        *,
        folder: str = "",
        pipeline: str = "flexpos_to_store",
        **target: object,
    ) -> StoreProject:
        root = tmp_path / folder if folder else tmp_path
        root.mkdir(parents=True, exist_ok=True)
        return make_store_project(root, sandbox_env, tap, pipeline=pipeline, **target)

    return _make


def skip_unless_the_store_loads_postgresql(url: str, tmp_path: Path) -> None:
    """Skip unless target-loyalty-store takes a PostgreSQL URL as its database (helper
    pg-load's part of issue 17): it then creates the store's tables there. Before that it took
    the URL for a DuckDB file name (created in tmp_path here, never in the checkout)."""
    import json

    import psycopg

    config = tmp_path / "probe.json"
    config.write_text(json.dumps({"database": url}))
    target = Path(sys.executable).parent / "target-loyalty-store"
    subprocess.run(
        [str(target), "--config", str(config)],
        input="",
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    with psycopg.connect(url) as con:
        found = con.execute("SELECT to_regclass('public.contacts') IS NOT NULL").fetchone()
    if not (found and found[0]):
        pytest.skip("target-loyalty-store does not load PostgreSQL yet (helper pg-load's part)")
