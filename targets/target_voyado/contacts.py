"""A store contact (the `voyado_contacts` model's row) into Voyado: find, then create or PATCH.

The flow of the POS guide (section 2): identify the contact by the configured key; create it
when Voyado does not know it, always with ``source`` and ``storeExternalId`` (query
parameters in v3) and country and language in the body; when it is known, PATCH only the
fields whose value differs from Voyado's and is not empty: Voyado overwrites with whatever a
PATCH carries, an empty value included, so an empty source value never reaches it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import typing as t

from singer_kit.http.errors import ApiError
from target_voyado.client import Refused, VoyadoClient

log = logging.getLogger("target-voyado")

# Model column -> Voyado contact attribute.
ATTRIBUTES = {
    "email": "email",
    "mobile": "mobilePhone",
    "member_number": "memberNumber",
    "first_name": "firstName",
    "last_name": "lastName",
    "birthday": "birthDay",
    "address": "street",
    "zip_code": "zipCode",
    "city": "city",
    "country_code": "countryCode",
}
DEFAULT_CONSENTS = {"newsletter": "acceptsEmail", "consent_related": "acceptsSms"}
DEFAULT_LANGUAGES = {"DK": "da", "SE": "sv", "NO": "nb", "FI": "fi", "DE": "de", "GB": "en"}


@dataclasses.dataclass(frozen=True)
class ContactPayload:
    """What a contact record says, Voyado-shaped, empty values already left out."""

    key: str  # the configured key (email, mobilePhone, memberNumber)
    value: str  # its value for this contact
    attributes: dict[str, t.Any]
    preferences: dict[str, bool]
    store_external_id: str

    def as_json(self) -> dict[str, t.Any]:
        """The payload the ledger hashes: a change in any part sends the contact again."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Outcome:
    """What happened to one contact (the sink's result and the welcome promotion's)."""

    contact_id: str
    created: bool
    patched: list[str]


class ContactMapper:
    """Model rows to ``ContactPayload`` with the target's settings (README: Contacts)."""

    def __init__(self, config: t.Mapping[str, t.Any]) -> None:
        self.key = str(config.get("contact_key") or "email")
        self.consents = dict(config.get("consents") or DEFAULT_CONSENTS)
        self.languages = {
            str(k).upper(): str(v)
            for k, v in (config.get("languages") or DEFAULT_LANGUAGES).items()
        }
        self.default_language = config.get("default_language")
        self.default_country = config.get("default_country")
        self.stores = {str(k): str(v) for k, v in (config.get("store_external_ids") or {}).items()}
        self.markets = {str(k).upper(): str(v) for k, v in (config.get("markets") or {}).items()}
        self.default_store = config.get("default_store_external_id")

    def payload(self, row: t.Mapping[str, t.Any]) -> ContactPayload:
        """The contact; ``ValueError`` when it cannot be identified or placed in a store."""
        attributes = {
            attr: _clean(row.get(column))
            for column, attr in ATTRIBUTES.items()
            if _clean(row.get(column)) is not None
        }
        country = attributes.get("countryCode") or self.default_country
        if country:
            attributes["countryCode"] = str(country).upper()
            language = self.languages.get(str(country).upper(), self.default_language)
        else:
            language = self.default_language
        if row.get("language"):
            language = str(row["language"]).lower()
        if language:
            attributes["language"] = language
        value = attributes.get(self.key)
        if value is None:
            raise ValueError(f"the contact has no {self.key} to identify it by (contact_key)")
        preferences = {
            pref: bool(row[column])
            for column, pref in self.consents.items()
            if row.get(column) is not None
        }
        return ContactPayload(self.key, str(value), attributes, preferences, self.store(row))

    def store(self, row: t.Mapping[str, t.Any]) -> str:
        """storeExternalId: the contact's own store, else its market (country), else the
        default."""
        for key in (row.get("store_id"), row.get("store")):
            if key is not None and str(key) in self.stores:
                return self.stores[str(key)]
        country = str(row.get("country_code") or self.default_country or "").upper()
        if country in self.markets:
            return self.markets[country]
        if self.default_store:
            return str(self.default_store)
        raise ValueError(
            "no storeExternalId for the contact (set store_external_ids, markets or "
            "default_store_external_id)"
        )


class ContactSync:
    """Find, create or patch one contact (see the module doc)."""

    def __init__(self, client: VoyadoClient, config: t.Mapping[str, t.Any]) -> None:
        self.client = client
        self.source = str(config.get("source") or "POS")
        self.contact_type = str(config.get("contact_type") or "Member")
        self.unapproved = bool(config.get("create_as_unapproved", False))
        self.max_retries = client.policy.max_retries
        self.backoff = client.policy.backoff_seconds

    def sync(self, contact: ContactPayload) -> Outcome:
        """The contact is in Voyado with this content; ``Refused`` carries Voyado's code."""
        attempts = 0
        created = False
        while True:  # bounded: max_retries creates that did not answer or lost a race
            found = self.client.find_contact(contact.key, contact.value, self.contact_type)
            if found is not None:
                # A create whose answer was lost made this contact: it is still ours and new.
                return Outcome(found, created, self.patch(found, contact))
            attempts += 1
            try:
                answer = self.client.create_contact(self.body(contact), self.query(contact))
            except Refused as exc:
                # ContactAlreadyExists: another writer was first; the lookup finds it to patch.
                if exc.code != "ContactAlreadyExists" or attempts > self.max_retries:
                    raise
                continue
            except ApiError as exc:  # no answer: the contact may exist now; look before again
                if attempts > self.max_retries:
                    raise
                created = True
                delay = min(self.backoff * 2 ** (attempts - 1), 30.0)
                log.warning("%s; looking the contact up again in %.1fs", exc, delay)
                time.sleep(delay)
                continue
            return Outcome(str(answer["id"]), True, [])

    def body(self, contact: ContactPayload) -> dict[str, t.Any]:
        body: dict[str, t.Any] = {"contactType": self.contact_type, **contact.attributes}
        if contact.preferences:
            body["preferences"] = contact.preferences
        return body

    def query(self, contact: ContactPayload) -> dict[str, str]:
        """v3 takes these three as query parameters (headers are ignored)."""
        return {
            "source": self.source,
            "storeExternalId": contact.store_external_id,
            "createAsUnapproved": "true" if self.unapproved else "false",
        }

    def patch(self, contact_id: str, contact: ContactPayload) -> list[str]:
        """PATCH the fields that differ from Voyado's; returns their names (none: no call)."""
        current = self.client.overview(contact_id)
        have = current.get("attributes") or {}
        changes = {k: v for k, v in contact.attributes.items() if have.get(k) != v}
        prefs = current.get("preferences") or {}
        changed_prefs = {k: v for k, v in contact.preferences.items() if prefs.get(k) != v}
        if changed_prefs:  # the object is replaced whole: keep Voyado's other preferences
            changes["preferences"] = {**prefs, **contact.preferences}
        if changes:
            self.client.patch_contact(contact_id, changes)
        return sorted(changes)


def _clean(value: t.Any) -> t.Any:
    """None for an empty value (null, blank text): it must never reach a PATCH."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value if isinstance(value, bool | int | float) else str(value)
