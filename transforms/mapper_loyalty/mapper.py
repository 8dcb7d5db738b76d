"""``mapper-loyalty``: the Singer mapper that applies a declarative mapping YAML.

singer-sdk's InlineMapper gives the standard CLI (``--config``, ``--about``, ``--version``,
``--input``) so the mapper works under Meltano or any Singer pipeline; the records themselves
go through :class:`mapper_loyalty.runner.Runner`, our own tight loop, because the SDK's
per-message objects and flushes cost more than the mapping itself.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import typing as t

import click
import msgspec
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.mapper_base import InlineMapper
from singer_sdk.singerlib.encoding.simple import (
    ActivateVersionMessage,
    Message,
    RecordMessage,
    SchemaMessage,
    StateMessage,
)

from mapper_loyalty.compiler import CompiledMapping, compile_mapping
from mapper_loyalty.loader import MappingError
from mapper_loyalty.runner import RunError, Runner
from singer_kit.sdk_compat import ConfigInput, SDKBatchMessage

_YAML_SUFFIXES = (".yaml", ".yml")


def _fail(message: str) -> t.NoReturn:
    """One clear line on stderr and exit 1: no traceback for a user's mistake."""
    click.echo(f"mapper-loyalty: error: {message}", err=True)
    sys.exit(1)


class LoyaltyMapper(InlineMapper):
    """Reshape Singer streams with a declarative mapping (transforms/mappings/*.yaml)."""

    name = "mapper-loyalty"
    # The distribution --about reads its version from (singer-sdk defaults to `name`).
    package_name = "loyalty-pipelines"
    capabilities: t.ClassVar[list[t.Any]] = [  # type: ignore[misc]
        PluginCapabilities.ABOUT,
        PluginCapabilities.STRUCTURED_LOGGING,
        PluginCapabilities.BATCH,
    ]
    config_jsonschema: t.ClassVar[dict[str, t.Any]] = {
        "type": "object",
        "properties": {
            "mapping_file": {
                "type": "string",
                "description": "Path to the mapping YAML (relative to the current directory).",
            },
            "catalog_file": {
                "type": "string",
                "description": "The tap's Singer catalog; the mapping is checked against it.",
            },
            "batch_dir": {
                "type": "string",
                "description": (
                    "Folder for the gzip JSONL files of mapped BATCH messages (created when "
                    "missing). Default: a 'mapped' folder next to each input batch file."
                ),
            },
        },
        "required": ["mapping_file"],
    }

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self._compiled: CompiledMapping | None = None
        self._runner: Runner | None = None
        self._pending: list[bytes] = []

    @property
    def compiled(self) -> CompiledMapping:
        """The mapping, compiled once (and checked against the catalog when configured)."""
        if self._compiled is None:
            catalog = self.config.get("catalog_file")
            self._compiled = compile_mapping(self.config["mapping_file"], catalog=catalog)
        return self._compiled

    # -- library API: singer-sdk's message hooks, for use from Python ----------------------

    @property
    def runner(self) -> Runner:
        """A runner that collects output lines for the map_*_message hooks."""
        if self._runner is None:
            self._runner = Runner(
                self.compiled, self._pending.append, batch_dir=self.config.get("batch_dir")
            )
        return self._runner

    def _drain(self, message_dict: dict) -> list[Message]:
        self.runner.process(message_dict)
        out, self._pending[:] = list(self._pending), []
        messages: list[Message] = []
        for line in out:
            data = msgspec.json.decode(line)
            kind = data["type"]
            if kind == "RECORD":
                messages.append(RecordMessage.from_dict(data))
            elif kind == "SCHEMA":
                messages.append(
                    SchemaMessage(data["stream"], data["schema"], data.get("key_properties"))
                )
            elif kind == "STATE":
                messages.append(StateMessage(data["value"]))
            elif kind == "BATCH":
                messages.append(SDKBatchMessage(data["stream"], data["encoding"], data["manifest"]))
            else:
                messages.append(ActivateVersionMessage(data["stream"], data["version"]))
        return messages

    def map_schema_message(self, message_dict: dict) -> t.Iterable[Message]:
        """Output SCHEMA for a mapped stream (types from the rules)."""
        return self._drain(message_dict)

    def map_record_message(self, message_dict: dict) -> t.Iterable[Message]:
        """Mapped record(s), or a `_rejects` record."""
        return self._drain(message_dict)

    def map_state_message(self, message_dict: dict) -> t.Iterable[Message]:
        """STATE passes through unchanged."""
        return self._drain(message_dict)

    def map_activate_version_message(self, message_dict: dict) -> t.Iterable[Message]:
        """ACTIVATE_VERSION follows its stream's new name."""
        return self._drain(message_dict)

    def map_batch_message(self, message_dict: dict) -> t.Iterable[Message]:
        """Rejects, then one BATCH of new gzip JSONL files in ``batch_dir``."""
        return self._drain(message_dict)

    # -- CLI ---------------------------------------------------------------------------------

    @classmethod
    def cb_config(
        cls: type[LoyaltyMapper],
        ctx: click.Context,
        param: click.Option,
        value: tuple[str, ...],
    ) -> ConfigInput:
        """Accept a mapping YAML directly as ``--config`` besides the usual JSON config."""
        yaml_files = [v for v in value if v.lower().endswith(_YAML_SUFFIXES)]
        json_files = [v for v in value if v not in yaml_files]
        try:
            config = super().cb_config(ctx, param, tuple(json_files))
        except (OSError, ValueError) as exc:
            _fail(f"cannot read config {', '.join(json_files)}: {exc}")
        for path in yaml_files:
            config.config["mapping_file"] = path
        return config

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: ConfigInput | None = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Compile the mapping, then map stdin (or --input) to stdout in one tight loop."""
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        config = config or ConfigInput()
        if "mapping_file" not in config.config:
            _fail("no mapping: pass --config mapping.yaml or a JSON config with mapping_file")
        mapper = cls(config=config.config, validate_config=True, parse_env_config=config.parse_env)
        try:
            compiled = mapper.compiled
        except MappingError as exc:
            _fail(str(exc))
        source = file_input.buffer if file_input is not None else sys.stdin.buffer  # type: ignore[attr-defined]
        out = io.open(sys.stdout.fileno(), "wb", buffering=1 << 20, closefd=False)  # noqa: UP020, SIM115
        runner = Runner(compiled, out.write, out.flush, batch_dir=mapper.config.get("batch_dir"))
        try:
            runner.run(source)
        except RunError as exc:
            _safe_flush(out)
            click.echo(runner.summary(), err=True)
            _fail(str(exc))
        except BrokenPipeError:
            # Point stdout at /dev/null so the final flush at exit does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            _fail("the downstream process closed its input (broken pipe)")
        click.echo(runner.summary(), err=True)


def _safe_flush(out: t.BinaryIO) -> None:
    with contextlib.suppress(BrokenPipeError):
        out.flush()
