"""Fixtures for the store's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty store location under tmp_path."""
    return Store(tmp_path)
