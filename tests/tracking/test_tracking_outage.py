"""The store away during an own-loop run (real PostgreSQL behind a TCP proxy that is stopped,
as the store tests do): the loop keeps its speed, and every point is stored once it is back."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import pytest
import torch

import bml_core
import db
from tests.tracking.loops import TinyAV, batches

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
OUTAGE_S = float(os.environ.get("BML_TEST_OUTAGE_S", "30"))


def test_postgres_paused_training_continues_and_no_point_is_lost(pg_proxy: Any, pg_databases: Any) -> None:
    proxy, name = pg_proxy
    direct = db.make_engine(pg_databases.url(name))
    try:
        torch.manual_seed(0)
        model = TinyAV()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        data = batches(50)
        run = bml_core.init(
            name="outage",
            group="own",
            modalities=["audio", "visual"],
            num_classes=3,
            store=pg_databases.url(name, proxy.port),
            sink_options={"flush_interval_s": 0.1, "retry_max_s": 0.5},
        )
        phase_times: dict[str, list[float]] = {"before": [], "away": [], "after": []}
        t0 = time.monotonic()
        stopped = restarted = False
        step = 0
        while True:
            elapsed = time.monotonic() - t0
            if not stopped and elapsed > 2.0:
                proxy.stop()
                stopped = True
            if stopped and not restarted and elapsed > 2.0 + OUTAGE_S:
                assert run.sink.pending_points > 0  # held while the database was away
                proxy.start()
                restarted = True
            if restarted and elapsed > 4.0 + OUTAGE_S:
                break
            phase = "after" if restarted else "away" if stopped else "before"
            xa, xv, y = data[step % len(data)]
            s0 = time.perf_counter()
            logits, feats = model(xa, xv)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log_step(logits=logits, features=feats, head=model.head, y=y, loss=loss)
            phase_times[phase].append(time.perf_counter() - s0)
            step += 1
            time.sleep(0.002)
        run.finish()
        before, away = statistics.median(phase_times["before"]), statistics.median(phase_times["away"])
        assert len(phase_times["away"]) > 100
        assert away <= 1.5 * before + 0.0005, (before, away)  # full speed while the store is away
        info = db.get_run(direct, run.id)
        assert info.status == "succeeded" and info.dropped_points == 0 and info.step == step
        pts = db.series_since(direct, run.id, keys=["imbalance/ratio/audio", "train/acc/visual"])
        for key in ("imbalance/ratio/audio", "train/acc/visual"):
            assert pts[key].steps == list(range(1, step + 1)), key
        messages = [e.message for e in db.run_events(direct, run.id)]
        assert any("the store was unreachable for" in m for m in messages)
    finally:
        direct.dispose()
