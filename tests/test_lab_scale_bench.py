"""bench/lab_scale.py --quick end to end (issue 22): real `bml worker` processes on the
machine's Redis (own key prefix) and a PostgreSQL database of its own drain 12 queued real
runs while 5 replay streams write through the sink and the page data functions are timed.
The non-timing invariants must hold: every queued run ran exactly once, every written point
is stored once, no run is left running; the database and the Redis keys are gone after."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cluster import REDIS_HOST, REDIS_PORT, ensure_machine_redis
from tests.helpers.postgres import ensure_postgres

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _bench_databases() -> set[str]:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres") as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bml_bench_lab_%'").fetchall()
    return {r[0] for r in rows}


def _bench_redis_keys() -> set[bytes]:
    import redis

    conn = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    return set(conn.scan_iter(match="bml-lab-*", count=1000))


def test_lab_scale_quick_holds_its_invariants(tmp_path: Path) -> None:
    ensure_postgres()
    ensure_machine_redis()
    before = _bench_databases()
    keys_before = _bench_redis_keys()
    out = tmp_path / "lab.json"
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "lab_scale.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "invariants: every queued run ran exactly once" in r.stdout
    res = json.loads(out.read_text())
    assert res["problems"] == [] and res["lost_runs"] == 0 and res["duplicated_runs"] == 0
    assert res["queue_latency_s"]["n"] == 12  # every run started (and so was timed)
    settings = res["settings"]
    assert (settings["workers"], settings["runs"], settings["streams"]) == (2, 12, 5)
    # the lag probe saw the streams' steps, and the three pages were each timed
    assert res["sink_lag_s"]["n"] > 0 and res["points_per_s"] > 0
    assert set(res["page_ms"]) == {"/runs", "/live refresh", "/compare (20 runs)"}
    assert _bench_databases() == before  # its database was dropped

    assert _bench_redis_keys() == keys_before  # its key prefix was cleaned up
    assert wall < 180, f"--quick took {wall:.0f} s (the budget is 3 min)"


def test_lab_scale_faults_under_load(tmp_path: Path) -> None:
    """Faults under load (issue 22): 8 workers all busy, one SIGKILLed (Celery, pool and run
    process) -> its run is requeued by the others' reapers and finishes once (attempt 2),
    every other run ran once; 50 streams write through a TCP proxy to PostgreSQL that is
    stopped for 3 s mid-stream (every connection closed, the port refused) -> every point
    written is stored, none dropped or lost."""
    ensure_postgres()
    ensure_machine_redis()
    out = tmp_path / "faults.json"
    # 50 streams at 2 steps/s x 10 keys: the outage spans 6 steps of each; 24 tiny runs on 8 workers
    args = ["--quick", "--faults", "--workers", "8", "--runs", "24", "--streams", "50", "--rate", "2"]
    args += ["--keys", "10", "--stream-s", "20", "--outage-s", "3", "--json", str(out)]
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "lab_scale.py"), *args],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["problems"] == []
    [killed] = res["faults"]["killed"]
    assert killed["busy"] >= 8  # every worker had a run when one was killed
    [outage] = res["faults"]["outages"]
    assert outage["down_s"] >= 3 and outage["at_s"] < 20  # during the streams
    assert res["lost_runs"] == 0 and res["duplicated_runs"] == 0
    assert res["queue_latency_s"]["n"] == 24
