"""Tap test configuration."""

from __future__ import annotations

# singer-sdk's standard tap tests are parametrized by this hook (its pytest plugin); importing
# it here keeps the root conftest untouched.
from singer_sdk.testing.pytest_plugin import pytest_generate_tests  # noqa: F401
