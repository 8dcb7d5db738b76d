"""Store models: one ``<stream>.sql`` file each, a DuckDB SELECT under a few header comments.

```sql
-- key: contact_id                 (required; comma-separated for a composite key)
-- change_column: updated_at       (optional; makes the stream incremental on it)
-- window_column: created_at       (optional; what a backfill window's start/end bound)
-- description: what the stream is for
SELECT ...
```

The header is read here, the SQL is DuckDB's: a model is checked by asking DuckDB for its
columns (``--discover``), so a typo is one line naming the file, not a failure mid-sync. On a
PostgreSQL store the same file is translated (singer_kit.pgsql) and PostgreSQL types the
columns; lists of structs arrive as arrays of JSON objects, with the same values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
import typing as t
from pathlib import Path

import duckdb

from singer_kit.commit import InputError

if t.TYPE_CHECKING:
    import psycopg

_HEADER = re.compile(r"--\s*(key|change_column|window_column|description)\s*:\s*(.*?)\s*$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER = {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint"}
_INTEGER |= {"uinteger", "ubigint", "uhugeint"}
_NUMBER = {"float", "double", "decimal"}
# PostgreSQL type names (pg_type.typname) by JSON schema.
_PG_KINDS = {
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "numeric": "number",
    "float4": "number",
    "float8": "number",
    "bool": "boolean",
}
_PG_FORMATS = {"date": "date", "timestamp": "date-time", "timestamptz": "date-time"}


class ModelError(InputError):
    """A model file the user must fix (one line naming the file and line)."""


@dataclasses.dataclass(frozen=True)
class Model:
    """One model file: its stream name, key, optional change and window columns, SELECT."""

    name: str
    path: Path
    sql: str
    key: tuple[str, ...]
    change_column: str | None
    description: str
    window_column: str | None = None

    def postgres_sql(self) -> str:
        """The SELECT in PostgreSQL's dialect (translated, never kept as a second copy)."""
        from singer_kit import pgsql  # only a PostgreSQL store pays for sqlglot

        try:
            return pgsql.to_postgres(self.sql)
        except pgsql.TranslationError as exc:
            raise ModelError(
                f"{self.path}: cannot translate the model for PostgreSQL: {exc}"
            ) from None


def load_models(folder: Path) -> list[Model]:
    """Every ``*.sql`` in the folder, sorted by name; a missing folder or header is an error."""
    if not folder.is_dir():
        raise ModelError(f"models_dir {folder} is not a folder of <stream>.sql files")
    return [load_model(path) for path in sorted(folder.glob("*.sql"))]


def load_model(path: Path) -> Model:
    """Read one model file's header comments and its single SELECT."""
    if not _NAME.fullmatch(path.stem):
        raise ModelError(f"{path}: a model's file name is its stream name: letters, digits, _")
    text = path.read_text(encoding="utf-8")
    header: dict[str, str] = {}
    for no, line in enumerate(text.splitlines(), 1):
        found = _HEADER.match(line.strip())
        if found:
            if found.group(1) in header:
                raise ModelError(f"{path}:{no}: '{found.group(1)}' is given twice")
            header[found.group(1)] = found.group(2)
        elif line.strip() and not line.strip().startswith("--"):
            break  # the header ends at the first line of SQL
    key = tuple(k.strip() for k in header.get("key", "").split(",") if k.strip())
    if not key:
        raise ModelError(f"{path}:1: a model needs a '-- key: <column>[, <column>]' header line")
    sql = text.strip().rstrip(";").strip()
    if ";" in _strip_comments(sql):
        raise ModelError(f"{path}: a model is one SELECT statement (found ';' inside)")
    return Model(
        name=path.stem,
        path=path,
        sql=sql,
        key=key,
        change_column=header.get("change_column") or None,
        description=header.get("description", ""),
        window_column=header.get("window_column") or None,
    )


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def describe(con: duckdb.DuckDBPyConnection, model: Model) -> dict[str, t.Any]:
    """The model's JSON schema, each column typed from DuckDB's own type (all nullable)."""
    try:
        relation = con.sql(f"SELECT * FROM ({model.sql}\n) AS model LIMIT 0")
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        hint = ""
        if "does not exist" in first:
            hint = " (the store lacks something the model reads: run the load that creates it)"
        raise ModelError(f"{model.path}: DuckDB cannot run the model: {first}{hint}") from None
    columns = dict(zip(relation.columns, relation.types, strict=True))
    return _object_schema(model, {name: json_schema(dtype) for name, dtype in columns.items()})


def describe_postgres(con: psycopg.Connection, model: Model) -> dict[str, t.Any]:
    """:func:`describe` on a PostgreSQL store: the translated model, typed by PostgreSQL."""
    import psycopg

    sql = model.postgres_sql()
    try:
        with con.transaction():
            cur = con.execute(f"SELECT * FROM ({sql}\n) AS model LIMIT 0")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0]
        hint = ""
        if "does not exist" in first:
            hint = " (the store lacks something the model reads: run the load that creates it)"
        raise ModelError(f"{model.path}: PostgreSQL cannot run the model: {first}{hint}") from None
    types = con.adapters.types
    properties: dict[str, t.Any] = {}
    for column in cur.description or ():
        info = types.get(column.type_code)
        if info is not None and info.array_oid == column.type_code:
            properties[column.name] = {"type": ["array", "null"], "items": pg_schema(info.name)}
        else:
            properties[column.name] = pg_schema(info.name if info else "")
    return _object_schema(model, properties)


def pg_schema(type_name: str) -> dict[str, t.Any]:
    """A column's JSON schema from its PostgreSQL type name (text and the rest: string)."""
    if type_name in ("json", "jsonb"):
        return {}
    if type_name in _PG_FORMATS:
        return {"type": ["string", "null"], "format": _PG_FORMATS[type_name]}
    return {"type": [_PG_KINDS.get(type_name, "string"), "null"]}


def _object_schema(model: Model, properties: dict[str, t.Any]) -> dict[str, t.Any]:
    """The stream's schema; the header's key and change column must be among the columns."""
    named = [c for c in (model.change_column, model.window_column) if c]
    for needed in (*model.key, *named):
        if needed not in properties:
            raise ModelError(
                f"{model.path}: header names column {needed!r}, which the SELECT does not "
                f"return (it returns {', '.join(properties)})"
            )
    return {"type": "object", "properties": properties}


def json_schema(dtype: duckdb.typing.DuckDBPyType) -> dict[str, t.Any]:
    """A column's JSON schema from its DuckDB type; nested lists and structs keep their shape."""
    kind = dtype.id
    if str(dtype) == "JSON":
        return {}
    if kind == "list":
        return {"type": ["array", "null"], "items": json_schema(dtype.children[0][1])}
    if kind == "struct":
        props = {name: json_schema(child) for name, child in dtype.children}
        return {"type": ["object", "null"], "properties": props}
    if kind in _INTEGER:
        return {"type": ["integer", "null"]}
    if kind in _NUMBER:
        return {"type": ["number", "null"]}
    if kind == "boolean":
        return {"type": ["boolean", "null"]}
    if kind == "date":
        return {"type": ["string", "null"], "format": "date"}
    if kind.startswith("timestamp"):
        return {"type": ["string", "null"], "format": "date-time"}
    return {"type": ["string", "null"]}


def jsonable(value: t.Any) -> t.Any:
    """A DuckDB or PostgreSQL value as JSON: instants in ISO 8601 (UTC), dates ISO, decimals
    as numbers."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
