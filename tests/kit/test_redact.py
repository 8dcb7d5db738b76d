"""The one redactor of the kit: what the orchestrator, the taps and their HTTP client scrub."""

from __future__ import annotations

import threading

from singer_kit.redact import SECRET_NAME, Redactor, strings, url_origin


def test_registered_secrets_are_replaced_longest_first():
    redact = Redactor(["abcd1234", "abcd1234-and-more"])
    assert redact("x abcd1234-and-more y abcd1234 z") == "x *** y *** z"


def test_values_too_short_to_be_secrets_are_ignored():
    redact = Redactor(["ab", "", "abc"])
    assert redact("abc ab") == "abc ab"


def test_any_url_password_is_masked_by_pattern():
    redact = Redactor()
    assert (
        redact("GET https://loyal:pw-7@host/x failed; retry postgres://u:p%40ss@db:5432/s")
        == "GET https://loyal:***@host/x failed; retry postgres://u:***@db:5432/s"
    )


def test_a_url_password_in_the_configs_is_masked_anywhere_it_appears():
    configs = {"tap": {"api_url": "http://loyal:pw-Url-Secret-77@127.0.0.1:9/api"}}
    redact = Redactor([], configs)
    assert redact("auth failed for pw-Url-Secret-77") == "auth failed for ***"


def test_nested_settings_are_registered_whole():
    redact = Redactor()
    redact.add({"oauth": {"secret": "s3cr3t-value", "scopes": ["tok-aaaa", 7]}})
    assert redact("s3cr3t-value and tok-aaaa") == "*** and ***"
    assert list(strings({"a": ["x", {"b": "y"}], "c": 1})) == ["x", "y"]


def test_secrets_added_from_another_thread_are_used_at_once():
    redact = Redactor()
    worker = threading.Thread(target=redact.add, args=("renewed-token-123",))
    worker.start()
    worker.join()
    assert redact("Bearer renewed-token-123") == "Bearer ***"


def test_secret_names_and_url_origins():
    assert all(SECRET_NAME.search(k) for k in ["client_secret", "API_KEY", "apikey", "db_password"])
    assert not SECRET_NAME.search("api_url")
    assert url_origin("https://hooks.example.com:8443/T0/B1/tokenpart?x=1") == (
        "https://hooks.example.com:8443"
    )


def test_mask_record_hides_people_and_secrets_but_keeps_the_shape():
    from singer_kit.redact import mask_record

    record = {
        "Uid": "c-1",
        "FirstName": "Johanne",
        "last_name": "Møller",
        "Email": "johanne@example.com",
        "MobilePhone": "+45 12 34 56 78",
        "Birthday": None,
        "ProductName": "Dinner for two",
        "api_key": "k-123",
        "Lines": [{"note": "call +45 87 65 43 21 or mail ann@x.dk", "Quantity": 2}],
        "ModifiedDate": "2026-06-15T09:30:00",
        "comment": "token tok-secret-99 expired",
    }
    masked = mask_record(record, Redactor(["tok-secret-99"]))
    assert masked == {
        "Uid": "c-1",
        "FirstName": "J***",
        "last_name": "M***",
        "Email": "***@example.com",
        "MobilePhone": "+***",
        "Birthday": None,
        "ProductName": "Dinner for two",
        "api_key": "***",
        "Lines": [{"note": "call *** or mail ***@x.dk", "Quantity": 2}],
        "ModifiedDate": "2026-06-15T09:30:00",
        "comment": "token *** expired",
    }
