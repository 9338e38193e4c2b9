"""The faults `bench/lab_scale.py --faults` injects under load (issue 22): one worker SIGKILLed
once every worker is busy (its run must be requeued and finish once), and the streams'
PostgreSQL made unreachable through a TCP proxy mid-stream (no point may be lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_ENV = {  # a killed worker's run is found stale and requeued in seconds, not the default 30 s
    "BML_HEARTBEAT_INTERVAL_S": "0.5",
    "BML_STALE_AFTER_S": "4",
    "BML_REAPER_INTERVAL_S": "1",
}


@dataclass
class FaultInjector:
    """(1) once every worker has a run `running`, SIGKILL one worker's whole process group
    (Celery, its pool, the run process): the other workers' reapers must requeue its run,
    which then finishes once (attempt 2); (2) at 40 % of the streams' time, stop the TCP
    proxy the streams reach PostgreSQL through (every connection closed, the port refused)
    for `outage_s`, then start it again: the sinks must keep every point."""

    engine: Any
    workers: list[tuple[subprocess.Popen[bytes], Path]]
    names: list[str]
    proxy: Any
    stream_s: float
    outage_s: float
    t0: float = field(default_factory=time.monotonic)
    killed: list[dict[str, Any]] = field(default_factory=list)
    outages: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def kill_when_all_busy(self, stop: threading.Event, timeout_s: float = 300.0) -> None:
        import db

        deadline = time.monotonic() + timeout_s
        while not stop.is_set() and time.monotonic() < deadline:
            running = db.list_runs(self.engine, group="lab-queue", status=["running"], limit=100).runs
            if len(running) >= len(self.workers):
                victim = running[0]
                index = next(
                    (i for i, n in enumerate(self.names) if victim.worker and victim.worker.startswith(n)),
                    None,
                )
                if index is None:
                    self.errors.append(f"run {victim.id} runs on unknown worker {victim.worker!r}")
                    return
                proc = self.workers[index][0]
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                self.killed.append(
                    {
                        "run": victim.id,
                        "worker": self.names[index],
                        "busy": len(running),
                        "at_s": self.since(),
                    }
                )
                return
            time.sleep(0.2)
        if not stop.is_set():
            self.errors.append(
                f"the {len(self.workers)} workers were never all busy within {timeout_s:.0f} s"
            )

    def outage(self, stop: threading.Event) -> None:
        if stop.wait(self.stream_s * 0.4):
            return
        at = self.since()
        self.proxy.stop()
        time.sleep(self.outage_s)
        self.proxy.start()
        self.outages.append({"at_s": at, "down_s": self.since() - at})

    def since(self) -> float:
        return round(time.monotonic() - self.t0, 2)


def proxied_url(url: str, port: int) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
