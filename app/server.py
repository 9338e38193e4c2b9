"""How the dashboard is served: the `streamlit run app/main.py` command line (headless, no
usage statistics, no file watcher), its address, and the wait for `GET /_stcore/health`.
Used by `bml dashboard` and `bml up`; with the login on it serves `app/asgi.py` (the app
plus the login routes)."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

APP_MAIN = Path(__file__).resolve().parent / "main.py"
APP_WITH_LOGIN = Path(__file__).resolve().parent / "asgi.py"  # main.py plus the login routes
DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"
health_timeout_s = 60.0
health_poll_s = 0.25


def dashboard_command(port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, auth: str = "off") -> list[str]:
    """The command line that serves the app on host:port (through `app/asgi.py` when a
    login is on: `local` or `oidc`)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_WITH_LOGIN if auth in ("local", "oidc") else APP_MAIN),
        "--server.port",
        str(port),
        "--server.address",
        host,
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
        # a visitor never sees a traceback, an exception's message or a server path: the
        # dashboard's log (the console) gets them
        "--server.enableStaticServing",
        "true",
        # app/static/ at /app/static/: the plotly.js bundle of the charts (app/plotly_chart.py)
        "--server.enableStaticServing",
        "true",
        "--client.showErrorDetails",
        "none",
    ]


def dashboard_url(port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> str:
    """The address to open (an all-interfaces bind is reached on 127.0.0.1)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{shown}:{port}"


def is_healthy(url: str, timeout_s: float = 2.0) -> bool:
    """Whether `GET <url>/_stcore/health` answers `ok`."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=timeout_s) as resp:
            return resp.status == 200 and resp.read().strip() == b"ok"
    except (urllib.error.URLError, OSError):
        return False


def wait_until_healthy(url: str, timeout_s: float = health_timeout_s, alive: object = None) -> bool:
    """Poll the health endpoint until it answers `ok`; False on timeout, or as soon as
    `alive` (a Popen) has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:  # type: ignore[attr-defined]
            return False
        if is_healthy(url):
            return True
        time.sleep(health_poll_s)
    return False
