"""`bml dashboard [--port N]`: serves the Streamlit app (`app/main.py`) on 127.0.0.1:8501
by default, after checking that the store is migrated. `start_dashboard` and
`wait_until_healthy` are shared with `bml up`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import typer

from bml_cli.common import EXIT_FAILURE

APP_MAIN = Path(__file__).resolve().parents[1] / "app" / "main.py"
DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "127.0.0.1"
health_timeout_s = 60.0
health_poll_s = 0.25


def dashboard_argv(port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> list[str]:
    """The command line that serves the app (headless, no usage stats, no file watcher)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_MAIN),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--global.developmentMode",
        "false",
        "--theme.base",
        "light",
    ]


def dashboard_url(port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> str:
    host = "127.0.0.1" if address in ("0.0.0.0", "") else address
    return f"http://{host}:{port}"


def start_dashboard(
    port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS, **popen: object
) -> subprocess.Popen[bytes]:
    """Start the app in a child process (same environment: BML_HOME, BML_DATABASE_URL, ...)."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.Popen(dashboard_argv(port, address), env=env, **popen)  # type: ignore[call-overload]


def wait_until_healthy(
    url: str, timeout_s: float = health_timeout_s, proc: subprocess.Popen[bytes] | None = None
) -> bool:
    """Poll `GET /_stcore/health` until it answers `ok` (False on timeout or if `proc` exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200 and resp.read().strip() == b"ok":
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(health_poll_s)
    return False


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
    @app.command("dashboard")
    def dashboard(
        port: int = typer.Option(DEFAULT_PORT, "--port", help="port to serve on"),
        address: str = typer.Option(DEFAULT_ADDRESS, "--address", help="interface to bind (0.0.0.0: all)"),
    ) -> None:
        """Serve the dashboard (Streamlit) until interrupted."""
        check_store_or_exit()
        typer.echo(f"BML Studio dashboard: {dashboard_url(port, address)}  (Ctrl-C stops it)")
        proc = start_dashboard(port, address, stdout=subprocess.DEVNULL)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            code = proc.wait(timeout=10)
        raise typer.Exit(0 if code in (0, -15) else EXIT_FAILURE)
