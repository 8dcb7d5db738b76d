"""Harness for tap tests (tap-flexpos, tap-billetten): run the real executable and parse its
Singer output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

TAP_EXE = str(Path(sys.executable).parent / "tap-flexpos")
SECRET_KEYS = ("client_secret", "attraction_client_secret")


@dataclass
class TapRun:
    """One finished tap process: exit code, raw streams and parsed Singer messages."""

    returncode: int
    stdout: str
    stderr: str
    records: dict[str, list[dict]] = field(default_factory=dict)
    states: list[dict] = field(default_factory=list)
    schemas: dict[str, dict] = field(default_factory=dict)
    prefix: str = "tap-flexpos: "  # how the tap's own error lines start

    @property
    def final_state(self) -> dict:
        return self.states[-1] if self.states else {}

    def uids(self, stream: str) -> list[str]:
        return [r["Uid"] for r in self.records.get(stream, [])]

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(self.prefix)]

    def assert_no_secret(self, *secrets: str) -> None:
        for secret in secrets:
            if secret:
                assert secret not in self.stdout, "secret leaked to stdout"
                assert secret not in self.stderr, "secret leaked to stderr"


def run_tap(
    config: dict,
    tmp_path: Path,
    *,
    state: dict | None = None,
    streams: list[str] | None = None,
    deselect: dict[str, list[str]] | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    timeout: float = 120,
    exe: str = TAP_EXE,
    catalog: str = "flexpos",
) -> TapRun:
    """Run a tap (default `tap-flexpos`) in a subprocess with ``config`` (and optional
    state/stream selection from ``catalogs/<catalog>.json``)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    n = len(list(tmp_path.glob("config-*.json")))
    cfg = tmp_path / f"config-{n}.json"
    cfg.write_text(json.dumps(config))
    cmd = [exe, "--config", str(cfg)]
    if state is not None:
        st = tmp_path / f"state-{n}.json"
        st.write_text(json.dumps(state))
        cmd += ["--state", str(st)]
    if streams is not None:
        cat = _catalog(catalog, streams, deselect or {})
        cp = tmp_path / f"catalog-{n}.json"
        cp.write_text(json.dumps(cat))
        cmd += ["--catalog", str(cp)]
    cmd += args or []
    stale = ("FLEXPOS_", "BILLETTEN_", "TAP_")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(stale)}
    full_env.update(env or {})
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=full_env, check=False
    )
    run = TapRun(proc.returncode, proc.stdout, proc.stderr, prefix=f"{Path(exe).name}: ")
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        if msg["type"] == "RECORD":
            run.records.setdefault(msg["stream"], []).append(msg["record"])
        elif msg["type"] == "STATE":
            run.states.append(msg["value"])
        elif msg["type"] == "SCHEMA":
            run.schemas[msg["stream"]] = msg["schema"]
    return run


def _catalog(name: str, streams: list[str], deselect: dict[str, list[str]]) -> dict:
    """The committed catalog with only `streams` selected and `deselect` fields switched off."""
    root = Path(__file__).resolve().parents[2]
    catalog = json.loads((root / "catalogs" / f"{name}.json").read_text())
    for stream in catalog["streams"]:
        off = deselect.get(stream["tap_stream_id"], [])
        for entry in stream["metadata"]:
            crumb = entry["breadcrumb"]
            if crumb == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in streams
            elif len(crumb) == 2 and crumb[1] in off:
                entry["metadata"]["selected"] = False
    return catalog
