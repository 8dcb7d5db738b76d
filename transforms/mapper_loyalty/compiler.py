"""Compile a mapping YAML into per-stream record functions, once, before any data flows.

The compiled form is what makes the mapper fast and its errors early: every rule becomes a
closure with its options bound, each stream's record function is generated Python (a dict
literal whose simple renames are inline ``r.get(...)`` calls), and every path, cast and output
field is checked here — against the tap's catalog when one is given — so a typo fails at start
with ``file:line`` instead of after a million records.
"""

from __future__ import annotations

import copy
import dataclasses
import typing as t
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from mapper_loyalty.loader import MappingError, load_yaml
from mapper_loyalty.rules import (
    CAST_TYPES,
    CASTS_FROM,
    SIMPLE_CASTS,
    Convert,
    Getter,
    RuleFailure,
    Segment,
    _show,
    cast_schema,
    literal_type,
    make_date_cast,
    make_datetime_cast,
    make_getter,
    parse_path,
    step_index,
    template_text,
)
from singer_kit.dates import compile_format
from singer_kit.yamlio import LineDict

Record = dict[str, t.Any]
Schema = dict[str, t.Any]

TOP_KEYS = ("version", "separator", "timezone", "on_error", "unmapped", "other_streams")
TOP_KEYS += ("catalog", "streams")
STREAM_KEYS = ("to", "key", "fields", "filter", "explode", "unmapped", "separator")
SOURCE_KEYS = ("path", "coalesce", "const", "template")
FIELD_KEYS = (*SOURCE_KEYS, "type", "format", "map", "lower", "trim", "default", "required")
COMPARISONS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "null", "not_null")
EXTRA_FIELD = "extra"


@dataclasses.dataclass
class PathRef:
    """A path a rule reads: from the record (``r``) or from the exploded element (``e``)."""

    text: str
    line: int
    segments: list[Segment]
    on_element: bool
    getter: Getter

    @property
    def is_list(self) -> bool:
        """True when a wildcard makes the value a list."""
        return any(s.wildcard for s in self.segments)


@dataclasses.dataclass
class FieldRule:
    """One output field, compiled."""

    name: str
    line: int
    kind: str  # path | coalesce | const | template
    refs: list[PathRef]
    const: t.Any = None
    cast: str | None = None
    fmt: str | None = None
    vmap: dict[t.Any, t.Any] | None = None
    lower: bool = False
    trim: bool = False
    default: t.Any = None
    required: bool = False
    source: t.Callable[[t.Any, t.Any], t.Any] | None = None  # coalesce / template / wildcard
    map_fn: Convert | None = None
    cast_fn: Convert | None = None  # None when folded into the map's values
    convert: Convert | None = None  # text -> map -> cast as one closure (wildcard elements)

    @property
    def uses_element(self) -> bool:
        """True when the value depends on the exploded element."""
        return any(ref.on_element for ref in self.refs)

    @property
    def is_list(self) -> bool:
        """True when the output is a list (wildcard path)."""
        return self.kind == "path" and self.refs[0].is_list


@dataclasses.dataclass
class CompiledStream:
    """The compiled mapping of one input stream to one output stream."""

    mapping: CompiledMapping
    input: str
    output: str
    line: int
    key: list[str]
    fields: list[FieldRule]
    filter: t.Callable[[Record], bool] | None
    filter_refs: list[PathRef]
    explode: PathRef | None
    alias: str | None
    unmapped: str
    map_record: t.Callable[[Record], t.Any]

    def where(self, line: int | None = None) -> str:
        """``file:line: stream 'x'`` prefix for messages."""
        return f"{self.mapping.filename}:{line or self.line}: stream '{self.input}'"

    def all_refs(self) -> t.Iterator[tuple[str, PathRef]]:
        """Every path this stream reads, with the rule that reads it."""
        if self.explode is not None:
            yield "explode", self.explode
        for ref in self.filter_refs:
            yield "filter", ref
        for rule in self.fields:
            for ref in rule.refs:
                yield rule.name, ref

    # -- checks against a source schema (catalog at start, SCHEMA messages at run time) ----

    def check(self, source: Schema, origin: str) -> None:
        """Raise MappingError for an unknown input path or a cast the source type rules out."""
        element: Schema | None = None
        if self.explode is not None:
            if self.alias in (source.get("properties") or {}):
                msg = (
                    f"{self.where(self.explode.line)} explode: as: '{self.alias}' hides the "
                    f"input field of that name in {origin}; pick another name"
                )
                raise MappingError(msg)
            element = resolve_schema(source, self.explode.segments)
            if element is None:
                self._unknown("explode", self.explode, origin)
            types = type_set(element or {})
            if types is not None and "array" not in types:
                msg = (
                    f"{self.where(self.explode.line)} explode: path '{self.explode.text}' is "
                    f"{'/'.join(sorted(types))} in {origin}, not an array"
                )
                raise MappingError(msg)
            element = (element or {}).get("items", {})
        for rule_name, ref in self.all_refs():
            if rule_name == "explode":
                continue
            if self._ref_schema(ref, source, element) is None:
                self._unknown(rule_name, ref, origin)
        for rule in self.fields:
            self._check_rule_types(rule, source, element, origin)

    def _ref_schema(self, ref: PathRef, source: Schema, element: Schema | None) -> Schema | None:
        root = (element if element is not None else {}) if ref.on_element else source
        return resolve_schema(root, ref.segments)

    def _unknown(self, rule: str, ref: PathRef, origin: str) -> t.NoReturn:
        what = "filter" if rule == "filter" else ("explode" if rule == "explode" else "field")
        label = f"{what} '{rule}'" if what == "field" else what
        msg = f"{self.where(ref.line)} {label}: unknown input path '{ref.text}' (not in {origin})"
        raise MappingError(msg)

    def _check_rule_types(
        self, rule: FieldRule, source: Schema, element: Schema | None, origin: str
    ) -> None:
        if rule.kind not in ("path", "coalesce"):
            return
        types: set[str] = set()
        for ref in rule.refs:
            ref_types = type_set(self._ref_schema(ref, source, element) or {})
            if ref_types is None:
                return  # an open schema: nothing to check against
            types |= ref_types
        types.discard("null")
        where = f"{self.where(rule.line)} field '{rule.name}'"
        if (rule.lower or rule.trim) and types - {"string"}:
            op = "lower" if rule.lower else "trim"
            msg = f"{where}: {op} applies to strings, but the source is {_types_text(types)}"
            raise MappingError(msg + f" in {origin}")
        if rule.vmap is not None:
            # The cast applies to the map's values (checked at compile time); here the keys
            # must be able to match the source at all, or every record would be rejected.
            groups = {_MATCH_GROUP.get(tp, tp) for tp in types}
            key_groups = {_MATCH_GROUP.get(literal_type(k), literal_type(k)) for k in rule.vmap}
            if groups and not groups & key_groups:
                msg = (
                    f"{where}: map keys are {_types_text(set(map(literal_type, rule.vmap)))} "
                    f"but the source is {_types_text(types)} in {origin} (quote the keys?)"
                )
                raise MappingError(msg)
            return
        if rule.cast is None:
            return
        bad = sorted(tp for tp in types if rule.cast not in CASTS_FROM.get(tp, frozenset()))
        if bad:
            msg = (
                f"{where}: cast to {rule.cast} cannot apply to source type "
                f"{_types_text(set(bad))} (path '{rule.refs[0].text}' in {origin})"
            )
            raise MappingError(msg)
        if rule.fmt is not None and types - {"string"}:
            msg = (
                f"{where}: format {rule.fmt!r} parses text, but the source is "
                f"{_types_text(types)} in {origin}"
            )
            raise MappingError(msg)

    # -- output schema ---------------------------------------------------------------------

    def output_properties(self, source: Schema | None) -> dict[str, Schema]:
        """Output JSON schema of each field, from the rules (and the source for plain paths)."""
        element = None
        if source is not None and self.explode is not None:
            element = (resolve_schema(source, self.explode.segments) or {}).get("items", {})
        props: dict[str, Schema] = {}
        for rule in self.fields:
            props[rule.name] = self._field_schema(rule, source, element)
        if self.unmapped == "extra":
            props[EXTRA_FIELD] = {"type": ["object"]}
        return props

    def _field_schema(
        self, rule: FieldRule, source: Schema | None, element: Schema | None
    ) -> Schema:
        non_null = rule.required or rule.name in self.key or rule.default is not None
        if rule.kind == "const":
            schema: Schema = (
                cast_schema(rule.cast) if rule.cast else {"type": [literal_type(rule.const)]}
            )
            non_null = rule.const is not None
        elif rule.cast is not None:
            schema = cast_schema(rule.cast)
        elif rule.vmap is not None:
            schema = {"type": sorted({literal_type(v) for v in rule.vmap.values()})}
        elif rule.kind == "template" or rule.lower or rule.trim:
            schema = {"type": ["string"]}
        else:
            found = [
                self._ref_schema(ref, source, element) if source is not None else None
                for ref in rule.refs
            ]
            schema = merge_schemas([f if f is not None else {} for f in found])
            schema = {k: v for k, v in schema.items() if k not in ("description", "title")}
        if rule.is_list:
            schema = {"type": ["array"], "items": schema}
        if rule.default is not None and "type" in schema:
            default_type = literal_type(rule.default)
            if default_type not in schema["type"]:
                schema["type"] = [*schema["type"], default_type]
        return not_null(schema) if non_null else nullable(schema)


@dataclasses.dataclass
class CompiledMapping:
    """A whole mapping file, compiled: what ``compile_mapping`` returns."""

    path: Path
    filename: str
    on_error: str
    other_streams: str
    streams: dict[str, CompiledStream] = dataclasses.field(default_factory=dict)
    catalog_schemas: dict[str, Schema] = dataclasses.field(default_factory=dict)
    catalog_origin: str | None = None

    def outputs(self) -> dict[str, list[CompiledStream]]:
        """Output stream -> the input streams mapped to it."""
        out: dict[str, list[CompiledStream]] = {}
        for stream in self.streams.values():
            out.setdefault(stream.output, []).append(stream)
        return out

    def output_schema(self, output: str, sources: t.Mapping[str, Schema]) -> Schema:
        """The SCHEMA of one output stream: the union over every input stream mapped to it."""
        members = self.outputs()[output]
        per_stream = [
            m.output_properties(sources.get(m.input, self.catalog_schemas.get(m.input)))
            for m in members
        ]
        names: list[str] = []
        for props in per_stream:
            names.extend(n for n in props if n not in names)
        properties: dict[str, Schema] = {}
        for name in names:
            found = [props[name] for props in per_stream if name in props]
            merged = merge_schemas(found)
            properties[name] = merged if len(found) == len(per_stream) else nullable(merged)
        return {"type": "object", "properties": properties}

    def key_properties(self, output: str) -> list[str]:
        """Key of an output stream (all input streams mapped to it agree, checked at compile)."""
        return list(self.outputs()[output][0].key)

    def check_catalog(self, catalog: t.Mapping[str, t.Any], origin: str) -> None:
        """Check every stream against a Singer catalog (``{"streams": [...]}``)."""
        schemas: dict[str, Schema] = {}
        for entry in catalog.get("streams") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("schema"), dict):
                continue
            for name in (entry.get("tap_stream_id"), entry.get("stream")):
                if isinstance(name, str):
                    schemas.setdefault(name, entry["schema"])
        for stream in self.streams.values():
            if stream.input not in schemas:
                known = ", ".join(sorted(schemas)) or "none"
                msg = f"{stream.where()}: stream not in {origin} (it has: {known})"
                raise MappingError(msg)
            stream.check(schemas[stream.input], origin)
        self.catalog_schemas = schemas
        self.catalog_origin = origin


# --- JSON schema helpers ---------------------------------------------------------------------


def _alternatives(schema: Schema) -> list[Schema]:
    alts = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(alts, list):
        out: list[Schema] = []
        for alt in alts:
            if isinstance(alt, dict):
                out.extend(_alternatives(alt))
        return out
    return [schema]


def type_set(schema: Schema) -> set[str] | None:
    """The JSON types a schema allows, or None when it does not say (open)."""
    types: set[str] = set()
    for alt in _alternatives(schema):
        tp = alt.get("type")
        if tp is None:
            return None
        types.update([tp] if isinstance(tp, str) else tp)
    return types


def resolve_schema(schema: Schema, segments: t.Sequence[Segment]) -> Schema | None:
    """Sub-schema at a path; ``{}`` where the schema is open; None when the path is unknown."""
    for seg in segments:
        found: list[Schema] = []
        for alt in _alternatives(schema):
            tp = alt.get("type")
            if tp is None and "properties" not in alt and "items" not in alt:
                return {}
            types = {tp} if isinstance(tp, str) else set(tp or ())
            if (seg.wildcard or seg.index is not None) and ("array" in types or "items" in alt):
                found.append(alt.get("items", {}))
            if "object" in types or "properties" in alt:
                props = alt.get("properties")
                if props is None:
                    found.append({})
                elif not seg.wildcard and seg.key in props:
                    found.append(props[seg.key])
                elif seg.wildcard or seg.index in (0, -1):
                    # An object read as a one-element list (rules.step_index): itself.
                    found.append(alt)
        if not found:
            return None
        schema = found[0] if len(found) == 1 else {"anyOf": found}
    return schema


def nullable(schema: Schema) -> Schema:
    """The schema with null allowed (open schemas already allow it)."""
    tp = schema.get("type")
    if tp is None:
        return schema
    types = [tp] if isinstance(tp, str) else list(tp)
    if "null" in types:
        return schema
    return {**schema, "type": [*types, "null"]}


def not_null(schema: Schema) -> Schema:
    """The schema without null: for keys, required fields and fields with a default."""
    tp = schema.get("type")
    if not isinstance(tp, list) or "null" not in tp:
        return schema
    return {**schema, "type": [x for x in tp if x != "null"]}


def merge_schemas(schemas: list[Schema]) -> Schema:
    """Union of field schemas (two mappings into one stream, coalesce over several paths)."""
    if not schemas:
        return {}
    first = copy.deepcopy(schemas[0])
    for other in schemas[1:]:
        if other == first:
            continue
        a, b = first.get("type"), other.get("type")
        if a is None or b is None:
            return {}
        types = [a] if isinstance(a, str) else list(a)
        for tp in [b] if isinstance(b, str) else b:
            if tp not in types:
                types.append(tp)
        first["type"] = types
        if first.get("format") != other.get("format"):
            first.pop("format", None)
    if "null" in first.get("type", ()):
        first["type"] = [tp for tp in first["type"] if tp != "null"] + ["null"]
    return first


# Python compares 1 == 1.0 == True, so a map key of one of these types can match the others.
_MATCH_GROUP = {"integer": "number", "boolean": "number"}


def _types_text(types: set[str]) -> str:
    return "/".join(sorted(types)) or "null"


# --- compiling the YAML ------------------------------------------------------------------------


class _Ctx:
    """What a stream's compilation needs to know and report."""

    def __init__(self, filename: str, stream: str, separator: str, tz: tzinfo) -> None:
        self.filename = filename
        self.stream = stream
        self.separator = separator
        self.tz = tz
        self.alias: str | None = None

    def fail(self, line: int, what: str, message: str) -> t.NoReturn:
        raise MappingError(f"{self.filename}:{line}: stream '{self.stream}' {what}: {message}")

    def ref(self, path: t.Any, line: int, what: str) -> PathRef:
        if not isinstance(path, str) or not path.strip():
            self.fail(line, what, f"a path must be text, got {_show(path)}")
        try:
            segments = parse_path(path, self.separator)
        except ValueError as exc:
            self.fail(line, what, str(exc))
        on_element = self.alias is not None and segments[0].key == self.alias
        if on_element:
            segments = segments[1:]
            if not segments:
                self.fail(line, what, f"path '{path}' names the element itself; add a field")
        return PathRef(path, line, segments, on_element, make_getter(segments))


def _check_keys(ctx: _Ctx, node: LineDict, allowed: tuple[str, ...], what: str) -> None:
    for key in node:
        if key not in allowed:
            ctx.fail(
                node.line_of(key), what, f"unknown key {key!r} (allowed: {', '.join(allowed)})"
            )


def _bool_option(ctx: _Ctx, node: LineDict, key: str, what: str) -> bool:
    value = node.get(key, False)
    if not isinstance(value, bool):
        ctx.fail(node.line_of(key), what, f"{key} must be true or false, got {_show(value)}")
    return value


def _compile_cast(ctx: _Ctx, rule: FieldRule, what: str, node: LineDict) -> Convert | None:
    if rule.cast is None:
        if rule.fmt is not None:
            ctx.fail(node.line_of("format"), what, "format needs type: date or type: datetime")
        return None
    if rule.cast not in CAST_TYPES:
        ctx.fail(
            node.line_of("type"),
            what,
            f"unknown type {rule.cast!r} (allowed: {', '.join(CAST_TYPES)})",
        )
    if rule.cast in SIMPLE_CASTS:
        if rule.fmt is not None:
            ctx.fail(node.line_of("format"), what, "format applies only to date and datetime")
        return SIMPLE_CASTS[rule.cast]
    parser = None
    if rule.fmt is not None:
        if not isinstance(rule.fmt, str):
            ctx.fail(node.line_of("format"), what, "format must be text such as DD-MM-YYYY")
        try:
            parser = compile_format(rule.fmt)
        except ValueError as exc:
            ctx.fail(node.line_of("format"), what, str(exc))
    if rule.cast == "date":
        return make_date_cast(parser, rule.fmt)
    return make_datetime_cast(parser, rule.fmt, ctx.tz)


def _compile_field(ctx: _Ctx, name: t.Any, spec: t.Any, line: int) -> FieldRule:
    if not isinstance(name, str) or not name:
        ctx.fail(line, "fields", f"an output field name must be text, got {_show(name)}")
    what = f"field '{name}'"
    if isinstance(spec, str):
        node = LineDict(path=spec)
        node.line, node.key_lines = line, {}
    elif isinstance(spec, LineDict):
        node = spec
    else:
        ctx.fail(
            line,
            what,
            f"expected a path or a rule, got {_show(spec)} (use const: for a fixed value)",
        )
    _check_keys(ctx, node, FIELD_KEYS, what)
    sources = [k for k in SOURCE_KEYS if k in node]
    if len(sources) != 1:
        have = ", ".join(sources) or "none"
        ctx.fail(line, what, f"needs exactly one of path, coalesce, const, template (has: {have})")
    kind = sources[0]
    rule = FieldRule(name=name, line=line, kind=kind, refs=[])
    rule.cast = node.get("type")
    rule.fmt = node.get("format")
    rule.lower = _bool_option(ctx, node, "lower", what)
    rule.trim = _bool_option(ctx, node, "trim", what)
    rule.required = _bool_option(ctx, node, "required", what)
    cast = _compile_cast(ctx, rule, what, node)
    value_cast = cast  # for default and map values, applied once here

    template_parts: list[str | PathRef] = []
    if kind == "path":
        rule.refs = [ctx.ref(node["path"], node.line_of("path"), what)]
    elif kind == "coalesce":
        paths = node["coalesce"]
        if not isinstance(paths, list) or len(paths) < 2:
            ctx.fail(node.line_of("coalesce"), what, "coalesce needs a list of two or more paths")
        rule.refs = [ctx.ref(p, node.line_of("coalesce"), what) for p in paths]
    elif kind == "template":
        template_parts = _parse_template(ctx, node["template"], node.line_of("template"), what)
        rule.refs = [p for p in template_parts if isinstance(p, PathRef)]
    if any(ref.is_list for ref in rule.refs) and kind != "path":
        ctx.fail(line, what, "a wildcard path (*) can only be used with path:")

    if "map" in node:
        vmap = node["map"]
        if not isinstance(vmap, dict) or not vmap:
            ctx.fail(node.line_of("map"), what, "map must be a non-empty mapping of value: result")
        rule.vmap = dict(vmap)
        if cast is not None:
            for key, value in vmap.items():
                if value is None:
                    continue
                try:
                    rule.vmap[key] = cast(value)
                except ValueError as exc:
                    ctx.fail(vmap.line_of(key), what, f"map value for {key!r}: {exc}")
            cast = None  # already applied to the map's values
            # the schema type still comes from the declared cast (kept in rule.cast)

    text_op = _text_op(rule.lower, rule.trim)
    convert = _chain([f for f in (text_op, _map_fn(rule.vmap), cast) if f is not None])

    if "default" in node:
        rule.default = node["default"]
        if rule.default is not None and value_cast is not None:
            try:
                rule.default = value_cast(rule.default)
            except ValueError as exc:
                ctx.fail(node.line_of("default"), what, f"default: {exc}")

    if kind == "const":
        rule.const = node["const"]
        if convert is not None and rule.const is not None:
            try:
                rule.const = convert(rule.const)
            except (ValueError, TypeError) as exc:
                ctx.fail(node.line_of("const"), what, f"const: {exc}")
        if rule.const is None:
            rule.const = rule.default
        return rule

    rule.map_fn = _map_fn(rule.vmap)
    rule.cast_fn = cast
    rule.convert = _each(convert) if rule.is_list and convert is not None else convert
    if kind != "path" or rule.is_list:
        rule.source = _source_fn(rule, template_parts)
    return rule


def _parse_template(ctx: _Ctx, text: t.Any, line: int, what: str) -> list[str | PathRef]:
    """Split ``"flexpos:journal:{Uid}:{line.LineNumber}"`` into text and paths."""
    if not isinstance(text, str):
        ctx.fail(line, what, "template must be text with {path} placeholders")
    parts: list[str | PathRef] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "{}" and text[i : i + 2] in ("{{", "}}"):
            buf.append(ch)
            i += 2
            continue
        if ch == "}":
            ctx.fail(line, what, "template has a '}' without '{' (write }} for a literal brace)")
        if ch == "{":
            end = text.find("}", i)
            if end < 0:
                ctx.fail(line, what, "template has a '{' without '}'")
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(ctx.ref(text[i + 1 : end].strip(), line, what))
            i = end + 1
            continue
        buf.append(ch)
        i += 1
    if buf:
        parts.append("".join(buf))
    if not any(isinstance(p, PathRef) for p in parts):
        ctx.fail(line, what, "template has no {path} placeholder (use const: for fixed text)")
    return parts


def _text_op(lower: bool, trim: bool) -> Convert | None:
    if lower and trim:
        return lambda v: v.strip().lower() if type(v) is str else v
    if lower:
        return lambda v: v.lower() if type(v) is str else v
    if trim:
        return lambda v: v.strip() if type(v) is str else v
    return None


def _map_fn(vmap: dict[t.Any, t.Any] | None) -> Convert | None:
    if vmap is None:
        return None
    missing = object()
    shown = ", ".join(_show(k) for k in list(vmap)[:8])

    def map_value(v: t.Any) -> t.Any:
        try:
            out = vmap.get(v, missing)
        except TypeError:
            out = missing
        if out is missing:
            raise ValueError(f"value {_show(v)} is not in the map ({shown})")
        return out

    return map_value


def _chain(fns: list[Convert]) -> Convert | None:
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f, g = fns

        def both(v: t.Any) -> t.Any:
            v = f(v)
            return None if v is None else g(v)

        return both

    def chained(v: t.Any) -> t.Any:
        for fn in fns:
            v = fn(v)
            if v is None:
                return None
        return v

    return chained


def _each(convert: Convert) -> Convert:
    def each(values: list[t.Any]) -> list[t.Any]:
        out = [convert(v) for v in values]
        return [v for v in out if v is not None]

    return each


def _source_fn(rule: FieldRule, template: list[str | PathRef]) -> t.Callable[[t.Any, t.Any], t.Any]:
    """A function (record, element) -> raw value, for each kind of source."""
    if rule.kind == "path":
        ref = rule.refs[0]
        get = ref.getter
        if ref.on_element:
            return lambda r, e: get(e)
        return lambda r, e: get(r)
    if rule.kind == "coalesce":
        getters = [(ref.getter, ref.on_element) for ref in rule.refs]

        def first(r: t.Any, e: t.Any) -> t.Any:
            for get, on_e in getters:
                v = get(e if on_e else r)
                if v is not None and v != "":
                    return v
            return None

        return first
    parts = [
        (p, None, False) if isinstance(p, str) else (None, p.getter, p.on_element) for p in template
    ]

    def fill(r: t.Any, e: t.Any) -> t.Any:
        out: list[str] = []
        for text, get, on_e in parts:
            if get is None:
                out.append(text)  # type: ignore[arg-type]
                continue
            v = get(e if on_e else r)
            if v is None:
                return None
            out.append(template_text(v))
        return "".join(out)

    return fill


# --- filters ---------------------------------------------------------------------------------


def _compile_filter(
    ctx: _Ctx, node: t.Any, line: int, refs: list[PathRef]
) -> t.Callable[[Record], bool]:
    """Compile a condition tree into a predicate over the input record."""
    if isinstance(node, list):
        preds = [_compile_filter(ctx, n, getattr(n, "line", line), refs) for n in node]
        return lambda r: all(p(r) for p in preds)
    if not isinstance(node, LineDict):
        ctx.fail(line, "filter", f"a condition must be a mapping, got {_show(node)}")
    for combinator in ("all", "any"):
        if combinator in node:
            if len(node) != 1 or not isinstance(node[combinator], list):
                ctx.fail(node.line, "filter", f"{combinator}: takes a list of conditions, alone")
            preds = [
                _compile_filter(ctx, n, getattr(n, "line", node.line), refs)
                for n in node[combinator]
            ]
            if combinator == "all":
                return lambda r: all(p(r) for p in preds)
            return lambda r: any(p(r) for p in preds)
    if "not" in node:
        if len(node) != 1:
            ctx.fail(node.line, "filter", "not: takes one condition, alone")
        inner = _compile_filter(ctx, node["not"], node.line, refs)
        return lambda r: not inner(r)
    if None in node:  # YAML reads a bare `null:` key as None; the user meant the op
        fixed = LineDict({("null" if k is None else k): v for k, v in node.items()})
        fixed.line = node.line
        fixed.key_lines = {("null" if k is None else k): n for k, n in node.key_lines.items()}
        node = fixed
    _check_keys(ctx, node, ("path", *COMPARISONS), "filter")
    ops = [k for k in COMPARISONS if k in node]
    if "path" not in node or len(ops) != 1:
        ctx.fail(
            node.line,
            "filter",
            "a condition is {path: P, <op>: value} with one op of " + ", ".join(COMPARISONS),
        )
    ref = ctx.ref(node["path"], node.line_of("path"), "filter")
    if ref.on_element:
        ctx.fail(node.line, "filter", "filters apply to the input record, not to exploded elements")
    refs.append(ref)
    return _comparison(ctx, ref, ops[0], node[ops[0]], node.line_of(ops[0]))


def _comparison(
    ctx: _Ctx, ref: PathRef, op: str, value: t.Any, line: int
) -> t.Callable[[Record], bool]:
    get = ref.getter
    if op in ("null", "not_null"):
        if value is not True:
            ctx.fail(line, "filter", f"write {op}: true")
        if op == "null":
            return lambda r: get(r) is None
        return lambda r: get(r) is not None
    if op == "eq":
        return lambda r: get(r) == value
    if op == "ne":
        return lambda r: get(r) != value
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            ctx.fail(line, "filter", f"{op} takes a list of values")
        try:
            values: t.Collection[t.Any] = frozenset(value)
        except TypeError:
            values = list(value)
        if op == "in":
            return lambda r: _member(get(r), values)
        return lambda r: not _member(get(r), values)
    if value is None:
        ctx.fail(line, "filter", f"{op} needs a value to compare with")
    import operator

    compare = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}[op]

    def ordered(r: Record) -> bool:
        v = get(r)
        if v is None:
            return False
        try:
            return bool(compare(v, value))
        except TypeError:
            reason = f"cannot compare {_show(v)} with {_show(value)} ({op} on '{ref.text}')"
            raise RuleFailure("filter", line, reason) from None

    return ordered


def _member(v: t.Any, values: t.Collection[t.Any]) -> bool:
    try:
        return v in values
    except TypeError:
        return False


# --- record functions (generated once per stream) -------------------------------------------


def _path_code(ref: PathRef, var: str) -> list[str]:
    """Statements that set ``var`` to the value at a (wildcard-free) path."""
    root = "e" if ref.on_element else "r"
    out: list[str] = []
    src = root
    for n, seg in enumerate(ref.segments):
        if seg.index is not None:
            out.append(f"{var} = step_index({src}, {seg.key!r}, {seg.index})")
        elif n == 0 and root == "r":
            out.append(f"{var} = r.get({seg.key!r})")
        else:
            out.append(f"{var} = {src}.get({seg.key!r}) if type({src}) is dict else None")
        src = var
    return out


def _field_code(i: int, rule: FieldRule, ns: dict[str, t.Any]) -> tuple[list[str], str]:
    """Statements and the final expression computing one output field.

    Plain renames are a bare ``r.get(...)``; anything that can fail sits in its own try block
    (free in CPython 3.11 until it raises) so a failure names its rule.
    """
    if rule.kind == "const":
        ns[f"_c{i}"] = rule.const
        return [], f"_c{i}"
    v = f"v{i}"
    if rule.source is not None:
        ns[f"_s{i}"] = rule.source
        get = [f"{v} = _s{i}(r, e)"]
    else:
        get = _path_code(rule.refs[0], v)
    simple = rule.convert is None and rule.default is None and not rule.required
    if simple and len(get) == 1 and get[0].startswith(f"{v} = r.get("):
        return [], get[0][len(f"{v} = ") :]
    body = list(get)
    if rule.is_list and rule.convert is not None:
        ns[f"_k{i}"] = rule.convert
        body += [f"if {v} is not None:", f"    {v} = _k{i}({v})"]
    elif rule.convert is not None:
        steps: list[str] = []
        if rule.lower or rule.trim:
            method = (
                ".strip().lower()"
                if rule.lower and rule.trim
                else (".lower()" if rule.lower else ".strip()")
            )
            steps.append(f"if type({v}) is str: {v} = {v}{method}")
        if rule.map_fn is not None:
            ns[f"_m{i}"] = rule.map_fn
            steps.append(f"{v} = _m{i}({v})")
        if rule.cast_fn is not None:
            ns[f"_k{i}"] = rule.cast_fn
            if rule.map_fn is not None:
                steps.append(f"if {v} is not None: {v} = _k{i}({v})")
            else:
                steps.append(f"{v} = _k{i}({v})")
        body += [f"if {v} is not None:", *["    " + x for x in steps]]
    out = ["try:", *["    " + x for x in body]]
    out += [
        "except (ValueError, TypeError) as exc:",
        f"    raise RuleFailure({rule.name!r}, {rule.line}, str(exc)) from None",
    ]
    if rule.default is not None:
        ns[f"_d{i}"] = rule.default
        out.append(f"if {v} is None: {v} = _d{i}")
    elif rule.required:
        out.append(
            f"if {v} is None: raise RuleFailure({rule.name!r}, {rule.line}, "
            "'required value is missing or null')"
        )
    return out, v


def _generate(stream: CompiledStream, pad: t.Sequence[str] = ()) -> t.Callable[[Record], t.Any]:
    """Generate the per-record function: statements per rule, then one dict literal.

    ``pad`` names fields that other input streams write into the same output stream; they are
    written as null here, so every record of an output stream has the same fields.
    """
    ns: dict[str, t.Any] = {"RuleFailure": RuleFailure, "step_index": step_index}
    parent: list[str] = []  # computed once per input record
    per_item: list[str] = []  # computed per exploded element
    items: list[str] = []
    for i, rule in enumerate(stream.fields):
        code, expr = _field_code(i, rule, ns)
        (per_item if rule.uses_element else parent).extend(code)
        items.append(f"{rule.name!r}: {expr}")
    if stream.unmapped == "extra":
        used = {ref.segments[0].key for _, ref in stream.all_refs() if not ref.on_element}
        if stream.explode is not None:
            used.add(stream.explode.segments[0].key)
        ns["_used"] = frozenset(used)
        items.append(f"{EXTRA_FIELD!r}: {{k: v for k, v in r.items() if k not in _used}}")
    items.extend(f"{name!r}: None" for name in pad)
    body = "{" + ", ".join(items) + "}"
    key_lines = {rule.name: rule.line for rule in stream.fields}
    checks = [
        f"if o[{k!r}] is None: raise RuleFailure({k!r}, {key_lines[k]}, 'key property {k} is null')"
        for k in stream.key
    ]
    if stream.explode is None:
        lines = ["def map_record(r):", "    e = None"]
        lines += ["    " + x for x in parent]
        lines += [f"    o = {body}", *["    " + c for c in checks], "    return o"]
    else:
        ns["_explode"] = stream.explode.getter
        ns["_explode_line"] = stream.explode.line
        lines = [
            "def map_record(r):",
            "    items = _explode(r)",
            "    if not items: return []",
            "    if type(items) is not list:",
            "        raise RuleFailure('explode', _explode_line, 'explode path is not a list')",
            "    e = None",
            *["    " + x for x in parent],
            "    out = []",
            "    for e in items:",
            *["        " + x for x in per_item],
            f"        o = {body}",
            *["        " + c for c in checks],
            "        out.append(o)",
            "    return out",
        ]
    src = "\n".join(lines) + "\n"
    exec(compile(src, f"<mapping {stream.input}>", "exec"), ns)  # names/values via repr only
    fn = t.cast("t.Callable[[Record], t.Any]", ns["map_record"])
    fn.source = src  # type: ignore[attr-defined]  # kept for debugging a mapping
    return fn


def _compile_stream(
    mapping: CompiledMapping,
    name: t.Any,
    node: t.Any,
    line: int,
    defaults: dict[str, t.Any],
) -> CompiledStream:
    if not isinstance(name, str) or not name:
        raise MappingError(f"{mapping.filename}:{line}: a stream name must be text")
    ctx = _Ctx(mapping.filename, name, defaults["separator"], defaults["tz"])
    if not isinstance(node, LineDict):
        ctx.fail(line, "mapping", "expected a mapping with to, key and fields")
    _check_keys(ctx, node, STREAM_KEYS, "mapping")
    if "separator" in node:
        ctx.separator = node["separator"]
        if not isinstance(ctx.separator, str) or not ctx.separator:
            ctx.fail(node.line_of("separator"), "separator", "must be non-empty text")
    output = node.get("to", name)
    if not isinstance(output, str) or not output or output == "_rejects":
        ctx.fail(node.line_of("to"), "to", f"invalid output stream name {_show(output)}")
    unmapped = node.get("unmapped", defaults["unmapped"])
    if unmapped not in ("drop", "extra"):
        ctx.fail(node.line_of("unmapped"), "unmapped", "must be drop or extra")

    explode = None
    if "explode" in node:
        spec = node["explode"]
        eline = node.line_of("explode")
        if not isinstance(spec, LineDict) or set(spec) != {"path", "as"}:
            ctx.fail(eline, "explode", "write explode: {path: Lines, as: line}")
        alias = spec["as"]
        if not isinstance(alias, str) or not alias or ctx.separator in alias:
            ctx.fail(eline, "explode", f"as: must be a plain name, got {_show(alias)}")
        explode = ctx.ref(spec["path"], eline, "explode")
        if explode.is_list:
            ctx.fail(eline, "explode", "the explode path cannot contain a wildcard")
        ctx.alias = alias

    refs: list[PathRef] = []
    predicate = None
    if "filter" in node:
        predicate = _compile_filter(ctx, node["filter"], node.line_of("filter"), refs)

    fields_node = node.get("fields")
    if not isinstance(fields_node, LineDict) or not fields_node:
        ctx.fail(node.line_of("fields"), "fields", "needs a mapping of output field: rule")
    rules = [
        _compile_field(ctx, fname, spec, fields_node.line_of(fname))
        for fname, spec in fields_node.items()
    ]
    if unmapped == "extra" and EXTRA_FIELD in fields_node:
        ctx.fail(
            fields_node.line_of(EXTRA_FIELD),
            f"field '{EXTRA_FIELD}'",
            "duplicate output field: unmapped: extra already writes it",
        )
    key = node.get("key", [])
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
        ctx.fail(node.line_of("key"), "key", "must be a list of output field names")
    for k in key:
        if k not in fields_node:
            ctx.fail(node.line_of("key"), "key", f"key property '{k}' is not an output field")

    stream = CompiledStream(
        mapping=mapping,
        input=name,
        output=output,
        line=line,
        key=key,
        fields=rules,
        filter=predicate,
        filter_refs=refs,
        explode=explode,
        alias=ctx.alias,
        unmapped=unmapped,
        map_record=lambda r: r,
    )
    stream.map_record = _generate(stream)
    return stream


def _load_catalog(path: Path, filename: str) -> dict[str, t.Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise MappingError(f"{filename}: catalog file not found: {path}") from None
    except orjson.JSONDecodeError as exc:
        raise MappingError(f"{path}: invalid catalog JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("streams"), list):
        raise MappingError(f'{path}: not a Singer catalog (expected {{"streams": [...]}})')
    return data


def compile_mapping(
    path: str | Path,
    catalog: str | Path | t.Mapping[str, t.Any] | None = None,
) -> CompiledMapping:
    """Compile a mapping file once; check it against the tap's catalog when known.

    ``catalog`` may be a catalog dict or a path to its JSON; when None, the mapping's own
    ``catalog:`` key (relative to the mapping file) is used if present. Raises MappingError
    whose message names ``file:line`` and the stream and field at fault.
    """
    path = Path(path)
    filename = str(path)
    try:
        text = path.read_bytes()  # the loader names the line of bad UTF-8
    except FileNotFoundError:
        raise MappingError(f"{filename}: mapping file not found") from None
    except OSError as exc:
        raise MappingError(f"{filename}: cannot read mapping file: {exc}") from None
    doc = load_yaml(text, filename)
    if not isinstance(doc, LineDict):
        raise MappingError(f"{filename}:1: a mapping file is a YAML mapping with a streams: key")
    for key in doc:
        if key not in TOP_KEYS:
            allowed = ", ".join(TOP_KEYS)
            raise MappingError(
                f"{filename}:{doc.line_of(key)}: unknown key {key!r} (allowed: {allowed})"
            )

    def bad(key: str, message: str) -> t.NoReturn:
        raise MappingError(f"{filename}:{doc.line_of(key)}: {key}: {message}")

    if doc.get("version", 1) != 1:
        bad("version", "only version 1 is known")
    separator = doc.get("separator", ".")
    if not isinstance(separator, str) or not separator:
        bad("separator", "must be non-empty text such as . or /")
    tz_name = doc.get("timezone", "UTC")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        bad("timezone", f"unknown timezone {_show(tz_name)} (e.g. Europe/Copenhagen)")
    on_error = doc.get("on_error", "reject")
    if on_error not in ("reject", "fail"):
        bad("on_error", "must be reject or fail")
    other = doc.get("other_streams", "drop")
    if other not in ("drop", "pass"):
        bad("other_streams", "must be drop or pass")
    unmapped = doc.get("unmapped", "drop")
    if unmapped not in ("drop", "extra"):
        bad("unmapped", "must be drop or extra")
    streams = doc.get("streams")
    if not isinstance(streams, LineDict) or not streams:
        raise MappingError(
            f"{filename}:{doc.line_of('streams')}: streams: needs at least one stream"
        )

    mapping = CompiledMapping(path=path, filename=filename, on_error=on_error, other_streams=other)
    defaults = {"separator": separator, "tz": tz, "unmapped": unmapped}
    for name, node in streams.items():
        mapping.streams[name] = _compile_stream(
            mapping, name, node, streams.line_of(name), defaults
        )
    for output, members in mapping.outputs().items():
        first = members[0]
        for m in members[1:]:
            if m.key != first.key:
                raise MappingError(
                    f"{m.where()}: output stream '{output}' has key {m.key} here but "
                    f"{first.key} in stream '{first.input}' (line {first.line})"
                )
        if len(members) > 1:
            names: list[str] = []
            for m in members:
                names.extend(n for n in m.output_properties(None) if n not in names)
            for m in members:
                own = m.output_properties(None)
                m.map_record = _generate(m, [n for n in names if n not in own])

    if catalog is None and "catalog" in doc:
        ref = doc["catalog"]
        if not isinstance(ref, str):
            bad("catalog", "must be a path to the tap's catalog JSON")
        catalog = path.parent / ref
    if catalog is not None:
        if isinstance(catalog, (str, Path)):
            origin = str(catalog)
            catalog = _load_catalog(Path(catalog), filename)
        else:
            origin = "the catalog"
        mapping.check_catalog(catalog, origin)
    return mapping
