"""Issue 23 in a real browser (Playwright driving Debian's Chromium) against `bml up` (embedded
store and broker, one real worker, the app) in a fresh BML_HOME: a study started from the Tune
section of /launch with a tiny budget runs its trials on the worker (the driver is `bml tune`,
detached), the Study page draws its charts from Optuna's tables, and "Launch this" fills the
Launch form with the best trial's config."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

import db
from app.views.study import data as sv
from db.studies import optuna_storage
from tests.helpers.browser import after_rerun, fill, open_page, pick, screenshot, serve_app, wait_chart
from tests.helpers.net import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TRIALS = 3


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, bml_exe: str) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("study")
    env = {k: v for k, v in os.environ.items() if k not in ("BML_DATABASE_URL", "BML_BROKER_URL")}
    env.update(BML_HOME=str(home), PYTHONUNBUFFERED="1")
    port = free_port()
    up = [bml_exe, "up", "--port", str(port)]
    with serve_app(up, port, env, home / "up.log", stop=signal.SIGINT, stop_timeout_s=60) as url:
        yield url, home


def _finished_study(home: Path, name: str, timeout_s: float) -> optuna.Study:
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            study = optuna.load_study(study_name=name, storage=optuna_storage(engine))
            done = [t for t in study.trials if t.state.is_finished()]
            if len(done) >= TRIALS:
                return study
        except KeyError:
            done = []
        if time.monotonic() > deadline:
            log = home / "studies" / f"{name}.log"
            tail = log.read_text()[-2000:] if log.exists() else "(no driver log)"
            raise AssertionError(f"study {name}: {len(done)} of {TRIALS} trials after {timeout_s}s\n{tail}")
        time.sleep(0.5)


def test_tune_from_launch_study_page_charts_and_launch_this(studio: tuple[str, Path], page: Any) -> None:
    url, home = studio
    shots = Path(os.environ["BML_SCREENSHOT_DIR"]) if os.environ.get("BML_SCREENSHOT_DIR") else None
    open_page(page, f"{url}/launch")
    pick(page, "field-strategies", "ogm_ge")
    fill(page, "field-train-epochs", "3")
    fill(page, "field-dataset-params", "{num_samples: 400}")
    after_rerun(page, lambda: page.locator(".st-key-launch_tune label").first.click())
    fill(page, "field-tune-path-0", "strategies.0.alpha")
    fill(page, "field-tune-bounds-0", "0.1, 1.0")
    fill(page, "field-tune-trials", str(TRIALS))
    fill(page, "field-tune-name", "e2e-study")
    page.locator(".st-key-tune_button button").click()
    page.wait_for_selector(".st-key-tune-started", timeout=60_000)
    screenshot(page, shots, "launch-tune")

    study = _finished_study(home, "e2e-study", timeout_s=240)
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    runs = db.list_runs(engine, group="e2e-study", limit=100).runs
    assert len(study.trials) == len(runs) == TRIALS  # one run per trial, on the worker
    assert all(r.status in ("succeeded", "pruned") for r in runs)

    page.get_by_text("Open study e2e-study").click()
    page.wait_for_url("**/study?name=e2e-study")
    history = wait_chart(page, sv.HISTORY_TITLE, timeout_s=60)
    complete = [t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert history["trial"] == complete and history["pruned (last value)"] == pruned
    inter = wait_chart(page, sv.INTERMEDIATE_TITLE, timeout_s=30)
    assert set(inter) == {f"trial {n}" for n in complete} | {f"trial {n} (pruned)" for n in pruned}
    for t in study.trials:  # one point per evaluation the driver reported
        key = f"trial {t.number}" + (" (pruned)" if t.number in pruned else "")
        assert inter[key] == sorted(t.intermediate_values)
    wait_chart(page, f"{sv.PARAM_TITLE}: strategies.0.alpha", timeout_s=30)
    screenshot(page, shots, "study")

    best = study.best_trial
    (best_run,) = best.user_attrs["run_ids"]
    page.get_by_text("Launch this").click()
    page.wait_for_url(f"**/launch?from={best_run}&group=e2e-study-best")
    box = page.locator(".st-key-field-strategy-ogm_ge-alpha input").first
    box.wait_for(timeout=30_000)
    page.wait_for_function(
        "(el) => el.value !== ''", arg=box.element_handle(), timeout=30_000
    )  # the form is filled from the run
    assert float(box.input_value()) == pytest.approx(best.params["strategies.0.alpha"], rel=1e-5)
    assert page.locator(".st-key-field-train-epochs input").first.input_value() == "3"
    assert page.locator(".st-key-field-group input").first.input_value() == "e2e-study-best"
