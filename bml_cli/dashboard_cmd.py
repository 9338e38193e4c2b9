"""`bml dashboard [--port N] [--host H] [--auth] [--insecure-no-auth]`: serves the
Streamlit app (`app/main.py`) on 127.0.0.1:8501 by default, after checking that the store
is migrated (exit 1 with the command that fixes it otherwise). Binding anything but
loopback without the login is refused (exit 2, saying how to turn it on); `--auth` (or
BML_AUTH=local) needs at least one account in the store."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess

import typer

from bml_cli.common import EXIT_FAILURE, EXIT_INVALID, fail


def resolve_auth(host: str, auth: bool, insecure_no_auth: bool) -> str:
    """The login mode to serve with (`--auth` or BML_AUTH); exit 2 when `host` is not
    loopback and the login is off, unless `--insecure-no-auth` (then a loud warning).
    Sets BML_AUTH for the dashboard process."""
    from app.auth import AuthConfigError, auth_mode, check_bind

    try:
        mode = "local" if auth else auth_mode()
    except AuthConfigError as exc:
        raise fail(f"error: {exc}") from None
    if mode == "oidc":
        from app.oidc import oidc_secrets

        try:
            oidc_secrets()
        except AuthConfigError as exc:
            raise fail(f"error: {exc}") from None
    try:
        check_bind(host, mode)
    except AuthConfigError as exc:
        if not insecure_no_auth:
            raise fail(f"error: {exc}") from None
        banner = "!" * 78
        typer.echo(
            f"{banner}\nWARNING: --insecure-no-auth: serving the dashboard on {host} WITHOUT A LOGIN.\n"
            f"Anyone who can reach this address can launch, cancel and delete runs.\n{banner}",
            err=True,
        )
    os.environ["BML_AUTH"] = mode
    return mode


def require_accounts(mode: str) -> None:
    """With the login on, exit 2 unless the store has an account to log in with."""
    if mode != "local":
        return
    from db import make_engine
    from db.accounts import user_count

    engine = make_engine()
    try:
        if user_count(engine) == 0:
            typer.echo(
                "error: the login is on but the store has no account; add the first admin with "
                "`bml user add NAME --role admin` (same BML_HOME / BML_DATABASE_URL), then start again",
                err=True,
            )
            raise typer.Exit(EXIT_INVALID)
    finally:
        engine.dispose()


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
        raise fail(f"error: {problem}")


def check_store_or_exit() -> None:
    """Exit 1 with the reason (and `bml db upgrade`) when the store is not usable."""
    from db import SchemaError, check_schema, make_engine

    engine = make_engine()
    try:
        check_schema(engine)
    except SchemaError as exc:
        raise fail(f"error: {exc}", EXIT_FAILURE) from None
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    from services.processes import DEFAULT_HOST, DEFAULT_PORT

    @app.command("dashboard")
    def dashboard(
        port: int = typer.Option(DEFAULT_PORT, "--port", help="port to serve on"),
        host: str = typer.Option(DEFAULT_HOST, "--host", help="interface to bind (0.0.0.0: all)"),
        auth: bool = typer.Option(False, "--auth", help="require a login (as BML_AUTH=local)"),
        insecure_no_auth: bool = typer.Option(
            False, "--insecure-no-auth", help="serve a non-loopback address without a login (not recommended)"
        ),
    ) -> None:
        """Serve the dashboard (Streamlit) until interrupted."""
        from app.auth import auth_mode
        from services.processes import dashboard_url, start_dashboard, wait_until_healthy

        mode = resolve_auth(host, auth, insecure_no_auth)
        check_store_or_exit()
        require_accounts(mode)
        check_port_or_exit(host, port)
        proc = start_dashboard(port, host, auth_mode(), stdout=subprocess.DEVNULL)
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
            raise fail(f"error: the dashboard exited with status {code} (is port {port} free?)", EXIT_FAILURE)
