"""A throwaway cluster for the benchmarks that run through the workers (strategy_grid.py,
tune_vs_grid.py): a migrated SQLite store under a home of its own, the broker (the embedded
one under that home, or Redis under a key prefix of its own, deleted afterwards) and n CPU
Celery workers started as `bml up` starts them (`services.processes`), with the environment
set only while it runs."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKER_READY_TIMEOUT_S = 120.0


@contextlib.contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables in this process; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: Mapping[str, str | None]) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def start_workers(n: int, log_dir: Path, name: str = "grid") -> list[subprocess.Popen[bytes]]:
    """n Celery workers as `bml up` starts them (one run at a time, CPU), each in its own
    session so that stopping it reaches its run process too; returns once all are ready."""
    from services.processes import stop_sessions, wait_worker_ready, worker_command
    from worker.embedded_broker import prepare
    from worker.settings import QUEUE_NAME, broker_url, is_embedded

    if is_embedded():
        prepare(broker_url(), QUEUE_NAME)  # once, before the workers race to create it
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        for i in range(n):
            log = log_dir / f"worker-{i}.log"
            with log.open("ab") as out:
                procs.append(
                    subprocess.Popen(
                        worker_command(f"{name}{i}-{os.getpid()}@%h"),
                        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        for i, proc in enumerate(procs):
            wait_worker_ready(proc, log_dir / f"worker-{i}.log", WORKER_READY_TIMEOUT_S)
    except BaseException:
        stop_sessions(procs)
        raise
    return procs


def _drop_redis_keys(url: str, prefix: str) -> None:
    import redis

    conn = redis.Redis.from_url(url)
    keys = list(conn.scan_iter(match=prefix + "*", count=1000))
    if keys:
        conn.delete(*keys)


@dataclass
class Cluster:
    engine: Any
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.workers)


@contextlib.contextmanager
def cluster(home: Path, broker: str, workers: int) -> Iterator[Cluster]:
    """A migrated SQLite store under `home`, the broker and `workers` worker processes. The
    environment is this grid's only while it runs."""
    import db
    from services.processes import stop_sessions

    prefix = f"bmlgrid-{os.getpid()}-{secrets.token_hex(3)}:"
    env = {
        "BML_HOME": str(home),
        "BML_RUNS_DIR": str(home / "runs"),
        "BML_DATABASE_URL": None,  # the SQLite store under BML_HOME
        "BML_BROKER_URL": "" if broker == "embedded" else broker,
        "BML_BROKER_PREFIX": prefix,
        "BML_TORCH_THREADS": "1",
        "BML_USER": None,  # the local admin of this fresh store
    }
    with environment(env):
        home.mkdir(parents=True, exist_ok=True)
        engine = db.make_engine()
        db.upgrade(engine)
        if broker != "embedded":
            import redis

            try:
                redis.Redis.from_url(broker, socket_timeout=5).ping()
            except redis.RedisError as exc:
                raise RuntimeError(f"--broker {broker}: Redis does not answer ({exc})") from None
        procs = start_workers(workers, home / "logs")
        try:
            yield Cluster(engine, procs)
        finally:
            stop_sessions(procs)
            engine.dispose()
            if broker != "embedded":
                _drop_redis_keys(broker, prefix)
