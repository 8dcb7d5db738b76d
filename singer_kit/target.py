"""A singer-sdk Target that runs a :class:`~singer_kit.commit.CommitLoop` over its input.

singer-sdk gives the CLI, config validation, ``--about`` and the standard target tests; its
per-record Sink path is replaced whole by the target's loop (the reader hands it the input),
so no Sink class is needed. The ending is the same for every target here: on any error the
open batch is dropped and the run fails with one line on stderr (exit 2 for input the user
must fix, 128+N for signal N), never a traceback unless the error is a bug.
"""

from __future__ import annotations

import collections
import io
import sys
import traceback
import typing as t

import msgspec
from singer_sdk.exceptions import ConfigValidationError, FatalSyncError
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.io_base import GenericSingerReader
from singer_sdk.target_base import Target

from singer_kit.commit import CommitLoop, InputError

if t.TYPE_CHECKING:
    from types import FrameType

_TERMINATED: list[int] = []  # signals received (set by the handler, read by invoke)
_decode = msgspec.json.Decoder().decode


def byte_input(file_input: t.IO[t.Any] | None) -> t.BinaryIO | t.Iterable[bytes]:
    """Input as bytes: the binary buffer under a text stream, or byte lines of other text."""
    if file_input is None:
        return sys.stdin.buffer
    if isinstance(file_input, io.TextIOWrapper):
        return file_input.buffer
    if isinstance(file_input, io.BufferedIOBase | io.RawIOBase):
        return file_input
    return (line.encode("utf-8") if isinstance(line, str) else line for line in file_input)


class LoopReader(GenericSingerReader[bytes]):
    """Hands the whole input to the target's loop instead of dispatching per message."""

    def __init__(self, target: LoopTarget | None = None) -> None:
        super().__init__()
        self.target = target

    @property
    def default_input(self) -> t.IO[bytes]:
        """Standard input, binary."""
        return sys.stdin.buffer

    def deserialize_json(self, line: bytes) -> dict:
        """One message, decoded with msgspec (the loop decodes only the lines it must)."""
        return _decode(line)

    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> collections.Counter[str]:
        """Run the target's loop over the input; callbacks (the SDK's per-message path) unused."""
        del callbacks
        if self.target is None:  # pragma: no cover - wired in LoopTarget.__init__
            raise RuntimeError("LoopReader needs its target")
        return self.target.run_loop(byte_input(file_input))


class LoopTarget(Target):
    """A Target whose messages go through ``make_loop()``'s CommitLoop."""

    message_reader_class = LoopReader
    # The loop replaces the Sink path, so the SDK's stream maps, flattening and record
    # validation do not happen: only what is true (a target adds BATCH if its loop takes it).
    capabilities: t.ClassVar[list] = [PluginCapabilities.ABOUT]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_reader = LoopReader(self)
        self._loop: CommitLoop | None = None

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """No SDK built-ins: they configure the Sink path (load_method, validate_records...),
        which the loop replaces."""

    def make_loop(self) -> CommitLoop:
        """The target's loop, built from ``self.config`` (its errors are one line)."""
        raise NotImplementedError

    def named_error(self, exc: BaseException, loop: CommitLoop) -> BaseException:
        """A clearer error for ``exc`` where the target knows more (default: itself)."""
        del loop
        return exc

    def run_loop(self, source: t.BinaryIO | t.Iterable[bytes]) -> collections.Counter[str]:
        """Process the input; on any error drop the open batch and fail the run."""
        if self._loop is None:
            self._loop = self.make_loop()
        loop = self._loop
        try:
            if hasattr(source, "read"):
                return loop.process_stream(t.cast(t.BinaryIO, source))
            return loop.process(t.cast(t.Iterable[bytes], source))
        except BaseException as exc:
            self._loop = None
            self._fail(loop, exc)
            raise  # pragma: no cover - _fail raises

    def process_endofpipe(self) -> None:
        """Commit the last batch, emit the last STATE, end the run."""
        loop, self._loop = self._loop, None
        if loop is None:
            loop = self.make_loop()  # no input at all: still a run that ends
        try:
            loop.finish()
        except BaseException as exc:
            self._fail(loop, exc)

    def _fail(self, loop: CommitLoop, exc: BaseException) -> t.NoReturn:
        error = self.named_error(exc, loop)
        loop.fail(error, interrupt=bool(_TERMINATED))
        if error is not exc:
            raise error from None
        raise exc

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: stop now; the open batch is dropped, STATE stays at the last commit."""
        del frame
        _TERMINATED.append(signum)
        raise InputError(f"terminated by signal {signum}; the uncommitted batch was dropped")

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
            sys.stderr.write(f"{cls.name}: error: config is invalid: {details}\n")
            sys.exit(2)
        except (InputError, FatalSyncError) as exc:
            sys.stderr.write(f"{cls.name}: error: {exc}\n")
            sys.exit(128 + _TERMINATED[0] if _TERMINATED else getattr(exc, "exit_code", 2))
        except Exception as exc:
            if _TERMINATED:  # e.g. DuckDB turned the signal into "Query interrupted"
                sys.stderr.write(
                    f"{cls.name}: error: terminated by signal {_TERMINATED[0]}; "
                    "the uncommitted batch was dropped\n"
                )
                sys.exit(128 + _TERMINATED[0])
            traceback.print_exc()
            first = str(exc).splitlines()[0] if str(exc) else ""
            sys.stderr.write(f"{cls.name}: error: unexpected {type(exc).__name__}: {first}\n")
            sys.exit(1)
