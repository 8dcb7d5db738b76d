"""target-loyalty-store: Singer target that loads the DuckDB loyalty store.

singer-sdk's ``Target`` provides the CLI, config validation, ``--about`` and the standard
target tests; the messages themselves go through :class:`Loader`'s own loop (raw RECORD lines
staged per stream, loaded set-based by DuckDB), because the SDK's per-record Sink path is an
order of magnitude too slow for the store (see DESIGN.md, performance principles).
"""

from __future__ import annotations

import collections
import io
import json
import sys
import traceback
import typing as t

from singer_sdk import typing as th
from singer_sdk.about import JSONFormatter
from singer_sdk.exceptions import ConfigValidationError, FatalSyncError
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.io_base import SingerReader
from singer_sdk.target_base import Target

from target_loyalty_store.loader import DEFAULT_BATCH_ROWS, Loader
from target_loyalty_store.store import RESERVED_NAMES, StoreError

if t.TYPE_CHECKING:
    from types import FrameType

_NAME = "target-loyalty-store"
_TERMINATED: list[int] = []  # signals received (set by the handler, read by invoke)


def _byte_input(file_input: t.IO[t.Any] | None) -> t.BinaryIO | t.Iterable[bytes]:
    """Input as bytes: the binary buffer under a text stream, or byte lines of other text."""
    if file_input is None:
        return sys.stdin.buffer
    if isinstance(file_input, io.TextIOWrapper):
        return file_input.buffer
    if isinstance(file_input, io.BufferedIOBase | io.RawIOBase):
        return file_input
    return (line.encode("utf-8") if isinstance(line, str) else line for line in file_input)


class StoreReader(SingerReader):
    """Hands the whole input to the target's Loader instead of dispatching per message.

    A subclass of singer-sdk's own reader, so the SDK's ``listen``/``process_lines`` (the CLI
    and the standard target tests) reach the Loader; only ``process_lines`` is replaced.
    """

    def __init__(
        self, load: t.Callable[[t.BinaryIO | t.Iterable[bytes]], collections.Counter[str]]
    ) -> None:
        super().__init__()
        self._load = load

    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> collections.Counter[str]:
        """Run the Loader over the input; callbacks are the SDK's per-message path, unused."""
        del callbacks
        return self._load(_byte_input(file_input))


class TargetLoyaltyStore(Target):
    """Loads contacts, order lines, rejects and any other stream into one DuckDB file."""

    name = _NAME
    # The distribution --about reads its version from (singer-sdk defaults to `name`).
    package_name = "loyalty-pipelines"
    # Only what is true: BATCH messages (local JSONL, gzip or not) but no stream maps.
    capabilities: t.ClassVar[list] = [PluginCapabilities.ABOUT, PluginCapabilities.BATCH]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "database",
            th.StringType,
            default="./loyalty.duckdb",
            description="Path of the DuckDB file (created with its schema if missing).",
        ),
        th.Property(
            "match_field",
            th.StringType,
            default="email",
            allowed_values=["email", "mobile"],
            description="Field that identifies a person across sources (normalised).",
        ),
        th.Property(
            "resubscribe_unsubscribed",
            th.BooleanType,
            default=False,
            description="Let an import set newsletter=true for a contact who unsubscribed.",
        ),
        th.Property(
            "batch_size_rows",
            th.IntegerType,
            default=DEFAULT_BATCH_ROWS,
            description="Records per committed batch (bounds memory and staging size).",
        ),
        th.Property(
            "max_batch_seconds",
            th.NumberType,
            default=60,
            description="Commit (and emit STATE) when a STATE arrives this long after the "
            "last commit, even if the batch is not full.",
        ),
        th.Property(
            "strict_key_properties",
            th.BooleanType,
            default=False,
            description="A record missing a key property fails the run (Singer-strict) "
            "instead of going to _rejects.",
        ),
        th.Property(
            "memory_limit",
            th.StringType,
            default="150MB",
            description="DuckDB memory_limit; larger batches spill to disk beyond it.",
        ),
        th.Property(
            "threads",
            th.IntegerType(minimum=1),
            description="DuckDB threads (default: one per core). 1 with memory_limit 100MB "
            "keeps peak RSS near 200 MB at any size, ~25% slower.",
        ),
        th.Property(
            "lock_timeout_seconds",
            th.NumberType(minimum=0),
            default=60,
            description="Wait this long for another process (a load, an analyst) to release "
            "the DuckDB file, then exit 75 (temporary failure). 0: do not wait.",
        ),
        th.Property(
            "staging_dir",
            th.StringType,
            description="Directory for per-batch staging files (default: system temp).",
        ),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        # No sink class: the Loader replaces singer-sdk's Sink path, which is never reached.
        self._loader: Loader | None = None
        kwargs.setdefault("message_reader", StoreReader(self.run_loader))
        super().__init__(*args, **kwargs)

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """No SDK built-ins: none of them (load_method, validate_records...) apply here."""

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """singer-sdk's about, plus (as JSON) `reserved_streams`: the store's own tables and
        views no input stream may take, so an orchestrator can refuse such a pipeline before
        it runs (`loyalty validate`) instead of at the first SCHEMA."""
        if output_format != "json":
            super().print_about(output_format)
            return
        info = json.loads(JSONFormatter().format_about(cls._get_about_info()))
        info["reserved_streams"] = sorted(RESERVED_NAMES)
        print(json.dumps(info, indent=2, default=str))

    def run_loader(self, source: t.BinaryIO | t.Iterable[bytes]) -> collections.Counter[str]:
        """Process the input; on any error drop the open batch and record a failed run."""
        if self._loader is None:
            self._loader = Loader(self.config)
        try:
            if hasattr(source, "read"):
                return self._loader.process_stream(t.cast(t.BinaryIO, source))
            return self._loader.process(t.cast(t.Iterable[bytes], source))
        except BaseException as exc:
            error = _named(exc, self._loader)
            self._loader.fail(error, interrupt=bool(_TERMINATED))
            self._loader = None
            if error is not exc:
                raise error from None
            raise

    def process_endofpipe(self) -> None:
        """Commit the last batch, emit the last STATE, record the run."""
        loader, self._loader = self._loader, None
        if loader is None:
            loader = Loader(self.config)  # no input at all: still a recorded run
        try:
            loader.finish()
        except BaseException as exc:
            error = _named(exc, loader)
            loader.fail(error, interrupt=bool(_TERMINATED))
            if error is not exc:
                raise error from None
            raise

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: stop now; the open batch is dropped, STATE stays at the last commit."""
        del frame
        _TERMINATED.append(signum)
        raise StoreError(f"terminated by signal {signum}; the uncommitted batch was dropped")

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Run the target; a failure is one clear line on stderr and exit code 2."""
        try:
            super().invoke(
                about=about, about_format=about_format, config=config, file_input=file_input
            )
        except ConfigValidationError as exc:
            details = "; ".join(str(e) for e in getattr(exc, "errors", []) or []) or str(exc)
            sys.stderr.write(f"{_NAME}: error: config is invalid: {details}\n")
            sys.exit(2)
        except (StoreError, FatalSyncError) as exc:
            sys.stderr.write(f"{_NAME}: error: {exc}\n")
            sys.exit(128 + _TERMINATED[0] if _TERMINATED else getattr(exc, "exit_code", 2))
        except Exception as exc:
            if _TERMINATED:  # DuckDB turned the signal into "Query interrupted"
                sys.stderr.write(
                    f"{_NAME}: error: terminated by signal {_TERMINATED[0]}; "
                    "the uncommitted batch was dropped\n"
                )
                sys.exit(128 + _TERMINATED[0])
            traceback.print_exc()
            first = str(exc).splitlines()[0] if str(exc) else ""
            sys.stderr.write(f"{_NAME}: error: unexpected {type(exc).__name__}: {first}\n")
            sys.exit(1)


def _named(exc: BaseException, loader: Loader) -> BaseException:
    """A failed write that names no file (disk full) was to a staging file: say where."""
    if isinstance(exc, OSError) and exc.filename is None:
        return StoreError(
            f"cannot write the staging files in {loader._staging}: {exc.strerror or exc} "
            "(point staging_dir, or TMPDIR, at a disk with room)"
        )
    return exc


if __name__ == "__main__":
    TargetLoyaltyStore.cli()
