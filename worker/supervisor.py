"""The supervisor of one run: starts `python -m worker.run_process RUN_ID` with subprocess,
heartbeats the run row, turns a cancellation request into SIGTERM (then SIGKILL after a
grace period), and records how the process ended. Used by the Celery task; it has no
Celery in it, so it can be tested on its own."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from db import TERMINAL_STATUSES, StoreError, finish_run, get_run, heartbeat, requeue_run
from worker import spare
from worker.run_process import EXIT_INTERRUPTED
from worker.settings import SupervisorSettings, run_dir

log = logging.getLogger("bml.worker")
LOG_TAIL_CHARS = 8_000


def _tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - chars))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


class RunSupervisor:
    def __init__(
        self,
        engine: Engine,
        run_id: int,
        settings: SupervisorSettings | None = None,
        resend: Callable[[int], None] | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        self.engine = engine
        self.run_id = run_id
        self.settings = settings or SupervisorSettings.from_env()
        self.resend = resend
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self._shutdown = False
        self._cancel = False

    def _on_shutdown(self, signum: int, frame: FrameType | None) -> None:
        self._shutdown = True

    def run(self) -> str:
        """Run to the end; returns the run's status afterwards."""
        run = get_run(self.engine, self.run_id)
        directory = run_dir(self.run_id, run.created_at)
        directory.mkdir(parents=True, exist_ok=True)
        log_path = directory / f"attempt-{run.attempt}.log"
        env = {
            **os.environ,
            **self.extra_env,
            "PYTHONUNBUFFERED": "1",
            "BML_SUPERVISOR_PID": str(os.getpid()),  # the run process checks it is still there
        }
        previous = signal.signal(signal.SIGTERM, self._on_shutdown)
        try:
            with log_path.open("ab") as out:
                warm = spare.take(self.run_id, log_path, env) if self.settings.warm_start else None
                self.process = warm or subprocess.Popen(
                    [sys.executable, "-m", "worker.run_process", str(self.run_id)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
                log.info(
                    "run %s: attempt %s started as pid %s%s",
                    self.run_id, run.attempt, self.process.pid, " (warm)" if warm else "",
                )  # fmt: skip
                if self.settings.warm_start:
                    spare.prepare(env)  # the next run's process, importing while this one trains
                returncode = self._watch(self.process)
        finally:
            signal.signal(signal.SIGTERM, previous)
        return self._record_end(returncode, log_path)

    def _watch(self, proc: subprocess.Popen[bytes]) -> int:
        term_sent_at: float | None = None
        parent = os.getppid()  # the Celery main process, when run by the task
        while True:
            try:
                return proc.wait(timeout=self.settings.heartbeat_interval_s)
            except subprocess.TimeoutExpired:
                pass
            # the worker that started us is gone (Celery's pool child normally dies with it by
            # PDEATHSIG; this covers a pool without it): stop as on a shutdown, and requeue
            stop = self._shutdown or os.getppid() != parent
            try:
                if heartbeat(self.engine, self.run_id):  # cancel requested, or no longer `running`
                    run = get_run(self.engine, self.run_id)
                    self._cancel = run.cancel_requested
                    # a run the process has just finished needs no signal; any other change does
                    stop = stop or run.cancel_requested or run.status not in TERMINAL_STATUSES
            except (StoreError, SQLAlchemyError) as exc:  # the store is away: keep training, retry
                log.warning("run %s: heartbeat failed: %s", self.run_id, exc)
            if stop and term_sent_at is None:
                log.info("run %s: stopping (%s)", self.run_id, "cancel" if self._cancel else "shutdown")
                proc.send_signal(signal.SIGTERM)
                term_sent_at = time.monotonic()
            elif term_sent_at is not None and time.monotonic() - term_sent_at > self.settings.cancel_grace_s:
                log.warning(
                    "run %s: no exit %.0fs after SIGTERM, killing", self.run_id, self.settings.cancel_grace_s
                )
                proc.kill()

    def _record_end(self, returncode: int, log_path: Path) -> str:
        run = get_run(self.engine, self.run_id)
        tail = _tail(log_path)
        if returncode == EXIT_INTERRUPTED or (returncode < 0 and not run.cancel_requested):
            if run.status == "running":
                reason = (
                    "interrupted by a worker shutdown after a checkpoint"
                    if returncode == EXIT_INTERRUPTED
                    else f"run process killed by {signal.Signals(-returncode).name}"
                )
                status = requeue_run(self.engine, self.run_id, reason)
                if status == "requeued" and self.resend is not None:
                    self.resend(self.run_id)
                return status
            return run.status
        if returncode < 0:  # cancelled, and the process had to be killed
            if run.status == "running":
                finish_run(
                    self.engine, self.run_id, "cancelled", error="killed after the cancel grace period"
                )
            return "cancelled"
        if run.status == "running":
            if returncode == 0:
                finish_run(
                    self.engine, self.run_id, "failed", error="the run process exited without a result"
                )
            else:
                finish_run(
                    self.engine,
                    self.run_id,
                    "failed",
                    error=f"exit code {returncode}: {_last_error_line(tail)}",
                    traceback_tail=tail,
                )
            return "failed"
        if run.status == "failed" and not run.traceback_tail and tail:
            finish_run(self.engine, self.run_id, "failed", traceback_tail=tail)
        return run.status
