"""The Ometria push emulator over real HTTP: the contract of ../shared/api-contracts.md 5."""

from __future__ import annotations

import pytest
import requests

from sandbox.ometria import API_KEY, OmetriaEmulator


@pytest.fixture
def om():
    server = OmetriaEmulator(rate_limit_per_second=None).start()
    yield server
    server.stop()


def push(om: OmetriaEmulator, body: object, key: str = API_KEY) -> requests.Response:
    return requests.post(
        om.base_url + "/v2/push", json=body, headers={"X-Ometria-Auth": key}, timeout=10
    )


def contact(n: int, **fields: object) -> dict:
    return {"@type": "contact", "id": f"c{n}", "email": f"p{n}@example.com", **fields}


def test_answer_shape_and_upsert_with_partial_merge(om):
    answer = push(om, [contact(1, firstname="Ann", properties={"loyalty_tier": "Gold"})])
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"status", "request_id", "accepted", "rejected"}
    assert (body["status"], body["accepted"], body["rejected"]) == ("OK", 1, 0)
    # a partial record merges into the stored one (properties too)
    push(om, [{"@type": "contact", "id": "c1", "properties": {"loyalty_points_total": 5}}])
    stored = om.of_type("contact")["c1"]
    assert stored["firstname"] == "Ann" and stored["email"] == "p1@example.com"
    assert stored["properties"] == {"loyalty_tier": "Gold", "loyalty_points_total": 5}
    assert len(om.of_type("contact")) == 1 and len(om.received) == 2
    assert om.calls[0]["request_id"] == body["request_id"]


def test_refusals_auth_array_limits_and_one_type_per_call(om):
    assert push(om, [contact(1)], key="wrong").status_code == 401
    assert push(om, contact(1)).status_code == 400  # an object, not an array
    too_many = push(om, [contact(n) for n in range(101)])
    assert too_many.status_code == 413 and "100" in too_many.json()["message"]
    big = push(om, [contact(1, properties={"x": "y" * 61_500})])
    assert big.status_code == 400 and "Record is too large" in big.json()["message"]
    mixed = push(om, [contact(1), {"@type": "order", "id": "o1"}])
    assert mixed.status_code == 400 and "one object type" in mixed.json()["message"]
    assert om.stored == {}


def test_validation_after_the_answer_is_listed_at_errors(om):
    answer = push(om, [contact(1), contact(2, email="nope"), contact(3, marketing_optin="YES")])
    assert answer.json()["accepted"] == 3  # Ometria answers before it validates
    errors = requests.get(
        om.base_url + "/v2/push/_errors", headers={"X-Ometria-Auth": API_KEY}, timeout=10
    ).json()
    assert {(e["id"], e["error_path"]) for e in errors} == {
        ("c2", "root > email"),
        ("c3", "root > marketing_optin"),
    }
    assert {e["request_id"] for e in errors} == {answer.json()["request_id"]}
    assert set(om.of_type("contact")) == {"c1"}


def test_eight_requests_a_second_then_429_with_retry_after():
    om = OmetriaEmulator().start()  # the default: Ometria's documented 8 requests/s
    try:
        answers = [push(om, [contact(n)]) for n in range(12)]
    finally:
        om.stop()
    codes = [a.status_code for a in answers]
    assert codes[:8] == [200] * 8 and 429 in codes[8:]
    assert next(a for a in answers if a.status_code == 429).headers["Retry-After"]
