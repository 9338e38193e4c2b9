"""The warm start of run processes: while a run trains, its supervisor starts the next run's
process ahead of time (`python -m worker.run_process --spare`). The spare imports what every
run imports (torch, torch._dynamo, the trainer, the store: about 4 s of CPU before a run's
first step on this project's CPU machines, see docs/benchmarks.md), then waits on its stdin
for a run. The worker's next run is handed to it (one JSON line: the run id and its attempt
log) instead of starting a process, so it reaches its first step that much sooner.

Every run still gets a fresh process of its own (no state is carried from one run to the
next): the spare has imported modules and done nothing else. It is a child of the same
supervisor process, started with the same environment (a spare whose environment differs
from the next run's is dropped, and the run starts cold), and set up like any run process:
it dies with its parent (PDEATHSIG), ignores Ctrl-C, and its command line is changed to the
run's (`python -m worker.run_process RUN_ID`, with setproctitle) once it has one, so `ps` and
`pgrep` find it as before. Its imports run at SCHED_IDLE where the process may return to the
normal policy afterwards (root, or RLIMIT_NICE allowing nice 0), so they only use CPU time
the training leaves idle, and at the normal policy from the moment a run is handed over.

BML_WARM_START=0 turns it off (every run starts cold)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from worker.lifecycle import die_with_parent

log = logging.getLogger("bml.worker")

SPARE_FLAG = "--spare-run-process"  # as long as a 19-digit run id: the title fits argv's room


def enabled() -> bool:
    """BML_WARM_START (default on), and setproctitle present (without it a warm-started run
    would not show its run id on its command line)."""
    if os.environ.get("BML_WARM_START", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        import setproctitle  # noqa: F401
    except ImportError:
        return False
    return True


class Spare:
    """The supervisor's side: one spare process, started with `env`, handed one run."""

    def __init__(self, env: dict[str, str]):
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] = subprocess.Popen(
            [sys.executable, "-m", "worker.run_process", SPARE_FLAG],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**self.env, "SPT_NOENV": "1"},  # setproctitle: keep /proc/PID/environ readable
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def take(self, run_id: int, log_path: Path) -> subprocess.Popen[bytes] | None:
        """Hand run `run_id` to the spare: its process, or None when it has gone."""
        stdin = self.process.stdin
        if not self.alive() or stdin is None:
            return None
        try:
            stdin.write((json.dumps({"run_id": run_id, "log": str(log_path)}) + "\n").encode())
            stdin.close()
        except OSError:  # it exited between the check and the write
            self.discard()
            return None
        return self.process

    def discard(self) -> None:
        """End an unused spare (its stdin closed: it exits when its imports are done; SIGTERM
        now, since it has no run and nothing to save)."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_lock = threading.Lock()
_spare: Spare | None = None


def take(run_id: int, log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes] | None:
    """This process's spare, handed run `run_id`, when there is one alive with `env`; else None
    (start the run cold). A spare with another environment is ended."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is None:
        return None
    if spare.env != env:
        spare.discard()
        return None
    return spare.take(run_id, log_path)


def prepare(env: dict[str, str]) -> None:
    """Start a spare for this process's next run unless one with `env` is alive already."""
    global _spare
    with _lock:
        old = _spare
        if old is not None and old.alive() and old.env == env:
            return
        try:
            _spare = Spare(env)
        except OSError as exc:
            _spare = None
            log.warning("could not start a spare run process: %s", exc)
    if old is not None:
        old.discard()


def discard() -> None:
    """End this process's spare, if any (a worker shutting down)."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is not None:
        spare.discard()


# ------------------------------------------------------------------ the spare process itself


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def _may_leave_idle() -> bool:
    """Whether this process may go back from SCHED_IDLE to the normal policy (Linux: root,
    or an RLIMIT_NICE that allows nice 0)."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    if os.geteuid() == 0:
        return True
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20 - os.getpriority(os.PRIO_PROCESS, 0)
    except (ImportError, OSError, AttributeError):
        return False


def _set_policy(policy: int) -> None:
    for tid in _threads():
        with contextlib.suppress(OSError):
            os.sched_setscheduler(tid, policy, os.sched_param(0))


def preload() -> None:
    """Import what `worker.run_process._train` and a run's first optimizer step import."""
    import torch
    import torch._dynamo  # noqa: F401 - torch.optim's step imports it (1.6 s here)

    import db  # noqa: F401
    from bml_core.alerts.webhook import webhook_sinks  # noqa: F401
    from bml_core.config import validate_config  # noqa: F401
    from bml_core.data import build_dataset  # noqa: F401
    from bml_core.provenance import runtime_environment  # noqa: F401
    from bml_core.trainer import Trainer  # noqa: F401

    del torch


def serve(main: Callable[[list[str]], int], stdin: IO[str] | None = None) -> int:
    """Preload, wait for a run, then be that run's process (`main([RUN_ID])`). Exits 0 without
    a run when stdin closes (the supervisor dropped the spare).

    The imports run in a thread of their own at SCHED_IDLE while the main thread waits on
    stdin: a run handed over before they are done lifts them to the normal policy at once
    (they are its imports now), instead of leaving them starved by busy cores until done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on `bml worker` is the supervisor's business
    die_with_parent()
    idle = _may_leave_idle()
    lock = threading.Lock()
    handed = threading.Event()

    def load() -> None:
        with lock:
            if idle and not handed.is_set():  # 0: this thread (the policy is per thread)
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        with contextlib.suppress(Exception):  # the run imports again and records any error itself
            preload()

    loader = threading.Thread(target=load, name="bml-spare-preload", daemon=True)
    loader.start()
    line = (stdin or sys.stdin).readline()
    with lock:
        handed.set()
        if idle:
            _set_policy(os.SCHED_OTHER)  # every thread, the loader and any it started
    if not line.strip():
        return 0
    loader.join()  # the run's own imports start once the loader's are done: never two at once
    order = json.loads(line)
    run_id = int(order["run_id"])
    fd = os.open(order["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    import setproctitle

    setproctitle.setproctitle(f"{sys.executable} -m worker.run_process {run_id}")
    return main([str(run_id)])
