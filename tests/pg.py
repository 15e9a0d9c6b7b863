"""Finding a PostgreSQL server for the test suite.

Order: ``HATTHASILPA_TEST_PG_URL``; else 127.0.0.1:5432 as user ``postgres``; else,
when PostgreSQL's binaries are installed, a throwaway cluster in a temporary folder
(run as the ``postgres`` user when the suite runs as root), stopped at the end. Where
none of these works the PostgreSQL tests fail with a message saying how to provide one.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HOW_TO = (
    "PostgreSQL is required for these tests. Start the local server "
    "(`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`), install PostgreSQL "
    "so the suite can start a throwaway cluster, or point HATTHASILPA_TEST_PG_URL at a server "
    "(e.g. postgresql://postgres@127.0.0.1:5432/postgres) whose user may CREATE DATABASE."
)


def _answers(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        return str(exc).strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayCluster:
    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = bins[-1] if bins else shutil.which("initdb")
        if not initdb:
            raise RuntimeError("no initdb found")
        self.bindir = os.path.dirname(initdb)
        self.root = tempfile.mkdtemp(prefix="hatthasilpa-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        self._start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _start(self) -> None:
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-w", "-l", os.path.join(self.root, "log"),
                   "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])

    def stop(self) -> None:
        try:
            self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def go_down(self) -> None:
        """Stop the server (``-m fast``: every connection is cut), keeping its data."""
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-w", "-m", "fast", "stop"])

    def come_back(self) -> None:
        """Start the server again on the same port; returns once it accepts connections."""
        self._start()


def find_server() -> tuple[str | None, ThrowawayCluster | None, str]:
    """Return (admin URL, cluster to stop or None, reason when no URL)."""
    explicit = os.environ.get("HATTHASILPA_TEST_PG_URL")
    if explicit:
        problem = _answers(explicit)
        return (explicit, None, "") if problem is None else (None, None, f"HATTHASILPA_TEST_PG_URL: {problem}")
    problem = _answers(DEFAULT_URL)
    if problem is None:
        return DEFAULT_URL, None, ""
    try:
        cluster = ThrowawayCluster()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, None, f"127.0.0.1:5432: {problem}; throwaway cluster: {exc} {detail.decode(errors='replace')}"
    problem = _answers(cluster.url)  # `pg_ctl -w` returned only once the server accepts connections
    if problem is None:
        return cluster.url, cluster, ""
    cluster.stop()
    return None, None, f"throwaway cluster did not answer: {problem}"
