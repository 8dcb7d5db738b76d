"""Fixtures for the store's tests.

A test module marked ``both_backends`` runs each test taking ``store`` twice: on a DuckDB
file and on a PostgreSQL database (the ``pg_server`` of this test process). A test that is
about DuckDB itself is marked ``duckdb_only("why")`` and runs once.
"""

from __future__ import annotations

import typing as t
import uuid
from pathlib import Path

import pytest
from store_helpers import Store

BACKENDS = ("duckdb", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run ``both_backends`` tests on each backend (ids ``[duckdb]`` / ``[postgres]``)."""
    node = metafunc.definition
    if "backend" not in metafunc.fixturenames or node.get_closest_marker("both_backends") is None:
        return
    if node.get_closest_marker("duckdb_only") is None:
        metafunc.parametrize("backend", BACKENDS)


@pytest.fixture
def backend() -> str:
    """The store's backend for a test not marked ``both_backends``."""
    return "duckdb"


@pytest.fixture
def new_database(backend: str, request: pytest.FixtureRequest) -> t.Callable[[], str] | None:
    """Makes a new, empty PostgreSQL database per call (None: the store is a DuckDB file)."""
    if backend == "duckdb":
        return None
    server = request.getfixturevalue("pg_server")
    return lambda: server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(tmp_path: Path, new_database: t.Callable[[], str] | None) -> Store:
    """An empty store: a DuckDB file under tmp_path, or a new PostgreSQL database."""
    return Store(tmp_path, new_database)
