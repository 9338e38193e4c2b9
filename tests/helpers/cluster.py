"""A migrated store in a temporary BML_HOME, a broker (the embedded SQLite one, the machine's
real Redis under a key prefix, or a test-owned redis-server that a test may stop) and real
`bml worker` processes: what the worker, report, tune and tracking suites start (their
fixtures live in tests/worker/conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.net import free_port

BML = str(Path(sys.executable).parent / "bml")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
FAST_ENV = {
    "BML_HEARTBEAT_INTERVAL_S": "0.5",
    "BML_STALE_AFTER_S": "4",
    "BML_REAPER_INTERVAL_S": "1",
    "BML_CANCEL_GRACE_S": "6",
    "BML_TORCH_THREADS": "1",
}
# a run of a few seconds: 420 train samples / 32 = 14 steps per epoch
SMALL_RUN = {
    "name": "w",
    "dataset": {"params": {"num_samples": 600}},
    "model": {"feature_dim": 32, "encoders": {"audio": {"hidden_dim": 64}, "visual": {"hidden_dim": 64}}},
    "optim": {"lr": 0.02, "scheduler": {"name": "none"}},
    "train": {"epochs": 4, "batch_size": 32, "threads": 1},
    "strategies": ["ogm_ge"],
}


def redis_up(port: int) -> bool:
    try:
        with socket.create_connection((REDIS_HOST, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_machine_redis() -> None:
    if redis_up(REDIS_PORT):
        return
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", REDIS_HOST, "--port", str(REDIS_PORT), "--save", ""],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 10
    while not redis_up(REDIS_PORT):
        if time.monotonic() > deadline:
            raise RuntimeError("could not start redis on 127.0.0.1:6379")
        time.sleep(0.1)


class OwnedRedis:
    """A redis-server on its own port, owned by one test: it may stop and restart it."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                REDIS_HOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_up(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("test redis did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class WorkerProc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while "ready." not in self.text():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker {self.name} exited {self.proc.returncode}:\n{self.text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.name} not ready:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def kill_all(self) -> None:
        """SIGKILL the worker's whole process group: Celery, its pool and the run process."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Cluster:
    """The environment of one test: store, broker and the workers it started."""

    home: Path
    env: dict[str, str]
    workers: list[WorkerProc] = field(default_factory=list)

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for k, v in self.env.items():
            monkeypatch.setenv(k, v)

    def start_worker(self, name: str) -> WorkerProc:
        log = self.home / f"{name}-{len(self.workers)}.log"
        out = log.open("ab")
        proc = subprocess.Popen(
            [BML, "worker", "--cpu", "--name", name, "--loglevel", "INFO"],
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        w = WorkerProc(name, proc, log)
        self.workers.append(w)
        w.wait_ready()
        return w

    def stop_all(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                try:
                    os.killpg(w.proc.pid, signal.SIGTERM)
                    w.proc.wait(timeout=20)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    w.kill_all()


def migrated_home(tmp_path: Path, broker_env: dict[str, str]) -> Cluster:
    home = tmp_path / "home"
    env = {"BML_HOME": str(home), "BML_RUNS_DIR": str(home / "runs"), **FAST_ENV, **broker_env}
    env.pop("BML_DATABASE_URL", None)
    r = subprocess.run([BML, "db", "upgrade"], env={**os.environ, **env}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return Cluster(home, env)


def wait_until(
    predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.1
) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def process_alive(pid: int) -> bool:
    """Running or stopped (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def run_process_pids(run_id: int, home: Path | None = None) -> list[int]:
    """Run processes of this run id under this BML_HOME (other test sessions may run a run
    with the same id at the same time)."""
    home = home or Path(os.environ["BML_HOME"])
    out = subprocess.run(
        ["pgrep", "-f", f"worker.run_process {run_id}$"], capture_output=True, text=True
    ).stdout
    pids = []
    for pid in out.split():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"BML_HOME={home}".encode() in environ:
            pids.append(int(pid))
    return pids
