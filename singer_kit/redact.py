"""One redactor for every connector and the orchestrator: secrets never reach a log line.

What counts as a secret: every value registered with ``Redactor.add`` (client secrets, tokens,
``${VAR}`` values of secret-named settings), the password of any URL with credentials in it
(``https://user:secret@host``, caught by pattern wherever it appears, and by value when it was
found in a config), and the path of a URL whose origin is all a message needs (``url_origin``:
a webhook URL often *is* the credential).
"""

from __future__ import annotations

import json
import re
import threading
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

# A setting is treated as a secret when its key or its `${VAR}` name looks like one.
SECRET_NAME = re.compile(r"(?i)(secret|password|passwd|token|api_?key|credential|private)")
# The password of credentials inside a URL (`https://user:secret@host`), wherever it appears.
URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")
# Shorter values would turn every occurrence of a common syllable into ***; a short URL
# password is still caught by URL_PASSWORD in its URL.
MIN_SECRET_LENGTH = 4
MASK = "***"


def strings(value: t.Any) -> Iterator[str]:
    """Every string inside ``value`` (nested dicts and lists walked), e.g. a secret setting."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def url_origin(url: str) -> str:
    """``scheme://host:port`` of a URL, for messages: its path and query may be a token."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class Redactor:
    """Replaces every known secret, and any URL password, in text with ``***``.

    Thread-safe: an HTTP client registers a renewed token from its paging thread while the
    main thread redacts a message.
    """

    def __init__(
        self, secrets: Iterable[str] = (), configs: Mapping[str, t.Any] | None = None
    ) -> None:
        """``configs``: settings to search for URL passwords, so a child process that prints
        the password in another form (not as a URL) is still caught."""
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(list(secrets))
        if configs:
            found = URL_PASSWORD.finditer(json.dumps(configs, default=str))
            self.add([m.group(0)[len(m.group(1)) : -1] for m in found])

    @property
    def secrets(self) -> list[str]:
        """The registered secrets, longest first (the order they are replaced in)."""
        return sorted(self._secrets, key=len, reverse=True)

    def add(self, value: t.Any) -> None:
        """Remember a secret (or every string in a dict/list) so later text is scrubbed."""
        new = {s for s in strings(value) if len(s) >= MIN_SECRET_LENGTH} - self._secrets
        if not new:
            return
        with self._lock:
            self._secrets |= new
            # Longest first, so a secret that contains another is redacted whole.
            self._pattern = re.compile("|".join(re.escape(s) for s in self.secrets))

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        text = URL_PASSWORD.sub(rf"\1{MASK}@", text)
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern else text


# A key whose value identifies a person, once lower-cased without separators: FirstName,
# first_name, e-mail, MobilePhone, Address1, ZipCode, Birthday... (product_name is not one).
PERSONAL_KEY = re.compile(
    r"^(first|last|full|middle|given|family|sur|card|customer|contact|buyer)?name$"
    r"|email|phone|mobile|address|street|zip|postal|birth|ssn|passport"
)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# An international number (+45 12 34 56 78): a date or an amount never starts with '+'.
PHONE = re.compile(r"\+\d[\d ()-]{5,}\d")


def _mask_personal(value: str) -> str:
    """``j***`` for a name, ``***@example.com`` keeps only what no person is known by."""
    if EMAIL.fullmatch(value):
        return f"{MASK}@{value.rsplit('@', 1)[1]}"
    return f"{value[:1]}{MASK}" if value else value


def mask_record(value: t.Any, redact: Redactor | None = None, key: str = "") -> t.Any:
    """A copy of a record fit to show someone (a report's example of a rejected record).

    Secret-named keys (SECRET_NAME) become ``***``; personal keys (PERSONAL_KEY) keep only
    their first character (an e-mail its domain); any other string loses every registered
    secret (``redact``), and any e-mail address or international phone number inside it.
    The shape (keys, types, nulls) stays, so the example still shows what was wrong.
    """
    norm = re.sub(r"[^a-z0-9]", "", key.lower())
    if isinstance(value, dict):
        return {k: mask_record(v, redact, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_record(v, redact, key) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if norm and SECRET_NAME.search(norm):
        return MASK
    if norm and PERSONAL_KEY.search(norm):
        return _mask_personal(str(value)) if isinstance(value, str) else MASK
    if isinstance(value, str):
        text = redact(value) if redact else URL_PASSWORD.sub(rf"\1{MASK}@", value)
        text = EMAIL.sub(lambda m: _mask_personal(m.group(0)), text)
        return PHONE.sub(MASK, text)
    return value
