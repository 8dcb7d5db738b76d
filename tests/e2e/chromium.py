"""A real headless Chromium (Debian's package), driven over the DevTools protocol on a pipe.

`--remote-debugging-pipe` speaks CDP as NUL-terminated JSON on file descriptors 3 (to the
browser) and 4 (from it): no websocket client, no driver, no new dependency. ``open_page``
loads a URL, waits for its load event and returns every request the page made (from the
Network domain's events) and the value of a JavaScript expression evaluated in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import typing as t
from dataclasses import dataclass

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
# The flags of /work/.library/env/machines/python.md: a closed network makes Chromium's own
# background connections (updates, sync, safe browsing) fail noisily; none are wanted here.
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """The browser's path, or None on a machine without one (`.ci/run` installs it)."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Page:
    requests: list[str]  # every URL the page requested, the page itself first
    value: t.Any  # what the expression evaluated to


class _Cdp:
    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int):
        self.proc = proc
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, t.Any]] = []

    def _read(self, deadline: float) -> dict[str, t.Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, "Chromium did not answer in time"
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if ready:
                chunk = os.read(self.from_browser, 1 << 16)
                assert chunk, f"Chromium exited (code {self.proc.poll()})"
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params):
        self.next_id += 1
        message: dict[str, t.Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, t.Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


def open_page(url: str, expression: str, browser: str | None = None) -> Page:
    """Load ``url`` in a fresh headless Chromium; the requests it made and ``expression``."""
    browser = browser or find_chromium()
    assert browser, "no Chromium"
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()

    def _fds() -> None:  # in the child: the pipe ends on the descriptors CDP expects
        # Via descriptors above 4 first: either end may itself be 3 or 4.
        high_r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_fds,
            close_fds=False,
        )
        os.close(to_r)
        os.close(from_w)
        cdp = _Cdp(proc, to_w, from_r)
        try:
            target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
            session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            cdp.call("Network.enable", session)
            cdp.call("Page.enable", session)
            cdp.events.clear()
            cdp.call("Page.navigate", session, url=url)
            cdp.wait_for("Page.loadEventFired")
            # Anything the page started late (a lazy image) would still show up by now.
            time.sleep(0.3)
            cdp.call("Runtime.evaluate", session, expression="0")
            result = cdp.call(
                "Runtime.evaluate", session, expression=expression, returnByValue=True
            )["result"]
            requests = [
                e["params"]["request"]["url"]
                for e in cdp.events
                if e.get("method") == "Network.requestWillBeSent"
            ]
            return Page(requests, result.get("value"))
        finally:
            with contextlib.suppress(AssertionError, OSError):  # it may be gone already
                cdp.call("Browser.close", timeout=5)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_w)
            os.close(from_r)
