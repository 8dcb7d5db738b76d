"""The store's block reader: whatever sizes the input arrives in, the same rows, and big blocks.

In-process (``Loader.process_stream``) so the reads can be cut at every awkward place: inside
a line, right after a newline, a line longer than a read, no newline at the very end.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import duckdb
import pytest
from store_helpers import record, schema, singer_bytes, state

from target_loyalty_store.loader import Loader

SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "note": {"type": ["string", "null"]}},
}


def _input(records: int) -> bytes:
    """Two streams, STATEs between them, one note longer than any read; no final newline."""
    messages: list[dict] = [schema("a", SCHEMA, ["id"]), schema("b", SCHEMA, ["id"])]
    for i in range(records):
        note = "x" * 300_000 if i == 7 else f"note {i}"
        messages.append(record("a" if i % 5 else "b", {"id": i, "note": note}))
        if i % 1000 == 999:
            messages.append(state({"done": i}))
    return singer_bytes(messages).rstrip(b"\n")


class _Chunks(io.RawIOBase):
    """A pipe that hands out the input in reads of random sizes (``read1`` returns one)."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._rnd = random.Random(seed)

    def read1(self, size: int = -1) -> bytes:
        n = min(size, self._rnd.choice([1, 17, 4096, 65_536, 200_000]))
        chunk = self._data[self._pos : self._pos + n].tobytes()
        self._pos += len(chunk)
        return chunk


class _CountingLoader(Loader):
    """Records the size of every block the reader hands over (not the halves it splits)."""

    blocks: list[int]
    _depth = 0

    def _block(self, block: bytes) -> None:
        if not self._depth:
            self.blocks.append(len(block))
        self._depth += 1
        try:
            super()._block(block)
        finally:
            self._depth -= 1


def _load(tmp_path: Path, name: str, source: io.RawIOBase | io.BufferedReader) -> tuple:
    db = tmp_path / f"{name}.duckdb"
    loader = _CountingLoader({"database": str(db), "staging_dir": str(tmp_path)})
    loader.blocks = []
    counts = loader.process_stream(source)  # type: ignore[arg-type]
    loader.finish()
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = {s: con.execute(f"SELECT id, note FROM {s} ORDER BY id").fetchall() for s in "ab"}
    finally:
        con.close()
    return rows, dict(counts), loader.blocks


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reads_of_any_size_load_every_record_once(tmp_path, seed):
    data = _input(3_000)
    rows, counts, _ = _load(tmp_path, f"chunks{seed}", _Chunks(data, seed))
    expected = {s: [] for s in "ab"}
    for i in range(3_000):
        expected["a" if i % 5 else "b"].append((i, "x" * 300_000 if i == 7 else f"note {i}"))
    assert rows == expected
    assert counts["RECORD"] == 3_000 and counts["STATE"] == 3


def test_a_file_is_staged_in_blocks_of_about_a_mebibyte(tmp_path):
    """``read1`` on a buffered file returns what was asked for: blocks stay ~1 MiB (completing
    a line with ``readline`` used to leave every later block a few KB)."""
    data = _input(60_000)
    _, counts, blocks = _load(tmp_path, "file", io.BufferedReader(io.BytesIO(data)))
    assert counts["RECORD"] == 60_000
    assert sum(blocks) == len(data) + 1  # every byte once, plus the last line's newline
    assert len(blocks) <= len(data) // (1 << 20) + 2
