"""Every private singer-sdk name this project relies on, in one place.

singer-sdk does not promise these names across releases (a leading underscore, or a ``_module``
on the path), so they are imported here and nowhere else. ``tests/kit/test_sdk_compat.py``
checks that each still exists with the shape we use; an SDK upgrade that breaks one fails that
test first, naming the symbol, instead of failing somewhere in a run. The supported SDK range is
pinned in ``pyproject.toml`` (``singer-sdk>=0.54.9,<0.55``).

Our subclasses also override or call private members of singer-sdk classes, which cannot be
imported from here; the same test finds every such use in the connectors and the kit and
fails on one missing from this list:

- ``Stream._sync_records(self, context=None, *, write_messages=True)``: overridden by
  ``RecordSyncHook`` (the stream base's fast record path) and called (the SDK's own loop).
- ``Stream._write_state_message(self)``, ``Stream._increment_stream_state(self, latest_record,
  *, context=None)``, ``Stream._write_starting_replication_value(self, context)``,
  ``Stream._finalize_state(self, state=None)``, ``Stream._check_max_record_limit(self,
  current_record_index)``: called by the wrappers below (the fast path keeps the SDK's state
  and record-limit rules).
- ``Stream._schema``: assigned (a catalog's extra fields; ``Stream.schema`` returns it).
- ``Stream._stream_version``: read (the RECORD messages of the fast path).
- ``PluginBase._validate_config(self, *, raise_errors=True)``: overridden and called.
- ``PluginBase._env_var_config``: a classproperty, overridden (FLEXPOS_* variables).
- ``PluginBase._config``: read (the config being validated).
- ``PluginBase._get_about_info(cls)``: called (``--about`` plus our own keys).
- ``Target._handle_termination(self, signum, frame)``: overridden (drop the open batch).
"""

from __future__ import annotations

import typing as t

from singer_sdk import Stream
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig, SDKBatchMessage
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers._util import utc_now
from singer_sdk.plugin_base import _ConfigInput as ConfigInput

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

__all__ = [
    "BaseBatchFileEncoding",
    "BatchConfig",
    "ConfigInput",
    "RecordSyncHook",
    "SDKBatchMessage",
    "check_max_record_limit",
    "classproperty",
    "finalize_state",
    "increment_stream_state",
    "parse_environment_config",
    "pop_deselected_record_properties",
    "stream_version",
    "utc_now",
    "write_starting_replication_value",
    "write_state_message",
]


# --- the record loop the incremental stream base (singer_kit.streams) takes over ------------
# Stream.sync() is final and calls the private _sync_records; these wrappers are the only
# places the stream base touches the SDK's private state and message methods.


class RecordSyncHook(Stream):
    """Routes singer-sdk's private record loop through ``sync_records`` (public here)."""

    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Iterator[dict]:
        return self.sync_records(context, write_messages=write_messages)

    def sync_records(self, context: Context | None, *, write_messages: bool) -> t.Iterator[dict]:
        """Override to replace the loop; the default is the SDK's."""
        return self.sdk_sync_records(context, write_messages=write_messages)

    def sdk_sync_records(
        self, context: Context | None, *, write_messages: bool
    ) -> t.Iterator[dict]:
        """singer-sdk's own record loop: per record, message objects, state and metrics."""
        return Stream._sync_records(self, context, write_messages=write_messages)


def write_state_message(stream: Stream) -> None:
    """Write the stream's STATE now, if it changed since the last one."""
    stream._write_state_message()


def increment_stream_state(stream: Stream, record: dict, context: Context | None) -> None:
    """Move the stream's bookmark to ``record``'s replication key (the SDK's rules)."""
    stream._increment_stream_state(record, context=context)


def write_starting_replication_value(stream: Stream, context: Context | None) -> None:
    """Record where this sync started (what ``get_starting_replication_key_value`` reads)."""
    stream._write_starting_replication_value(context)


def finalize_state(stream: Stream, state: dict) -> None:
    """Promote progress markers and mark the state for writing (end of a sync)."""
    stream._finalize_state(state)


def check_max_record_limit(stream: Stream, index: int) -> None:
    """Abort the sync the SDK's way when ``index`` passes ``ABORT_AT_RECORD_COUNT``."""
    stream._check_max_record_limit(current_record_index=index)


def stream_version(stream: Stream) -> int | None:
    """The ``version`` a RECORD message carries (set only for ACTIVATE_VERSION streams)."""
    return stream._stream_version
