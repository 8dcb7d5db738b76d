"""The push-target base: records go to a remote API in calls, STATE only after it confirmed.

A push target (Ometria, Voyado) fills in one :class:`PushSink` per stream: ``build_payload``
(a record in the remote's shape) and ``send`` (one call; per record: accepted, or the remote's
reason for rejecting it). :class:`PushLoop` does the rest, on the kit's commit loop:

- batches: records are staged until ``batch_size_rows`` (or a STATE/record arrives
  ``max_batch_seconds`` after the last commit), then split into calls of at most
  ``max_records_per_call`` records and ``max_call_bytes`` bytes;
- a record whose payload is over ``max_record_bytes`` is a reject (it would fail the call);
- a ledger (SQLite, ``ledger_path``) maps each record's key to the hash of the payload the
  remote accepted, so an unchanged record costs no call on a re-run;
- ``workers`` threads send the calls of a batch, all under one ``RateLimiter``;
- rejects (ours and the remote's, with its reason) go to a JSONL file next to the ledger and
  are counted in METRIC lines;
- a STATE is emitted only after every call of the batches before it returned and their
  accepted records are in the ledger: a failed call fails the run and the STATE stays put.

Keys (docs/kit/push.md): a record's *key* is ``sha256(stream, key property values)`` (with no
key properties, its payload), the entity the remote upserts; its *digest* is the sha256 of the
payload as sent (canonical JSON, sorted keys), so a change in the record or in
``build_payload`` sends it again; its *idempotency key* is ``sha256(key, digest)``, the same
for every retry of the same content and new for new content.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import logging
import os
import sqlite3
import threading
import time
import typing as t
from pathlib import Path

import orjson
from singer_sdk import typing as th

from singer_kit.commit import CommitLoop, InputError
from singer_kit.http.ratelimit import RateLimiter
from singer_kit.metrics import log_commit
from singer_kit.target import LoopTarget

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 1000
_CANON = orjson.OPT_SORT_KEYS
T = t.TypeVar("T")
# The retry hook: runs one attempt, again on a retryable failure (429/5xx, Retry-After);
# the kit's HTTP retrier fills it. Without one, an attempt is made once.
Retry = t.Callable[[t.Callable[[], T]], T]


class PushError(InputError):
    """A call failed (after the retry hook gave up): the run stops, its STATE does not move."""


class Skip(Exception):
    """Raised by ``build_payload``: this record is deliberately not sent (not a reject).

    Its message says why ("older than the 24-month history window"); the commit's log line
    counts the skipped records of each stream per reason.
    """


@dataclasses.dataclass(slots=True)
class PushItem:
    """One record on its way: what ``send`` gets (``payload``; the keys to name it)."""

    stream: str
    record: dict
    payload: t.Any
    body: bytes  # the payload as canonical JSON: what is hashed and measured
    key: str
    digest: str

    @property
    def idempotency_key(self) -> str:
        """Stable for this content of this entity: a header or field for a remote that dedupes."""
        return hashlib.sha256(f"{self.key}:{self.digest}".encode()).hexdigest()[:32]


class PushSink:
    """One stream's records to the remote; a connector subclasses it (class knobs: the remote's
    documented limits)."""

    max_records_per_call = 100
    max_record_bytes: int | None = None
    max_call_bytes: int | None = None
    #: True when ``send``'s transport waits for the loop's limiter itself, once per attempt
    #: (an ``HttpClient`` built with ``limiter=loop.limiter``): retries then count against the
    #: same budget, and the loop does not take a second slot per call.
    paced_by_transport = False
    # True: this stream's records are sent only after every record staged before its SCHEMA
    # was confirmed (a receipt needs its contact created first).
    after_earlier_streams = False

    def __init__(
        self,
        stream: str,
        schema: dict,
        key_properties: list[str],
        config: t.Mapping[str, t.Any],
    ) -> None:
        self.stream = stream
        self.schema = schema
        self.key_properties = key_properties
        self.config = config

    def build_payload(self, record: dict) -> t.Any:
        """The record in the remote's shape (JSON-able); ValueError makes it a reject."""
        return record

    def send(self, items: list[PushItem]) -> t.Sequence[str | None]:
        """One call with these records; per item, None (accepted) or the remote's reason.

        Raise for a failed call (the retry hook may try it again): nothing of it counts as sent.
        """
        raise NotImplementedError

    def late_rejects(self) -> list[Reject]:
        """Records the remote accepted in its answer but refused afterwards (Ometria checks
        contents after answering), asked once when the input has ended; default: none.

        The loop files them as rejects and drops them from the ledger, so the next run that
        reads them offers them again.
        """
        return []


@dataclasses.dataclass
class PushSettings:
    """The loop's knobs, from the target's config (PUSH_SETTINGS names them for a schema)."""

    ledger_path: Path
    rejects_path: Path
    workers: int = 4
    requests_per_second: float = 0.0  # 0: no client-side limit
    batch_size_rows: int = DEFAULT_BATCH_ROWS
    max_batch_seconds: float = 30.0

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any], *, rate: float = 0.0) -> PushSettings:
        """Settings from a target config; ``rate`` is the remote's documented default."""
        ledger = Path(str(config.get("ledger_path") or "./push-ledger.sqlite"))
        rejects = config.get("rejects_path")
        per_second = config.get("requests_per_second")
        seconds = config.get("max_batch_seconds")
        return cls(
            ledger_path=ledger,
            rejects_path=Path(rejects) if rejects else ledger.with_suffix(".rejects.jsonl"),
            workers=max(1, int(config.get("workers") or 4)),
            requests_per_second=rate if per_second is None else float(per_second),
            batch_size_rows=max(1, int(config.get("batch_size_rows") or DEFAULT_BATCH_ROWS)),
            max_batch_seconds=30.0 if seconds is None else float(seconds),
        )


class Ledger:
    """What the remote accepted: key -> digest of the payload, in a small SQLite file.

    Written by the committer thread as each call returns, read when a batch is taken (after
    the previous commit finished), so one lock around one connection is enough.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS sent (key TEXT PRIMARY KEY, stream TEXT NOT NULL, "
                "digest TEXT NOT NULL, sent_at REAL NOT NULL)"
            )

    def unchanged(self, items: t.Iterable[PushItem]) -> set[str]:
        """The keys of items whose digest is the one the remote already accepted."""
        found: set[str] = set()
        with self._lock:
            for item in items:
                row = self._con.execute("SELECT digest FROM sent WHERE key = ?", [item.key])
                if row.fetchone() == (item.digest,):
                    found.add(item.key)
        return found

    def record(self, items: t.Sequence[PushItem]) -> None:
        """Remember accepted items (one transaction: a kill loses none or all of one call)."""
        if not items:
            return
        now = time.time()
        rows = [(i.key, i.stream, i.digest, now) for i in items]
        with self._lock, self._con:
            self._con.execute("BEGIN")
            self._con.executemany("INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?)", rows)

    def forget(self, keys: t.Iterable[str]) -> None:
        """Drop keys the remote refused after all, so their next version is sent again."""
        with self._lock, self._con:
            self._con.execute("BEGIN")
            self._con.executemany("DELETE FROM sent WHERE key = ?", [(k,) for k in keys])

    def close(self) -> None:
        with self._lock:
            self._con.close()


@dataclasses.dataclass(slots=True)
class Reject:
    """A record that will not reach the remote, and why (a line of the rejects file)."""

    stream: str
    record: t.Any
    key: str
    reason: str


@dataclasses.dataclass
class _Batch:
    calls: list[tuple[PushSink, list[PushItem]]]  # (sink, items of one call)
    rejects: list[Reject]
    unchanged: collections.Counter[str]  # per stream: records the ledger says are sent
    skipped: collections.Counter[tuple[str, str]]  # (stream, why) -> records not sent


class PushLoop(CommitLoop):
    """A push target's message loop: stage per stream, send on commit, STATE after confirmed."""

    def __init__(
        self,
        make_sink: t.Callable[[str, dict, list[str]], PushSink],
        settings: PushSettings,
        *,
        retry: Retry | None = None,
    ) -> None:
        super().__init__(max_batch_seconds=settings.max_batch_seconds, thread_name="push-commit")
        self.make_sink = make_sink
        self.settings = settings
        self.retry: Retry = retry or (lambda attempt: attempt())
        self.limiter = RateLimiter(settings.requests_per_second)
        self.ledger = Ledger(settings.ledger_path)
        self.sinks: dict[str, PushSink] = {}
        self._pending: dict[str, dict[str, PushItem]] = {}  # stream -> key -> latest item
        self._rejects: list[Reject] = []
        self._skipped: collections.Counter[tuple[str, str]] = collections.Counter()
        self._staged = 0
        self._workers = concurrent.futures.ThreadPoolExecutor(settings.workers, "push-send")

    # -- staging (main thread) ----------------------------------------------------------------

    def on_schema(self, msg: dict) -> None:
        """A stream's sink; a changed SCHEMA first commits what was staged under the old one."""
        stream, schema, keys = msg.get("stream"), msg.get("schema"), msg.get("key_properties")
        if not isinstance(stream, str) or not stream or not isinstance(schema, dict):
            self.fail_input("SCHEMA without a stream name or schema object")
        keys = keys or []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            self.fail_input(f"SCHEMA for stream {stream!r}: bad key_properties")
        sink = self.make_sink(stream, schema, keys)
        if self._pending.get(stream) or (sink.after_earlier_streams and self._staged):
            self.commit()
        self.wait()  # the sink being replaced may be sending
        self.sinks[stream] = sink

    def on_record(self, msg: dict, line: bytes) -> None:
        """Stage the record's payload (the last version per key wins in a batch), or a reject."""
        sink = self.sinks.get(msg.get("stream"))  # type: ignore[arg-type]
        if sink is None:
            self.missing_schema(msg, "the current batch")
        self._staged += 1
        item = self._stage(sink, msg.get("record"))
        if item is not None:
            pending = self._pending.setdefault(sink.stream, {})
            pending.pop(item.key, None)  # keep input order for the latest version
            pending[item.key] = item
        if self._staged >= self.settings.batch_size_rows or (
            self.batch_age() >= self.max_batch_seconds
        ):
            self.commit()

    def _stage(self, sink: PushSink, record: t.Any) -> PushItem | None:
        """The record as an item to send; None when it is a reject (kept for the batch)."""
        if not isinstance(record, dict):
            self._rejects.append(Reject(sink.stream, record, "", "RECORD without a record object"))
            return None
        missing = [k for k in sink.key_properties if record.get(k) is None]
        if missing:
            reason = f"missing key properties {missing}"
            self._rejects.append(Reject(sink.stream, record, "", reason))
            return None
        try:
            item = _item(sink, record)
        except Skip as exc:
            self._skipped[sink.stream, str(exc)] += 1
            return None
        except (ValueError, TypeError, KeyError) as exc:
            reason = f"cannot build the payload: {type(exc).__name__}: {exc}"
            self._rejects.append(Reject(sink.stream, record, "", reason))
            return None
        limit = sink.max_record_bytes
        if limit is not None and len(item.body) > limit:
            reason = (
                f"record is {len(item.body)} bytes as sent, over the limit of {limit} "
                "bytes per record (max_record_bytes)"
            )
            self._rejects.append(Reject(sink.stream, record, item.key, reason))
            return None
        return item

    def has_pending(self) -> bool:
        return self._staged > 0

    def take_batch(self) -> _Batch | None:
        """What to send (records whose content the remote has not accepted yet) and the
        rejects found while staging; runs after the previous commit, so the ledger is current."""
        if not self._staged:
            return None
        batch = _Batch([], self._rejects, collections.Counter(), self._skipped)
        for stream, pending in self._pending.items():
            sink = self.sinks[stream]
            items = list(pending.values())
            known = self.ledger.unchanged(items)
            batch.unchanged[stream] += len(known)
            fresh = [i for i in items if i.key not in known]
            batch.calls += [(sink, chunk) for chunk in _calls(sink, fresh)]
        self.discard()
        return batch

    def discard(self) -> None:
        self._pending = {}
        self._rejects = []
        self._skipped = collections.Counter()
        self._staged = 0

    # -- sending (committer thread, calls on the worker threads) -----------------------------

    def commit_batch(self, batch: _Batch) -> None:
        """Send every call of the batch; ledger what was accepted, file what was rejected.

        Every call is waited for, so a failed call still lets the others' accepted records
        into the ledger (a re-run does not send them again); then the failure is raised and
        the STATE after this batch is not emitted.
        """
        futures = [self._workers.submit(self._call, sink, items) for sink, items in batch.calls]
        sent: collections.Counter[str] = collections.Counter()
        failure: BaseException | None = None
        for (sink, items), future in zip(batch.calls, futures, strict=True):
            try:
                outcomes = future.result()
            except BaseException as exc:  # raised below, after the ledger
                failure = failure or exc
                continue
            done = list(zip(items, outcomes, strict=True))
            accepted = [item for item, why in done if why is None]
            self.ledger.record(accepted)
            sent[sink.stream] += len(accepted)
            batch.rejects += [
                Reject(i.stream, i.record, i.key, why) for i, why in done if why is not None
            ]
        self._write_rejects(batch.rejects)
        rejected = collections.Counter(r.stream for r in batch.rejects)
        streams = sorted({*sent, *batch.unchanged, *rejected, *(s for s, _ in batch.skipped)})
        for stream in streams:
            log_commit(stream, sent[stream], rejected[stream])
        log.info(
            "committed %s",
            ", ".join(
                f"{s}: {sent[s]} sent, {batch.unchanged[s]} unchanged, {rejected[s]} rejected"
                + "".join(
                    f", {n} skipped ({why})" for (k, why), n in batch.skipped.items() if k == s
                )
                for s in streams
            ),
        )
        if failure is not None:
            raise failure

    def _call(self, sink: PushSink, items: list[PushItem]) -> t.Sequence[str | None]:
        """One call under the rate limit (each attempt waits for its slot)."""

        def attempt() -> t.Sequence[str | None]:
            if not sink.paced_by_transport:
                self.limiter.acquire()
            return sink.send(items)

        try:
            outcomes = self.retry(attempt)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise PushError(
                f"stream {sink.stream!r}: a call of {len(items)} records failed: {first}"
            ) from exc
        if len(outcomes) != len(items):
            raise PushError(
                f"stream {sink.stream!r}: send returned {len(outcomes)} outcomes for "
                f"{len(items)} records"
            )
        return outcomes

    def _write_rejects(self, rejects: list[Reject]) -> None:
        """Append rejects to the JSONL file, durably before the STATE that covers them."""
        if not rejects:
            return
        path = self.settings.rejects_path
        path.parent.mkdir(parents=True, exist_ok=True)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with path.open("ab") as out:
            for r in rejects:
                row = {"stream": r.stream, "key": r.key, "reason": r.reason, "record": r.record}
                out.write(orjson.dumps({**row, "at": at}) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        for r in rejects:
            log.warning("rejected a %s record: %s", r.stream, r.reason)

    def finish(self) -> None:
        """End of input: the last batch, then the remote's late refusals, then the end."""
        self.commit()
        self.wait()
        late = [reject for sink in self.sinks.values() for reject in sink.late_rejects()]
        if late:
            self.ledger.forget(r.key for r in late if r.key)
            self._write_rejects(late)
        self.end(None)

    def interrupt_commit(self) -> None:
        """A signal: calls not started are cancelled; those on the wire end and are ledgered."""
        self._workers.shutdown(wait=False, cancel_futures=True)

    def end(self, error: str | None) -> None:
        """Release the workers and the ledger (after the committer thread)."""
        try:
            super().end(error)
        finally:
            self._workers.shutdown(wait=True, cancel_futures=True)
            self.ledger.close()


PUSH_SETTINGS = th.PropertiesList(
    th.Property(
        "ledger_path",
        th.StringType,
        default="./push-ledger.sqlite",
        description="SQLite file remembering what the remote accepted (key -> content hash), "
        "so an unchanged record is not sent again. One per destination account.",
    ),
    th.Property(
        "rejects_path",
        th.StringType,
        description="JSONL file rejects are appended to (default: next to the ledger, "
        "<ledger>.rejects.jsonl): stream, key, reason, record.",
    ),
    th.Property(
        "workers", th.IntegerType(minimum=1), default=4, description="Calls in flight at once."
    ),
    th.Property(
        "requests_per_second",
        th.NumberType(minimum=0),
        description="Client-side rate limit shared by the workers (default: the remote's "
        "documented limit; 0: none).",
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType(minimum=1),
        default=DEFAULT_BATCH_ROWS,
        description="Records per commit: their calls run in parallel, then STATE moves.",
    ),
    th.Property(
        "max_batch_seconds",
        th.NumberType(minimum=0),
        default=30,
        description="Send what is staged once this long has passed since the last commit "
        "(checked as messages arrive).",
    ),
)


class PushTarget(LoopTarget):
    """A push target: set ``sink_class`` (and ``rate_per_second``, the remote's limit); add
    the connection settings to ``config_jsonschema`` next to ``PUSH_SETTINGS``."""

    sink_class: type[PushSink] = PushSink
    rate_per_second = 0.0

    def retry_hook(self) -> Retry | None:
        """The retrier for a call (429/5xx, Retry-After); the HTTP layer's, None: no retry."""
        return None

    def make_sink(self, stream: str, schema: dict, key_properties: list[str]) -> PushSink:
        """One stream's sink (override to choose a class per stream)."""
        return self.sink_class(stream, schema, key_properties, self.config)

    def make_loop(self) -> PushLoop:
        settings = PushSettings.from_config(self.config, rate=self.rate_per_second)
        return PushLoop(self.make_sink, settings, retry=self.retry_hook())


def _item(sink: PushSink, record: dict) -> PushItem:
    payload = sink.build_payload(record)
    body = orjson.dumps(payload, option=_CANON)
    digest = hashlib.sha256(body).hexdigest()
    if sink.key_properties:
        ident = orjson.dumps([record.get(k) for k in sink.key_properties], option=_CANON)
    else:
        ident = digest.encode()
    key = hashlib.sha256(sink.stream.encode() + b"\x1f" + ident).hexdigest()
    return PushItem(sink.stream, record, payload, body, key, digest)


def _calls(sink: PushSink, items: list[PushItem]) -> t.Iterator[list[PushItem]]:
    """Split items into calls by the sink's records-per-call and bytes-per-call limits."""
    chunk: list[PushItem] = []
    size = 0
    limit = sink.max_call_bytes
    for item in items:
        grows = len(item.body) + 1  # a comma or bracket each
        full = len(chunk) >= sink.max_records_per_call
        if chunk and (full or (limit is not None and size + grows + 1 > limit)):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += grows
    if chunk:
        yield chunk
