"""The one task: `bml.execute_run(run_id)`, a thin supervisor. The run row is the source of
truth; the message only says "look at run N". Bad messages are logged and dropped."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from functools import lru_cache
from typing import Any

from celery import signals
from sqlalchemy import Engine

from db import RunNotFound, check_schema, claim_run, list_runs, make_engine, requeue_stale
from db.own_runs import reap_own_runs
from worker.celery_app import app
from worker.presence import remove_presence, write_presence
from worker.settings import TASK_NAME, SupervisorSettings
from worker.supervisor import RunSupervisor

log = logging.getLogger("bml.worker")


@lru_cache(maxsize=1)
def engine() -> Engine:
    """One engine per process (created after the pool forks)."""
    return make_engine()


def enqueue(run_id: int) -> None:
    app.send_task(TASK_NAME, args=[int(run_id)], retry=True)


@app.task(name=TASK_NAME, bind=True, ignore_result=True)
def execute_run(self: Any, run_id: Any) -> str:
    if isinstance(run_id, bool) or not isinstance(run_id, int):
        log.error("rejected %s with run_id %r: an integer run id is required", TASK_NAME, run_id)
        return "rejected"
    try:
        claimed = claim_run(engine(), run_id, worker=self.request.hostname or "worker")
    except RunNotFound:
        log.error("rejected %s(%s): no such run", TASK_NAME, run_id)
        return "unknown run"
    if not claimed:
        log.info("run %s is not claimable (another worker has it, or it ended)", run_id)
        return "skipped"
    return RunSupervisor(engine(), run_id, resend=enqueue).run()


# --------------------------------------------------------------------------- reaper


class Reaper(threading.Thread):
    """Requeues `running` runs whose heartbeat is stale and sends their task again; resends
    `requeued` runs whose message may have been lost (at most once per resend interval)."""

    def __init__(
        self,
        eng: Engine,
        settings: SupervisorSettings,
        worker_name: str,
        resend_requeued_after_s: float = 60.0,
    ):
        super().__init__(name="bml-reaper", daemon=True)
        self.worker_name = worker_name
        self.engine = eng
        self.settings = settings
        self.resend_requeued_after_s = resend_requeued_after_s
        self.stop_event = threading.Event()
        self._sent: dict[int, float] = {}

    def sweep(self, now: float) -> list[int]:
        sent = []
        with contextlib.suppress(Exception):  # own-loop runs whose process died: failed (never requeued)
            for run_id in reap_own_runs(self.engine):
                log.warning("own-loop run %s: no heartbeat, failed", run_id)
        for run_id in requeue_stale(self.engine, self.settings.stale_after_s):
            log.warning("run %s: stale heartbeat, requeued", run_id)
            enqueue(run_id)
            self._sent[run_id] = now
            sent.append(run_id)
        for run in list_runs(self.engine, status="requeued", limit=200).runs:
            first_seen = self._sent.setdefault(run.id, now)
            if now - first_seen >= self.resend_requeued_after_s:
                enqueue(run.id)
                self._sent[run.id] = now
                sent.append(run.id)
        return sent

    def run(self) -> None:
        while True:
            write_presence(self.worker_name)
            if self.stop_event.wait(self.settings.reaper_interval_s):
                break
            try:
                self.sweep(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the store or broker may be away; try again later
                log.warning("reaper: %s", exc)


_reaper: Reaper | None = None


@signals.worker_init.connect
def _check_store(**_: Any) -> None:
    """Refuse to start on an un-migrated store, saying how to fix it."""
    eng = make_engine()
    try:
        check_schema(eng)
    finally:
        eng.dispose()


@signals.worker_process_init.connect
def _fresh_engine_after_fork(**_: Any) -> None:
    engine.cache_clear()  # never share connections across a fork


@signals.worker_ready.connect
def _start_reaper(sender: Any = None, **_: Any) -> None:
    global _reaper
    name = getattr(sender, "hostname", None) or "worker"
    _reaper = Reaper(make_engine(), SupervisorSettings.from_env(), name)
    _reaper.start()


@signals.worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    if _reaper is not None:
        _reaper.stop_event.set()
        remove_presence(_reaper.worker_name)
