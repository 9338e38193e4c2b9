"""The machine's real PostgreSQL for tests (127.0.0.1:5432, trust auth): started when it is
not running, databases with unique names per test session, dropped at the end."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def pg_url(database: str, port: int = PG_PORT) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{port}/{database}"


def _pg_ready() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError:
        return False
    if shutil.which("pg_isready"):
        return subprocess.run(["pg_isready", "-h", PG_HOST, "-p", str(PG_PORT), "-q"]).returncode == 0
    return True


def ensure_postgres() -> None:
    """Start the local cluster when it is not running (as scripts/ensure_services.sh does)."""
    if _pg_ready():
        return
    if Path("/etc/postgresql").is_dir() and shutil.which("pg_ctlcluster"):
        for version in sorted(os.listdir("/etc/postgresql")):
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                capture_output=True,
                timeout=60,
            )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _pg_ready():
            return
        time.sleep(0.5)
    raise RuntimeError(f"PostgreSQL is not running at {PG_HOST}:{PG_PORT} and could not be started")


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql.encode())


class PostgresDatabases:
    """Creates databases with unique names for this session and drops them at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self, label: str = "t") -> str:
        ensure_postgres()
        name = f"bml_test_{label}_{os.getpid()}_{secrets.token_hex(4)}"
        _admin_execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return name

    @staticmethod
    def url(name: str, port: int = PG_PORT) -> str:
        return pg_url(name, port)

    def drop_all(self) -> None:
        for name in self.names:
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
