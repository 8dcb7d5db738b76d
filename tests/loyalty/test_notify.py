"""Notifications: a failed run or too many rejects reach a local webhook and SMTP server."""

from __future__ import annotations

import base64
import email
import json
import socket
import socketserver
import threading
import time
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

TOKEN = "hook-Token-9f8e7d"
PASSWORD = "smtp-Pass-1a2b3c"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def webhook():
    """An HTTP receiver on 127.0.0.1 that keeps every POST (path, content type, JSON)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    server.status = 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self) -> None:
        mail: dict = {"rcpt": []}
        self.reply("220 sink ready")
        while line := self.rfile.readline():
            verb = line.decode().strip()
            upper = verb.upper()
            if upper.startswith("EHLO"):
                self.reply("250-sink\r\n250 AUTH PLAIN")
            elif upper.startswith("AUTH PLAIN"):
                _, user, password = base64.b64decode(verb.split()[2]).split(b"\0")
                mail["login"] = (user.decode(), password.decode())
                self.reply("235 ok")
            elif upper.startswith("MAIL FROM"):
                mail["from"] = verb.split(":", 1)[1].strip(" <>")
                self.reply("250 ok")
            elif upper.startswith("RCPT TO"):
                mail["rcpt"].append(verb.split(":", 1)[1].strip(" <>"))
                self.reply("250 ok")
            elif upper == "DATA":
                self.reply("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                mail["message"] = email.message_from_bytes(data, policy=policy.default)
                self.server.received.append(mail)
                self.reply("250 queued")
            elif upper == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp():
    """An SMTP sink on 127.0.0.1 that keeps every message (with the login it was sent with)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads = True
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _notify(project, notify: dict, **pipeline: object) -> None:
    doc = yaml.safe_load(project.pipelines.read_text())
    doc["environments"]["test"]["notify"] = notify
    doc["pipelines"]["things"].update(pipeline)
    project.pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
    project.env.update({"HOOK_TOKEN": TOKEN, "SMTP_PASSWORD": PASSWORD})


def _channels(webhook_port: int, smtp_port: int) -> dict:
    return {
        "webhook": {"url": f"http://127.0.0.1:{webhook_port}/hooks/${{HOOK_TOKEN}}"},
        "email": {
            "host": "127.0.0.1",
            "port": smtp_port,
            "from": "loyalty@example.com",
            "to": ["ops@example.com", "data@example.com"],
            "username": "loyalty",
            "password": "${SMTP_PASSWORD}",
        },
    }


def _no_secret(project, *texts: str) -> None:
    everything = "".join(texts) + "".join(
        p.read_text(errors="replace") for p in project.state_dir.rglob("*") if p.is_file()
    )
    for secret in (TOKEN, PASSWORD, project.secret):
        assert secret not in everything


def test_a_failed_run_posts_a_summary_and_sends_an_email(fake_project, webhook, smtp):
    _notify(fake_project, _channels(webhook.server_port, smtp.server_address[1]))
    doc = yaml.safe_load(fake_project.pipelines.read_text())
    doc["pipelines"]["things"]["tap"]["config"].update({"count": 20, "fail_at": 12})
    fake_project.pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))

    result = fake_project.run("run", "things")
    assert result.returncode == 1  # the run's own outcome, whatever the notifications did
    assert "warning" not in result.stderr

    ((path, ctype, payload),) = webhook.received
    assert path == f"/hooks/{TOKEN}" and ctype == "application/json"
    record = fake_project.runs()[-1]
    assert payload["reason"] == "failed" and payload["outcome"] == "failed"
    assert payload["run_id"] == record["run_id"] and payload["pipeline"] == "things"
    assert payload["env"] == "test" and payload["failed_step"] == "tap"
    assert "RuntimeError: fetch failed (client_secret=***)" in payload["error"]
    assert payload["log"] == record["log"]

    (mail,) = smtp.received
    assert mail["login"] == ("loyalty", PASSWORD)
    assert mail["from"] == "loyalty@example.com"
    assert mail["rcpt"] == ["ops@example.com", "data@example.com"]
    message = mail["message"]
    assert message["Subject"] == "[loyalty] things (env test): failed"
    body = message.get_content()
    assert f"Run {record['run_id']} of things (env test): failed" in body
    assert "Error at step tap: " in body and "client_secret=***" in body
    _no_secret(fake_project, result.stdout, result.stderr, json.dumps(payload), body)


def test_rejects_above_the_threshold_notify_a_successful_run_and_below_do_not(
    fake_project, webhook
):
    notify = {"webhook": {"url": f"http://127.0.0.1:{webhook.server_port}/x"}}
    _notify(fake_project, {**notify, "rejects_above": 0.2}, max_reject_ratio=0.9)
    doc = yaml.safe_load(fake_project.pipelines.read_text())
    doc["pipelines"]["things"]["mapper"]["config"] = {"rejected": 2}
    fake_project.pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
    quiet = fake_project.run("run", "things", "--full-refresh")
    assert quiet.returncode == 0, quiet.stderr
    assert webhook.received == []  # 2 of 10 is not above 0.2

    doc["pipelines"]["things"]["mapper"]["config"] = {"rejected": 3}
    fake_project.pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
    loud = fake_project.run("run", "things", "--full-refresh")
    assert loud.returncode == 0, loud.stderr
    ((_, _, payload),) = webhook.received
    assert payload["outcome"] == "success" and payload["reason"] == "rejects above 0.2"
    assert payload["rejected_streams"] == {"mapper things": [3, 10]}


def test_a_run_without_rejects_or_failure_tells_nobody(fake_project, webhook, smtp):
    _notify(
        fake_project, {**_channels(webhook.server_port, smtp.server_address[1]), "rejects_above": 0}
    )
    result = fake_project.run("run", "things")
    assert result.returncode == 0, result.stderr
    assert webhook.received == [] and smtp.received == []


def test_unreachable_or_silent_receivers_are_one_warning_each_and_do_not_hang(fake_project):
    # A port nobody listens on, and an SMTP server that accepts but never says a word.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        channels = _channels(closed_port, silent.getsockname()[1])
        _notify(fake_project, {**channels, "timeout_seconds": 1})
        doc = yaml.safe_load(fake_project.pipelines.read_text())
        doc["pipelines"]["things"]["tap"]["config"]["fail_at"] = 3
        fake_project.pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
        started = time.monotonic()
        result = fake_project.run("run", "things", timeout=30)
        assert time.monotonic() - started < 15
    finally:
        silent.close()
    assert result.returncode == 1  # the tap's failure, not the notifications'
    warnings = [line for line in result.stderr.splitlines() if "notification" in line]
    assert len(warnings) == 2, result.stderr
    webhook_line = next(w for w in warnings if "webhook" in w)
    assert f"webhook http://127.0.0.1:{closed_port} failed (" in webhook_line
    assert "refused" in webhook_line.lower()
    mail_line = next(w for w in warnings if "e-mail" in w)
    assert "failed (" in mail_line and "the run's outcome stands" in mail_line
    _no_secret(fake_project, result.stdout, result.stderr)


@pytest.mark.parametrize(
    ("notify", "line_of", "message"),
    [
        ({"webhook": {"url": "ftp://example.com/x"}}, "url", "must be an http(s) URL with a host"),
        ({"webhook": {"url": "https://"}}, "url", "must be an http(s) URL with a host"),
        ({"webhook": {}}, "webhook", "notify.webhook.url is missing"),
        ({"email": {"host": "h", "from": "a@b.c"}}, "email", "notify.email.to is missing"),
        (
            {"email": {"host": "h", "from": "a@b.c", "to": "x@y.z", "port": 0}},
            "port",
            "notify.email.port must be a port number",
        ),
        (
            {"email": {"host": "h", "from": "a@b.c", "to": "x@y.z", "password": "${P}"}},
            "email",
            "username and password go together",
        ),
        ({"rejects_above": 0.1}, "notify", "needs a webhook or an email"),
        ({"webhook": {"url": "http://h"}, "rejects_above": 2}, "rejects_above", "from 0 to 1"),
        ({"webhook": {"url": "http://h", "bcc": 1}}, "bcc", "unknown key 'bcc'"),
    ],
)
def test_validate_names_the_file_line_and_field_of_a_bad_notification(
    fake_project, notify, line_of, message
):
    _notify(fake_project, notify)
    lines = fake_project.pipelines.read_text().splitlines()
    expected_line = next(
        n for n, text in enumerate(lines, 1) if text.strip().startswith(f"{line_of}:")
    )
    result = fake_project.invoke("validate")
    assert result.returncode == 2
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert error.startswith(f"Error: pipelines.yaml:{expected_line}: ")
    assert message in error


def test_validate_refuses_a_literal_smtp_password_and_a_bad_url_in_a_variable(fake_project):
    mail = {"host": "h", "from": "a@b.c", "to": "x@y.z", "username": "u", "password": "hunter22"}
    _notify(fake_project, {"email": mail})
    result = fake_project.invoke("validate")
    assert result.returncode == 2
    assert "notify.email.password holds a literal secret" in result.stderr
    assert "hunter22" not in result.stderr

    _notify(fake_project, {"webhook": {"url": "${HOOK_TOKEN}"}})
    result = fake_project.invoke("validate", "--env", "test")
    assert result.returncode == 2
    assert "environments.test.notify.webhook.url: must be an http(s) URL" in result.stderr
    assert TOKEN not in result.stderr + result.stdout
    run = fake_project.run("run", "things")
    assert run.returncode == 2 and fake_project.committed() == []


def test_the_example_in_the_shipped_pipelines_yaml_is_valid(tmp_path):
    # The prod environment carries a commented example (`#| ` lines): uncommented, it loads
    # and resolves, with its secret-bearing values redacted.
    from loyalty.config import load

    text = (Path(__file__).resolve().parents[2] / "pipelines.yaml").read_text()
    assert "#| notify:" in text
    (tmp_path / "pipelines.yaml").write_text(text.replace("#| ", ""))
    project = load(tmp_path / "pipelines.yaml")
    notify = project.environments["prod"].notify
    assert notify is not None and notify.webhook and notify.email
    environ = {
        "FLEXPOS_CLIENT_ID": "id",
        "FLEXPOS_CLIENT_SECRET": "secret-1",
        "FLEXPOS_ATTRACTION_API_URL": "https://attraction.example.com",
        "FLEXPOS_ATTRACTION_CLIENT_ID": "id2",
        "FLEXPOS_ATTRACTION_CLIENT_SECRET": "secret-2",
        "LOYALTY_ALERT_WEBHOOK_URL": f"https://hooks.example.com/{TOKEN}",
        "LOYALTY_SMTP_PASSWORD": PASSWORD,
    }
    resolved = project.resolve("flexpos_to_store", "prod", environ)
    assert resolved.notify["webhook"]["url"].endswith(TOKEN)
    assert {f"https://hooks.example.com/{TOKEN}", PASSWORD} <= set(resolved.secrets)
