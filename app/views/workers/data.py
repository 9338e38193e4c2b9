"""The Workers page's data: queue length and each worker with the run it executes, from
`services.actions.queue_status` (the store plus a short Celery inspect)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine

inspect_timeout_s = 1.0


def queue_status(engine: Engine) -> Any:
    from services import actions as client

    return client.queue_status(inspect_timeout_s, engine=engine)


def worker_rows(status: Any, run_names: dict[int, str] | None = None) -> pd.DataFrame:
    """One row per worker: name, whether it answered, the runs it executes (with links)."""
    names = run_names or {}
    rows = []
    for w in status.workers:
        rows.append(
            {
                "worker": w.name,
                "answering": "yes" if w.ok else "no (busy or gone)",
                "runs": ", ".join(f"#{rid} {names.get(rid, '')}".strip() for rid in w.active_run_ids)
                or "idle",
                "live": f"/live?run={w.active_run_ids[0]}" if w.active_run_ids else "",  # no "None" cell
            }
        )
    return pd.DataFrame(rows, columns=["worker", "answering", "runs", "live"])
