"""Process start-up: how the dashboard is served. The `streamlit run app/main.py` command
line (headless, no usage statistics, no file watcher), `start_dashboard` (the one child
process `bml dashboard`, `bml up` and the benchmarks start), its address, and the wait for
`GET /_stcore/health`. With the login on it serves `app/asgi.py` (the app plus the login
routes). The app is named by its file path, never imported: this layer sits below app/."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

APP_DIR = Path(__file__).resolve().parent.parent / "app"
APP_MAIN = APP_DIR / "main.py"
APP_WITH_LOGIN = APP_DIR / "asgi.py"  # main.py plus the login routes
DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"
health_timeout_s = 60.0
health_poll_s = 0.25
WORKER_STOP_TIMEOUT_S = 30.0


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


def start_dashboard(
    port: int,
    host: str,
    auth: str = "off",
    *,
    log_dir: Path | None = None,
    stdout: Any = None,
    stderr: Any = None,
) -> subprocess.Popen[bytes]:
    """The dashboard in a child process with this environment (BML_HOME, BML_DATABASE_URL,
    BML_AUTH, ...) and unbuffered output. With `log_dir`, stdout and stderr go to
    log_dir/dashboard.log (appended; the folder is made); otherwise to `stdout`/`stderr`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = dashboard_command(port, host, auth)
    if log_dir is None:
        return subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "dashboard.log").open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def detect_gpus() -> list[int]:
    """GPU indices from nvidia-smi (no torch in this process); none on a CPU-only machine."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [i for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def worker_command(name: str, loglevel: str = "INFO") -> list[str]:
    """One Celery worker: one run at a time (`-c 1`), our queue, no gossip/mingle chatter."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-c",
        "1",
        "-n",
        name,
        "-Q",
        "bml",
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]


def start_workers(
    gpus: list[int] | None, name: str | None = None, loglevel: str = "INFO", log_dir: Path | None = None
) -> list[subprocess.Popen[bytes]]:
    """One worker process per GPU (CUDA_VISIBLE_DEVICES set for each), or one CPU worker."""
    from worker.embedded_broker import prepare
    from worker.settings import QUEUE_NAME, broker_url, is_embedded

    if is_embedded():
        prepare(broker_url(), QUEUE_NAME)
    procs = []
    slots: list[int | None] = list(gpus) if gpus else [None]
    for gpu in slots:
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)
        base = name or ("cpu" if gpu is None else f"gpu{gpu}")
        if name and len(slots) > 1:
            base = f"{name}-gpu{gpu}"
        label = base if "@" in base else f"{base}@%h"
        out = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            out = (log_dir / f"worker-{label.replace('%h', 'host').replace('@', '-')}.log").open("ab")
        procs.append(
            subprocess.Popen(
                worker_command(label, loglevel),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
            )
        )
    return procs


def wait_worker_ready(proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120.0) -> None:
    """Wait until a worker started with its output in `log` says `ready.` (Celery's line once
    it consumes); RuntimeError with the log's tail if it exits or `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while "ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"worker did not start (see {log}):\n{log.read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.1)


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout_s: float = WORKER_STOP_TIMEOUT_S) -> None:
    """SIGTERM (a Celery warm shutdown: the running run checkpoints and is requeued), then kill."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()


def wait_for(procs: list[subprocess.Popen[bytes]]) -> int:
    """Block until a process exits or we are told to stop; then stop them all."""
    stopping = {"now": False}

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    code = 0
    while not stopping["now"]:
        exited = [p for p in procs if p.poll() is not None]
        if exited:
            code = exited[0].returncode or 0
            break
        time.sleep(0.2)
    stop_processes(procs)
    return code


def stop_sessions(procs: list[subprocess.Popen[bytes]], timeout_s: float = WORKER_STOP_TIMEOUT_S) -> None:
    """`stop_processes`, then SIGKILL to whatever is left in each process's session (workers
    started with `start_new_session`: their run processes too)."""
    stop_processes(procs, timeout_s)
    for p in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
