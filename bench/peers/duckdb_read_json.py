"""Limit row: DuckDB's own NDJSON reader loading the bare records into a DuckDB file.

``CREATE TABLE AS SELECT * FROM read_json(file)`` with auto-detection, as DuckDB's docs show;
no Python per record at all, so this is the practical ceiling for any loader.
Usage: ``python duckdb_read_json.py RECORDS.jsonl DB.duckdb``.
"""

from __future__ import annotations

import sys

import duckdb


def main() -> None:
    """Load, checkpoint, print the row count."""
    records, database = sys.argv[1], sys.argv[2]
    con = duckdb.connect(database)
    con.execute("CREATE TABLE journal_lines AS SELECT * FROM read_json(?)", [records])
    con.execute("CHECKPOINT")
    print(con.execute("SELECT count(*) FROM journal_lines").fetchone()[0])
    con.close()


if __name__ == "__main__":
    main()
