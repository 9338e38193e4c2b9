"""`bml dashboard [--port N] [--host H]`: serves the Streamlit app (`app/main.py`) on
127.0.0.1:8501 by default, after checking that the store is migrated (exit 1 with the
command that fixes it otherwise)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
from typing import Any

import typer

from bml_cli.common import EXIT_FAILURE, EXIT_INVALID


def start_dashboard(port: int, host: str, stdout: Any = None, stderr: Any = None) -> subprocess.Popen[bytes]:
    """The app in a child process with this environment (BML_HOME, BML_DATABASE_URL, ...)."""
    from app.server import dashboard_command

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(dashboard_command(port, host), env=env, stdout=stdout, stderr=stderr)


def port_problem(host: str, port: int) -> str | None:
    """Why the dashboard cannot listen on host:port (out of range, or in use by another
    program or another BML Studio), or None. Binds a test socket and closes it at once."""
    if not 1 <= port <= 65535:
        return f"--port {port} is not a TCP port (1 to 65535)"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (another BML Studio or another "
                    "program); stop it or choose another with --port"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def check_port_or_exit(host: str, port: int) -> None:
    problem = port_problem(host, port)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID)


def check_store_or_exit() -> None:
    """Exit 1 with the reason (and `bml db upgrade`) when the store is not usable."""
    from db import SchemaError, check_schema, make_engine

    engine = make_engine()
    try:
        check_schema(engine)
    except SchemaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    from app.server import DEFAULT_HOST, DEFAULT_PORT

    @app.command("dashboard")
    def dashboard(
        port: int = typer.Option(DEFAULT_PORT, "--port", help="port to serve on"),
        host: str = typer.Option(DEFAULT_HOST, "--host", help="interface to bind (0.0.0.0: all)"),
    ) -> None:
        """Serve the dashboard (Streamlit) until interrupted."""
        from app.server import dashboard_url, wait_until_healthy

        check_port_or_exit(host, port)
        check_store_or_exit()
        proc = start_dashboard(port, host, stdout=subprocess.DEVNULL)
        signal.signal(signal.SIGTERM, lambda signum, frame: proc.terminate())
        url = dashboard_url(port, host)
        try:
            if wait_until_healthy(url, alive=proc):
                typer.echo(f"BML Studio dashboard: {url}  (Ctrl-C stops it)")
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            code = proc.wait(timeout=10)
        if code not in (0, -15):
            typer.echo(f"error: the dashboard exited with status {code} (is port {port} free?)", err=True)
            raise typer.Exit(EXIT_FAILURE)
