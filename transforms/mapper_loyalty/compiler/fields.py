"""Field rules: one output field's YAML rule compiled into a :class:`FieldRule`.

A rule has exactly one source (``path``, ``coalesce``, ``const``, ``template``) and optional
modifiers applied in the README's order: ``trim``/``lower`` -> ``map`` -> ``type`` (+``format``)
-> ``default`` -> ``required``. Everything that can be done once is done here: casts are
compiled, map values and defaults cast, constants converted.
"""

from __future__ import annotations

import typing as t

from mapper_loyalty.compiler.context import StreamContext
from mapper_loyalty.compiler.model import FieldRule, PathRef, Source
from mapper_loyalty.rules import (
    CAST_TYPES,
    SIMPLE_CASTS,
    Convert,
    _show,
    make_date_cast,
    make_datetime_cast,
    template_text,
)
from singer_kit.dates import compile_format
from singer_kit.yamlio import LineDict

SOURCE_KEYS = ("path", "coalesce", "const", "template")
FIELD_KEYS = (*SOURCE_KEYS, "type", "format", "map", "lower", "trim", "default", "required")


def compile_field(ctx: StreamContext, name: t.Any, spec: t.Any, line: int) -> FieldRule:
    """Compile the rule of output field ``name`` (a path, or a mapping of source + modifiers)."""
    if not isinstance(name, str) or not name:
        ctx.fail(line, "fields", f"an output field name must be text, got {_show(name)}")
    what = f"field '{name}'"
    node = _rule_node(ctx, spec, line, what)
    rule = _new_rule(ctx, name, line, node, what)
    cast = _compile_cast(ctx, rule, what, node)
    _bind_paths(ctx, rule, node, what)
    value_cast = cast  # for default and map values, applied once here
    if "map" in node:
        rule.vmap = _value_map(ctx, node, cast, what)
        cast = None  # already applied to the map's values; rule.cast still gives the schema
    map_fn = _map_fn(rule.vmap)
    convert = _chain([f for f in (_text_op(rule.lower, rule.trim), map_fn, cast) if f is not None])
    if "default" in node:
        rule.default = _converted_option(ctx, node, "default", value_cast, what)
    if rule.kind == "const":
        rule.const = _converted_option(ctx, node, "const", convert, what)
        if rule.const is None:
            rule.const = rule.default
        return rule
    rule.map_fn = map_fn
    rule.cast_fn = cast
    rule.convert = _each(convert) if rule.is_list and convert is not None else convert
    if rule.kind != "path" or rule.is_list:
        rule.source = _source_fn(rule)
    return rule


def _rule_node(ctx: StreamContext, spec: t.Any, line: int, what: str) -> LineDict:
    """The rule as a mapping: the short form ``field: Path`` is ``{path: Path}``."""
    if isinstance(spec, LineDict):
        return spec
    if not isinstance(spec, str):
        ctx.fail(
            line,
            what,
            f"expected a path or a rule, got {_show(spec)} (use const: for a fixed value)",
        )
    node = LineDict(path=spec)
    node.line, node.key_lines = line, {}
    return node


def _new_rule(ctx: StreamContext, name: str, line: int, node: LineDict, what: str) -> FieldRule:
    """The rule with its one source kind and its plain options read."""
    ctx.check_keys(node, FIELD_KEYS, what)
    sources = [k for k in SOURCE_KEYS if k in node]
    if len(sources) != 1:
        have = ", ".join(sources) or "none"
        ctx.fail(line, what, f"needs exactly one of path, coalesce, const, template (has: {have})")
    return FieldRule(
        name=name,
        line=line,
        kind=sources[0],
        refs=[],
        cast=node.get("type"),
        fmt=node.get("format"),
        lower=ctx.bool_option(node, "lower", what),
        trim=ctx.bool_option(node, "trim", what),
        required=ctx.bool_option(node, "required", what),
    )


def _compile_cast(ctx: StreamContext, rule: FieldRule, what: str, node: LineDict) -> Convert | None:
    """The cast of ``type:`` (with ``format:`` compiled once), or None without a type."""
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


def _bind_paths(ctx: StreamContext, rule: FieldRule, node: LineDict, what: str) -> None:
    """The paths the rule's source reads (and a template's text between them)."""
    if rule.kind == "path":
        rule.refs = [ctx.ref(node["path"], node.line_of("path"), what)]
    elif rule.kind == "coalesce":
        paths = node["coalesce"]
        if not isinstance(paths, list) or len(paths) < 2:
            ctx.fail(node.line_of("coalesce"), what, "coalesce needs a list of two or more paths")
        rule.refs = [ctx.ref(p, node.line_of("coalesce"), what) for p in paths]
    elif rule.kind == "template":
        rule.template = _parse_template(ctx, node["template"], node.line_of("template"), what)
        rule.refs = [p for p in rule.template if isinstance(p, PathRef)]
    if rule.kind != "path" and any(ref.is_list for ref in rule.refs):
        ctx.fail(rule.line, what, "a wildcard path (*) can only be used with path:")


def _value_map(
    ctx: StreamContext, node: LineDict, cast: Convert | None, what: str
) -> dict[t.Any, t.Any]:
    """The ``map:`` of value -> result, its results cast once here."""
    vmap = node["map"]
    if not isinstance(vmap, dict) or not vmap:
        ctx.fail(node.line_of("map"), what, "map must be a non-empty mapping of value: result")
    out = dict(vmap)
    if cast is None:
        return out
    for key, value in vmap.items():
        if value is None:
            continue
        try:
            out[key] = cast(value)
        except ValueError as exc:
            ctx.fail(vmap.line_of(key), what, f"map value for {key!r}: {exc}")
    return out


def _converted_option(
    ctx: StreamContext, node: LineDict, key: str, convert: Convert | None, what: str
) -> t.Any:
    """``default:`` or ``const:`` converted once, here, to what the rule writes."""
    value = node[key]
    if value is None or convert is None:
        return value
    try:
        return convert(value)
    except (ValueError, TypeError) as exc:
        ctx.fail(node.line_of(key), what, f"{key}: {exc}")


def _parse_template(ctx: StreamContext, text: t.Any, line: int, what: str) -> list[str | PathRef]:
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


# --- closures the generated record function calls -------------------------------------------


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
    """The modifiers as one function; a step that gives null ends the chain."""
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
    """Convert every element of a wildcard's list, leaving out those that become null."""

    def each(values: list[t.Any]) -> list[t.Any]:
        out = [convert(v) for v in values]
        return [v for v in out if v is not None]

    return each


def _source_fn(rule: FieldRule) -> Source:
    """A function (record, element) -> raw value, for each kind of source."""
    if rule.kind == "path":
        ref = rule.refs[0]
        get = ref.getter
        if ref.on_element:
            return lambda r, e: get(e)
        return lambda r, e: get(r)
    if rule.kind == "coalesce":
        return _coalesce_fn(rule.refs)
    return _template_fn(rule.template)


def _coalesce_fn(refs: list[PathRef]) -> Source:
    getters = [(ref.getter, ref.on_element) for ref in refs]

    def first(r: t.Any, e: t.Any) -> t.Any:
        for get, on_e in getters:
            v = get(e if on_e else r)
            if v is not None and v != "":
                return v
        return None

    return first


def _template_fn(template: list[str | PathRef]) -> Source:
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
