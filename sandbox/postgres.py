"""A throw-away PostgreSQL server on 127.0.0.1, for the tests, the bench and trying things out.

The server binaries come from the ``pgserver`` wheel (PostgreSQL 16 built for Python wheels),
so nothing is installed on the system and no Docker is needed. We start the cluster ourselves
rather than through ``pgserver.get_server`` because that one listens on a Unix socket only,
with no password: the store must be tried the way production reaches it, over TCP with a
password in the URL (which must never show up in a log).

PostgreSQL refuses to run as root; as root (CI, containers) the cluster runs as ``nobody``.

    python -m sandbox.postgres [--dir D] [--port N]   # prints LOYALTY_PG_URL=..., runs until ^C
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

USER = "loyalty"
URL_ENV = "LOYALTY_PG_URL"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (install the test extras: pgserver)."""


def binaries() -> Path:
    """The folder holding initdb, pg_ctl and postgres."""
    # Located, not imported: importing pgserver creates lock files in the user's runtime dir.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable(
            "PostgreSQL server binaries need the pgserver package: pip install -e '.[test]'"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


@dataclasses.dataclass
class PostgresServer:
    """A running cluster: its URL (with the password) and how to stop it."""

    root: Path
    port: int
    password: str
    process_user: str | None

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for one database of this server."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database (cheap: copied from template1); returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop at once (``immediate``: nothing here needs a clean shutdown) and remove it."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [str(binaries() / "pg_ctl"), "-D", str(self.root / "data"), "-w", *args],
            check=True,
            capture_output=True,
            timeout=60,
            user=self.process_user,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres(root: Path | None = None, *, port: int = 0) -> PostgresServer:
    """initdb a new cluster under root (a new temp folder by default) and start it.

    Password authentication (scram) on 127.0.0.1 only; the Unix socket lives in the folder.
    """
    bin_dir = binaries()
    root = Path(root) if root else Path(tempfile.mkdtemp(prefix="loyalty-pg-"))
    root.mkdir(parents=True, exist_ok=True)
    process_user = "nobody" if os.geteuid() == 0 else None
    password = secrets.token_urlsafe(12)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n", encoding="utf-8")
    if process_user:
        entry = pwd.getpwnam(process_user)
        for path in (root, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)
    try:
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                USER,
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            user=process_user,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        why = exc.stderr.decode(errors="replace").strip().splitlines()
        raise PostgresUnavailable(
            f"initdb failed in {root}: {why[-1] if why else exc}"
            + (
                f" (as {process_user}: every folder above it must be open to that user)"
                if process_user
                else ""
            )
        ) from None
    pwfile.unlink()
    server = PostgresServer(root, port or _free_port(), password, process_user)
    options = (
        f"-h 127.0.0.1 -p {server.port} -k {root} -c fsync=off -c full_page_writes=off "
        "-c synchronous_commit=off -c max_connections=200"
    )
    try:
        server._pg_ctl("-l", str(root / "server.log"), "-o", options, "start")
    except subprocess.CalledProcessError:
        log = (root / "server.log").read_text(encoding="utf-8", errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"PostgreSQL did not start: {log[-500:]}") from None
    return server


@contextlib.contextmanager
def running_postgres(root: Path | None = None, *, port: int = 0) -> Iterator[PostgresServer]:
    """start_postgres, stopped (and removed) on leaving the block."""
    server = start_postgres(root, port=port)
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    """Run a server in the foreground and print its URL as an export line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="cluster folder (default: a new temp folder)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    args = parser.parse_args()
    with running_postgres(args.dir, port=args.port) as server:
        print(f"export {URL_ENV}='{server.url()}'", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
