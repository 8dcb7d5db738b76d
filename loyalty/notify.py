"""Tell someone: a JSON summary to a webhook and/or an e-mail over SMTP after a run.

Sent when a run failed, or succeeded with a stream's rejected share above the environment's
``rejects_above``. A notification is a courtesy, never part of the run: each channel gets a
bounded time (``timeout_seconds``) in a daemon thread, and whatever goes wrong (refused, slow,
bad login) is one warning line; the run's outcome and exit code are never changed by it.
Everything sent and printed passes through the run's redactor, so no secret leaves.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import threading
import time
import typing as t
import urllib.error
import urllib.request
from email.message import EmailMessage

from singer_kit.redact import url_origin

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from loyalty.runner import RunResult

# Fields of the run record a reader needs to act; the log path says where to look next.
SUMMARY_FIELDS = (
    "run_id",
    "pipeline",
    "env",
    "outcome",
    "failed_step",
    "error",
    "started_at",
    "ended_at",
    "records",
    "rejects",
    "rejected_streams",
    "reject_reasons",
    "warnings",
    "window",
    "log",
)


def reason(result: RunResult, rejects_above: float | None) -> str | None:
    """Why this run is worth telling about, or None."""
    if result.outcome == "failed":
        return "failed"
    if result.outcome == "success" and rejects_above is not None:
        for rejected, total in result.rejected_streams.values():
            if total and rejected / total > rejects_above:
                return f"rejects above {rejects_above:g}"
    return None


def summary(result: RunResult, why: str, redact: Callable[[str], str]) -> dict[str, t.Any]:
    """The JSON payload: the run record's useful fields, redacted as a whole."""
    record = result.to_dict()
    body = {"event": "loyalty.run", "reason": why} | {k: record.get(k) for k in SUMMARY_FIELDS}
    return json.loads(redact(json.dumps(body)))


def notify(
    settings: dict[str, t.Any],
    result: RunResult,
    redact: Callable[[str], str],
    warn: Callable[[str], None],
) -> list[str]:
    """Send on every configured channel if the run calls for it; returns the channels used.

    Never raises and never waits longer than ``timeout_seconds`` per channel (in parallel).
    """
    why = reason(result, settings.get("rejects_above"))
    if why is None:
        return []
    payload = summary(result, why, redact)
    timeout = float(settings.get("timeout_seconds", 10.0))
    senders: dict[str, Callable[[], None]] = {}
    if settings.get("webhook"):
        hook = settings["webhook"]
        senders[f"webhook {url_origin(hook['url'])}"] = lambda: _post(hook["url"], payload, timeout)
    if settings.get("email"):
        mail = settings["email"]
        senders[f"e-mail via {mail['host']}:{mail.get('port', 25)}"] = lambda: _send_mail(
            mail, payload, timeout
        )
    errors: dict[str, str] = {}
    threads = []
    for name, send in senders.items():

        def attempt(name: str = name, send: Callable[[], None] = send) -> None:
            try:
                send()
            except Exception as exc:  # any failure of a courtesy is one warning line
                errors[name] = _describe(exc)

        th = threading.Thread(target=attempt, daemon=True, name=f"notify {name}")
        th.start()
        threads.append((name, th))
    # Their own socket timeouts bound each read; this bounds a server that trickles, or a
    # name lookup (which no socket timeout covers), for all channels together.
    deadline = time.monotonic() + timeout + 2.0
    for name, th in threads:
        th.join(max(0.0, deadline - time.monotonic()))
        if th.is_alive():
            errors[name] = f"no answer within {timeout:g}s"
    for name, error in errors.items():
        warn(redact(f"notification by {name} failed ({error}); the run's outcome stands"))
    return [name for name in senders if name not in errors]


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
    return str(exc) or type(exc).__name__


def _post(url: str, payload: dict[str, t.Any], timeout: float) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "loyalty-pipelines"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read(1024)


def _send_mail(mail: dict[str, t.Any], payload: dict[str, t.Any], timeout: float) -> None:
    to = mail["to"] if isinstance(mail["to"], list) else [mail["to"]]
    message = EmailMessage()
    prefix = mail.get("subject_prefix", "[loyalty]")
    message["Subject"] = (
        f"{prefix} {payload['pipeline']} (env {payload['env']}): {payload['reason']}"
    )
    message["From"] = mail["from"]
    message["To"] = ", ".join(to)
    lines = [
        f"Run {payload['run_id']} of {payload['pipeline']} (env {payload['env']}): "
        f"{payload['outcome']} ({payload['reason']}).",
    ]
    if payload.get("error"):
        lines.append(f"Error at step {payload['failed_step']}: {payload['error']}")
    for name, (rejected, total) in (payload.get("rejected_streams") or {}).items():
        lines.append(f"Rejected: {name}: {rejected} of {total}")
    lines += [f"Log: {payload['log']}", "", json.dumps(payload, indent=2)]
    message.set_content("\n".join(lines))
    with smtplib.SMTP(mail["host"], int(mail.get("port", 25)), timeout=timeout) as smtp:
        if mail.get("starttls"):
            smtp.starttls(context=ssl.create_default_context())
        if mail.get("username"):
            smtp.login(mail["username"], mail["password"])
        smtp.send_message(message)
