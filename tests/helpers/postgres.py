"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temp data folder, loopback.

The server runs as ``nobody`` when the tests run as root (PostgreSQL refuses to run as root),
with trust authentication on 127.0.0.1 only, and is stopped (fast shutdown) at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

NOBODY = 65534


def binaries() -> Path | None:
    """The folder of ``initdb`` / ``postgres`` (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_server_user() -> None:
    if os.getuid() == 0:
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """``with PostgresServer() as server: server.database("dagster")``.

    Its folder is a fresh temp folder of its own, removed at exit: ``nobody`` must be able to
    reach it, which pytest's private (0700) temp folders do not allow.
    """

    USER = "longvie"

    def __init__(self) -> None:
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="longvie-postgres-"))
        os.chmod(self.folder, 0o755)
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed: run `make test-assets`")
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.databases: set[str] = set()

    def __enter__(self) -> "PostgresServer":
        data, sockets = self.folder / "data", self.folder / "sockets"
        for path in (self.folder, data, sockets):
            path.mkdir(parents=True, exist_ok=True)
            if os.getuid() == 0:
                os.chown(path, NOBODY, NOBODY)
        made = subprocess.run([str(self.bin / "initdb"), "-D", str(data), "-U", self.USER,
                               "--auth=trust", "--no-sync", "-E", "UTF8"],
                              preexec_fn=_as_server_user, capture_output=True, text=True)
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{made.stdout}\n{made.stderr}")
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(sockets), "-c", "fsync=off",
             "-c", "max_connections=200"],
            preexec_fn=_as_server_user, stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "server.log", "wb"))
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self.dsn("postgres")).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    log = (self.folder / "server.log").read_text(errors="replace")
                    raise RuntimeError(f"PostgreSQL did not start:\n{log}") from None
                time.sleep(0.2)

    def url(self, database: str) -> str:
        """A SQLAlchemy URL naming the driver (SQLAlchemy 2.1 would take psycopg 3 for a bare
        postgresql://, which Dagster's LISTEN/NOTIFY does not work with)."""
        return f"postgresql+psycopg2://{self.USER}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """The libpq form of the URL, for psycopg2 itself."""
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str) -> str:
        """A new empty database ``name``; its URL."""
        import psycopg2

        connection = psycopg2.connect(self.dsn("postgres"))
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        self.databases.add(name)
        return self.url(name)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
