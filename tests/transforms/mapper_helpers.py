"""Helpers for mapper-loyalty tests: write a mapping, compile it, run messages through it."""

from __future__ import annotations

import textwrap
import typing as t
from pathlib import Path

import msgspec

from mapper_loyalty import CompiledMapping, compile_mapping
from mapper_loyalty.runner import Runner

REPO = Path(__file__).resolve().parents[2]
FLEXPOS_MAPPING = REPO / "transforms" / "mappings" / "flexpos_to_store.yaml"
FLEXPOS_CATALOG = REPO / "catalogs" / "flexpos.json"

# A small fixture catalog, independent of the tap, for rule and validation tests.
CATALOG: dict[str, t.Any] = {
    "streams": [
        {
            "tap_stream_id": "customers",
            "stream": "customers",
            "schema": {
                "type": "object",
                "properties": {
                    "Uid": {"type": "string"},
                    "Email": {"type": ["string", "null"]},
                    "Birthday": {"type": ["string", "null"]},
                    "CustomerNumber": {"type": ["integer", "null"]},
                    "IsActive": {"type": ["boolean", "null"]},
                    "IsClubMember": {"type": ["integer", "null"]},
                    "Amount": {"type": ["number", "null"]},
                    "cards": {
                        "type": ["array", "null"],
                        "items": {
                            "type": "object",
                            "properties": {
                                "Cardnumber": {"type": ["integer", "null"]},
                                "Cardname": {"type": ["string", "null"]},
                            },
                        },
                    },
                    "ModifiedDate": {"type": "string", "format": "date-time"},
                },
            },
        },
        {
            "tap_stream_id": "journals",
            "stream": "journals",
            "schema": {
                "type": "object",
                "properties": {
                    "Uid": {"type": "string"},
                    "CustomerUid": {"type": ["string", "null"]},
                    "IsReturn": {"type": ["boolean", "null"]},
                    "Lines": {
                        "type": ["array", "null"],
                        "items": {
                            "type": "object",
                            "properties": {
                                "LineNumber": {"type": "integer"},
                                "Quantity": {"type": ["number", "null"]},
                                "TotalInclVat": {"type": ["number", "null"]},
                            },
                        },
                    },
                },
            },
        },
    ]
}


def write_mapping(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def compile_text(tmp_path: Path, text: str, catalog: t.Any = None) -> CompiledMapping:
    return compile_mapping(write_mapping(tmp_path, text), catalog=catalog)


def run_messages(mapping: CompiledMapping, messages: list[dict]) -> tuple[list[dict], Runner]:
    """Run messages through a Runner; return the decoded output messages and the runner."""
    out: list[bytes] = []
    runner = Runner(mapping, out.append, warn=lambda _text: None)
    runner.run(msgspec.json.encode(m) + b"\n" for m in messages)
    return [msgspec.json.decode(line) for line in out], runner


def records(messages: list[dict], stream: str) -> list[dict]:
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


def rec(stream: str, record: dict) -> dict:
    return {"type": "RECORD", "stream": stream, "record": record}
