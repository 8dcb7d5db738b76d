"""The singer-sdk private names the stream base reaches through singer_kit.sdk_compat.

Each wrapper there calls one private ``Stream`` method with keyword arguments; an SDK release
that renames the method or those arguments fails here, naming it, instead of inside a tap run.
"""

from __future__ import annotations

import inspect
import re

import pytest
from singer_sdk import Stream

from singer_kit import sdk_compat

WRAPPERS = [
    sdk_compat.write_state_message,
    sdk_compat.increment_stream_state,
    sdk_compat.write_starting_replication_value,
    sdk_compat.finalize_state,
    sdk_compat.check_max_record_limit,
    sdk_compat.RecordSyncHook.sdk_sync_records,
]
CALL = re.compile(r"(?:stream|Stream)\.(_\w+)\(([^)]*)\)")


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda f: f.__qualname__)
def test_each_wrapper_calls_a_stream_method_that_takes_its_arguments(wrapper):
    calls = CALL.findall(inspect.getsource(wrapper))
    assert calls, "the wrapper calls no private Stream method"
    for name, args in calls:
        method = getattr(Stream, name, None)
        assert callable(method), f"singer_sdk.Stream.{name} is gone"
        keywords = set(re.findall(r"(\w+)=", args))
        params = set(inspect.signature(method).parameters)
        assert keywords <= params, f"Stream.{name}{inspect.signature(method)}"


def test_the_record_version_attribute_still_exists():
    assert "stream._stream_version" in inspect.getsource(sdk_compat.stream_version)
    assert "self._stream_version" in inspect.getsource(Stream.__init__)
