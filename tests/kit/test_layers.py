"""The layers of docs/architecture.md, as the import-linter contracts in pyproject.toml state
them: orchestrator -> connectors -> kit, connectors independent of each other."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def _lint_imports(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_the_code_keeps_the_import_contracts():
    # `make lint` runs the same; here it also guards a plain `pytest` run.
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("module", "imports"),
    [
        ("tap_flexpos", "loyalty"),  # a connector on the orchestrator
        ("mapper_loyalty", "target_loyalty_store"),  # one connector on another
        ("sandbox", "tap_flexpos"),  # an emulator on the connector it emulates for
        ("singer_kit", "mapper_loyalty"),  # the kit on a connector
    ],
)
def test_the_contracts_refuse_an_import_against_the_layers(tmp_path, module, imports):
    """Our contracts, applied to stand-in packages with one forbidden import, break."""
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    for name in settings["root_packages"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / module / "wrong.py").write_text(f"import {imports}\n")
    config = tmp_path / ".importlinter"
    lines = ["[importlinter]", "root_packages =", *(f"    {n}" for n in settings["root_packages"])]
    for i, contract in enumerate(settings["contracts"]):  # the same contracts, in INI form
        lines.append(f"[importlinter:contract:{i}]")
        for key, value in contract.items():
            if isinstance(value, list):
                lines += [f"{key} =", *(f"    {v}" for v in value)]
            else:
                lines.append(f"{key} = {value}")
    config.write_text("\n".join(lines) + "\n")
    result = _lint_imports(tmp_path, str(config), env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert result.returncode == 1, result.stdout[-3000:]
    assert f"{module}.wrong -> {imports}" in result.stdout
