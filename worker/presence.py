"""Which workers are alive, for the embedded broker (it carries no broadcasts, so Celery's
inspect cannot reach the workers): each worker's reaper touches a small JSON file under
BML_HOME/workers every few seconds; a file older than a few intervals means a dead worker."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from db.engine import bml_home


def presence_dir() -> Path:
    return bml_home() / "workers"


def write_presence(name: str) -> None:
    d = presence_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name.replace('/', '_')}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"name": name, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time()})
    )
    tmp.replace(path)


def remove_presence(name: str) -> None:
    (presence_dir() / f"{name.replace('/', '_')}.json").unlink(missing_ok=True)


def live_workers(max_age_s: float) -> list[str]:
    now = time.time()
    names = []
    for path in sorted(presence_dir().glob("*.json")) if presence_dir().is_dir() else []:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if now - float(info.get("time", 0)) <= max_age_s:
            names.append(str(info["name"]))
    return names
