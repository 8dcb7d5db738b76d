"""The PostgreSQL server the tests use, and opening the store on it: the errors a user sees."""

from __future__ import annotations

import pytest

from singer_kit.pgstore import PgStoreError, PgStoreUnavailable, connect, is_postgres_url
from target_loyalty_store.pgschema import create_tables


def test_a_database_url_is_told_from_a_file_path():
    assert is_postgres_url("postgresql://u:p@db.example.com/loyalty")
    assert is_postgres_url("postgres://db/loyalty")
    assert not is_postgres_url("./loyalty.duckdb")
    assert not is_postgres_url("postgresql.duckdb")
    assert not is_postgres_url(None)


def test_the_store_tables_are_created_on_postgresql_and_creating_again_changes_nothing(pg_url):
    with connect(pg_url, application_name="test") as con:
        create_tables(con)
        create_tables(con)
        columns = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'order_lines'"
            ).fetchall()
        )
        assert columns["amount"] == "numeric"
        assert columns["occurred_at"] == "timestamp with time zone"
        assert con.execute("SHOW TimeZone").fetchone()[0] == "UTC"
        # the unique key the loader upserts by holds
        con.execute("INSERT INTO order_lines (line_id) VALUES ('a')")
        with pytest.raises(Exception, match="duplicate key"):
            con.execute("INSERT INTO order_lines (line_id) VALUES ('a')")


def test_a_wrong_password_is_one_line_without_the_password(pg_server, pg_url):
    wrong = pg_url.replace(pg_server.password, "not-the-password-123")
    with pytest.raises(PgStoreError) as err:
        connect(wrong, application_name="test")
    assert "password authentication failed" in str(err.value)
    assert "not-the-password-123" not in str(err.value)
    assert "\n" not in str(err.value)


def test_a_server_that_is_down_is_a_temporary_failure(pg_server):
    with pytest.raises(PgStoreUnavailable) as err:
        connect("postgresql://loyalty:s3cret-pw@127.0.0.1:1/loyalty", application_name="test")
    assert err.value.exit_code == 75
    assert "s3cret-pw" not in str(err.value)


def test_a_saved_state_rolls_back_with_its_transaction(pg_url):
    from singer_kit.pgstore import load_state, save_state

    with connect(pg_url, application_name="test") as con:
        with con.transaction():
            save_state(con, "prod/flexpos_to_store", '{"bookmarks": {"a": 1}}', "run-1")
        with pytest.raises(RuntimeError), con.transaction():
            save_state(con, "prod/flexpos_to_store", '{"bookmarks": {"a": 2}}', "run-2")
            raise RuntimeError("the load failed")
        assert load_state(con, "prod/flexpos_to_store") == '{"bookmarks": {"a": 1}}'
        assert load_state(con, "prod/other") is None
