"""The mapper's message loop: Singer lines in, mapped Singer lines out, in order.

singer-sdk's reader builds message objects and its writer flushes per message; on a million
records that is most of the cost. This loop reads raw lines, decodes each once with msgspec,
dispatches records to a per-stream handler built at start (compiled record function, filter,
pre-encoded message prefix) and writes bytes to a buffered stream that is flushed only on STATE,
so a STATE always follows the records before it and is never held back.

BATCH messages (files of bare records, see transforms/README.md) go through the same per-record
core as RECORDs; the mapped records are written to gzip JSONL files in ``batch_dir`` and one
BATCH message with the new manifest replaces the input's.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import sys
import typing as t
import zlib
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import orjson

from mapper_loyalty.compiler import CompiledMapping, CompiledStream, Record, Schema
from mapper_loyalty.loader import MappingError
from mapper_loyalty.rules import RuleFailure
from singer_kit.singer_io import (
    ENCODER,
    batch_manifest,
    dumps_line,
    is_valid_json,
    top_level_strings,
)

REJECTS = "_rejects"
_LOGGED_REJECTS = 20  # stderr lines per input stream; every reject is in _rejects anyway
REJECTS_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "reject_id": {"type": "string"},
        "stream": {"type": "string"},
        "rule": {"type": "string"},
        "reason": {"type": "string"},
        # The record as received; a line no decoder can read is kept as its text.
        "record": {"type": ["object", "string"]},
        "rejected_at": {"type": "string", "format": "date-time"},
    },
}


class RunError(Exception):
    """The run must stop (bad input, on_error: fail); the message is one line for the user."""


BATCH_ENCODING = {"format": "jsonl", "compression": "gzip"}
BATCH_CHUNK = 4096  # output records encoded and compressed per write


@dataclasses.dataclass
class StreamStats:
    """Counts per input stream; records_in == emitted + filtered + empty + rejected."""

    records_in: int = 0
    emitted: int = 0  # input records that produced output
    records_out: int = 0  # output records (more than emitted when exploding)
    filtered: int = 0
    empty: int = 0  # explode path had no elements
    rejected: int = 0


# The kit's one Singer encoder (why msgspec: singer_kit.singer_io).
_encoder = ENCODER
_dumps = ENCODER.encode
_dump_line = dumps_line


def reject_id(stream: str, rule: str, record: t.Any) -> str:
    """Stable id of a reject, so re-running the same input never duplicates it."""
    canonical = orjson.dumps([stream, rule, record], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


class Runner:
    """Apply a compiled mapping to a sequence of Singer messages."""

    def __init__(
        self,
        mapping: CompiledMapping,
        write: t.Callable[[bytes], t.Any],
        flush: t.Callable[[], t.Any] = lambda: None,
        warn: t.Callable[[str], t.Any] | None = None,
        *,
        batch_dir: str | Path | None = None,
    ) -> None:
        self.mapping = mapping
        self.write = write
        self.flush = flush
        self.warn = warn or (lambda text: sys.stderr.write(text + "\n"))
        self.stats: dict[str, StreamStats] = {s: StreamStats() for s in mapping.streams}
        self.source_schemas: dict[str, Schema] = {}
        self.input_keys: dict[str, list[str]] = {}
        self.schema_sent: set[str] = set()
        self.rejects_schema_sent = False
        self.other_records: dict[str, int] = {}
        self.lines_read = 0
        self.batch_dir = Path(batch_dir) if batch_dir is not None else None
        self.batch_files = 0  # output files written (counter in their names)
        self.cores = {name: self._core(s) for name, s in mapping.streams.items()}
        self.handlers = {name: self._handler(s) for name, s in mapping.streams.items()}

    # -- input ---------------------------------------------------------------------------

    def run(self, lines: t.Iterable[bytes]) -> None:
        """Process every line; raise RunError naming the input line on bad input."""
        decode = msgspec.json.decode
        handlers = self.handlers
        for raw in lines:
            self.lines_read += 1
            try:
                msg = decode(raw)
            except (msgspec.DecodeError, RecursionError) as exc:
                if not raw.strip():
                    continue
                self._undecodable(raw, exc)
                continue
            if type(msg) is dict and msg.get("type") == "RECORD":
                handler = handlers.get(msg.get("stream"))  # type: ignore[arg-type]
                if handler is not None:
                    handler(msg)
                    continue
            self.process(msg, raw)
        self.flush()

    def _undecodable(self, raw: bytes, exc: BaseException) -> None:
        """A line msgspec cannot decode. Valid JSON all the same (a lone surrogate, nesting too
        deep for any decoder): a RECORD is one reject and the run goes on; else it stops."""
        fields = top_level_strings(raw) if is_valid_json(raw) else {}
        stream = fields.get("stream")
        if fields.get("type") != "RECORD" or stream is None:
            raise RunError(f"input line {self.lines_read}: invalid JSON: {_problem(raw, exc)}")
        compiled = self.mapping.streams.get(stream)
        if compiled is None:
            self._other_stream("RECORD", stream, fields, raw)
            return
        stats = self.stats[compiled.input]
        stats.records_in += 1
        reason = f"input line {self.lines_read}: record cannot be decoded ({_problem(raw, exc)})"
        self._reject_input(compiled, _line_text(raw), reason, stats)

    def process(self, msg: t.Any, raw: bytes | None = None) -> None:
        """Handle one decoded message (the slow path: anything but a mapped RECORD)."""
        if type(msg) is not dict or not isinstance(msg.get("type"), str):
            raise RunError(f"input line {self.lines_read}: not a Singer message (no type)")
        kind = msg["type"]
        stream = msg.get("stream")
        if kind == "STATE":
            self.write(_dumps(msg) + b"\n")
            self.flush()
            return
        if kind not in ("SCHEMA", "RECORD", "BATCH", "ACTIVATE_VERSION"):
            raise RunError(f"input line {self.lines_read}: {kind} messages are not supported")
        if not isinstance(stream, str):
            raise RunError(f"input line {self.lines_read}: {kind} message without a stream")
        compiled = self.mapping.streams.get(stream)
        if compiled is None:
            self._other_stream(kind, stream, msg, raw)
        elif kind == "RECORD":
            self.handlers[stream](msg)
        elif kind == "SCHEMA":
            self._schema(compiled, msg)
        elif kind == "BATCH":
            self._batch(compiled, msg)
        else:
            self.write(_dumps({**msg, "stream": compiled.output}) + b"\n")

    def _other_stream(self, kind: str, stream: str, msg: Record, raw: bytes | None) -> None:
        if self.mapping.other_streams == "pass":
            self.write((raw.rstrip(b"\r\n") if raw is not None else _dumps(msg)) + b"\n")
            return
        if stream not in self.other_records:
            self.other_records[stream] = 0
            self.warn(
                f"mapper-loyalty: stream '{stream}' has no mapping in "
                f"{self.mapping.filename}; its messages are dropped (other_streams: drop)"
            )
        if kind == "RECORD":
            self.other_records[stream] += 1

    def _schema(self, compiled: CompiledStream, msg: Record) -> None:
        schema = msg.get("schema")
        if not isinstance(schema, dict):
            raise RunError(
                f"input line {self.lines_read}: SCHEMA of stream '{compiled.input}' has no schema"
            )
        try:
            compiled.check(schema, f"the tap's SCHEMA of stream '{compiled.input}'")
        except MappingError as exc:
            raise RunError(str(exc)) from None
        self.source_schemas[compiled.input] = schema
        keys = msg.get("key_properties")
        self.input_keys[compiled.input] = keys if isinstance(keys, list) else []
        self._send_schema(compiled.output)

    def _send_schema(self, output: str) -> None:
        message = {
            "type": "SCHEMA",
            "stream": output,
            "schema": self.mapping.output_schema(output, self.source_schemas),
            "key_properties": self.mapping.key_properties(output),
        }
        self.write(_dumps(message) + b"\n")
        self.schema_sent.add(output)

    # -- records ---------------------------------------------------------------------------

    def _core(self, compiled: CompiledStream) -> t.Callable[[Record], t.Sequence[Record]]:
        """Build the per-record core of one input stream, shared by RECORD and BATCH input.

        filter -> map_record -> explode -> reject -> stats: returns the output records of one
        input record (none when filtered, empty or rejected; rejects are written by
        :meth:`_reject`). The output SCHEMA is sent before the first mapped record.
        """
        map_record = compiled.map_record
        predicate = compiled.filter
        output = compiled.output
        stats = self.stats[compiled.input]
        explode = compiled.explode is not None
        schema_sent = self.schema_sent
        reject = self._reject
        nothing: tuple[Record, ...] = ()

        def core(record: Record) -> t.Sequence[Record]:
            stats.records_in += 1
            try:
                if predicate is not None and not predicate(record):
                    stats.filtered += 1
                    return nothing
                out = map_record(record)
            except RuleFailure as failure:
                reject(compiled, record, failure, stats)
                return nothing
            if output not in schema_sent:
                self._send_schema(output)
            if explode:
                if not out:
                    stats.empty += 1
                    return nothing
                stats.records_out += len(out)
                stats.emitted += 1
                return out
            stats.records_out += 1
            stats.emitted += 1
            return (out,)

        return core

    def _handler(self, compiled: CompiledStream) -> t.Callable[[Record], None]:
        """Build the RECORD function of one input stream: the core, then one line per output.

        The input message dict is reused for the output (stream and record replaced), so
        ``version`` and ``time_extracted`` travel along without a copy.
        """
        core = self.cores[compiled.input]
        output = compiled.output
        write = self.write
        dump_line = _dump_line

        def handle(msg: Record) -> None:
            record = msg.get("record")
            if type(record) is not dict:
                raise RunError(
                    f"input line {self.lines_read}: RECORD of stream '{compiled.input}' "
                    "has no record object"
                )
            outs = core(record)
            if outs:
                msg["stream"] = output
                for one in outs:
                    msg["record"] = one
                    write(dump_line(msg))

        return handle

    # -- batches ---------------------------------------------------------------------------

    def _batch(self, compiled: CompiledStream, msg: Record) -> None:
        """Map every file of a BATCH into new gzip JSONL files; one BATCH message for them.

        Rejects go out as RECORD messages while the files are read, so before the BATCH.
        """
        try:
            compression, sources = batch_manifest(msg)
        except ValueError as exc:
            raise RunError(
                f"input line {self.lines_read}: BATCH of stream '{compiled.input}': {exc}"
            ) from None
        urls = []
        for source in sources:
            target = self._map_file(compiled, source, compression == "gzip")
            urls.append(target.as_uri())
        if compiled.output not in self.schema_sent:
            self._send_schema(compiled.output)
        message = {
            "type": "BATCH",
            "stream": compiled.output,
            "encoding": BATCH_ENCODING,
            "manifest": urls,
        }
        self.write(_dumps(message) + b"\n")

    def _map_file(self, compiled: CompiledStream, source: Path, gzipped: bool) -> Path:
        """Map one batch file of bare records into a new gzip JSONL file; return its path."""
        core = self.cores[compiled.input]
        stats = self.stats[compiled.input]
        output = compiled.output
        try:
            reader: t.IO[bytes] = gzip.open(source, "rb") if gzipped else source.open("rb")  # noqa: SIM115
        except FileNotFoundError:
            raise RunError(f"batch file {source}: not found") from None
        except OSError as exc:
            raise RunError(f"batch file {source}: cannot open: {exc.strerror or exc}") from None
        try:
            target, raw_out = self._create_batch_file(output, source)
        except BaseException:
            reader.close()
            raise
        sink = gzip.open(raw_out, "wb", compresslevel=1)  # noqa: SIM115
        decode = msgspec.json.decode
        encode_lines = _encoder.encode_lines
        chunk: list[Record] = []
        lineno = 0
        try:
            with reader, raw_out, sink:
                try:
                    for lineno, raw in enumerate(reader, 1):
                        try:
                            record = decode(raw)
                        except (msgspec.DecodeError, RecursionError) as exc:
                            if not raw.strip():
                                continue
                            problem = _problem(raw, exc)
                            if not is_valid_json(raw):
                                raise RunError(
                                    f"batch file {source}, line {lineno}: invalid JSON: {problem}"
                                ) from None
                            stats.records_in += 1
                            reason = (
                                f"batch file {source}, line {lineno}: record cannot be decoded "
                                f"({problem})"
                            )
                            self._reject_input(compiled, _line_text(raw), reason, stats)
                            continue
                        if type(record) is not dict:
                            raise RunError(f"batch file {source}, line {lineno}: not an object")
                        try:
                            outs = core(record)
                        except RunError as exc:  # on_error: fail
                            raise RunError(f"batch file {source}, line {lineno}: {exc}") from None
                        if outs:
                            chunk.extend(outs)
                            if len(chunk) >= BATCH_CHUNK:
                                _write_chunk(sink, encode_lines(chunk), target)
                                chunk.clear()
                except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                    raise RunError(
                        f"batch file {source}, line {lineno + 1}: not readable as "
                        f"{'gzip' if gzipped else 'uncompressed'} JSONL: {exc}"
                    ) from None
                if chunk:
                    _write_chunk(sink, encode_lines(chunk), target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    def _create_batch_file(self, output: str, source: Path) -> tuple[Path, t.BinaryIO]:
        """A new, uniquely named file ``<output>-<n>.jsonl.gz`` in batch_dir, open for writing.

        batch_dir defaults to a ``mapped`` folder next to the input file; it is created when
        missing. Names already taken (an earlier run) are skipped, never overwritten.
        """
        folder = (self.batch_dir or source.parent / "mapped").absolute()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            while True:
                self.batch_files += 1
                target = folder / f"{output}-{self.batch_files}.jsonl.gz"
                try:
                    return target, target.open("xb")
                except FileExistsError:
                    continue
        except OSError as exc:
            raise RunError(f"batch_dir {folder}: cannot write: {exc.strerror or exc}") from None

    def _reject(
        self, compiled: CompiledStream, record: Record, failure: RuleFailure, stats: StreamStats
    ) -> None:
        stats.rejected += 1
        where = f"{self.mapping.filename}:{failure.line}"
        if self.mapping.on_error == "fail":
            keys = self.input_keys.get(compiled.input) or []
            ident = ", ".join(f"{k}={record.get(k)!r}" for k in keys if k in record)
            ident = f" ({ident})" if ident else ""
            raise RunError(
                f"{where}: stream '{compiled.input}' record {stats.records_in}{ident}: "
                f"rule '{failure.rule}': {failure.reason} (on_error: fail)"
            )
        self._emit_reject(
            compiled.input, failure.rule, f"{failure.reason} (mapping {where})", record, stats
        )

    def _reject_input(
        self, compiled: CompiledStream, line: str, reason: str, stats: StreamStats
    ) -> None:
        """A record no decoder can read: one reject (rule 'input') holding its line's text."""
        stats.rejected += 1
        if self.mapping.on_error == "fail":
            raise RunError(f"stream '{compiled.input}': {reason} (on_error: fail)")
        self._emit_reject(compiled.input, "input", reason, line, stats)

    def _emit_reject(
        self, stream: str, rule: str, reason: str, record: Record | str, stats: StreamStats
    ) -> None:
        if stats.rejected <= _LOGGED_REJECTS:  # `loyalty run` quotes these when it fails a run
            self.warn(f"rejected: stream {stream!r}, rule {rule!r}: {reason}")
        if not self.rejects_schema_sent:
            message = {
                "type": "SCHEMA",
                "stream": REJECTS,
                "schema": REJECTS_SCHEMA,
                "key_properties": ["reject_id"],
            }
            self.write(_dumps(message) + b"\n")
            self.rejects_schema_sent = True
        reject = {
            "reject_id": reject_id(stream, rule, record),
            "stream": stream,
            "rule": rule,
            "reason": reason,
            "record": record,
            "rejected_at": datetime.now(UTC).isoformat(),
        }
        self.write(_dumps({"type": "RECORD", "stream": REJECTS, "record": reject}) + b"\n")

    # -- summary ---------------------------------------------------------------------------

    def summary(self) -> str:
        """One line for stderr: counts that add up, per input stream."""
        total = StreamStats()
        parts: list[str] = []
        for name, s in self.stats.items():
            for field in dataclasses.fields(StreamStats):
                setattr(total, field.name, getattr(total, field.name) + getattr(s, field.name))
            if s.records_in:
                parts.append(
                    f"{name}: {s.records_in} in, {s.records_out} out, {s.filtered} filtered, "
                    f"{s.empty} empty, {s.rejected} rejected"
                )
        dropped = sum(self.other_records.values())
        head = (
            f"mapper-loyalty: {total.records_in} records in, {total.records_out} out, "
            f"{total.filtered} filtered, {total.empty} empty, {total.rejected} rejected"
        )
        if dropped:
            head += f", {dropped} dropped from unmapped streams"
        return head + (" [" + "; ".join(parts) + "]" if parts else "")


def _problem(raw: bytes, exc: BaseException) -> str:
    """What is wrong with an undecodable line, in words (msgspec says "Input data was
    truncated" for a lone surrogate; orjson names it)."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return str(error).split(":")[0]
    return str(exc)


def _line_text(raw: bytes) -> str:
    """A line as text for a reject: JSON escapes (a lone surrogate's too) stay as written."""
    return raw.rstrip(b"\r\n").decode("utf-8", "replace")


def _write_chunk(sink: t.BinaryIO, data: bytes, target: Path) -> None:
    try:
        sink.write(data)
    except OSError as exc:
        raise RunError(f"batch file {target}: cannot write: {exc.strerror or exc}") from None
