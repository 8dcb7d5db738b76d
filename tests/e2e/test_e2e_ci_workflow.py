"""The example CI workflow (.github/workflows/backfill.yml), its own `run:` steps executed here
the way GitHub Actions runs them (bash -eo pipefail), with the env block it declares: inputs
and secrets filled in by the test, pointed at the FlexPOS emulator and a PostgreSQL store."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
from pathlib import Path

import yaml

from sandbox.registry import env_prefixes
from singer_kit.dates import now
from tests.e2e.conftest import REPO, skip_unless_the_store_loads_postgresql

WORKFLOW = REPO / ".github" / "workflows" / "backfill.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(secrets|inputs|runner)\.(\w+)\s*\}\}")
FLEXPOS_SECRETS = (
    "FLEXPOS_CLIENT_ID",
    "FLEXPOS_CLIENT_SECRET",
    "FLEXPOS_ATTRACTION_API_URL",
    "FLEXPOS_ATTRACTION_CLIENT_ID",
    "FLEXPOS_ATTRACTION_CLIENT_SECRET",
)

# Two months ending a fortnight before the suite's pinned "now" (three 30-day windows), so the
# backfill stays inside the taps' one-year history on any pinned date.
END = (now() - dt.timedelta(days=14)).date().isoformat()
START = (now() - dt.timedelta(days=14 + 61)).date().isoformat()


class Workflow:
    """The job's steps and env, as Actions would give them to the shell."""

    def __init__(self, tmp_path: Path, sandbox_env: dict[str, str], store_url: str) -> None:
        self.doc = yaml.safe_load(WORKFLOW.read_text())
        self.job = self.doc["jobs"]["backfill"]
        # PyYAML reads the key `on` as True (YAML 1.1).
        declared = self.doc[True]["workflow_dispatch"]["inputs"]
        self.inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()}
        self.secrets = {name: sandbox_env[name] for name in FLEXPOS_SECRETS}
        self.secrets["LOYALTY_STORE_URL"] = store_url
        self.temp = tmp_path / "runner-temp"
        self.temp.mkdir()
        # The checkout: the repository's files (its .venv, which the Install step made), in a
        # folder of the test's, so whatever a step writes next to pipelines.yaml stays here.
        self.checkout = tmp_path / "checkout"
        self.checkout.mkdir()
        for entry in REPO.iterdir():
            if entry.name not in (".git", ".loyalty") and not entry.name.endswith(".duckdb"):
                (self.checkout / entry.name).symlink_to(entry)
        # The runner's own environment, without the caller's LOYALTY_* or emulator settings,
        # plus what the sandbox has that prod builds in: the emulators' URLs and the clock.
        own = {
            k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", *env_prefixes()))
        }
        self.base_env = {**own, **sandbox_env}

    def env(self, step: dict, **overrides: str) -> dict[str, str]:
        """The job's env, then the step's (only there may `runner` be used, as on GitHub)."""
        values: dict[str, dict] = {"secrets": self.secrets, "inputs": self.inputs}

        def evaluate(block: dict) -> dict[str, str]:
            return {
                name: EXPRESSION.sub(lambda m: str(values[m[1]][m[2]]), str(value))
                for name, value in block.items()
            }

        job = evaluate(self.job["env"])
        values["runner"] = {"temp": self.temp}
        own = evaluate(step.get("env", {}))
        return {**self.base_env, **job, **own, "RUNNER_TEMP": str(self.temp), **overrides}

    def step(self, name: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        (step,) = [s for s in self.job["steps"] if s.get("name") == name]
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=self.checkout,
            env=self.env(step, **overrides),
            capture_output=True,
            text=True,
            timeout=600,
        )


def summaries(stdout: str) -> list[dict]:
    return [
        json.loads(line.split(": ", 1)[1]) for line in stdout.splitlines() if "summary: {" in line
    ]


def test_the_workflow_retries_a_temporary_failure_and_fails_at_once_on_a_bad_input(
    sandbox, tmp_path
):
    with socket.socket() as probe:  # the database server is down: nothing listens there
        probe.bind(("127.0.0.1", 0))
        down = f"postgresql://loyalty:pw-in-ci-secret@127.0.0.1:{probe.getsockname()[1]}/store"
    flow = Workflow(tmp_path, sandbox.env(), down)
    flow.inputs.update(start=START, end=END, environment="sandbox")

    checked = flow.step("Check pipelines.yaml")
    assert checked.returncode == 0, checked.stderr

    retried = flow.step("Backfill", BACKFILL_ATTEMPTS="2", BACKFILL_RETRY_SECONDS="0")
    assert retried.returncode == 75
    assert retried.stdout.count("temporary failure (exit 75), retrying") == 2
    assert "::error::still temporary after 2 attempts (exit 75)" in retried.stdout
    runs = summaries(retried.stdout)
    assert [s["exit_code"] for s in runs] == [75, 75]
    assert "cannot open the PostgreSQL store" in runs[0]["error"]
    assert "pw-in-ci-secret" not in retried.stdout + retried.stderr

    flow.inputs.update(start=END, end=START)  # end before start
    refused = flow.step("Backfill", BACKFILL_RETRY_SECONDS="0")
    assert refused.returncode == 2
    assert "::error::backfill failed (exit 2); not retried" in refused.stdout
    assert [s["outcome"] for s in summaries(refused.stdout)] == ["config_error"]


def test_the_workflow_backfills_a_postgresql_store_and_a_rerun_resumes(sandbox, pg_url, tmp_path):
    skip_unless_the_store_loads_postgresql(pg_url, tmp_path)
    flow = Workflow(tmp_path, sandbox.env(), pg_url)
    flow.inputs.update(start=START, end=END, window="30d", environment="sandbox")
    first = flow.step("Backfill", BACKFILL_RETRY_SECONDS="0")
    assert first.returncode == 0, first.stdout + first.stderr
    (summary,) = summaries(first.stdout)
    assert (summary["windows_total"], summary["windows_done"]) == (3, 3)
    assert summary["records"]["order_lines"] > 0

    again = flow.step("Backfill", BACKFILL_RETRY_SECONDS="0")
    assert again.returncode == 0, again.stdout + again.stderr
    (summary,) = summaries(again.stdout)
    assert summary["windows_skipped"] == 3  # recorded in the database, not on the runner
    # On the runner: only the logs, in its temp folder; nothing next to the checkout.
    assert list((flow.temp / "loyalty" / "runs").glob("*.log"))
    assert not (flow.checkout / ".loyalty").exists()
    import psycopg

    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT count(*) FROM order_lines").fetchone()[0] > 0
        assert con.execute("SELECT count(*) FROM _loyalty_backfill_windows").fetchone()[0] == 3
