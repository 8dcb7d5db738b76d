"""singer-sdk's standard target tests, run against TargetLoyaltyStore in-process."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
from singer_sdk.testing import get_target_test_class

from target_loyalty_store.target import TargetLoyaltyStore

# One store per xdist worker process (the class config is fixed when the module is imported).
_DIR = Path(tempfile.mkdtemp(prefix="std-target-"))

# Singer-strict: the standard suite expects a record missing its key property to stop the run.
TestTargetLoyaltyStoreStrict = get_target_test_class(
    TargetLoyaltyStore,
    config={"database": str(_DIR / "strict.duckdb"), "strict_key_properties": True},
)

_DEFAULT_DB = _DIR / "default.duckdb"
_Default = get_target_test_class(TargetLoyaltyStore, config={"database": str(_DEFAULT_DB)})


class TestTargetLoyaltyStoreDefaultConfig(_Default):
    """The same suite with the default config: identical, except for the one documented case."""

    def test_target_record_missing_key_property(self, runner):
        # Default: the record goes to _rejects with its reason, the run does not fail.
        from singer_sdk.testing.target_tests import TargetRecordMissingKeyProperty

        runner.input_filepath = TargetRecordMissingKeyProperty().singer_filepath
        runner.sync_all()
        con = duckdb.connect(str(_DEFAULT_DB), read_only=True)
        try:
            rows = con.execute(
                "SELECT stream, reason, record->>'metric' FROM _rejects "
                "WHERE stream = 'test_record_missing_key_property'"
            ).fetchall()
        finally:
            con.close()
        assert rows == [("test_record_missing_key_property", "missing key property 'id'", "8214")]
