"""Each HTTP exchange classified once: done, retry, re-authenticate or fail.

The retrier, the re-login and the error messages all read this one verdict, so "is a 429
retried?", "is a 401 a re-login?" and "is a truncated body worth another try?" have one answer.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import typing as t
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import msgspec
import requests
from urllib3.exceptions import ProtocolError

BODY_EXCERPT = 200


class Action(enum.Enum):
    """What the client does next with an exchange."""

    DONE = "done"  # a usable response (2xx whose body parsed, when it had to)
    RETRY = "retry"  # 429, 5xx, network error, timeout, malformed body
    REAUTH = "reauth"  # 401: renew the credentials once, then try again
    FAIL = "fail"  # any other status: retrying cannot help


class Malformed(Exception):
    """Raised by a body parser: the body is not what the API promised (``expected``)."""

    def __init__(self, expected: str) -> None:
        """``expected`` completes "the response was not ...", e.g. "a JSON object"."""
        super().__init__(expected)
        self.expected = expected


@dataclass(frozen=True)
class Verdict:
    """The classification of one exchange, with the one-line problem for logs and errors."""

    action: Action
    problem: str = ""  # why it is retried or failed (no secrets redacted yet)
    retry_after: float | None = None  # seconds the server asked us to wait
    malformed: str | None = None  # what the body should have been, when that was the problem
    network: bool = False  # no HTTP answer at all (the hint then says: check the URL)


def excerpt(response: requests.Response) -> str:
    """The start of a response body on one line, for messages."""
    body = response.text.replace("\n", " ").replace("\r", " ").strip()
    if len(body) > BODY_EXCERPT:
        body = body[:BODY_EXCERPT] + "..."
    return body or "<empty body>"


def retry_after(response: requests.Response, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: the delay-seconds form or the HTTP-date form; None if absent
    or unreadable (then the client backs off on its own)."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=dt.UTC)
    return max((when - (now or dt.datetime.now(dt.UTC))).total_seconds(), 0.0)


def classify_error(exc: requests.RequestException, url: str, timeout: float) -> Verdict:
    """A request that got no HTTP answer: a timeout or network error is retried."""
    if isinstance(exc, requests.Timeout):
        return Verdict(Action.RETRY, f"no response from {url} within {timeout:g}s", network=True)
    if isinstance(exc, requests.ConnectionError):
        if exc.args and isinstance(exc.args[0], ProtocolError):
            problem = f"connection to {url} dropped before a response"
        else:
            problem = f"cannot connect to {url} ({type(exc).__name__})"
        return Verdict(Action.RETRY, problem, network=True)
    return Verdict(Action.FAIL, f"{url}: {type(exc).__name__}: {exc}")


def classify(
    response: requests.Response,
    url: str,
    parse: t.Callable[[requests.Response], t.Any] | None = None,
) -> tuple[Verdict, t.Any]:
    """The verdict on an HTTP answer, and the parsed body when ``parse`` accepted it.

    ``parse`` says the body must parse: it raises ``Malformed`` for a body that does not,
    which is retried like a 5xx (a proxy cut it short, or the server hiccuped).
    """
    status = response.status_code
    if status == 429 or status >= 500:
        wait = retry_after(response) if status == 429 else None
        return Verdict(Action.RETRY, f"HTTP {status} from {url}: {excerpt(response)}", wait), None
    if status == 401:
        return Verdict(Action.REAUTH, f"HTTP 401 from {url}: {excerpt(response)}"), None
    if not 200 <= status < 300:
        return Verdict(Action.FAIL, f"HTTP {status} from {url}: {excerpt(response)}"), None
    if parse is None:
        return Verdict(Action.DONE), response
    try:
        return Verdict(Action.DONE), parse(response)
    except Malformed as exc:
        problem = f"malformed response ({excerpt(response)})"
        return Verdict(Action.RETRY, problem, malformed=exc.expected), None


def json_object(response: requests.Response) -> dict[str, t.Any]:
    """Parser for ``HttpClient.request``: the body as a JSON object, else ``Malformed``."""
    return _json_of(response, dict, "a JSON object")


def json_array(response: requests.Response) -> list[t.Any]:
    """Parser for ``HttpClient.request``: the body as a JSON array, else ``Malformed``."""
    return _json_of(response, list, "a JSON array")


def json_records(
    response: requests.Response, envelope: str, decoded: t.Collection[str]
) -> list[dict[str, t.Any]]:
    """Parser: the objects listed under ``envelope`` in a JSON object body, else ``Malformed``.

    Only the fields in ``decoded`` (those the tap and the paginator read) become Python values;
    every other value stays the API's JSON text (``msgspec.Raw``), which the kit's encoder
    copies into the RECORD line as it is. Decoding a page's nested values only to encode them
    again was most of a tap's own CPU; ``singer_io.decode_raw`` turns a record into plain
    values where something else reads them (docs/kit/streams.md).
    """
    try:
        page = _envelope_decoder(envelope).decode(response.content)
    except msgspec.DecodeError:  # not JSON, or no list of objects under ``envelope``
        raise Malformed(f"a JSON object with an {envelope!r} list") from None
    records: list[dict[str, t.Any]] = getattr(page, envelope)
    decode = msgspec.json.decode
    for record in records:
        for name in decoded:
            value = record.get(name)
            if value is not None:
                record[name] = decode(value)
    return records


@functools.cache
def _envelope_decoder(envelope: str) -> msgspec.json.Decoder[t.Any]:
    """A decoder of ``{envelope: [{field: raw JSON, ...}, ...]}`` (other keys skipped)."""
    struct = msgspec.defstruct("Envelope", [(envelope, list[dict[str, msgspec.Raw]])])
    return msgspec.json.Decoder(struct)


def _json_of(response: requests.Response, kind: type, what: str) -> t.Any:
    try:
        payload = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        raise Malformed(what) from None
    if not isinstance(payload, kind):
        raise Malformed(what)
    return payload
