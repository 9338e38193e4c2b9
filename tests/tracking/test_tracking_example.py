"""examples/own_loop.py runs as a user would run it, into the SQLite store under BML_HOME."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import db

ROOT = Path(__file__).resolve().parents[2]


def test_own_loop_example_runs_into_the_default_store(_isolated_home: Path) -> None:
    r = subprocess.run(
        [sys.executable, "examples/own_loop.py", "--steps", "200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "open /live?run=" in r.stdout
    engine = db.make_engine()  # BML_HOME's SQLite store: the one `bml up` serves
    try:
        (run,) = db.list_runs(engine).runs
        assert run.status == "succeeded" and "own-loop" in run.tags and run.step == 200
        pts = db.series_since(engine, run.id, keys=["imbalance/ratio/audio", "train/acc/visual", "val/acc"])
        assert pts["imbalance/ratio/audio"].steps == list(range(1, 201))
        assert len(pts["val/acc"].steps) == 2
        # audio is the strong modality of the example's data: it dominates
        assert sum(pts["imbalance/ratio/audio"].values[-50:]) / 50 > 1.0
        summary = run.summary
        assert summary is not None and 0.0 <= summary["val"]["acc"] <= 1.0
        assert set(summary["val"]["acc_per_modality"]) == {"audio", "visual"}
    finally:
        engine.dispose()
