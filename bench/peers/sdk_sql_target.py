"""Peer: the minimal singer-sdk SQL target for DuckDB, as the singer-sdk docs suggest.

``SQLTarget`` + ``SQLSink`` + ``SQLConnector`` over SQLAlchemy with ``duckdb_engine``
(``duckdb:///<file>``), everything else at SDK defaults (record validation on, stdlib JSON
reader, default batch size). One override was needed to run at all (peer-baseline.md):
duckdb_engine's PG-derived dialect emits ``SERIAL`` for an integer primary key, which DuckDB
rejects, so columns are created with ``autoincrement=False``.

Runs inside the bench's ``singer-sdk`` peer venv, never the project's.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa
from singer_sdk import typing as th
from singer_sdk.connectors import SQLConnector
from singer_sdk.sinks import SQLSink
from singer_sdk.target_base import SQLTarget


class DuckDBConnector(SQLConnector):
    """SQLAlchemy connector on a DuckDB file."""

    allow_column_add = True
    allow_column_alter = False
    allow_merge_upsert = False
    allow_temp_tables = False

    def get_sqlalchemy_url(self, config: dict[str, t.Any]) -> str:
        """duckdb_engine URL for the configured file."""
        return f"duckdb:///{config['database']}"

    def create_empty_table(
        self,
        full_table_name: t.Any,
        schema: dict,
        primary_keys: t.Sequence[str] | None = None,
        partition_keys: list[str] | None = None,
        as_temp_table: bool = False,
    ) -> None:
        """The SDK's table creation, minus SERIAL (the one fix DuckDB needs)."""
        _ = partition_keys, as_temp_table
        _, schema_name, table_name = self.parse_full_table_name(full_table_name)
        meta = sa.MetaData(schema=schema_name)
        columns = [
            sa.Column(name, self.to_sql_type(prop), autoincrement=False)
            for name, prop in schema["properties"].items()
        ]
        keys = [k for k in (primary_keys or []) if k in schema["properties"]]
        args = [sa.PrimaryKeyConstraint(*keys)] if keys else []
        sa.Table(table_name, meta, *columns, *args)
        meta.create_all(self._engine)


class DuckDBSink(SQLSink):
    """The SDK's SQL sink, unchanged."""

    connector_class = DuckDBConnector


class TargetSdkDuckDB(SQLTarget):
    """Minimal singer-sdk SQL target."""

    name = "target-sdk-duckdb"
    default_sink_class = DuckDBSink
    config_jsonschema = th.PropertiesList(
        th.Property("database", th.StringType, required=True),
    ).to_dict()


if __name__ == "__main__":
    TargetSdkDuckDB.cli()
