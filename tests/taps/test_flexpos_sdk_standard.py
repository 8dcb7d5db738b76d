"""singer-sdk's standard tap tests (discovery, records, schemas, keys, attribute types).

The standard test class is built at import time, before the session sandbox exists, so it
starts from a placeholder config and the class-scoped `runner` fixture points it at the
emulator before the first sync.
"""

from __future__ import annotations

import datetime as dt

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner

from tap_flexpos.tap import TapFlexPOS

_PLACEHOLDER = {"client_id": "placeholder", "client_secret": "placeholder"}
_SUITE = SuiteConfig(max_records_limit=150)

_StandardTests = get_tap_test_class(
    TapFlexPOS, config=_PLACEHOLDER, suite_config=_SUITE, parse_env_config=False
)


class TestTapFlexPOSStandard(_StandardTests):
    """Runs every standard test against the shared (read-only) emulator."""

    @pytest.fixture(scope="class")
    def runner(self, sandbox) -> TapTestRunner:
        env = sandbox.env()
        config = {
            "auth_url": env["FLEXPOS_AUTH_URL"],
            "api_url": env["FLEXPOS_API_URL"],
            "client_id": env["FLEXPOS_CLIENT_ID"],
            "client_secret": env["FLEXPOS_CLIENT_SECRET"],
            "attraction_api_url": env["FLEXPOS_ATTRACTION_API_URL"],
            "attraction_client_id": env["FLEXPOS_ATTRACTION_CLIENT_ID"],
            "attraction_client_secret": env["FLEXPOS_ATTRACTION_CLIENT_SECRET"],
            "start_date": (sandbox.flexpos.data.now - dt.timedelta(days=365)).isoformat(),
        }
        test_runner = TapTestRunner(
            tap_class=TapFlexPOS, config=config, suite_config=_SUITE, parse_env_config=False
        )
        test_runner.sync_all()
        return test_runner
