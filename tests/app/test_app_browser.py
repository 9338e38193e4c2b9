"""End to end in a real browser (Playwright driving Debian's Chromium) against `bml up`
started by the test in its own BML_HOME on a free port: bad input is refused field by field
with nothing stored or enqueued; an OGM-GE run launched from the form trains while its
Live ratio chart gains points and the Workers page shows it; it is cancelled from the Runs
page; two finished runs are compared and their CSV downloaded; a sweep of three strategies
x two seeds launched from the form is compared (three groups of n = 2 with their verdicts,
still n = 2 after a cancel and a retry) and its report opened; and the time from a step's
write to its point on the Live page is measured; an imbalance alert shows in the Live
strip while its run trains and its "Try this" fills a valid Launch form. Every page is screenshotted (into
$BML_SCREENSHOT_DIR when set, e.g. docs/screenshots)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine

import db
from app.plotly_chart import PLOTLY_BASIC_VERSION
from app.views.live import data as lv
from tests.helpers.browser import (
    VIEWPORT,
    after_rerun,
    chart_points,
    choose,
    drag_zoom,
    fill,
    open_page,
    pick,
    screenshot,
    serve_app,
    wait_chart,
    wait_idle,
    x_axis,
)
from tests.helpers.net import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RATIO_TITLE = lv.PANELS[0].title
# The median, commit -> on the page: 0.35-0.46 s over 7 runs on the loaded 2-core VM, 0.42-0.74 s
# with BML_LIVE_LATENCY_STREAMS=50 beside it (docs/benchmarks.md, where the 0.5 s goal is
# reported). The test bounds it with room for a busier machine (0.92 s was measured in a full
# suite while lint and other tests ran beside it); the printed figures and the bench show
# a regression to the old 1 s polling (median ~0.7 s).
live_latency_target_s = 1.5
live_latency_target_loaded_s = 2.0
# How many times each Live chart has been updated in place (app/plotly_chart.py counts them).
UPDATES_JS = "() => Array.from(document.querySelectorAll('.bml-chart')).map(el => el.dataset.updates)"


@dataclass
class Studio:
    url: str
    home: Path
    engine: Engine
    shots: Path | None


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, bml_exe: str) -> Iterator[Studio]:
    """`bml up --port N` in a fresh BML_HOME (embedded store and broker, one worker, the app)."""
    home = tmp_path_factory.mktemp("studio")
    env = {k: v for k, v in os.environ.items() if k not in ("BML_DATABASE_URL", "BML_BROKER_URL")}
    env.update(BML_HOME=str(home), PYTHONUNBUFFERED="1")
    port = free_port()
    up = [bml_exe, "up", "--port", str(port)]
    with serve_app(up, port, env, home / "up.log", stop=signal.SIGINT, stop_timeout_s=60) as url:
        engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
        shots_env = os.environ.get("BML_SCREENSHOT_DIR")
        shots = Path(shots_env) if shots_env else tmp_path_factory.mktemp("screenshots")
        yield Studio(url, home, engine, shots)
        engine.dispose()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)  # conftest's page, with downloads
    pg = context.new_page()
    yield pg
    context.close()


def _wait_status(engine: Engine, run_id: int, statuses: set[str], timeout_s: float) -> db.RunDetail:
    deadline = time.monotonic() + timeout_s
    while True:
        run = db.get_run(engine, run_id)
        if run.status in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(
                f"run {run_id} is {run.status} after {timeout_s}s, not {statuses}: {run.error}"
            )
        time.sleep(0.2)


def _error_in(page: Any, container: str) -> str:
    return page.locator(f".st-key-{container} [data-testid='stAlertContentError']").inner_text()


def test_bad_input_is_refused_next_to_each_field_and_nothing_is_stored(studio: Studio, page: Any) -> None:
    from services import actions as client

    open_page(page, f"{studio.url}/launch")
    fill(page, "field-name", "")
    fill(page, "field-seeds", "0, x")
    fill(page, "field-dataset-path", "/etc")
    fill(page, "field-train-epochs", "0")
    fill(page, "field-optim-lr", "-1")
    pick(page, "field-strategies", "opm")
    fill(page, "field-strategy-opm-q_base", "2")
    expected = {
        "field-name": "give the run a name",
        "field-seeds": "'x' is not a seed",
        "field-dataset-path": "outside the dataset directories",
        "field-train-epochs": "greater than or equal to 1",
        "field-optim-lr": "greater than 0",
        "field-strategy-opm-q_base": "less than or equal to 1",
    }
    for container, text in expected.items():
        assert text in _error_in(page, container), container
    screenshot(page, studio.shots, "launch-errors")
    page.locator(".st-key-launch_button button").click()
    page.get_by_text("Nothing was launched").wait_for(timeout=30_000)
    assert db.list_runs(studio.engine).total == 0
    assert client.queue_status(engine=studio.engine).queued == 0


def test_launch_ogm_ge_from_the_form_and_watch_it_live(studio: Studio, page: Any) -> None:
    open_page(page, f"{studio.url}/launch")
    screenshot(page, studio.shots, "launch")
    fill(page, "field-name", "e2e-ogm-ge")
    fill(page, "field-group", "e2e-live")
    pick(page, "field-strategies", "ogm_ge")
    fill(page, "field-train-epochs", "60")
    fill(page, "field-optim-lr", "0.01")
    page.get_by_role("button", name="Launch 1 run").click()
    page.wait_for_selector(".st-key-launched-runs", timeout=30_000)
    run = db.list_runs(studio.engine, text="e2e-ogm-ge").runs[0]
    assert run.strategy == "ogm_ge" and run.status in ("queued", "running")
    assert db.get_run(studio.engine, run.id).config["strategies"][0]["name"] == "ogm_ge"

    page.get_by_text(f"Live #{run.id}").click()
    page.wait_for_url(f"**/live?run={run.id}")
    _wait_status(studio.engine, run.id, {"running"}, timeout_s=90)
    first = wait_chart(page, RATIO_TITLE, timeout_s=90)
    assert set(first) == {"audio", "visual"}
    grown = first
    deadline = time.monotonic() + 30
    while len(grown["audio"]) <= len(first["audio"]) + 5 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        grown = chart_points(page, RATIO_TITLE) or first
    assert len(grown["audio"]) > len(first["audio"]) + 5, (
        "the ratio chart gained no points while the run trained"
    )
    assert grown["audio"][: len(first["audio"])] == first["audio"]  # appended, not redrawn from scratch
    assert db.get_run(studio.engine, run.id).status == "running"
    screenshot(page, studio.shots, "live")

    drag_zoom(page, RATIO_TITLE)  # the user's zoom survives the refreshes that add points
    zoomed = x_axis(page, RATIO_TITLE)
    assert zoomed is not None and zoomed["auto"] is False
    page.wait_for_timeout(int(3 * lv.refresh_interval_s * 1000))
    later = x_axis(page, RATIO_TITLE)
    assert later is not None and later["points"] > zoomed["points"]
    assert later["auto"] is False and later["range"] == pytest.approx(zoomed["range"])

    open_page(page, f"{studio.url}/workers")
    page.get_by_text(f"is running #{run.id} e2e-ogm-ge").wait_for(timeout=30_000)
    screenshot(page, studio.shots, "workers")


def test_cancel_a_running_run_from_the_runs_page(studio: Studio, page: Any) -> None:
    run = db.list_runs(studio.engine, text="e2e-ogm-ge").runs[0]
    assert run.status == "running"
    open_page(page, f"{studio.url}/runs")
    screenshot(page, studio.shots, "runs")
    choose(page, "runs_pick", f"#{run.id} e2e-ogm-ge (running)")
    page.locator(".st-key-runs_cancel button").click()
    page.get_by_test_id("stAlertContentSuccess").get_by_text(f"Run {run.id} asked to stop").wait_for(
        timeout=30_000
    )
    cancelled = _wait_status(studio.engine, run.id, {"cancelled"}, timeout_s=30)
    assert cancelled.step > 0


def test_compare_two_finished_runs_and_download_the_csv(studio: Studio, page: Any) -> None:
    open_page(page, f"{studio.url}/launch")
    fill(page, "field-name", "e2e-compare")
    fill(page, "field-group", "e2e-compare")
    fill(page, "field-seeds", "0,1")
    pick(page, "field-strategies", "opm")
    fill(page, "field-train-epochs", "3")
    fill(page, "field-optim-lr", "0.01")
    page.get_by_role("button", name="Launch 2 runs").click()
    page.wait_for_selector(".st-key-launched-runs", timeout=30_000)
    launched = db.list_runs(studio.engine, text="e2e-compare").runs
    assert sorted(r.seed for r in launched) == [0, 1] and {r.strategy for r in launched} == {"opm"}
    ids = sorted(r.id for r in launched)
    for rid in ids:
        _wait_status(studio.engine, rid, {"succeeded"}, timeout_s=180)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    open_page(page, f"{studio.url}/compare?runs={ids[0]},{ids[1]}")
    points = wait_chart(page, "val/acc", timeout_s=30)
    assert len(points) == 1 and next(iter(points)) == "e2e-compare (n=2)"  # seeds averaged
    # drawn with the shipped basic plotly.js; Streamlit's 4.7 MB bundle is never fetched
    assert page.evaluate("() => window.Plotly.version") == PLOTLY_BASIC_VERSION
    assert any(u.endswith("/app/static/plotly-basic.min.js") for u in requested), requested
    assert not [u for u in requested if "/PlotlyChart." in u]
    screenshot(page, studio.shots, "compare")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download runs CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [int(r["run"]) for r in rows] == ids
    for r, rid in zip(rows, ids, strict=True):
        summary = db.get_run(studio.engine, rid).summary
        assert summary is not None
        assert float(r["test acc"]) == pytest.approx(summary["test"]["acc"])
    open_page(page, f"{studio.url}/")
    screenshot(page, studio.shots, "overview")


def _download_csv(page: Any, label: str) -> list[dict[str, str]]:
    with page.expect_download() as download:
        page.get_by_role("button", name=label).click()
    return list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))


def _legend_lines(page: Any, title: str) -> list[str]:
    """Names of the chart's lines shown in its legend (per-seed lines are not)."""
    return page.evaluate(
        """(prefix) => {
          for (const el of document.querySelectorAll('.js-plotly-plot')) {
            const t = ((el.layout && el.layout.title && el.layout.title.text) || '').replace(/<[^>]*>/g, '');
            if (t.startsWith(prefix) && el._fullData)
              return el._fullData.filter(d => d.fill !== 'toself' && d.showlegend !== false).map(d => d.name);
          }
          return null;
        }""",
        title,
    )


def test_compare_a_sweep_of_three_strategies_over_two_seeds(studio: Studio, page: Any) -> None:
    """Issue 11's "Must show": launched from the form, "Compare them" answers which
    strategy wins; a cancel and a retry leave n = 2; the Report page opens from Compare."""
    open_page(page, f"{studio.url}/launch")
    fill(page, "field-name", "e2e-sweep")
    fill(page, "field-seeds", "0,1")
    fill(page, "field-train-epochs", "2")
    fill(page, "field-optim-lr", "0.01")
    after_rerun(page, lambda: page.locator(".st-key-launch_sweep label").first.click())
    for strategy in ("joint", "ogm_ge", "opm"):
        pick(page, "f-sweep-strategies", strategy)
    fill(page, "field-sweep-name", "e2e-sweep")
    page.get_by_role("button", name="Launch 6 runs").click()
    page.wait_for_selector(".st-key-launched-runs", timeout=30_000)
    launched = db.list_runs(studio.engine, group="e2e-sweep").runs
    assert sorted((r.strategy, r.seed) for r in launched) == [
        (s, seed) for s in ("joint", "ogm_ge", "opm") for seed in (0, 1)
    ]
    for r in launched:
        _wait_status(studio.engine, r.id, {"succeeded"}, timeout_s=300)

    page.get_by_text("Compare them").click()
    page.wait_for_url("**/compare?runs=*")
    wait_chart(page, "val/acc", timeout_s=60)
    assert _legend_lines(page, "val/acc") == ["joint (n=2)", "ogm_ge (n=2)", "opm (n=2)"]
    page.get_by_text("(95 % CI").first.wait_for(timeout=10_000)  # the sentence naming the winner
    results = _download_csv(page, "Download results CSV")
    assert [r["group"] for r in results] == ["joint", "ogm_ge", "opm"]
    assert [r["n"] for r in results] == ["2", "2", "2"] and {r["seeds"] for r in results} == {"0 1"}
    verdicts = [r["verdict"] for r in results]
    assert verdicts[0] == "baseline"
    assert set(verdicts[1:]) <= {"better", "worse", "not distinguishable from seed noise"}
    runs = _download_csv(page, "Download runs CSV")
    assert sorted((r["group"], r["seed"]) for r in runs) == [
        (s, seed) for s in ("joint", "ogm_ge", "opm") for seed in ("0", "1")
    ]
    screenshot(page, studio.shots, "compare-1400")
    screenshot(page, studio.shots, "compare-800", width=800)

    # retry opm seed 1 from the Runs page, cancel the clone, then retry again: the last clone counts
    opm1 = next(r for r in launched if r.strategy == "opm" and r.seed == 1)
    open_page(page, f"{studio.url}/runs")
    choose(page, "runs_pick", f"#{opm1.id} {opm1.name} (succeeded)")
    page.locator(".st-key-runs_retry button").click()
    page.get_by_test_id("stAlertContentSuccess").get_by_text(f"Run {opm1.id} cloned as run").wait_for(
        timeout=30_000
    )
    clone = max(r.id for r in db.list_runs(studio.engine, group="e2e-sweep").runs)
    open_page(page, f"{studio.url}/runs")
    run = db.get_run(studio.engine, clone)
    choose(page, "runs_pick", f"#{clone} {run.name} ({run.status})")
    page.locator(".st-key-runs_cancel button").click()
    _wait_status(studio.engine, clone, {"cancelled"}, timeout_s=120)
    open_page(page, f"{studio.url}/runs")
    choose(page, "runs_pick", f"#{clone} {run.name} (cancelled)")
    page.locator(".st-key-runs_retry button").click()
    page.get_by_test_id("stAlertContentSuccess").get_by_text(f"Run {clone} cloned as run").wait_for(
        timeout=30_000
    )
    retried = max(r.id for r in db.list_runs(studio.engine, group="e2e-sweep").runs)
    _wait_status(studio.engine, retried, {"succeeded"}, timeout_s=300)

    open_page(page, f"{studio.url}/compare?group=e2e-sweep")
    wait_chart(page, "val/acc", timeout_s=60)
    assert _legend_lines(page, "val/acc") == ["joint (n=2)", "ogm_ge (n=2)", "opm (n=2)"]
    assert [r["n"] for r in _download_csv(page, "Download results CSV")] == ["2", "2", "2"]
    runs = {int(r["run"]): r for r in _download_csv(page, "Download runs CSV")}
    assert clone not in runs and opm1.id not in runs  # the cancelled clone; the older copy of seed 1
    assert runs[retried]["note"] == f"retry of #{clone}" and runs[retried]["seed"] == "1"  # runs.retry_of

    after_rerun(page, lambda: page.locator(".st-key-compare_excluded label").first.click())
    results = _download_csv(page, "Download results CSV")
    assert [r["n"] for r in results] == ["2", "2", "2"]  # shown, marked, never counted
    assert f"#{clone} cancelled" in results[2]["not pooled"]
    runs = {int(r["run"]): r for r in _download_csv(page, "Download runs CSV")}
    assert runs[clone]["status"] == "✗ cancelled" and runs[opm1.id]["status"] == "✗ succeeded"

    page.get_by_text("Report of these runs").click()
    page.wait_for_url("**/report?group=e2e-sweep*")
    frame = page.frame_locator("iframe").first
    frame.get_by_text("Comparison: e2e-sweep").wait_for(timeout=60_000)
    frame.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSON").click()
    doc = json.loads(Path(download.value.path()).read_text())
    assert [g["n"] for g in doc["groups"]] == [2, 2, 2]


@contextmanager
def _background_streams(url: str, streams: int, rate: float, keys: int) -> Iterator[dict[str, Any]]:
    """`streams` other running runs written at `rate` steps/s of `keys` series each through
    the real sink, by bench/lab_streams.py's load generator in a process of its own (as
    workers would be); yields the figures it prints once stopped (filled on exit)."""
    figures: dict[str, Any] = {}
    if streams <= 0:
        yield figures
        return
    cmd = [sys.executable, str(ROOT / "bench" / "lab_streams.py"), url, "--streams", str(streams)]
    cmd += ["--rate", str(rate), "--keys", str(keys), "--seconds", "600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        time.sleep(3.0)  # the streams' first flushes are in before the probe starts
        yield figures
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    figures.update(json.loads(out.strip().splitlines()[-1]))


def test_live_latency_from_a_steps_write_to_its_point(studio: Studio, page: Any) -> None:
    """A run written by the test (as a worker would) at 10 steps per second; the page is
    polled every 25 ms; each step's latency is from its commit to the first poll whose
    ratio chart holds it. With BML_LIVE_LATENCY_STREAMS=N, N other runs stream meanwhile
    through the real sink into the same store (BML_LIVE_LATENCY_STREAM_RATE steps/s,
    default 20, of BML_LIVE_LATENCY_STREAM_KEYS series, default 30): the issue-22 load."""
    streams = int(os.environ.get("BML_LIVE_LATENCY_STREAMS", "0"))
    stream_rate = float(os.environ.get("BML_LIVE_LATENCY_STREAM_RATE", "20"))
    stream_keys = int(os.environ.get("BML_LIVE_LATENCY_STREAM_KEYS", "30"))
    run_id = db.create_run(
        studio.engine, {"name": "latency-probe", "group": "probe", "strategies": ["ogm_ge"]}
    )
    db.claim_run(studio.engine, run_id, "latency-probe")
    db.write_points(
        studio.engine, run_id, {"imbalance/ratio/audio": [(0, 1.0)], "imbalance/ratio/visual": [(0, 1.0)]}
    )
    open_page(page, f"{studio.url}/live?run={run_id}")
    wait_chart(page, RATIO_TITLE)
    written: dict[int, float] = {}
    stop = threading.Event()
    steps_per_s = 10.0
    duration_s = 15.0

    def writer() -> None:
        step = 1
        while not stop.is_set():
            value = 1.0 + 0.5 * (step % 7) / 7
            db.write_points(
                studio.engine,
                run_id,
                {"imbalance/ratio/audio": [(step, value)], "imbalance/ratio/visual": [(step, 1 / value)]},
            )
            written[step] = time.monotonic()
            if step % 10 == 0:
                db.heartbeat(studio.engine, run_id, progress=0.5, step=step)
            step += 1
            time.sleep(1.0 / steps_per_s)

    seen: dict[int, float] = {}
    with _background_streams(
        f"sqlite:///{studio.home / 'bml.db'}", streams, stream_rate, stream_keys
    ) as load:
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            points = chart_points(page, RATIO_TITLE) or {}
            now = time.monotonic()
            top = int(max(points.get("audio") or [0]))
            for step in range(1, top + 1):
                seen.setdefault(step, now)
            page.wait_for_timeout(25)
        stop.set()
        thread.join(timeout=10)
    db.finish_run(studio.engine, run_id, "succeeded")
    # the page notices the end and stops refreshing
    page.get_by_text("succeeded", exact=True).wait_for(timeout=10_000)
    # the rerun that shows the end may still update its charts just after the status text
    page.wait_for_timeout(int(1.5 * lv.refresh_interval_s * 1000))
    updates = page.evaluate(UPDATES_JS)
    page.wait_for_timeout(int(4 * lv.refresh_interval_s * 1000))
    assert page.evaluate(UPDATES_JS) == updates
    latencies = [seen[s] - written[s] for s in seen if s in written]
    assert len(latencies) > 50, f"only {len(latencies)} steps reached the page"
    median = statistics.median(latencies)
    p90 = sorted(latencies)[int(0.9 * (len(latencies) - 1))]
    report = f"live latency over {len(latencies)} steps: median {median:.3f}s, p90 {p90:.3f}s, max {max(latencies):.3f}s"
    if load:
        report += (
            f" (meanwhile {streams} streams x {stream_rate:g} steps/s x {stream_keys} keys wrote"
            f" {load['steps']} steps, {load['steps_per_s']} steps/s, through the sink;"
            f" {load['dropped'] + load['lost']} points dropped or lost)"
        )
        assert load["dropped"] + load["lost"] == 0, report
    print(report)
    (studio.home / "live_latency.txt").write_text(report + "\n")
    assert median <= (live_latency_target_loaded_s if streams else live_latency_target_s), report


# A joint run whose dominance detector fires within its first steps (threshold just above 1,
# a 5-step window, release never reached) and that trains for minutes: 4,000 samples / 8.
ALERTING_RUN = {
    "name": "e2e-alerts",
    "group": "e2e-alerts",
    "strategies": [],
    "dataset": {"params": {"num_samples": 12000}},  # 1,050 steps an epoch: still training when checked
    "model": {"feature_dim": 32, "encoders": {"audio": {"hidden_dim": 64}, "visual": {"hidden_dim": 64}}},
    "optim": {"lr": 0.02, "scheduler": {"name": "none"}},
    "train": {"epochs": 6, "batch_size": 8, "threads": 1},
    "alerts": {"dominance": {"threshold": 1.0001, "release": 0.01, "window": {"steps": 5, "share": 0.6}}},
}


def test_alert_strip_on_live_while_training_and_try_this_fills_a_valid_form(
    studio: Studio, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12's "Must show": an alert appears in the Live strip while the run trains, and
    its "Try this" opens Launch holding the run's config with the advice applied, which
    validates (the launch button offers one run, no field is marked)."""
    from services import actions as client

    monkeypatch.setenv("BML_HOME", str(studio.home))  # the studio's broker and store
    for name in ("BML_DATABASE_URL", "BML_BROKER_URL", "BML_USER"):
        monkeypatch.delenv(name, raising=False)
    [run_id] = client.submit(ALERTING_RUN, engine=studio.engine)
    _wait_status(studio.engine, run_id, {"running"}, timeout_s=90)
    open_page(page, f"{studio.url}/live?run={run_id}")
    strip = page.locator(".st-key-live-alerts")
    strip.wait_for(timeout=90_000)
    (alert, *_) = db.run_events(studio.engine, run_id, kind="alert")
    assert alert.data is not None and alert.data["detector"] == "dominance"
    assert db.get_run(studio.engine, run_id).status == "running"  # shown while it trains
    strip.get_by_text("dominance").first.wait_for(timeout=10_000)
    strip.get_by_text(alert.message).first.wait_for(timeout=10_000)
    screenshot(page, studio.shots, "live-alerts")

    page.locator(f".st-key-live-alert-{alert.id}").get_by_role("link", name="Try this").click()
    page.wait_for_url(f"**/launch?from={run_id}&advice={alert.id}")
    page.get_by_text("The form holds a run's config with an alert's advice applied").wait_for(timeout=30_000)
    wait_idle(page)
    # auto-waiting checks: the page may still be replacing the previous page's elements
    expect(page.locator(".st-key-field-name input").first).to_have_value(
        f"e2e-alerts (advice #{alert.id})", timeout=15_000
    )
    expect(page.locator(".st-key-field-strategies")).to_contain_text("opm", timeout=15_000)
    expect(page.locator(".st-key-field-strategy-opm-q_base input").first).to_have_value(
        re.compile(r"^0\.50*$"), timeout=15_000
    )
    page.get_by_role("button", name="Launch 1 run").wait_for(timeout=15_000)  # the form validates
    expect(page.locator("[data-testid='stAlertContentError']")).to_have_count(0)
    screenshot(page, studio.shots, "launch-advice")
    client.cancel(run_id, engine=studio.engine)
    _wait_status(studio.engine, run_id, {"cancelled", "succeeded"}, timeout_s=60)
