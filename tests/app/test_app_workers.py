"""Workers page: queue length, running count, and each worker with the run it executes
(from services.actions.queue_status; the Celery broadcast is replaced by a recorded answer
here, the real one is exercised by the browser test against `bml up`)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from services import actions as client
from tests.helpers.apptest import frame_with, open_page
from tests.helpers.stored_runs import add_run


def test_queue_and_workers_with_their_runs(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    busy = add_run(engine, "busy", "g", steps=10, status="running")
    add_run(engine, "next", "g", status="queued")
    real = client.queue_status

    def answered(timeout_s: float = 1.0, *, engine: Engine | None = None) -> client.QueueStatus:
        status = real(0.01, engine=engine)  # counts from the store; no worker answers here
        status.workers = [
            client.WorkerStatus("cpu@host", [busy], ok=True),
            client.WorkerStatus("gpu1@host", [], ok=True),
        ]
        status.error = None
        return status

    monkeypatch.setattr(client, "queue_status", answered)
    at = open_page("workers")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"queued": "1", "running": "1", "workers": "2"}
    table = frame_with(at, "worker")
    assert list(table["worker"]) == ["cpu@host", "gpu1@host"]
    assert table.iloc[0]["runs"] == f"#{busy} busy" and table.iloc[0]["live"] == f"/live?run={busy}"
    assert table.iloc[1]["runs"] == "idle"
    assert list(frame_with(at, "strategy")["name"]) == ["next"]
    assert [p.proto.label for p in at.get("page_link")] == [f"cpu@host is running #{busy} busy"]


def test_no_worker_answering_is_said(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    real = client.queue_status

    def nobody(timeout_s: float = 1.0, *, engine: Engine | None = None) -> client.QueueStatus:
        status = real(0.01, engine=engine)
        status.workers = []
        return status

    monkeypatch.setattr(client, "queue_status", nobody)
    at = open_page("workers")
    assert any("No worker answered" in i.value for i in at.info)
