"""Contract with singer-sdk's private names (singer_kit/sdk_compat.py): each one we import,
override, call or assign still exists with the shape we use. An SDK upgrade that changes one
fails here, naming it, instead of somewhere in a run."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import importlib
import inspect
import re
import textwrap
import typing as t
from pathlib import Path

import pytest
from singer_sdk import Stream, Tap
from singer_sdk.helpers._batch import StorageTarget
from singer_sdk.plugin_base import PluginBase
from singer_sdk.target_base import Target

from singer_kit import sdk_compat
from singer_kit.sdk_compat import (
    BaseBatchFileEncoding,
    BatchConfig,
    ConfigInput,
    RecordSyncHook,
    SDKBatchMessage,
    check_max_record_limit,
    classproperty,
    finalize_state,
    increment_stream_state,
    parse_environment_config,
    pop_deselected_record_properties,
    stream_version,
    utc_now,
    write_starting_replication_value,
    write_state_message,
)

REPO = Path(__file__).resolve().parents[2]
# Where classes may build on singer-sdk: the kit, the connectors and the emulators.
SOURCES = ("singer_kit", "taps", "transforms", "targets", "sandbox")


def _shape(fn: t.Callable[..., t.Any]) -> list[tuple[str, t.Any, bool]]:
    params = inspect.signature(fn).parameters.values()
    return [(p.name, p.kind, p.default is not p.empty) for p in params]


def _assert_compatible(fn: t.Callable[..., t.Any], like: t.Callable[..., t.Any]) -> None:
    """fn takes the parameters of `like` (names, kinds, which have defaults), in order; any
    further parameter is optional, so our calls and overrides still fit."""
    have, want = _shape(fn), _shape(like)
    assert have[: len(want)] == want, f"{fn.__qualname__}{inspect.signature(fn)}"
    extra = have[len(want) :]
    assert all(
        default or kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for _, kind, default in extra
    ), f"{fn.__qualname__}{inspect.signature(fn)}"


# -- the names imported through sdk_compat -------------------------------------------------


def test_every_imported_name_is_checked_here():
    # A name added to sdk_compat must get a check of its shape in this module's tests.
    tree = ast.parse(Path(__file__).read_text())
    used = {
        node.id
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_")
        for node in ast.walk(fn)
        if isinstance(node, ast.Name)
    }
    assert sorted(set(sdk_compat.__all__) - used) == []


def test_batch_config_reads_what_the_runner_writes_and_has_what_the_tap_uses(tmp_path):
    # loyalty.runner.batch_configs writes this shape; tap-flexpos reads these attributes.
    config = BatchConfig.from_dict(
        {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": str(tmp_path)},
            "batch_size": 7,
        }
    )
    assert isinstance(config.encoding, BaseBatchFileEncoding)
    assert (config.encoding.format, config.encoding.compression) == ("jsonl", "gzip")
    assert {f.name for f in dataclasses.fields(BaseBatchFileEncoding)} >= {"format", "compression"}
    assert config.batch_size == 7
    storage = config.storage
    assert isinstance(storage, StorageTarget) and storage.prefix is None
    with storage.open("part-1.jsonl", "wb") as fh:
        fh.write(b"{}\n")
    assert (tmp_path / "part-1.jsonl").read_bytes() == b"{}\n"
    assert storage.get_url("part-1.jsonl").endswith("part-1.jsonl")


def test_sdk_batch_message_takes_stream_encoding_manifest_positionally():
    message = SDKBatchMessage("contacts", {"format": "jsonl", "compression": "gzip"}, ["a.gz"])
    assert message.to_dict() == {
        "type": "BATCH",
        "stream": "contacts",
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "manifest": ["a.gz"],
    }


def test_the_imported_functions_keep_their_parameters():
    _assert_compatible(parse_environment_config, lambda config_schema, prefix: None)
    _assert_compatible(pop_deselected_record_properties, lambda record, schema, mask: None)
    assert utc_now().utcoffset() == dt.timedelta(0)


def test_classproperty_reads_on_the_class():
    class Plugin:
        @classproperty
        def value(cls) -> str:
            return cls.__name__

    assert Plugin.value == "Plugin"


def test_config_input_holds_the_config_and_the_env_flag():
    empty = ConfigInput()
    assert empty.config == {} and empty.parse_env is False
    assert ConfigInput(config={"a": 1}, parse_env=True).config == {"a": 1}


# -- private members of singer-sdk classes our subclasses use ------------------------------


def _sync_records(self, context=None, *, write_messages=True): ...
def _write_state_message(self): ...
def _increment_stream_state(self, latest_record, *, context=None): ...
def _write_starting_replication_value(self, context): ...
def _finalize_state(self, state=None): ...
def _check_max_record_limit(self, current_record_index): ...
def _validate_config(self, *, raise_errors=True): ...
def _handle_termination(self, signum, frame): ...


# (singer-sdk class, member) -> how it is checked: a reference signature, or a kind.
PRIVATE_MEMBERS: dict[tuple[type, str], t.Any] = {
    (Stream, "_sync_records"): _sync_records,
    (Stream, "_write_state_message"): _write_state_message,
    (Stream, "_increment_stream_state"): _increment_stream_state,
    (Stream, "_write_starting_replication_value"): _write_starting_replication_value,
    (Stream, "_finalize_state"): _finalize_state,
    (Stream, "_check_max_record_limit"): _check_max_record_limit,
    (Stream, "_schema"): "instance attribute",
    (Stream, "_stream_version"): "instance attribute",
    (PluginBase, "_validate_config"): _validate_config,
    (PluginBase, "_env_var_config"): classproperty,
    (PluginBase, "_config"): "instance attribute",
    (PluginBase, "_get_about_info"): classmethod,
    (Target, "_handle_termination"): _handle_termination,
}


@pytest.mark.parametrize(
    ("cls", "name"), list(PRIVATE_MEMBERS), ids=[f"{c.__name__}.{n}" for c, n in PRIVATE_MEMBERS]
)
def test_private_member_keeps_its_shape(cls, name):
    check = PRIVATE_MEMBERS[(cls, name)]
    if check == "instance attribute":
        instance = _tiny_tap() if cls is PluginBase else _tiny_tap().streams["things"]
        assert name in vars(instance), f"{cls.__name__}.{name} is no longer set"
        return
    member = inspect.getattr_static(cls, name)
    if check is classproperty:
        assert isinstance(member, classproperty), f"{cls.__name__}.{name}: {member!r}"
    elif check is classmethod:
        assert isinstance(member, classmethod), f"{cls.__name__}.{name}: {member!r}"
        _assert_compatible(getattr(cls, name), lambda: None)
    else:
        assert inspect.isfunction(member), f"{cls.__name__}.{name}: {member!r}"
        _assert_compatible(member, check)


def test_an_assigned_schema_is_the_streams_schema():
    # tap-flexpos widens a stream's schema by assigning Stream._schema (no public setter).
    stream = _tiny_tap().streams["things"]
    wider = {"type": "object", "properties": {"id": {"type": "integer"}, "x": {}}}
    stream._schema = wider
    assert stream.schema == wider


def _tiny_tap() -> Tap:
    """A singer-sdk tap with one stream, built from the SDK alone (no network)."""
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}

    class Things(Stream):
        name = "things"

        def get_records(self, context: t.Any) -> t.Iterable[dict]:
            yield {"id": 1}

    class TinyTap(Tap):
        name = "tap-tiny"
        config_jsonschema: t.ClassVar[dict] = {"type": "object", "properties": {}}

        def discover_streams(self) -> list[Stream]:
            return [Things(self, schema=schema)]

    return TinyTap(config={}, validate_config=True)


def _our_classes() -> t.Iterator[type]:
    """Classes of the kit and the connectors that build on singer-sdk."""
    for module in map(importlib.import_module, _modules_using_the_sdk()):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and any(map(_from_sdk, cls.__mro__)):
                yield cls


def _modules_using_the_sdk() -> list[str]:
    names = []
    for top in SOURCES:
        for path in sorted((REPO / top).rglob("*.py")):
            if re.search(r"^\s*(?:from|import) singer_sdk\b", path.read_text(), re.MULTILINE):
                # taps/, transforms/ and targets/ hold packages; the others are packages.
                base = REPO / top if top in ("taps", "transforms", "targets") else REPO
                names.append(".".join(path.relative_to(base).with_suffix("").parts))
    return [n.removesuffix(".__init__") for n in names]


def _from_sdk(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "singer_sdk"


def _private_names(cls: type) -> set[str]:
    """Private names a class defines, or reads/writes on self, cls or super()."""
    names = {n for n in vars(cls) if n.startswith("_") and not n.startswith("__")}
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(cls)))):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__"):
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id in ("self", "cls")) or (
            isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super"
        ):
            names.add(node.attr)
    return names


def _sdk_owner(cls: type, name: str) -> type | None:
    """The singer-sdk class in cls's MRO that defines, declares or sets `name`, if any."""
    mention = re.compile(rf"\b(?:self|cls)\.{re.escape(name)}\b")
    for base in filter(_from_sdk, cls.__mro__):
        if name in vars(base) or name in getattr(base, "__annotations__", {}):
            return base
        if mention.search(inspect.getsource(base)):
            return base
    return None


def _wrapped_stream_members() -> dict[str, str]:
    """Private Stream members sdk_compat's module-level wrappers reach (``stream._x``)."""
    found = {}
    for fn in vars(sdk_compat).values():
        if inspect.isfunction(fn) and fn.__module__ == sdk_compat.__name__:
            for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(fn)))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr.startswith("_")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "stream"
                ):
                    found[node.attr] = fn.__name__
    return found


def test_every_private_sdk_member_we_use_is_listed_and_checked():
    used: dict[tuple[str, str], set[str]] = {}
    for cls in _our_classes():
        for name in _private_names(cls) - {"_abc_impl"}:  # ABC bookkeeping, not SDK API
            owner = _sdk_owner(cls, name)
            if owner is not None:
                used.setdefault((owner.__name__, name), set()).add(cls.__qualname__)
    for name, wrapper in _wrapped_stream_members().items():
        used.setdefault(("Stream", name), set()).add(f"sdk_compat.{wrapper}")
    listed = {(c.__name__, n) for c, n in PRIVATE_MEMBERS}
    missing = [
        f"{c}.{n} (in {', '.join(sorted(u))})" for (c, n), u in used.items() if (c, n) not in listed
    ]
    assert not missing, (
        "private singer-sdk members in use but not listed: add each to the sdk_compat "
        f"docstring and to PRIVATE_MEMBERS here: {sorted(missing)}"
    )
    unused = sorted(f"{c}.{n}" for c, n in listed - set(used))
    assert not unused, f"listed but no longer used (remove them here and in sdk_compat): {unused}"
    for c, n in listed:
        assert f"``{c}.{n}" in (sdk_compat.__doc__ or ""), f"{c}.{n} is not in sdk_compat's list"


# -- the stream base's wrappers: each reaches its private member with arguments it takes ----


def test_the_wrappers_and_the_record_loop_hook_reach_the_sdk_with_its_arguments():
    stream = _tiny_tap().streams["things"]
    increment_stream_state(stream, {"id": 1}, None)
    write_starting_replication_value(stream, None)
    check_max_record_limit(stream, 0)
    finalize_state(stream, stream.stream_state)
    write_state_message(stream)
    assert stream_version(stream) is None  # set only for ACTIVATE_VERSION streams
    hook = inspect.getattr_static(RecordSyncHook, "_sync_records")
    _assert_compatible(hook, _sync_records)
    assert list(RecordSyncHook.sdk_sync_records.__code__.co_varnames)[:3] == [
        "self",
        "context",
        "write_messages",
    ]
