"""Every private singer-sdk name this project relies on, in one place.

singer-sdk does not promise these names across releases (a leading underscore, or a ``_module``
on the path), so they are imported here and nowhere else. ``tests/kit/test_sdk_compat.py``
checks that each still exists with the shape we use; an SDK upgrade that breaks one fails that
test first, naming the symbol, instead of failing somewhere in a run. The supported SDK range is
pinned in ``pyproject.toml``.
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
