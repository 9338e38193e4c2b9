"""`python -m worker.run_process RUN_ID`: the training process of one run, started by the
supervisor task with subprocess (never forked from a process that holds torch threads or
CUDA). Loads the config from the run row, records what it runs on (versions, commit,
hardware, data fingerprints: bml_core.provenance) into the row, resumes from the run's last
checkpoint, trains with a DbMetricSink, and records the final status itself.

SIGTERM: the current step finishes, the sink flushes, a checkpoint is written. If the run's
cancellation was requested the run ends `cancelled` (exit 0); otherwise it was a shutdown
of the worker and the process exits EXIT_INTERRUPTED so that the supervisor requeues it.

The process never outlives its supervisor: on Linux the kernel sends it SIGTERM when the
parent dies (prctl PR_SET_PDEATHSIG), and a watchdog thread also stops it when its parent
changes (any platform) or when the run's cancel flag is set in the store, so `bml cancel`
works even when no supervisor is left to relay it. `kill -9` of the Celery main process
reaches it the same way: Celery's prefork pool child (the supervisor) has PDEATHSIG SIGKILL
(celery.concurrency.prefork), so it dies with the main process, and this process with it
(tests/worker/test_worker_orphans.py). Stopped with its supervisor gone, it records the run
`requeued` itself, as the supervisor would have."""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from worker.lifecycle import die_with_parent
from worker.spare import SPARE_FLAG, serve

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: checkpoint written, run it again later
EXIT_FAILED = 1


def start_watchdog(
    stop: threading.Event, parent_pid: int, should_stop: Callable[[], bool], interval_s: float
) -> threading.Thread:
    """A daemon thread that sets `stop` when the parent process is gone (this process was
    re-parented) or `should_stop()` says so (the cancel flag in the store); errors of
    `should_stop` (the store away) are ignored and retried."""

    def watch() -> None:
        while not stop.wait(interval_s):
            if os.getppid() != parent_pid:
                print("run process: the supervisor is gone; stopping", file=sys.stderr, flush=True)
                stop.set()
                return
            try:
                if should_stop():
                    print("run process: cancel requested in the store; stopping", file=sys.stderr, flush=True)
                    stop.set()
                    return
            except Exception:  # noqa: BLE001, S110 - the store may be away for a while: retry
                pass

    thread = threading.Thread(target=watch, name="bml-run-watchdog", daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m worker.run_process RUN_ID", file=sys.stderr)
        return 2
    run_id = int(argv[0])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on `bml worker` is the supervisor's business
    parent_pid = os.getppid()
    die_with_parent()
    expected = os.environ.get("BML_SUPERVISOR_PID", "")
    if expected.isdigit() and int(expected) != parent_pid:
        print("run process: started without its supervisor (it has already exited)", file=sys.stderr)
        return EXIT_INTERRUPTED

    from db import cancel_requested, check_schema, finish_run, make_engine
    from worker.settings import SupervisorSettings

    engine = make_engine()
    check_schema(engine)
    interval = max(0.05, SupervisorSettings.from_env().cancel_poll_s)
    start_watchdog(stop, parent_pid, lambda: cancel_requested(engine, run_id), interval)
    try:
        return _train(engine, run_id, stop, parent_pid)
    except Exception as exc:  # noqa: BLE001 - recorded on the run, then exit 1
        tail = traceback.format_exc()
        print(tail, file=sys.stderr, flush=True)
        finish_run(engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}", traceback_tail=tail)
        return EXIT_FAILED
    finally:
        engine.dispose()


def _event_on(engine: Engine, run_id: int) -> Callable[[str], None]:
    """A webhook delivery failure, as a warning event of the run (shown on /live)."""

    def record(message: str) -> None:
        from db import add_event

        add_event(engine, run_id, "warning", message)

    return record


def _train(engine: Engine, run_id: int, stop: threading.Event, parent_pid: int | None = None) -> int:
    """Train the run in this process; `parent_pid` is the supervisor's (None: this process's
    parent now, e.g. when called in-process by tests)."""
    import torch

    from bml_core.config import validate_config
    from bml_core.data import build_dataset
    from bml_core.dataspecs import check_dataset_paths
    from bml_core.provenance import data_fingerprints, runtime_environment
    from bml_core.trainer import Trainer
    from db import DbMetricSink, cancel_requested, finish_run, get_run, record_environment, requeue_run
    from worker.settings import run_dir

    if parent_pid is None:
        parent_pid = os.getppid()

    run = get_run(engine, run_id)
    cfg = validate_config(run.config, path_rules=False)  # the paths: check_dataset_paths below
    threads = int(os.environ.get("BML_TORCH_THREADS", "0") or 0) or cfg.train.threads
    if threads:
        torch.set_num_threads(threads)
    # again here, before any file is opened: the store's config may not have come through submit
    checked = check_dataset_paths(cfg.dataset)
    if cfg.dataset.path:
        cfg.dataset.path = str(checked["dataset.path"])
    bundle = build_dataset(cfg.dataset)
    from bml_core.alerts.webhook import webhook_sinks

    sink = DbMetricSink(engine, run_id, record_status=False)
    trainer = Trainer(
        cfg,
        bundle,
        sinks=[sink, *webhook_sinks({"name": cfg.name, "id": run_id}, on_failure=_event_on(engine, run_id))],
        run_dir=run_dir(run_id, run.created_at),
        stop_requested=stop.is_set,
    )
    environment = runtime_environment(str(trainer.device))
    environment["data"] = data_fingerprints(cfg.dataset.path)
    environment["worker"] = run.worker
    record_environment(engine, run_id, environment)
    summary = trainer.fit()  # closes (flushes) the sink
    status = summary["run"]["status"]
    if status == "succeeded":
        finish_run(engine, run_id, "succeeded", summary=summary)
        return 0
    if cancel_requested(engine, run_id):
        finish_run(engine, run_id, "cancelled")
        return 0
    if os.getppid() != parent_pid:
        # no supervisor is left to record how this attempt ended: say it here, so the run
        # does not show `running` until some worker's reaper finds its heartbeat stale
        # (a live worker's reaper sends requeued runs again)
        print("run process: the supervisor is gone; stopped after a checkpoint", file=sys.stderr, flush=True)
        requeue_run(engine, run_id, "the worker is gone (its process ended); stopped after a checkpoint")
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    if sys.argv[1:] == [SPARE_FLAG]:  # a warm start: imports first, the run later (worker.spare)
        code = serve(main)
    else:
        code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # everything is committed by now; skip the interpreter's slow teardown of torch so
    # the worker's next run starts sooner
    os._exit(code)
