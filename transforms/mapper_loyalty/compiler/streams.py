"""Stream rules: one input stream's mapping (``to``, ``key``, ``filter``, ``explode``,
``fields``, ``unmapped``, ``separator``) compiled into a :class:`CompiledStream`.

Its record function is generated later (:mod:`.codegen`), once every stream of the mapping is
known, because streams sharing an output stream pad each other's fields.
"""

from __future__ import annotations

import typing as t
from datetime import tzinfo

from mapper_loyalty.compiler.context import StreamContext
from mapper_loyalty.compiler.fields import compile_field
from mapper_loyalty.compiler.filters import Predicate, compile_filter
from mapper_loyalty.compiler.model import CompiledMapping, CompiledStream, FieldRule, PathRef
from mapper_loyalty.loader import MappingError
from mapper_loyalty.rules import EXTRA_FIELD, REJECTS, _show
from singer_kit.yamlio import LineDict

STREAM_KEYS = ("to", "key", "fields", "filter", "explode", "unmapped", "separator")


class StreamDefaults(t.NamedTuple):
    """The mapping's top-level settings a stream inherits (or overrides)."""

    separator: str
    tz: tzinfo
    unmapped: str


def compile_stream(
    mapping: CompiledMapping, name: t.Any, node: t.Any, line: int, defaults: StreamDefaults
) -> CompiledStream:
    """Compile the mapping of input stream ``name`` (the YAML ``node`` at ``line``)."""
    if not isinstance(name, str) or not name:
        raise MappingError(f"{mapping.filename}:{line}: a stream name must be text")
    ctx = StreamContext(mapping.filename, name, defaults.separator, defaults.tz)
    if not isinstance(node, LineDict):
        ctx.fail(line, "mapping", "expected a mapping with to, key and fields")
    ctx.check_keys(node, STREAM_KEYS, "mapping")
    _read_separator(ctx, node)
    output = _output_name(ctx, node, name)
    unmapped = node.get("unmapped", defaults.unmapped)
    if unmapped not in ("drop", "extra"):
        ctx.fail(node.line_of("unmapped"), "unmapped", "must be drop or extra")
    explode = _explode(ctx, node) if "explode" in node else None
    filter_refs: list[PathRef] = []
    predicate: Predicate | None = None
    if "filter" in node:
        predicate = compile_filter(ctx, node["filter"], node.line_of("filter"), filter_refs)
    fields = _fields(ctx, node, unmapped)
    return CompiledStream(
        mapping=mapping,
        input=name,
        output=output,
        line=line,
        key=_key(ctx, node, fields),
        fields=fields,
        filter=predicate,
        filter_refs=filter_refs,
        explode=explode,
        alias=ctx.alias,
        unmapped=unmapped,
    )


def _read_separator(ctx: StreamContext, node: LineDict) -> None:
    """A stream's own ``separator:`` for its paths (keys that contain the mapping's)."""
    if "separator" in node:
        ctx.separator = node["separator"]
        if not isinstance(ctx.separator, str) or not ctx.separator:
            ctx.fail(node.line_of("separator"), "separator", "must be non-empty text")


def _output_name(ctx: StreamContext, node: LineDict, name: str) -> str:
    """``to:``, by default the input stream's name; never the rejects stream."""
    output = node.get("to", name)
    if not isinstance(output, str) or not output or output == REJECTS:
        ctx.fail(node.line_of("to"), "to", f"invalid output stream name {_show(output)}")
    return output


def _explode(ctx: StreamContext, node: LineDict) -> PathRef:
    """``explode: {path: Lines, as: line}``; later paths under ``line.`` read the element."""
    spec = node["explode"]
    line = node.line_of("explode")
    if not isinstance(spec, LineDict) or set(spec) != {"path", "as"}:
        ctx.fail(line, "explode", "write explode: {path: Lines, as: line}")
    alias = spec["as"]
    if not isinstance(alias, str) or not alias or ctx.separator in alias:
        ctx.fail(line, "explode", f"as: must be a plain name, got {_show(alias)}")
    explode = ctx.ref(spec["path"], line, "explode")
    if explode.is_list:
        ctx.fail(line, "explode", "the explode path cannot contain a wildcard")
    ctx.alias = alias
    return explode


def _fields(ctx: StreamContext, node: LineDict, unmapped: str) -> list[FieldRule]:
    """Every ``fields:`` rule, in the order written (the output's field order)."""
    fields_node = node.get("fields")
    if not isinstance(fields_node, LineDict) or not fields_node:
        ctx.fail(node.line_of("fields"), "fields", "needs a mapping of output field: rule")
    rules = [
        compile_field(ctx, name, spec, fields_node.line_of(name))
        for name, spec in fields_node.items()
    ]
    if unmapped == "extra" and EXTRA_FIELD in fields_node:
        ctx.fail(
            fields_node.line_of(EXTRA_FIELD),
            f"field '{EXTRA_FIELD}'",
            "duplicate output field: unmapped: extra already writes it",
        )
    return rules


def _key(ctx: StreamContext, node: LineDict, fields: list[FieldRule]) -> list[str]:
    """``key:``, a name or a list of output field names."""
    key = node.get("key", [])
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
        ctx.fail(node.line_of("key"), "key", "must be a list of output field names")
    names = {rule.name for rule in fields}
    for k in key:
        if k not in names:
            ctx.fail(node.line_of("key"), "key", f"key property '{k}' is not an output field")
    return key
