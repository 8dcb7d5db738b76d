"""What the runner reads from our executables: `--about` (version, capabilities) and the
METRIC lines a target writes per commit (docs/kit/protocol.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
EXECUTABLES = ("tap-flexpos", "mapper-loyalty", "target-loyalty-store")


def _about(exe: str) -> dict:
    proc = subprocess.run(
        [str(BIN / exe), "--about", "--format", "json"],
        capture_output=True,
        check=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize("exe", EXECUTABLES)
def test_about_reports_the_installed_package_version(exe):
    # singer-sdk looks the version up by the plugin's name unless package_name says otherwise;
    # "target-loyalty-store" is no distribution, so it said "[could not be detected]".
    assert _about(exe)["version"] == metadata.version("loyalty-pipelines")
