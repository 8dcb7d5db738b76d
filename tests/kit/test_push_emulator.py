"""The push-emulator base over HTTP: its limits answer with the limit named, its control API
shows what it accepted, and it upserts by key."""

from __future__ import annotations

import pytest
import requests

from sandbox.push import API_KEY, PushEmulator


class Small(PushEmulator):
    max_records_per_call = 2
    max_record_bytes = 64


@pytest.fixture
def emulator():
    server = Small().start()
    yield server
    server.stop()


def post(emulator: PushEmulator, body: object, key: str = API_KEY) -> requests.Response:
    url = emulator.base_url + emulator.push_path
    return requests.post(url, json=body, headers={"X-Api-Key": key}, timeout=10)


def test_limits_and_auth_answer_with_what_was_wrong(emulator):
    assert post(emulator, [{"id": 1}], key="wrong").status_code == 401
    too_many = post(emulator, [{"id": n} for n in range(3)])
    assert too_many.status_code == 413
    assert too_many.json() == {"error": "Payload too large: 3 records, the limit is 2 per call"}
    too_big = post(emulator, [{"id": 1}, {"id": 2, "x": "y" * 100}])
    assert too_big.status_code == 400
    assert "record 1: 115 bytes, the limit is 64 bytes per record" in too_big.json()["error"]
    assert post(emulator, {"id": 1}).status_code == 400  # not an array
    assert emulator.received == []  # nothing of a refused call is kept


def test_records_are_upserted_by_key_and_readable_over_the_control_api(emulator):
    assert post(emulator, [{"id": 1, "v": 1}, {"v": 2}]).json() == {
        "status": "OK",
        "accepted": 1,
        "rejected": 1,
        "errors": [{"index": 1, "reason": "record must be an object with an 'id'"}],
    }
    post(emulator, [{"id": 1, "v": 3}])
    control = emulator.base_url + "/_sandbox/push"
    received = requests.get(f"{control}/received", timeout=10).json()["received"]
    assert received == [{"id": 1, "v": 1}, {"id": 1, "v": 3}]
    assert requests.get(f"{control}/stored", timeout=10).json() == {
        "stored": {"1": {"id": 1, "v": 3}}
    }
    requests.delete(f"{control}/received", timeout=10)
    assert emulator.stored == {}


def test_over_the_rate_limit_a_call_gets_429_with_retry_after(emulator):
    emulator.set_rate_limit(1)
    assert post(emulator, [{"id": 1}]).status_code == 200
    limited = post(emulator, [{"id": 2}])
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert emulator.stored == {"1": {"id": 1}}
