"""Fixtures for the orchestrator's tests: a project in tmp_path whose tap, mapper and target
are tiny fake Singer scripts, driven through the real `loyalty` console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# pytest puts tests/ on sys.path (for tests/conftest.py), where this directory would shadow the
# real `loyalty` package as a namespace package; the repository root must come first.
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))
if getattr(sys.modules.get("loyalty"), "__file__", "") is None:
    for _name in [m for m in sys.modules if m == "loyalty" or m.startswith("loyalty.")]:
        del sys.modules[_name]

FAKES = Path(__file__).parent / "fakes"
LOYALTY = str(Path(sys.executable).parent / "loyalty")
SECRET = "s3cr3t-Value-42"


def wait_for(predicate, timeout: float = 20.0) -> None:
    """Poll until predicate() holds; bounded, so a broken run fails the test instead of hanging."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def zombie(pid: int) -> bool:
    """A process that is gone or only a zombie: it can no longer touch anything."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


@dataclass
class FakeProject:
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    secret: str = SECRET

    @property
    def pipelines(self) -> Path:
        return self.root / "pipelines.yaml"

    @property
    def state_dir(self) -> Path:
        return self.root / ".loyalty"

    @property
    def out(self) -> Path:
        """The fake target's committed records."""
        return self.root / "committed.jsonl"

    def committed(self) -> list[int]:
        if not self.out.exists():
            return []
        return [json.loads(line)["id"] for line in self.out.read_text().splitlines()]

    def write(
        self,
        tap: dict | None = None,
        mapper: dict | None = None,
        target: dict | None = None,
        schedule: str | None = None,
    ) -> None:
        doc = {
            "version": 1,
            "default_environment": "test",
            "environments": {
                "test": {"config": {"bin/fake-tap": {"client_secret": "${FAKE_SECRET}"}}},
                "other": {"config": {"bin/fake-tap": {"client_secret": "${OTHER_SECRET}"}}},
            },
            "pipelines": {
                "things": {
                    "tap": {"executable": "bin/fake-tap", "config": {"count": 10, **(tap or {})}},
                    "mapper": {"executable": "bin/fake-mapper", "config": mapper or {}},
                    "target": {
                        "executable": "bin/fake-target",
                        "config": {"out": str(self.out), **(target or {})},
                    },
                }
            },
        }
        if schedule:
            doc["pipelines"]["things"]["schedule"] = schedule
        self.pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The test's environment: no LOYALTY_* leaking in from the caller's shell."""
        merged = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
        merged.pop("OTHER_SECRET", None)
        merged.update(self.env)
        merged.update(extra or {})
        return merged

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [LOYALTY, "-f", str(self.pipelines), *args],
            cwd=self.root,
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = self.popen(*args, env=env)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def invoke(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The same CLI in-process (click's runner): for the quick commands, saves a process."""
        from click.testing import CliRunner

        from loyalty.cli import main

        environ = {k: None for k in os.environ if k.startswith("LOYALTY_")}
        environ["OTHER_SECRET"] = None
        environ.update(self.env)
        environ.update(env or {})
        cwd = Path.cwd()
        os.chdir(self.root)
        try:
            res = CliRunner().invoke(main, ["-f", str(self.pipelines), *args], env=environ)
        finally:
            os.chdir(cwd)
        if res.exception and not isinstance(res.exception, SystemExit):
            raise res.exception
        return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)

    def saved_state(self, env: str = "test") -> dict | None:
        path = self.state_dir / env / "things" / "state.json"
        return json.loads(path.read_text()) if path.exists() else None

    def runs(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted((self.state_dir / "runs").glob("*.json"))]


@pytest.fixture
def fake_project(tmp_path: Path) -> FakeProject:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("tap", "mapper", "target"):
        script = bin_dir / f"fake-{name}"
        script.write_text(f"#!{sys.executable}\n" + (FAKES / f"fake_{name}.py").read_text())
        script.chmod(0o755)
    # The executables' --about answers are cached under XDG_CACHE_HOME: one per test.
    project = FakeProject(
        tmp_path, {"FAKE_SECRET": SECRET, "XDG_CACHE_HOME": str(tmp_path / ".cache")}
    )
    project.write()
    return project
