"""Fixtures for mapper-loyalty tests."""

from __future__ import annotations

import textwrap
import typing as t
from pathlib import Path

import pytest
from mapper_helpers import rec, records, run_messages, write_mapping

from mapper_loyalty import compile_mapping


@pytest.fixture
def one_stream(tmp_path: Path) -> t.Callable[..., list[dict]]:
    """Map records of stream `s` with the given fields YAML and return the output records."""

    def apply(fields: str, rows: list[dict], extra: str = "") -> list[dict]:
        body = textwrap.indent(textwrap.dedent(fields).strip("\n"), " " * 6)
        text = f"{extra}\nstreams:\n  s:\n    to: out\n    fields:\n{body}\n"
        mapping = compile_mapping(write_mapping(tmp_path, text))
        messages, _ = run_messages(mapping, [rec("s", r) for r in rows])
        return records(messages, "out") + records(messages, "_rejects")

    return apply
