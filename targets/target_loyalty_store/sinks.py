"""Per-stream staging and set-based loading into the store.

Why not singer-sdk's Sink: its per-record path (dict copies, jsonschema, timestamp parsing)
tops out near 29k records/s. Here a RECORD line is appended to a per-stream NDJSON staging
file as the raw bytes it arrived in; at batch end DuckDB reads the file once (every field as
text), converts with TRY_CAST, routes rows that do not convert to `_rejects`, and upserts the
rest with one DELETE + INSERT inside the batch's transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import logging
import typing as t
import zlib
from pathlib import Path

import duckdb
import orjson
from singer_sdk.exceptions import MissingKeyPropertiesError

from singer_kit.singer_io import MAX_JSON_DEPTH, is_valid_json, too_deep
from target_loyalty_store.staging import open_private
from target_loyalty_store.store import (
    CONTACT_FIELDS,
    KEYS_OF_KNOWN,
    StoreError,
    check_match_field,
    duckdb_type,
    ident,
    json_types,
    lit,
    table_columns,
)

log = logging.getLogger("target-loyalty-store")

_FLUSH_LINES = 5_000  # lines kept in memory per stream before they go to the staging file
_MAX_LOGGED_REJECTS = 20  # stderr lines per stream and batch; the rest are counted
_INTEGER_TYPES = ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER")
_FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")
_TYPED_READS = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP")
_JSON_TYPE_OF = {  # JSON-schema type -> what DuckDB's json_type() says of such a value
    "object": ("OBJECT",),
    "array": ("ARRAY",),
    "string": ("VARCHAR",),
    "integer": ("BIGINT", "UBIGINT"),
    "number": ("BIGINT", "UBIGINT", "DOUBLE"),
    "boolean": ("BOOLEAN",),
}

# Contacts columns the merge computes itself rather than "latest non-null wins".
# The consents derived from the statement log (README: Consent), each its own topic.
CONSENT_TOPICS = ("newsletter", "consent_related")
_CONTACT_SPECIAL = ("contact_id", "match_field", "newsletter", "consent_related", "unsubscribed_at")
_CONTACT_TIMES = ("first_seen_at", "updated_at")


def _read_within_memory(con: duckdb.DuckDBPyConnection, sql: str, stream: str) -> None:
    """Run a staging read; when it runs out of memory_limit, run it again on one thread.

    Each DuckDB thread reading JSON holds its own 32 MiB buffers, so a wide batch (order lines
    with every guide field, 300k of them in one pipeline run) that does not fit the default
    limit on two threads fits on one. The connection stays on one thread for the rest of the
    run (slower, ~25 %, but the load goes on instead of failing, and no later batch pays for a
    failed attempt). Only a batch that fails on one thread too is the user's error to fix.
    """
    try:
        con.execute(sql)
    except duckdb.OutOfMemoryException:
        threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        if threads <= 1:
            raise
        log.warning(
            "stream %r: the batch did not fit memory_limit on %d threads; reading on 1 thread "
            "from now on (set threads: 1, or raise memory_limit, to avoid the retry)",
            stream,
            threads,
        )
        con.execute("SET threads = 1")
        con.execute(sql)


class NotLoadedDirectly(Exception):
    """A direct load met a row it cannot take (see StreamSink.load_directly)."""


@dataclasses.dataclass
class LoadResult:
    """What one stream's batch did."""

    loaded: int = 0
    rejected: int = 0
    direct: bool = False  # inserted without staging (StreamSink.load_directly)


class StreamSink:
    """One input stream: its SCHEMA, its staging file, and how its batch is loaded."""

    def __init__(
        self,
        stream: str,
        schema: dict,
        key_properties: list[str],
        staging_file: Path,
    ) -> None:
        self.stream = stream
        self.table = stream
        self._path = staging_file
        self.stg = f"_stg_{staging_file.stem}"  # this stream's staged batch (a temp table)
        self._types: dict[str, str] = {}
        self._dedupe = False
        self.direct = False  # this batch goes straight into the table (see load_directly)
        self.has_seq = False  # the staged batch has _seq (arrival order)
        # String columns the fast read takes as JSON text: values looked like JSON before.
        self.json_strings: set[str] = set()
        # PostgreSQL's text cannot hold NUL (U+0000): on that backend such a string is a reject.
        self.text_refuses_nul = False
        self.schema: dict = {}
        self.properties: dict[str, t.Any] = {}
        self.key_properties: list[str] = []
        self.set_schema(schema, key_properties)
        self._buffer: list[bytes] = []
        self.append = self._buffer.append  # the hot path: bound once
        self.pending = 0  # records staged for the current batch
        self._file: t.BinaryIO | None = None
        self._files_made = 0
        # A BATCH message's files (bare records), loaded in place of the staging file.
        self._next_files: StagedBatch | None = None
        # The batch being loaded (taken by take_batch); staging goes on into a new file.
        self._source: StagedBatch | None = None

    def set_schema(self, schema: dict, key_properties: list[str]) -> None:
        """Take a (new) SCHEMA; the caller has committed records staged under the old one."""
        self.schema = schema
        self.properties = schema.get("properties") or {}
        self.key_properties = list(KEYS_OF_KNOWN.get(self.stream, ())) or list(key_properties)

    # -- staging -----------------------------------------------------------------------------

    def append_block(self, block: bytes, records: int) -> None:
        """Stage a run of RECORD lines of this stream (newline-ended) straight to the file."""
        self.spill()  # lines buffered before it go first
        if self._file is None:
            self._file = open_private(self._path)
        self._file.write(block)
        self.pending += records

    def spill(self) -> None:
        """Move buffered lines to the staging file so memory stays bounded."""
        if not self._buffer:
            return
        if self._file is None:
            self._file = open_private(self._path)
        lines = self._buffer
        self.pending += len(lines)
        if not lines[-1].endswith(b"\n"):
            lines[-1] += b"\n"
        self._file.write(b"".join(lines))
        lines.clear()

    def buffered(self) -> int:
        """Lines waiting in memory."""
        return len(self._buffer)

    def has_pending(self) -> bool:
        """Whether this stream has records in the current batch."""
        return bool(self._buffer) or self.pending > 0 or self._next_files is not None

    def use_batch_files(self, files: list[Path], compression: str) -> None:
        """Make a Singer BATCH's files (JSONL of bare records) the next batch to load.

        The caller has committed what was staged before: DuckDB reads these files in place,
        with no copy through Python. They belong to whoever wrote them and are never deleted.
        """
        self._next_files = StagedBatch(list(files), compression, bare=True)

    def take_batch(self) -> bool:
        """Hand the current batch over for loading; False when it has nothing for us.

        Staging goes on at once into a fresh file, so the input can be read while DuckDB
        loads this batch (see Loader.commit).
        """
        if self._next_files is not None:
            self._source, self._next_files = self._next_files, None
            return True
        self.spill()
        if self._file is None:
            return False
        self._file.close()
        self._file = None
        self._source = StagedBatch([self._path], "none", bare=False, owned=True)
        self._files_made += 1
        self._path = self._path.with_name(f"{self.stg}-{self._files_made}.ndjson")
        self.pending = 0
        return True

    def discard(self) -> None:
        """Drop the batch being staged and the one being loaded (a failed run)."""
        self._buffer.clear()
        if self._file is not None:
            with contextlib.suppress(OSError):  # its last flush, on a full disk: thrown away
                self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)
        self.pending = 0
        self._next_files = None
        self.reset()

    def reset(self) -> None:
        """After a commit (or its failure): the batch that was loaded is done with."""
        if self._source is not None and self._source.owned:
            for path in self._source.files:
                path.unlink(missing_ok=True)
        self._source = None

    # -- loading -----------------------------------------------------------------------------

    def column_types(self, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        """Ensure the table has a column for every SCHEMA property; return the types to load."""
        existing = table_columns(con, self.table)
        wanted = {name: duckdb_type(prop) for name, prop in self.properties.items()}
        if not existing:
            if not wanted:
                raise StoreError(f"stream {self.stream!r}: SCHEMA has no properties")
            cols = ", ".join(f"{ident(n)} {ty}" for n, ty in wanted.items())
            con.execute(f"CREATE TABLE {ident(self.table)} ({cols})")
            return wanted
        lowered = {name.lower(): name for name in existing}
        for name, ty in wanted.items():
            if name.lower() not in lowered:  # a later SCHEMA with new columns adds them
                con.execute(f"ALTER TABLE {ident(self.table)} ADD COLUMN {ident(name)} {ty}")
                existing[name] = ty
                lowered[name.lower()] = name
        # Load into the table's types (a changed SCHEMA type never rewrites old rows).
        return {name: existing[lowered[name.lower()]] for name in wanted}

    def stage_sql(self, types: dict[str, str], **kw: t.Any) -> str:
        """SQL that stages the batch into this stream's temp table (see stage_select)."""
        return f"CREATE OR REPLACE TEMP TABLE {self.stg} AS {self.stage_select(types, **kw)}"

    def stage_select(
        self,
        types: dict[str, str],
        *,
        with_seq: bool,
        exact: bool = False,
        extra_checks: str = "",
    ) -> str:
        """SQL that reads the batch into typed columns plus a reject reason per row.

        Every field is read as its JSON text and checked against its column in SQL (see
        ``_field_sql``), so a value that does not fit exactly is a reason, never a NULL or a
        rounded number. The fast read (``read_json`` into a struct) keeps no raw record; when a
        batch has rejects it is read again ``exact``ly: each line as a JSON object, the record
        transformed from it and kept as received (unknown fields included) for ``_rejects``.

        Two kinds of column are read typed by the fast read, because the typed reader cannot
        take a wrong value for them unnoticed: date-times (it refuses anything but a string that
        converts) and strings (a value that was not a JSON string comes out as its JSON text,
        which ``_looks_like_json`` flags, so such a batch is read again exactly). A string
        column whose values do look like JSON (zip codes as "2100") is read as JSON text from
        then on (``json_strings``): one extra read per such column and run, never one a batch.
        """
        batch = self._source
        if batch is None:
            raise StoreError(f"stream {self.stream!r}: no batch taken to load")
        files = "[" + ", ".join(lit(str(f)) for f in batch.files) + "]"
        compression = f"compression = {lit(batch.compression)}"
        fields = {name: "JSON" for name in types}  # the exact read types nothing
        if exact:
            record = "json" if batch.bare else "json -> '$.record'"
            spec = lit(orjson.dumps(fields).decode())
            scan = (
                "SELECT _seq, CASE WHEN _shape = 'OBJECT' THEN json_transform(_rec, "
                f"{spec}) END AS r, CASE WHEN _shape = 'OBJECT' THEN _rec ELSE json END::VARCHAR "
                "AS _raw, _shape FROM (SELECT ordinality AS _seq, json, _rec, json_type(_rec) "
                f"AS _shape FROM (SELECT ordinality, json, {record} AS _rec FROM "
                f"read_ndjson_objects({files}, {compression}) WITH ORDINALITY))"
            )
            what = "line" if batch.bare else "record"
            problems = [
                "CASE WHEN _shape IS NULL OR _shape = 'NULL' THEN 'RECORD has no record object' "
                f"WHEN _shape <> 'OBJECT' THEN {lit(what + ' is not an object but ')} || "
                "CASE _shape WHEN 'ARRAY' THEN 'an array' WHEN 'VARCHAR' THEN 'a string' "
                "WHEN 'BOOLEAN' THEN 'a boolean' ELSE 'a number' END END"
            ]
        else:
            # Not dates: the typed reader would cut '2024-01-01T10:00' to a date.
            fields = {n: self._fast_read_type(n, ty) for n, ty in types.items()}
            struct = "STRUCT(" + ", ".join(f"{ident(n)} {ty}" for n, ty in fields.items()) + ")"
            bare = ", records = 'false'" if batch.bare else ""
            source = (
                f"read_json({files}, format = 'newline_delimited'{bare}, {compression}, "
                f"columns = {{'record': {lit(struct)}}})"
            )
            seq = "ordinality AS _seq, " if with_seq else ""
            ordinality = " WITH ORDINALITY" if with_seq else ""
            scan = f"SELECT {seq}record AS r, NULL::VARCHAR AS _raw FROM {source}{ordinality}"
            problems = ["CASE WHEN r IS NULL THEN 'RECORD has no record object' END"]
        casts: list[str] = []
        for name, ty in types.items():
            if fields[name] == ty != "JSON":  # read typed: it fits, or it is flagged
                value = f"r.{ident(name)}"
                if ty == "VARCHAR":
                    label = lit(f"field {name!r} may not be a JSON string")
                    problems.append(f"CASE WHEN {_looks_like_json(value)} THEN {label} END")
            else:
                value, bad, expect = _field_sql(f"r.{ident(name)}", ty, self.properties.get(name))
                if bad:
                    label = lit(f"field {name!r} must be {expect}, got ")
                    problems.append(
                        f"CASE WHEN {bad} THEN {label} || left(r.{ident(name)}, 60) END"
                    )
            casts.append(f"{value} AS {ident(name)}")
            if self.text_refuses_nul and ty == "VARCHAR":
                label = lit(f"field {name!r} must be a string without NUL (\\u0000) characters")
                problems.append(f"CASE WHEN contains({value}, chr(0)) THEN {label} END")
        for key in self.key_properties:
            if key not in types:
                raise StoreError(
                    f"stream {self.stream!r}: key property {key!r} is not in its SCHEMA"
                )
            problems.append(
                f"CASE WHEN r IS NOT NULL AND r.{ident(key)} IS NULL "
                f"THEN {lit(f'missing key property {key!r}')} END"
            )
        seq = "_seq, " if with_seq or exact else ""
        inner = (
            f"SELECT {seq}_raw, {', '.join(casts)}, "
            f"concat_ws('; ', {', '.join(problems)}) AS _reason FROM ({scan})"
        )
        if extra_checks:
            inner = (
                f"SELECT * EXCLUDE (_reason), concat_ws('; ', nullif(_reason, ''), {extra_checks}) "
                f"AS _reason FROM ({inner})"
            )
        return inner

    def _stage(
        self, con: duckdb.DuckDBPyConnection, types: dict[str, str], *, with_seq: bool, **kw: t.Any
    ) -> None:
        """Stage the batch: the fast read, then the exact one only if something is rejected.

        A batch DuckDB cannot read at all (a line nested deeper than its JSON limit, a lone
        surrogate, a record that is not an object) is first split in Python: the lines DuckDB
        cannot parse become rejects with the line as received, the rest is read exactly.
        """
        self.has_seq = with_seq
        unreadable: list[tuple[str, str]] = []
        try:
            _read_within_memory(con, self.stage_sql(types, with_seq=with_seq, **kw), self.stream)
            if not self._has_rejects(con):
                return
            self._learn_json_strings(con, types)
        except duckdb.OutOfMemoryException as exc:
            raise self._out_of_memory(exc) from None
        except duckdb.Error as exc:
            log.debug("fast read of %r failed (%s); reading it exactly", self.stream, exc)
        try:
            try:
                self._read_exactly(con, types, **kw)
            except duckdb.OutOfMemoryException:
                raise
            except duckdb.Error as exc:
                log.debug("exact read of %r failed (%s); splitting off lines", self.stream, exc)
                unreadable = self._split_unreadable()
                self._read_exactly(con, types, **kw)  # over the files the split wrote
        except duckdb.OutOfMemoryException as exc:
            raise self._out_of_memory(exc) from None
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            if "json" in first.lower():
                bare = self._source is not None and self._source.bare
                what = "a line of its BATCH files" if bare else "a RECORD line"
                first = f"{what} is not a valid JSON record ({first})"
            raise StoreError(f"stream {self.stream!r}: loading the batch failed: {first}") from None
        self.has_seq = True
        if unreadable:
            con.executemany(f"INSERT INTO {self.stg} (_reason, _raw) VALUES (?, ?)", unreadable)

    def _read_exactly(
        self, con: duckdb.DuckDBPyConnection, types: dict[str, str], **kw: t.Any
    ) -> None:
        """Stage the batch with every value checked (its SQL names the current input files)."""
        sql = self.stage_sql(types, with_seq=True, exact=True, **kw)
        _read_within_memory(con, sql, self.stream)

    def _fast_read_type(self, name: str, ty: str) -> str:
        """How the fast read takes a field: typed where that cannot go wrong unseen (see
        stage_select), else as JSON text to be checked."""
        if ty in _TYPED_READS or (ty == "VARCHAR" and name not in self.json_strings):
            return ty
        return "JSON"

    def _learn_json_strings(self, con: duckdb.DuckDBPyConnection, types: dict[str, str]) -> None:
        """After a fast read with rejects: the string columns that held JSON-looking values
        are read as JSON text in this stream's later batches (see stage_select)."""
        typed = [n for n, ty in types.items() if self._fast_read_type(n, ty) == "VARCHAR"]
        if not typed:
            return
        flags = ", ".join(f"bool_or({_looks_like_json(ident(n))})" for n in typed)
        row = con.execute(f"SELECT {flags} FROM {self.stg}").fetchone() or ()
        self.json_strings.update(n for n, flagged in zip(typed, row, strict=False) if flagged)

    def _has_rejects(self, con: duckdb.DuckDBPyConnection) -> bool:
        row = con.execute(f"SELECT 1 FROM {self.stg} WHERE _reason <> '' LIMIT 1").fetchone()
        return row is not None

    def _out_of_memory(self, exc: duckdb.Error) -> StoreError:
        first = str(exc).splitlines()[0]
        return StoreError(
            f"stream {self.stream!r}: DuckDB ran out of its memory_limit reading a batch "
            f"({first}); raise memory_limit, or lower batch_size_rows or threads"
        )

    def _split_unreadable(self) -> list[tuple[str, str]]:
        """Move the lines DuckDB's JSON reader refuses out of the batch; (reason, raw) each.

        Runs only when the fast read failed, so the common batch never pays for Python
        parsing. The raw line is kept as a JSON string: it may not be valid JSON itself.
        """
        batch = self._source
        if batch is None:
            return []
        clean = self._path.with_name(f"{self.stg}-clean-{self._files_made}.ndjson")
        rejects: list[tuple[str, str]] = []
        try:
            with clean.open("wb") as out:
                for path in batch.files:
                    opener = gzip.open if batch.compression == "gzip" else open
                    with opener(path, "rb") as lines:
                        for lineno, line in enumerate(lines, 1):
                            try:
                                reason = _unreadable(line)
                            except ValueError as exc:
                                what = (
                                    f"line {lineno} of {path} in its BATCH files"
                                    if batch.bare
                                    else "a RECORD line"
                                )
                                raise StoreError(
                                    f"stream {self.stream!r}: loading the batch failed: {what} "
                                    f"is not a valid JSON record ({exc})"
                                ) from None
                            if reason is None:
                                out.write(line if line.endswith(b"\n") else line + b"\n")
                            elif line.strip():
                                text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                                rejects.append((reason, orjson.dumps(text).decode()))
        except StoreError:
            clean.unlink(missing_ok=True)
            raise
        except (OSError, EOFError, zlib.error) as exc:
            clean.unlink(missing_ok=True)
            raise StoreError(f"stream {self.stream!r}: cannot read the batch: {exc}") from None
        if batch.owned:
            for path in batch.files:
                path.unlink(missing_ok=True)
        self._source = StagedBatch([clean], "none", bare=batch.bare, owned=True)
        return rejects

    def _record_rejects(self, con: duckdb.DuckDBPyConnection, options: LoadOptions) -> int:
        """Write this batch's bad rows to _rejects (idempotently) and name them on stderr."""
        if options.strict_key_properties and self.key_properties:
            row = con.execute(
                f"SELECT _reason FROM {self.stg} WHERE _reason LIKE '%missing key property%' "
                "LIMIT 1"
            ).fetchone()
            if row:
                raise MissingKeyPropertiesError(
                    f"stream {self.stream!r}: {row[0]} (strict_key_properties is on; "
                    "nothing of this batch was written)"
                )
        rows = con.execute(
            f"SELECT _reason, _raw FROM {self.stg} WHERE _reason <> '' LIMIT ?",
            [_MAX_LOGGED_REJECTS],
        ).fetchall()
        if not rows:
            return 0
        self._quote_lenient_records(con)
        count = con.execute(f"SELECT count(*) FROM {self.stg} WHERE _reason <> ''").fetchone()[0]
        for reason, raw in rows:
            key = _key_text(raw, self.key_properties)
            log.warning("rejected: stream %r, %s: %s", self.stream, key, reason)
        if count > len(rows):
            log.warning("rejected: stream %r, %d more records", self.stream, count - len(rows))
        con.execute(
            "INSERT INTO _rejects BY NAME "
            "SELECT DISTINCT md5(? || chr(10) || _reason || chr(10) || _raw) AS reject_id, "
            "? AS stream, 'target-loyalty-store' AS rule, _reason AS reason, "
            f"_raw::JSON AS record, now() AS rejected_at FROM {self.stg} WHERE _reason <> '' "
            "AND md5(? || chr(10) || _reason || chr(10) || _raw) "
            "NOT IN (SELECT reject_id FROM _rejects)",
            [self.stream, self.stream, self.stream],
        )
        return int(count)

    def _quote_lenient_records(self, con: duckdb.DuckDBPyConnection) -> None:
        """Keep a rejected record with NaN or Infinity in it as its text (a JSON string).

        DuckDB's reader takes those literals, but they are not JSON: as a record they would
        make ``_rejects.record`` unreadable to any JSON parser, and PostgreSQL refuses them
        (the whole batch failed). The same as a line DuckDB cannot read (_split_unreadable).
        """
        candidates = con.execute(
            f"SELECT DISTINCT _raw FROM {self.stg} WHERE _reason <> '' "
            "AND regexp_matches(_raw, '(?i)nan|inf')"
        ).fetchall()
        lenient = [raw for (raw,) in candidates if not is_strict_json(raw)]
        if lenient:
            con.executemany(
                f"UPDATE {self.stg} SET _raw = ? WHERE _raw = ?",
                [(orjson.dumps(raw).decode(), raw) for raw in lenient],
            )

    def _has_duplicate_keys(self, con: duckdb.DuckDBPyConnection, table: str = "") -> bool:
        """Whether a key is there twice: among the staged good rows, or in ``table``."""
        keys = ", ".join(ident(k) for k in self.key_properties)
        rows = table or f"{self.stg} WHERE _reason = ''"
        row = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {rows} GROUP BY {keys} HAVING count(*) > 1)"
        ).fetchone()
        return bool(row and row[0])

    def prepare(
        self, con: duckdb.DuckDBPyConnection, options: LoadOptions, *, direct: bool = False
    ) -> None:
        """Read the staging file into this stream's temp table, before the transaction.

        Outside the transaction because a failed typed read (retried as text) would abort it.
        ``direct``: the caller may take a batch that can skip staging (see load_directly), and
        falls back to preparing it again without ``direct`` when that fails.
        """
        del options
        self._types = self.column_types(con)
        self.direct = direct and self._may_load_directly(con)
        if self.direct:
            return
        self._stage(con, self._types, with_seq=False)
        self._dedupe = False
        if self.key_properties and self.stream != "_rejects" and self._has_duplicate_keys(con):
            # The same key twice in one batch: the later record wins, as in Singer.
            if not self.has_seq:
                self._stage(con, self._types, with_seq=True)
            self._dedupe = True

    def _may_load_directly(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Whether this batch is worth loading without staging, and can be.

        Worth it when its staged copy would not fit memory_limit (its files are more than
        twice that size), so staging would spill it to disk and read it back; a smaller batch
        stages faster than DuckDB inserts it directly (each thread's part row group is merged
        and written again). Possible when nothing in the table is replaced: a stream without
        key properties only appends, and a table that is still empty holds nothing.
        """
        if self._source is None or self.stream == "_rejects":  # a reject is kept once: staged
            return False
        size = sum(path.stat().st_size for path in self._source.files if path.exists())
        if size <= 2 * memory_limit_bytes(con):
            return False
        if not self.key_properties:
            return True
        row = con.execute(f"SELECT EXISTS (SELECT 1 FROM {ident(self.table)})").fetchone()
        return not (row and row[0])

    def load_directly(self, con: duckdb.DuckDBPyConnection) -> LoadResult:
        """Insert the batch from its files with no staged copy: the bulk load of a new table.

        Staging materialises a batch in memory (spilling to disk once it outgrows
        memory_limit) and copies it again into the table; a first load of 1M rows skips a
        fifth of the work this way. The same checks run, but the first row that fails one
        stops the insert (``error``), and so does a key seen twice: the caller then rolls back
        and loads the batch through staging, which names every reject and keeps the latest
        record of a key.
        """
        cols = ", ".join(ident(n) for n in self._types)
        select = self.stage_select(self._types, with_seq=False)
        sql = (
            f"INSERT INTO {ident(self.table)} ({cols}) SELECT {cols} FROM ({select}) "
            "WHERE CASE WHEN _reason = '' THEN true ELSE error(_reason) END"
        )
        try:
            row = con.execute(sql).fetchone()
            if self.key_properties and self._has_duplicate_keys(con, ident(self.table)):
                raise NotLoadedDirectly(f"stream {self.stream!r}: a key twice in the batch")
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise NotLoadedDirectly(f"stream {self.stream!r}: {first}") from None
        return LoadResult(loaded=int(row[0]) if row else 0, direct=True)

    def load(self, con: duckdb.DuckDBPyConnection, options: LoadOptions) -> LoadResult:
        """Upsert the prepared batch; runs inside the caller's transaction."""
        if self.direct:
            return self.load_directly(con)
        stg = self.stg
        rejected = self._record_rejects(con, options)
        cols = ", ".join(ident(n) for n in self._types)
        source = f"(SELECT * FROM {stg} WHERE _reason = '')"
        if self.stream == "_rejects":
            # A reject is immutable by its id: keep the first one (and its rejected_at), so
            # re-running a window leaves the same rows.
            source = (
                f"(SELECT * FROM {source} AS s WHERE s.reject_id NOT IN "
                "(SELECT reject_id FROM _rejects) "
                "QUALIFY row_number() OVER (PARTITION BY s.reject_id) = 1)"
            )
        elif self.key_properties:
            if self._dedupe:
                keys = ", ".join(ident(k) for k in self.key_properties)
                source = (
                    f"(SELECT * FROM {stg} WHERE _reason = '' QUALIFY row_number() "
                    f"OVER (PARTITION BY {keys} ORDER BY _seq DESC) = 1)"
                )
            match = " AND ".join(
                f"{ident(self.table)}.{ident(k)} = {stg}.{ident(k)}" for k in self.key_properties
            )
            con.execute(
                f"DELETE FROM {ident(self.table)} USING {stg} WHERE {stg}._reason = '' AND {match}"
            )
        loaded = con.execute(
            f"INSERT INTO {ident(self.table)} ({cols}) SELECT {cols} FROM {source}"
        ).fetchone()
        return LoadResult(loaded=int(loaded[0]) if loaded else 0, rejected=rejected)

    def drop_staged(self, con: duckdb.DuckDBPyConnection) -> None:
        """Free the temp table once the batch is committed (or abandoned)."""
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {self.stg}")


@dataclasses.dataclass(frozen=True)
class StagedBatch:
    """The files of one batch being loaded: our staging file, or a BATCH message's files."""

    files: list[Path]
    compression: str
    bare: bool  # lines are bare records (BATCH files), not Singer RECORD messages
    owned: bool = False  # ours to delete once loaded


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """Config the contacts merge needs."""

    match_field: str = "email"
    resubscribe_unsubscribed: bool = False
    strict_key_properties: bool = False


def _key_text(raw: str | None, keys: list[str]) -> str:
    """'key id=7' for a stderr line (the record is text JSON from DuckDB)."""
    if not raw:
        return "no record"
    try:
        record = orjson.loads(raw)
        if isinstance(record, str):  # a line kept as its text; Python's reader takes NaN
            record = json.loads(record)
    except (ValueError, RecursionError):
        return "key unknown"
    if not isinstance(record, dict):
        return "no record"
    if not keys:
        return "no key properties"
    return "key " + ", ".join(f"{k}={record.get(k)!r}" for k in keys)


def _field_sql(raw: str, ty: str, prop: t.Any) -> tuple[str, str, str]:
    """(value, is-bad condition, what the column expects) for one field read as JSON text.

    A value fits only if its JSON type is the column's and it converts without loss: no
    string parsed as a number, no number as text, no rounding, no infinity (README: "What
    fits a column").
    """
    v = f"({raw}::VARCHAR)"
    text = f"({raw} ->> '$')"
    is_string = f"starts_with({v}, '\"')"
    if ty == "VARCHAR":
        return text, f"NOT {is_string}", "a string"
    if ty == "BOOLEAN":
        return f"{v} = 'true'", f"{v} NOT IN ('true', 'false')", "true or false"
    if ty in _INTEGER_TYPES:
        cast = f"TRY_CAST({v} AS {ty})"
        # A fraction or exponent (rare) must leave the same number: 2.0 is 2, 1.5 is no
        # integer (the cast would round it). The test is skipped for plain digits.
        fraction = f"(contains({v}, '.') OR contains({v}, 'e') OR contains({v}, 'E'))"
        bad = f"{cast} IS NULL OR ({fraction} AND {cast} <> TRY_CAST({v} AS DOUBLE))"
        return cast, bad, f"an integer ({ty})"
    if ty in _FLOAT_TYPES:
        cast = f"TRY_CAST({v} AS {ty})"
        # Beyond 2**53 a double holds every integer no more: such an integer literal must
        # survive the round trip.
        inexact = (
            f"CASE WHEN abs({cast}) >= 9007199254740992 AND NOT regexp_matches({v}, '[.eE]') "
            f"THEN TRY_CAST({v} AS HUGEINT) IS DISTINCT FROM TRY_CAST({cast} AS HUGEINT) END"
        )
        bad = f"{cast} IS NULL OR NOT isfinite({cast}) OR coalesce({inexact}, false)"
        return cast, bad, "a finite number"
    if ty.startswith("DECIMAL"):
        cast = f"TRY_CAST({v} AS {ty})"
        bad = f"{cast} IS NULL OR {cast}::DOUBLE <> TRY_CAST({v} AS DOUBLE)"
        return cast, bad, f"a number that fits {ty} exactly"
    if ty == "JSON":
        # DuckDB's reader takes NaN and Infinity, which are not JSON: outside the value's
        # strings they are refused (the cheap test first keeps the string-stripping off
        # most values).
        strings = lit('"(?:[^"\\\\]|\\\\.)*"')
        lenient = (
            f"((contains(lower({v}), 'nan') OR contains(lower({v}), 'inf')) AND "
            f"regexp_matches(regexp_replace({v}, {strings}, '', 'g'), '(?i)nan|inf'))"
        )
        declared = json_types(prop)
        allowed = sorted({j for name in declared for j in _JSON_TYPE_OF.get(name, ())})
        if not allowed or not declared <= set(_JSON_TYPE_OF):
            return raw, lenient, "JSON (NaN and Infinity are not)"  # any JSON value
        names = " or ".join(sorted(declared))
        bad = f"json_type({raw}) NOT IN ({', '.join(map(lit, allowed))}) OR {lenient}"
        return raw, bad, f"a JSON {names}"
    if ty == "DATE":  # exactly YYYY-MM-DD (JSON schema's full-date): no time to cut off
        cast = f"TRY_CAST({text} AS DATE)"
        return cast, f"NOT {is_string} OR {cast}::VARCHAR IS DISTINCT FROM {text}", "a date string"
    # Date-times and anything else DuckDB parses from text: a string that converts.
    cast = f"TRY_CAST({text} AS {ty})"
    what = {"TIMESTAMP WITH TIME ZONE": "a date-time string"}
    return cast, f"NOT {is_string} OR {cast} IS NULL", what.get(ty, f"a string of {ty}")


_SIZE_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The connection's memory_limit in bytes (DuckDB reports it as text, '143.0 MiB')."""
    text = str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    number, _, unit = text.partition(" ")
    return int(float(number) * _SIZE_UNITS.get(unit, 1))


def is_strict_json(text: str) -> bool:
    """Whether any JSON parser reads this (orjson refuses NaN and Infinity, as RFC 8259 does)."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _looks_like_json(text: str) -> str:
    """SQL: this string, read typed from a JSON field, may have been another JSON value.

    The typed reader gives a number, boolean, object or array as its JSON text (``12``,
    ``1e-08``, ``true``, ``{"a":1}``; a null is NULL; and DuckDB's reader takes ``NaN`` and
    ``Infinity`` in any case too). A real string of that shape is flagged as well: its batch
    is then read exactly, which tells the two apart. The cheap tests go first, so the regex
    and ``lower`` see few rows.
    """
    number = "-?([0-9][0-9.eE+-]*|(?i:nan|inf|infinity))"
    return (
        f"({text} IN ('true', 'false') OR starts_with({text}, '{{') "
        f"OR starts_with({text}, '[') OR ({text} >= '-' AND {text} < ':' "
        f"AND regexp_full_match({text}, {lit(number)})) "
        f"OR (strlen({text}) IN (3, 8) AND lower({text}) IN ('nan', 'inf', 'infinity')))"
    )


def _unreadable(line: bytes) -> str | None:
    """Why DuckDB's JSON reader cannot take this valid JSON line, or None when it can.

    A line that is not JSON at all is a protocol error (ValueError), as it always was.
    """
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if not line.strip():
            return None
        if not is_valid_json(line):
            raise ValueError(str(exc)) from None
        if "depth" in str(exc):
            return f"record is nested deeper than {MAX_JSON_DEPTH} levels"
        return f"record cannot be decoded ({str(exc).split(':')[0]})"
    if line.count(b"[") + line.count(b"{") > MAX_JSON_DEPTH and too_deep(value):
        return f"record is nested deeper than {MAX_JSON_DEPTH} levels"
    return None


def _normalised(match_field: str, column: str) -> str:
    """SQL normalising a match value: email trim+lower; mobile digits with a leading + kept."""
    col = ident(column)
    if match_field == "email":
        return f"nullif(lower(trim({col})), '')"
    return (
        f"nullif(CASE WHEN starts_with(trim({col}), '+') THEN '+' ELSE '' END "
        f"|| regexp_replace({col}, '[^0-9]', '', 'g'), '')"
    )


def _contact_id(match_field: str) -> str:
    """SQL of a staged row's contact_id: '<match_field>:<normalised value>'."""
    return f"{lit(match_field + ':')} || {_normalised(match_field, match_field)}"


class ContactsSink(StreamSink):
    """`contacts`: one row per person across sources, plus each source's id -> person."""

    def column_types(self, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        """Known fields stage with fixed types; extra fields become extra contacts columns."""
        types = dict(CONTACT_FIELDS)
        existing = table_columns(con, "contacts")
        lowered = {name.lower() for name in existing}
        for name, prop in self.properties.items():
            if name in types:
                continue
            ty = duckdb_type(prop)
            if name.lower() not in lowered:
                con.execute(f"ALTER TABLE contacts ADD COLUMN {ident(name)} {ty}")
                existing[name] = ty
            types[name] = ty
        return types

    def prepare(
        self, con: duckdb.DuckDBPyConnection, options: LoadOptions, *, direct: bool = False
    ) -> None:
        """Stage with arrival order (the merge needs it) and the match-field check (never
        ``direct``: the merge reads the staged batch)."""
        del direct
        mf = options.match_field
        check_match_field(con, mf)
        self._types = self.column_types(con)
        norm_match = _normalised(mf, mf)
        self._stage(
            con,
            self._types,
            with_seq=True,
            extra_checks=f"CASE WHEN {norm_match} IS NULL THEN {lit('no ' + mf)} END",
        )

    def people_sql(self, options: LoadOptions) -> str:
        """SQL naming the contact_id of every person in the prepared batch (the contacts a
        merge reads: on PostgreSQL they are pulled into the working set first)."""
        contact_id = _contact_id(options.match_field)
        return f"SELECT {contact_id} AS contact_id FROM {self.stg} WHERE _reason = ''"

    def load(self, con: duckdb.DuckDBPyConnection, options: LoadOptions) -> LoadResult:
        """Merge the batch into contacts and contact_ids (see README: merge rules)."""
        mf = options.match_field
        types = self._types
        rejected = self._record_rejects(con, options)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _c_in AS SELECT * REPLACE ("
            f"{_normalised('email', 'email')} AS email, {_normalised('mobile', 'mobile')} AS mobile"
            f"), {_contact_id(mf)} AS _contact_id, "
            # One integer recency rank (updated_at, then arrival): arg_max over a BIGINT is
            # several times faster than over a (timestamp, seq) struct.
            "row_number() OVER (ORDER BY updated_at ASC NULLS FIRST, _seq) AS _ord "
            f"FROM {self.stg} WHERE _reason = ''"
        )
        contact_cols = table_columns(con, "contacts")
        attrs = [
            c
            for c in contact_cols
            if c not in _CONTACT_SPECIAL and c not in _CONTACT_TIMES and c in types
        ]
        order = "_ord"
        aggs = [
            f"arg_max({ident(c)}, {order}) FILTER (WHERE {ident(c)} IS NOT NULL) AS {ident(c)}"
            for c in attrs
        ]
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _c_agg AS SELECT _contact_id AS contact_id, "
            + "".join(a + ", " for a in aggs)
            + "min(coalesce(created_at, updated_at)) AS first_seen_at, "
            "max(updated_at) AS updated_at FROM _c_in GROUP BY _contact_id"
        )
        newer = "(e.contact_id IS NULL OR e.updated_at IS NULL OR a.updated_at >= e.updated_at)"
        merged = [
            f"CASE WHEN {newer} THEN coalesce(a.{ident(c)}, e.{ident(c)}) "
            f"ELSE coalesce(e.{ident(c)}, a.{ident(c)}) END AS {ident(c)}"
            for c in attrs
        ]
        _log_consents(con, options.resubscribe_unsubscribed)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _c_new AS SELECT a.contact_id, "
            f"{lit(mf)} AS match_field, "
            + "".join(m + ", " for m in merged)
            + "coalesce(k.newsletter, e.newsletter) AS newsletter, "
            "coalesce(k.consent_related, e.consent_related) AS consent_related, "
            "CASE WHEN k.contact_id IS NULL THEN e.unsubscribed_at ELSE k.unsubscribed_at END "
            "AS unsubscribed_at, "
            "coalesce(least(e.first_seen_at, a.first_seen_at), now()) AS first_seen_at, "
            "greatest(e.updated_at, a.updated_at) AS updated_at "
            "FROM _c_agg AS a LEFT JOIN contacts AS e ON e.contact_id = a.contact_id "
            "LEFT JOIN _c_consent AS k ON k.contact_id = a.contact_id"
        )
        con.execute(
            "DELETE FROM contacts USING _c_new WHERE contacts.contact_id = _c_new.contact_id"
        )
        loaded = con.execute("INSERT INTO contacts BY NAME SELECT * FROM _c_new").fetchone()
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _ci_new AS SELECT source, source_id, "
            "_contact_id AS contact_id, newsletter, created_at, updated_at FROM _c_in "
            "QUALIFY row_number() OVER (PARTITION BY source, source_id ORDER BY _seq DESC) = 1"
        )
        con.execute(
            "DELETE FROM contact_ids USING _ci_new WHERE contact_ids.source = _ci_new.source "
            "AND contact_ids.source_id = _ci_new.source_id"
        )
        con.execute("INSERT INTO contact_ids BY NAME SELECT * FROM _ci_new")
        del loaded
        n_in = con.execute("SELECT count(*) FROM _c_in").fetchone()
        return LoadResult(loaded=int(n_in[0]) if n_in else 0, rejected=rejected)


def _log_consents(con: duckdb.DuckDBPyConnection, resubscribe: bool) -> None:
    """Add the batch's consent statements to `contact_consents`; derive each person's state.

    The state is a function of the whole log, a set of (time, yes/no) statements per consent
    (`topic`: `newsletter`, or `consent_related`, Billetten's 10_2), so it cannot depend on the
    order records arrive in or on how they were split into batches and runs (README: Consent).
    Order: `updated_at` (none = oldest), a no after a yes at the same instant. A no after the
    earliest yes withdraws that consent; with `resubscribe`, only a no after the latest yes
    counts. `unsubscribed_at` is the first such no of either consent.
    """
    # A contact an older target already merged has a state but no log yet: its state
    # becomes its log, so an upgrade never re-subscribes anyone.
    con.execute(
        "INSERT INTO contact_consents BY NAME "
        "SELECT e.contact_id, 'store' AS source, v.newsletter, v.said_at FROM contacts AS e, "
        "LATERAL (VALUES (e.newsletter, CASE WHEN e.newsletter THEN e.updated_at "
        "ELSE '-infinity' END, e.unsubscribed_at IS NULL), "  # subscribed, or never was
        "(true, '-infinity', e.unsubscribed_at IS NOT NULL), "  # unsubscribed at that time
        "(false, e.unsubscribed_at, e.unsubscribed_at IS NOT NULL)) "
        "AS v(newsletter, said_at, keep) WHERE v.keep AND e.newsletter IS NOT NULL "
        "AND e.contact_id IN (SELECT contact_id FROM _c_agg) "
        "AND e.contact_id NOT IN (SELECT contact_id FROM contact_consents)"
    )
    for topic in CONSENT_TOPICS:  # the log's `newsletter` column holds the statement's yes/no
        con.execute(
            "INSERT INTO contact_consents BY NAME "
            f"SELECT DISTINCT _contact_id AS contact_id, source, {topic} AS newsletter, "
            f"updated_at AS said_at, {lit(topic)} AS topic FROM _c_in AS i "
            f"WHERE {topic} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM contact_consents AS h "
            "WHERE h.contact_id = i._contact_id AND h.source = i.source "
            f"AND coalesce(h.topic, 'newsletter') = {lit(topic)} AND h.newsletter = i.{topic} "
            "AND h.said_at IS NOT DISTINCT FROM i.updated_at)"
        )
    pivot = "max" if resubscribe else "min"
    withdrawn = "min(h.said_at) FILTER (WHERE NOT h.said AND h.said_at >= y.yes_at)"
    states = ", ".join(
        f"any_value(s.state) FILTER (WHERE s.topic = {lit(topic)}) AS {topic}"
        for topic in CONSENT_TOPICS
    )
    con.execute(  # hash aggregates: ~15% faster than a window over the log
        "CREATE OR REPLACE TEMP TABLE _c_consent AS WITH h AS (SELECT contact_id, "
        "coalesce(topic, 'newsletter') AS topic, newsletter AS said, "
        "coalesce(said_at, '-infinity') AS said_at FROM contact_consents "
        "WHERE contact_id IN (SELECT contact_id FROM _c_agg)), "
        f"y AS (SELECT contact_id, topic, {pivot}(said_at) FILTER (WHERE said) AS yes_at, "
        "bool_or(said) AS said_yes FROM h GROUP BY contact_id, topic), "
        f"s AS (SELECT y.contact_id, y.topic, CASE WHEN {withdrawn} IS NULL "
        f"THEN any_value(y.said_yes) ELSE false END AS state, {withdrawn} AS withdrawn_at "
        "FROM h JOIN y USING (contact_id, topic) GROUP BY y.contact_id, y.topic) "
        f"SELECT s.contact_id, {states}, min(s.withdrawn_at) AS unsubscribed_at "
        "FROM s GROUP BY s.contact_id"
    )


class LoyaltyMembersSink(ContactsSink):
    """`loyalty_members` (LoyaltyLion): each member's row, and the member as a contact.

    A mapping sends one input stream to one output stream, so a member's contact fields
    (source, source_id, email, names, birthday, times) are merged into `contacts` and
    `contact_ids` from the same batch, in the same transaction, by the contacts merge.
    """

    def column_types(self, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        """The contact fields, plus every member field in `loyalty_members`' own types."""
        existing = table_columns(con, self.table)
        lowered = {name.lower(): name for name in existing}
        types = dict(CONTACT_FIELDS)
        for name, prop in self.properties.items():
            if name.lower() not in lowered:
                ty = duckdb_type(prop)
                con.execute(f"ALTER TABLE {ident(self.table)} ADD COLUMN {ident(name)} {ty}")
                lowered[name.lower()] = name
                existing[name] = ty
            types[name] = existing[lowered[name.lower()]]
        return types

    def load(self, con: duckdb.DuckDBPyConnection, options: LoadOptions) -> LoadResult:
        """Upsert the members (latest updated_at per key wins), then merge the contacts."""
        cols = ", ".join(ident(n) for n in self.properties)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _m_new AS SELECT {cols} FROM {self.stg} "
            "WHERE _reason = '' QUALIFY row_number() OVER (PARTITION BY source, source_id "
            "ORDER BY updated_at DESC NULLS LAST, _seq DESC) = 1"
        )
        table = ident(self.table)
        con.execute(
            f"DELETE FROM {table} USING _m_new "
            f"WHERE {table}.source = _m_new.source AND {table}.source_id = _m_new.source_id"
        )
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _m_new")
        return super().load(con, options)


def make_sink(
    stream: str, schema: dict, key_properties: list[str], staging_file: Path
) -> StreamSink:
    """The sink class for a stream: contacts merge specially, everything else is a table."""
    special = {"contacts": ContactsSink, "loyalty_members": LoyaltyMembersSink}
    cls = special.get(stream, StreamSink)
    return cls(stream, schema, key_properties, staging_file)
