"""The Voyado emulator over real HTTP: what a careless client runs into, as the docs describe."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from sandbox.voyado import API_KEY, VoyadoEmulator
from sandbox.voyado.app import default_promotions

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HEADERS = {"apikey": API_KEY, "User-Agent": "test/1", "Content-Type": "application/json"}
WELCOME, EXPIRED, WEB_ONLY = (p.id for p in default_promotions(NOW))


@pytest.fixture
def voyado():
    server = VoyadoEmulator(now=NOW).start()
    yield server
    server.stop()


def call(voyado, method, path, *, headers=HEADERS, **kwargs):
    return requests.request(method, f"{voyado.api_url}/api/v3/{path}", headers=headers, **kwargs)


def receipt(rid="r1", **fields):
    return {
        "contact": {"matchKey": "ann@example.com", "matchKeyType": "email"},
        "uniqueReceiptId": rid,
        "createdDate": "2026-05-01T12:00:00+02:00",
        "storeExternalId": "store01",
        "currency": "DKK",
        "totalGrossPrice": 150.0,
        "paymentMethods": [{"type": "card", "value": 150.0}],
        "items": [
            {"type": "PURCHASE", "sku": "A", "quantity": 1, "grossPaidPrice": 100.0},
            {"type": "PURCHASE", "sku": "B", "quantity": 2, "grossPaidPrice": 50.0},
        ],
        **fields,
    }


def test_headers_the_real_api_insists_on(voyado):
    body = {"email": "ann@example.com"}
    no_key = call(voyado, "POST", "contacts", json=body, headers={**HEADERS, "apikey": "x"})
    no_agent = call(voyado, "POST", "contacts", json=body, headers={**HEADERS, "User-Agent": ""})
    text = call(
        voyado,
        "POST",
        "contacts",
        data='{"email": "ann@example.com"}',
        headers={**HEADERS, "Content-Type": "text/plain"},
    )

    assert no_key.status_code == 401
    assert no_agent.status_code == 400
    assert (text.status_code, text.json()) == (500, {"message": "An error has occurred"})
    assert voyado.contacts == {}


def test_lookup_create_patch_and_overview(voyado):
    assert call(voyado, "GET", "contacts/id", params={"email": "ann@example.com"}).json() == {
        "errorCode": "ContactNotFound",
        "message": "ContactNotFound",
    }
    bad = call(voyado, "GET", "contacts/id", params={"email": "not-an-address"})
    assert (bad.status_code, bad.json()["errorCode"]) == (400, "InvalidEmailAddress")

    query = {"source": "POS", "storeExternalId": "store01", "createAsUnapproved": "false"}
    created = call(
        voyado,
        "POST",
        "contacts",
        params=query,
        json={"email": "ann@example.com", "firstName": "Ann", "city": "Aarhus"},
    )
    assert created.status_code == 201
    cid = created.json()["id"]
    found = call(voyado, "GET", "contacts/id", params={"email": "ANN@example.com"})
    assert found.json() == cid
    assert voyado.contacts[cid].source == "POS"
    assert voyado.contacts[cid].store_external_id == "store01"

    # A PATCH overwrites with what it carries, null and "" included; unknown fields are ignored.
    call(voyado, "PATCH", f"contacts/{cid}", json={"city": None, "firstName": "", "shoe": 42})
    attributes = call(voyado, "GET", "contactoverview", params={"contactId": cid}).json()[
        "attributes"
    ]
    assert attributes == {"email": "ann@example.com", "firstName": "", "city": None}

    again = call(voyado, "POST", "contacts", json={"email": "ann@example.com"})
    assert (again.status_code, again.json()["errorCode"]) == (409, "ContactAlreadyExists")


def test_two_contacts_with_one_mobile_number_are_multiple_matches(voyado):
    voyado.add_contact(mobilePhone="+4512345678")
    voyado.add_contact(mobilePhone="+45 1234 5678")

    answer = call(voyado, "GET", "contacts/id", params={"mobilePhone": "+4512345678"})

    assert (answer.status_code, answer.json()["errorCode"]) == (409, "MultipleMatches")


def test_receipts_are_validated_and_a_repeated_id_is_ignored(voyado):
    voyado.add_contact(email="ann@example.com")

    first = call(voyado, "POST", "receipts", json=receipt())
    repeat = call(voyado, "POST", "receipts", json=receipt(totalGrossPrice=150.0))
    no_currency = call(voyado, "POST", "receipts", json=receipt("r2", currency=None))
    wrong_total = call(voyado, "POST", "receipts", json=receipt("r3", totalGrossPrice=149.99))
    naive_date = call(
        voyado, "POST", "receipts", json=receipt("r4", createdDate="2026-05-01T12:00")
    )
    unknown = call(
        voyado,
        "POST",
        "receipts",
        json=receipt("r5", contact={"matchKey": "bo@example.com", "matchKeyType": "email"}),
    )

    assert (first.status_code, repeat.status_code) == (202, 202)
    assert [r["uniqueReceiptId"] for r in voyado.received] == ["r1"]
    assert voyado.duplicate_receipts == 1
    assert no_currency.json()["errorCode"] == "MissingRequiredField"
    assert wrong_total.json()["errorCode"] == "TotalMismatch"
    assert naive_date.json()["errorCode"] == "InvalidCreatedDate"
    assert (unknown.status_code, unknown.json()["errorCode"]) == (404, "ContactNotFound")


def test_promotion_assignment_and_redemption_errors(voyado):
    cid = voyado.add_contact(email="ann@example.com")

    expired = call(
        voyado, "POST", "promotion-assignments", json={"contactId": cid, "promotionId": EXPIRED}
    )
    assignment = call(
        voyado, "POST", "promotion-assignments", json={"contactId": cid, "promotionId": WELCOME}
    ).json()
    web = call(
        voyado, "POST", "promotion-assignments", json={"contactId": cid, "promotionId": WEB_ONLY}
    ).json()

    def redeem(aid, channel="POS"):
        path = f"promotion-assignments/{aid}/redeem"
        answer = call(voyado, "POST", path, json={"redemptionChannel": channel})
        return answer.status_code, answer.json().get("errorCode")

    assert (expired.status_code, expired.json()["errorCode"]) == (409, "PromotionExpired")
    assert redeem(assignment["id"], "SHOP") == (400, "NotAValidRedemptionChannel")
    assert redeem(web["id"]) == (409, "PromotionNotValidForRedemptionChannel")
    assert redeem(assignment["id"]) == (200, None)
    assert redeem(assignment["id"]) == (409, "PromotionAlreadyRedeemed")
    assert redeem(WELCOME) == (404, "PromotionNotFound")  # the promotion id is not an assignment
    overview = call(voyado, "GET", "contactoverview", params={"email": "ann@example.com"}).json()
    assert [(p["externalId"], p["redeemed"]) for p in overview["promotions"]] == [
        ("WELCOME10", True),
        ("WEB5", False),
    ]


def test_rate_limit_answers_429_per_api_key(voyado):
    voyado.set_rate_limit(5)
    statuses = [
        call(voyado, "GET", "contactoverview", params={"contactId": "x"}).status_code
        for _ in range(8)
    ]

    assert statuses[:5] == [404] * 5
    assert 429 in statuses[5:]


def test_a_lost_response_still_creates_the_contact(voyado):
    voyado.inject_fault("/api/v3/contacts?", lose_response=True)

    with pytest.raises(requests.ConnectionError):
        call(voyado, "POST", "contacts", params={"source": "POS"}, json={"email": "a@example.com"})

    assert [c.attributes["email"] for c in voyado.contacts.values()] == ["a@example.com"]
    assert voyado.requests[-1].fault == "lose_response"
