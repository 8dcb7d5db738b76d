"""Fixtures for the store's tests.

A test module marked ``both_backends`` runs each test taking ``store`` twice: on a DuckDB
file and on a PostgreSQL database (the ``pg_server`` of this test process). A test that is
about DuckDB itself is marked ``duckdb_only("why")`` and runs once.
"""

from __future__ import annotations

import typing as t
import uuid
from pathlib import Path

import psycopg
import pytest
from store_helpers import Store

from sandbox.postgres import PostgresServer

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


@pytest.fixture(scope="session")
def pg_stores(pg_server: PostgresServer) -> str:
    """One database for this test process's PostgreSQL stores, each in a schema of its own."""
    return pg_server.create_database("stores")


@pytest.fixture
def new_database(backend: str, request: pytest.FixtureRequest) -> t.Callable[[], str] | None:
    """Makes a new, empty PostgreSQL store per call (None: the store is a DuckDB file).

    A schema, named by the URL's search_path, rather than a database: as empty, and a
    hundred times cheaper to make (the suite makes dozens); and stores in a schema of their
    own, which users do too, are tried on every run.
    """
    if backend == "duckdb":
        return None
    url = request.getfixturevalue("pg_stores")

    def make() -> str:
        name = f"s_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f"CREATE SCHEMA {name}")
        return f"{url}?options=-csearch_path%3D{name}"

    return make


@pytest.fixture
def store(tmp_path: Path, new_database: t.Callable[[], str] | None) -> Store:
    """An empty store: a DuckDB file under tmp_path, or a new PostgreSQL database."""
    return Store(tmp_path, new_database)
