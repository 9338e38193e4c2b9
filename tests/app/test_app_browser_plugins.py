"""In a real browser (Playwright, Chromium) against `bml up` whose processes see the example
plug-in package (installed for the test: tests/plugin_package.py): its dataset, fusion head
and encoder are picked in the Launch form, their generated parameter fields filled, the run
launched from the browser trains on the worker, and the stored config holds the values."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import db
from tests.helpers.browser import choose, fill, open_page, pick, serve_app
from tests.helpers.net import free_port
from tests.plugin_package import DIST, install

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, bml_exe: str) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("studio-plugins")
    package = install(tmp_path_factory.mktemp("plugin-package"))
    env = {
        k: v for k, v in os.environ.items() if k not in ("BML_DATABASE_URL", "BML_BROKER_URL", "BML_PLUGINS")
    }
    env.update(BML_HOME=str(home), PYTHONUNBUFFERED="1", PYTHONPATH=str(package))
    port = free_port()
    with serve_app(
        [bml_exe, "up", "--port", str(port)],
        port,
        env,
        home / "up.log",
        stop=signal.SIGINT,
        stop_timeout_s=60,
    ) as url:
        yield url, home


def test_launch_the_example_plugins_from_the_browser(studio: tuple[str, Path], page: Any) -> None:
    url, home = studio
    open_page(page, f"{url}/launch")
    fill(page, "field-name", "e2e-plugins")
    choose(page, "field-dataset-name", "two_rings")
    pick(page, "field-model-fusion", "weighted_sum")
    fill(page, "field-fusion-weighted_sum-temperature", "0.5")
    pick(page, "field-model-encoders", "ring")
    pick(page, "field-model-encoders-ring-name", "residual_mlp")
    fill(page, "field-encoder-ring-residual_mlp-width", "8")
    fill(page, "field-train-epochs", "2")
    page.get_by_role("button", name="Launch 1 run").click()
    page.wait_for_selector(".st-key-launched-runs", timeout=30_000)
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    try:
        run = db.list_runs(engine, text="e2e-plugins").runs[0]
        deadline = time.monotonic() + 180
        while (
            db.get_run(engine, run.id).status not in ("succeeded", "failed") and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        detail = db.get_run(engine, run.id)
        assert detail.status == "succeeded", detail.error
        model = detail.config["model"]
        assert detail.config["dataset"]["name"] == "two_rings"
        assert model["fusion"] == "weighted_sum" and model["fusion_params"] == {"temperature": 0.5}
        assert model["encoders"]["ring"] == {**model["encoders"]["ring"], "name": "residual_mlp"}
        assert model["encoders"]["ring"]["params"] == {"width": 8, "blocks": 2}
        assert detail.config["requires"]["encoder/residual_mlp"] == DIST
        assert set(detail.summary["test"]["acc_per_modality"]) == {"ring", "blob"}
    finally:
        engine.dispose()
