"""Singer plumbing shared by every tap, mapper and target: fast message IO and BATCH
manifests (instants and date formats live in ``singer_kit.dates``).

singer-sdk writes with stdlib ``json`` and flushes stdout after every message; on a million
records that costs several seconds per hop (see DESIGN.md, performance principles).
``FastWriter`` plugs into singer-sdk's ``message_writer_class`` hook. Reading needs no
SDK reader: the mapper and the target run their own loops over raw input lines.
"""

from __future__ import annotations

import json
import re
import sys
import typing as t
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import msgspec
from singer_sdk.contrib.msgspec import enc_hook
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.encoding.simple import Message, StateMessage

# The one Singer encoder of every tap, mapper and target. msgspec, not orjson: on dicts that
# msgspec decoded it measured ~3x faster, and it writes integers beyond 64 bits exactly.
ENCODER = msgspec.json.Encoder(enc_hook=enc_hook, decimal_format="number")
# DuckDB's JSON reader refuses deeper documents (the whole line counts: message, record,
# value), so the store cannot hold them.
MAX_JSON_DEPTH = 128
# A top-level "key": "string" pair, any other string (skipped whole), or a bracket.
_SCAN = re.compile(
    rb'"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)"|"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL
)


def is_valid_json(raw: bytes) -> bool:
    """Whether a line that msgspec/orjson refused is valid JSON all the same.

    Valid JSON can still defeat them: a lone surrogate (``"\\ud800"``), which stdlib json
    takes, or nesting deeper than any decoder's recursion limit (a RecursionError here too:
    counted as valid, it is too deep to check). Such a record is one reject, not a stop.
    """
    try:
        json.loads(raw)
    except RecursionError:
        return True
    except ValueError:  # not JSON (or not UTF-8)
        return False
    return True


def top_level_strings(raw: bytes) -> dict[str, str]:
    """The top-level ``"key": "string"`` fields of a JSON object line, without decoding it.

    Finds the ``type`` and ``stream`` of a line no decoder can take (see is_valid_json): strings
    are skipped whole and brackets counted, so nothing nested is parsed.
    """
    found: dict[str, str] = {}
    depth = 0
    for match in _SCAN.finditer(raw):
        token = match.group()
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
        elif depth == 1 and match.group(1) is not None:
            key = json.loads(b'"' + match.group(1) + b'"')
            found.setdefault(key, json.loads(b'"' + match.group(2) + b'"'))
    return found


def too_deep(value: t.Any) -> bool:
    """Whether arrays/objects in a decoded value nest deeper than MAX_JSON_DEPTH (iterative)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def decode_raw(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """``record`` with the values a parser left as JSON text (``msgspec.Raw``, see
    ``http.classify.json_records``) decoded in place, for code that reads them."""
    for name, value in record.items():
        if type(value) is msgspec.Raw:
            record[name] = msgspec.json.decode(value)
    return record


def dumps_line(obj: t.Any) -> bytes:
    """Encode one Singer message as a JSON line (bytes, newline included)."""
    return ENCODER.encode(obj) + b"\n"


class FastWriter(GenericSingerWriter[bytes, Message]):
    """msgspec writer that lets stdout buffer records and flushes only on STATE.

    Flushing on STATE keeps the downstream process's view of progress prompt, while records
    travel in large writes instead of one syscall each.
    """

    def serialize_message(self, message: Message) -> bytes:
        """Encode a Singer message object as one line."""
        return dumps_line(message.to_dict())

    def write_message(self, message: Message) -> None:
        """Write a message; flush when it is STATE so bookmarks are never held back."""
        out = sys.stdout.buffer
        out.write(self.serialize_message(message))
        if isinstance(message, StateMessage):
            out.flush()


def batch_file_path(url: str) -> Path:
    """The local path of a Singer BATCH manifest entry: a ``file://`` URL or a plain path.

    Raises ValueError for anything else (``s3://``, another host): the pipelines here move
    BATCH files on one machine only.
    """
    parts = urlparse(url)
    if parts.scheme not in ("", "file") or parts.netloc not in ("", "localhost"):
        raise ValueError(f"unsupported URL {url!r}: only local file:// URLs are supported")
    return Path(url2pathname(parts.path)) if parts.scheme else Path(url)


def batch_manifest(msg: t.Mapping[str, t.Any]) -> tuple[str, list[Path]]:
    """The compression and local files of a Singer BATCH message (JSONL, gzip or not).

    Raises ValueError with a one-line reason; callers add where the message was.
    """
    encoding = msg.get("encoding")
    if not isinstance(encoding, dict) or encoding.get("format") != "jsonl":
        raise ValueError(f"only encoding format 'jsonl' is supported, got {encoding!r}")
    compression = encoding.get("compression") or "none"
    if compression not in ("gzip", "none"):
        raise ValueError(f"compression {compression!r} is not supported ('gzip' or 'none')")
    manifest = msg.get("manifest")
    if not isinstance(manifest, list) or not all(isinstance(u, str) for u in manifest):
        raise ValueError("manifest is not a list of URLs")
    return compression, [batch_file_path(url) for url in manifest]
