"""The layers of docs/architecture.md: connectors build on the kit, never on the orchestrator."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The connectors, the kit under them and the emulators: none may import `loyalty`.
BELOW_THE_ORCHESTRATOR = ("taps", "transforms", "targets", "singer_kit", "sandbox")


def _imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_connector_kit_or_emulator_imports_the_orchestrator():
    offenders = [
        str(path.relative_to(REPO))
        for top in BELOW_THE_ORCHESTRATOR
        for path in sorted((REPO / top).rglob("*.py"))
        if "loyalty" in _imported_packages(path)
    ]
    assert offenders == []
