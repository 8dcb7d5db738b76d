"""Peer virtualenvs under ``bench/.peers/``: pinned, created once, reused.

The peers must never share the project's dependencies (their own pins would bend ours and the
comparison would measure a setup no user has), so each gets its own venv, built with the
interpreter that runs the bench. A stamp file holding the requirement list makes reuse exact:
change a pin and the venv is rebuilt.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / ".peers"


@dataclass(frozen=True)
class PeerEnv:
    """One peer venv: a name and its exact pins."""

    name: str
    requirements: tuple[str, ...]

    @property
    def path(self) -> Path:
        """Where the venv lives."""
        return PEERS_DIR / self.name

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.path / "bin" / "python"

    def bin(self, script: str) -> Path:
        """A console script installed in the venv."""
        return self.path / "bin" / script


TARGET_DUCKDB = PeerEnv("target-duckdb", ("target-duckdb==0.8.0",))
MELTANO_MAP = PeerEnv("meltano-map-transform", ("meltano-map-transform==0.12.3",))
SINGER_SDK = PeerEnv(
    "singer-sdk",
    ("singer-sdk==0.54.9", "duckdb_engine==0.17.0", "duckdb==2.0.0", "SQLAlchemy==2.1.9"),
)
# MeltanoLabs' singer-sdk PostgreSQL target (the one Meltano Hub lists first); it pins its own
# singer-sdk, psycopg and psycopg2-binary, hence a venv of its own.
TARGET_POSTGRES = PeerEnv("target-postgres", ("meltanolabs-target-postgres==0.8.1",))
ALL_PEERS: tuple[PeerEnv, ...] = (TARGET_DUCKDB, MELTANO_MAP, SINGER_SDK, TARGET_POSTGRES)


def _stamp(env: PeerEnv) -> Path:
    return env.path / ".bench-installed"


def _wanted(env: PeerEnv) -> str:
    return "\n".join(env.requirements) + "\n"


def is_ready(env: PeerEnv) -> bool:
    """True when the venv exists with exactly these pins installed."""
    stamp = _stamp(env)
    return env.python.exists() and stamp.exists() and stamp.read_text() == _wanted(env)


def ensure(env: PeerEnv, log: object = print) -> tuple[bool, str]:
    """Create or reuse the venv; return (ok, reason-or-summary) rather than raising.

    A failed install must not abort the whole bench: that peer's rows say why instead.
    """
    if is_ready(env):
        return True, "reused"
    started = time.monotonic()
    if env.path.exists():
        shutil.rmtree(env.path)
    env.path.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(env.path)],
        [
            str(env.python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *env.requirements,
        ],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return False, f"install failed ({' '.join(env.requirements)}): {tail[0]}"
    _stamp(env).write_text(_wanted(env))
    took = time.monotonic() - started
    log(f"[bench] installed peer venv {env.name} ({', '.join(env.requirements)}) in {took:.0f} s")
    return True, f"installed in {took:.0f} s"


def installed_versions(env: PeerEnv) -> dict[str, str]:
    """Name -> version of everything in the venv, recorded with the results."""
    proc = subprocess.run(
        [str(env.python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
    )
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            out[name.lower()] = version
    return out
