"""The emulator registry: `loyalty sandbox` starts every registered emulator on one seed and
clock and prints one export block; the fixtures and `start_sandbox` follow the same list.

The CLI tests run the real `loyalty sandbox` / `python -m sandbox` command in a subprocess; to
show "every emulator", one of them registers a second vendor (tests/sandbox/loyaltyish_vendor.py)
in `sandbox.registry.VENDORS` first, as a new emulator's package does with one line.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sandbox_http_helpers import login, start_foreground

from sandbox.flexpos import FlexposSettings
from sandbox.launcher import start_sandbox
from sandbox.registry import Emulator, Option, emulators

ROOT = Path(__file__).resolve().parents[2]
LOYALTY = Path(sys.executable).parent / "loyalty"
HERE = Path(__file__).resolve().parent
# `python -m sandbox` with one more vendor registered after the real ones (what adding it to
# VENDORS does).
WITH_SECOND_VENDOR = (
    "import sys, sandbox.registry as r; r.VENDORS += ('loyaltyish_vendor',); "
    "from sandbox.cli import sandbox_command; "
    "sandbox_command(sys.argv[1:], prog_name='python -m sandbox')"
)


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc, _exports, lines = start_foreground(argv, PYTHONPATH=str(HERE))
    return proc, lines


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return out


def _export_block(lines: list[str]) -> dict[str, str]:
    """The one run of `export` lines; fails if exports come in more than one block."""
    at = [i for i, line in enumerate(lines) if line.startswith("export ")]
    assert at and at == list(range(at[0], at[-1] + 1)), lines
    names = [lines[i][len("export ") :].partition("=")[0] for i in at]
    assert len(names) == len(set(names)), names
    return dict(lines[i][len("export ") :].split("=", 1) for i in at)


def _free_ports(n: int) -> int:
    """A port p with p .. p+n-1 free just now (bounded tries)."""
    for _ in range(20):
        with contextlib.ExitStack() as held:
            a = held.enter_context(socket.socket())
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port + n > 65536:
                continue
            try:
                for k in range(1, n):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port + k))
            except OSError:
                continue
        return port
    raise AssertionError(f"no {n} adjacent free ports")


def _flexpos_customers(env: dict[str, str]) -> list[dict]:
    token = login(env)["access_token"]
    return requests.get(
        f"{env['FLEXPOS_API_URL']}/customer",
        params={"limit": 500},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["Items"]


def test_every_registered_emulator_starts_on_one_seed_and_prints_one_export_block():
    registered = [e.title for e in emulators().values()]  # then the test's own vendor
    port = _free_ports(len(registered) + 1)
    proc, lines = _start(
        [
            *(sys.executable, "-c", WITH_SECOND_VENDOR),
            *("--seed", "7", "--now", "2026-06-15T09:30:00Z", "--port", str(port)),
            *("--customers", "90", "--journals", "1", "--tickets", "0", "--memberships", "0"),
            *("--loyaltyish-members", "25"),  # the second emulator's own option
        ]
    )
    try:
        assert lines and lines[-1].startswith("Running"), lines
        headers = [line for line in lines if " emulator: " in line]
        assert [h.split(" emulator: ")[0] for h in headers] == [*registered, "Loyaltyish"]
        assert sum("Paste into a shell" in line for line in lines) == 1
        env = _export_block(lines)
        assert env["LOYALTY_NOW"] == "2026-06-15T09:30:00+00:00"
        # FlexPOS's variables as before, on --port; each next emulator on the next port.
        assert env["FLEXPOS_API_URL"] == f"http://127.0.0.1:{port}/pos/api/v1.0"
        assert env["FLEXPOS_CLIENT_ID"] == "sandbox-pos"
        assert env["LOYALTYISH_API_URL"] == f"http://127.0.0.1:{port + len(registered)}/v2"
        members = requests.get(
            f"{env['LOYALTYISH_API_URL']}/customers",
            headers={"Authorization": f"Bearer {env['LOYALTYISH_API_KEY']}"},
            timeout=10,
        ).json()["customers"]
        assert len(members) == 25
        # One seed for both: member k is the same person as FlexPOS customer 3k.
        customers = _flexpos_customers(env)
        assert len(customers) == 90
        for k, member in enumerate(members[:30]):
            assert member["email"] == customers[3 * k]["Email"]
        assert sum(m["email"] is not None for m in members) > 15
    finally:
        out = _stop(proc)
    assert "sandbox stopped" in out


def test_only_starts_the_named_emulator():
    proc, lines = _start(
        [sys.executable, "-c", WITH_SECOND_VENDOR, "--only", "loyaltyish", "--seed", "7"]
    )
    try:
        env = _export_block(lines)
        assert set(env) - {"LOYALTY_NOW"} == {"LOYALTYISH_API_URL", "LOYALTYISH_API_KEY"}
        assert not any(line.startswith("FlexPOS") for line in lines)
    finally:
        _stop(proc)


def test_loyalty_sandbox_prints_one_block_with_every_registered_emulator_s_exports():
    proc, lines = _start([str(LOYALTY), "sandbox", "--customers", "3", "--journals", "2"])
    try:
        env = _export_block(lines)
        for emulator in emulators().values():
            assert any(name.startswith(emulator.env_prefix) for name in env), emulator.name
        assert len(_flexpos_customers(env)) == 3
    finally:
        _stop(proc)


def test_full_sandbox_fixture_runs_every_registered_emulator(full_sandbox):
    assert set(full_sandbox.emulators) == set(emulators())
    env = full_sandbox.env()
    for emulator in emulators().values():
        assert any(name.startswith(emulator.env_prefix) for name in env), emulator.name


def test_start_sandbox_refuses_two_clocks_and_unknown_names_clearly():
    with pytest.raises(ValueError, match="unknown emulator nope; registered: flexpos"):
        start_sandbox(only=["nope"])
    with pytest.raises(ValueError, match="the emulators need one clock"):
        start_sandbox(
            FlexposSettings(now=datetime(2026, 1, 1, tzinfo=UTC)),
            now=datetime(2027, 1, 1, tzinfo=UTC),
        )


@dataclass
class _Settings:
    seed: int = 1
    now: datetime | None = None
    size: int = 1


def test_an_emulator_s_options_must_be_its_own_settings():
    spec = {"title": "X", "settings": _Settings, "build": None, "exports": None}
    spec |= {"env_prefix": "X_", "urls": None, "summary": None}
    Emulator(name="x", options=(Option("size", ("--x-size",)),), **spec)
    with pytest.raises(TypeError, match="x option 'colour' is not one of its settings"):
        Emulator(name="x", options=(Option("colour", ("--x-colour",)),), **spec)
    with pytest.raises(TypeError, match="x option 'seed'"):  # --seed is the sandbox's own
        Emulator(name="x", options=(Option("seed", ("--x-seed",)),), **spec)
