"""singer-sdk's standard target tests, run against TargetLoyaltyStore in-process."""

from __future__ import annotations

import tempfile
from pathlib import Path

from singer_sdk.testing import get_target_test_class

from target_loyalty_store.target import TargetLoyaltyStore

# One store per xdist worker process (the class config is fixed when the module is imported).
_DB = Path(tempfile.mkdtemp(prefix="std-target-")) / "std.duckdb"

# strict_key_properties: the standard suite expects a record missing its key property to stop
# the run (Singer-strict); the store's default routes such a record to _rejects instead, which
# tests/targets/test_store.py covers.
TestTargetLoyaltyStoreStandard = get_target_test_class(
    TargetLoyaltyStore,
    config={"database": str(_DB), "strict_key_properties": True},
)
