"""Every private singer-sdk name this project relies on, in one place.

singer-sdk does not promise these names across releases (a leading underscore, or a ``_module``
on the path), so they are imported here and nowhere else. ``tests/kit/test_sdk_compat.py``
checks that each still exists with the shape we use; an SDK upgrade that breaks one fails that
test first, naming the symbol, instead of failing somewhere in a run. The supported SDK range is
pinned in ``pyproject.toml`` (``singer-sdk>=0.54.9,<0.55``).

Our subclasses also override or call private members of singer-sdk classes, which cannot be
imported from here; the same test finds every such use in the connectors and the kit and
fails on one missing from this list:

- ``Stream._generate_record_messages(self, record)``: overridden (tap-flexpos's fast path).
- ``Stream._sync_records(self, context=None, *, write_messages=True)``: called (BATCH files).
- ``Stream._schema``: assigned (a catalog's extra fields; ``Stream.schema`` returns it).
- ``Stream._stream_version``: read (the RECORD messages of the fast path).
- ``PluginBase._validate_config(self, *, raise_errors=True)``: overridden and called.
- ``PluginBase._env_var_config``: a classproperty, overridden (FLEXPOS_* variables).
- ``PluginBase._config``: read (the config being validated).
- ``PluginBase._get_about_info(cls)``: called (``--about`` plus our own keys).
- ``Target._handle_termination(self, signum, frame)``: overridden (drop the open batch).
"""

from __future__ import annotations

from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig, SDKBatchMessage
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers._util import utc_now
from singer_sdk.plugin_base import _ConfigInput as ConfigInput

__all__ = [
    "BaseBatchFileEncoding",
    "BatchConfig",
    "ConfigInput",
    "SDKBatchMessage",
    "classproperty",
    "parse_environment_config",
    "pop_deselected_record_properties",
    "utc_now",
]
