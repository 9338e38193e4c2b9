"""Compare page with many long runs: the time until the browser has drawn every chart,
and the dashboard process's memory.

Fills a fresh store (temporary BML_HOME) with `--runs` finished runs of `--steps` steps
(20 series per run, every step), starts the app (`streamlit run app/main.py`, as `bml
dashboard` does) and opens `/compare?runs=<all>` in Debian's Chromium (Playwright), each
round in a new tab of a new browser context (a first visit: empty HTTP cache) and of one
kept context (a returning visit: Streamlit's and plotly.js's files cached). A time runs
from the navigation until every chart's Plotly element holds its lines with their points
(`_fullData`). Each round does the per-run view (`&agg=0`: the per-seed lines, one per run,
with each group's mean) and the group view (`&agg=1`: mean ± std over each group's seeds;
the runs are grouped as the page groups them, by what differs between their configs). Memory: the app process's resident
set (VmRSS, and its peak VmHWM) from /proc.

    python bench/dashboard_compare.py                 # 20 runs x 10,000 steps, 5 rounds
    python bench/dashboard_compare.py --runs 5 --steps 2000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the browser tests' Chromium)

# Count, per chart, the traces drawn with points (band traces have `fill`).
CHART_STATE_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => {
  const data = el._fullData || [];
  const lines = data.filter(t => t.fill !== 'toself');
  return {lines: lines.length, points: lines.reduce((n, t) => n + (t.x ? t.x.length : 0), 0)};
})
"""


def proc_memory_mib(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def time_page(context, url: str, charts: int, lines_per_chart: int, timeout_s: float = 60.0) -> float:
    """Seconds from navigating a new tab to `url` until every chart holds its lines."""
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    deadline = start + timeout_s
    while True:
        state = page.evaluate(CHART_STATE_JS)
        if len(state) >= charts and all(c["lines"] >= lines_per_chart and c["points"] > 0 for c in state):
            elapsed = time.perf_counter() - start
            break
        if time.perf_counter() > deadline:
            page.close()
            raise TimeoutError(f"charts not drawn after {timeout_s}s: {state}")
        page.wait_for_timeout(20)
    page.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bml-bench-compare-"))
    os.environ["BML_HOME"] = str(home)
    os.environ.pop("BML_DATABASE_URL", None)
    from dashboard_data import fill_runs, free_port
    from playwright.sync_api import sync_playwright

    import db
    from services.processes import dashboard_url, start_dashboard, wait_until_healthy

    engine = db.make_engine()
    db.upgrade(engine)
    t0 = time.perf_counter()
    ids = fill_runs(engine, args.runs, args.steps)
    fill_s = time.perf_counter() - t0
    n_series = sum(len(db.series_keys(engine, i)) for i in ids)
    print(
        f"store: {args.runs} runs x {args.steps} steps, {n_series} series, written in {fill_s:.1f}s",
        flush=True,
    )
    from app.views.compare import data as cv

    groups = [g.label for g in cv.group(db.get_runs(engine, ids)[0]).groups]
    engine.dispose()

    port = free_port()
    with (home / "dashboard.log").open("wb") as log, (home / "dashboard.err").open("wb") as err:
        proc = start_dashboard(port, "127.0.0.1", stdout=log, stderr=err)
    base = dashboard_url(port)
    try:
        if not wait_until_healthy(base, alive=proc):
            raise SystemExit(f"dashboard did not start: {(home / 'dashboard.err').read_text()[-2000:]}")
        mem_idle = proc_memory_mib(proc.pid)
        runs_url = f"{base}/compare?runs={','.join(map(str, ids))}"
        views = {
            f"one line per run ({len(ids)} per chart)": (f"{runs_url}&agg=0", 3, len(ids)),
            f"mean ± std per group ({len(groups)} groups of seeds: {', '.join(groups)})": (
                f"{runs_url}&agg=1",
                3,
                len(groups),
            ),
        }
        times: dict[str, list[float]] = {}
        viewport = {"width": 1400, "height": 1000}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            warm = browser.new_context(viewport=viewport)
            time_page(warm, f"{runs_url}&agg=0", 3, len(ids))  # fills the warm context's HTTP cache
            for _ in range(args.rounds):
                for name, (url, charts, lines) in views.items():
                    cold = browser.new_context(viewport=viewport)  # a first visit: empty cache
                    times.setdefault(f"{name}, first visit", []).append(time_page(cold, url, charts, lines))
                    cold.close()
                    times.setdefault(f"{name}, returning visit", []).append(
                        time_page(warm, url, charts, lines)
                    )
            browser.close()
        mem_after = proc_memory_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "runs": args.runs,
        "steps": args.steps,
        "series": n_series,
        "rounds": args.rounds,
        "draw_s": {
            k: {"median": statistics.median(v), "all": [round(x, 3) for x in v]} for k, v in times.items()
        },
        "memory_mib": {
            "idle_rss": mem_idle.get("VmRSS"),
            "rss_after": mem_after.get("VmRSS"),
            "peak": mem_after.get("VmHWM"),
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
