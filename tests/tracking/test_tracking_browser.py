"""An own-loop run in a real browser (Playwright, Debian's Chromium) against the dashboard
alone: on /live its ratio chart is drawn from the steps its loop logged, and on /compare it
sits beside a native run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

import bml_core
import db
from app.views.live import data as lv
from tests.helpers.browser import chromium_page, open_page, serve_dashboard, wait_chart
from tests.helpers.stored_runs import add_run
from tests.tracking.loops import TinyAV, batches

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    home = tmp_path_factory.mktemp("own-loop-browser")
    url = f"sqlite:///{home / 'bml.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    native = add_run(engine, "native-ogm", "native-cmp", ["ogm_ge"], steps=40, status="succeeded")
    torch.manual_seed(0)
    model = TinyAV()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bml_core.init(
        name="my-own-model", group="own-cmp", modalities=["audio", "visual"], num_classes=3, store=url
    ) as run:
        for i, (xa, xv, y) in enumerate(batches(40)):
            logits, feats = model(xa, xv)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log_step(logits=logits, features=feats, head=model.head, y=y, loss=loss)
            if (i + 1) % 10 == 0:
                run.log_eval("val", acc=0.3 + 0.01 * i, acc_per_modality={"audio": 0.3, "visual": 0.2})
        run.log_eval("test", acc=0.6, acc_per_modality={"audio": 0.5, "visual": 0.3})  # pooled like native
    with serve_dashboard(home) as base:
        yield base, run.id, native
    engine.dispose()


@pytest.fixture(scope="module")
def page(served: tuple[str, int, int]) -> Iterator[Any]:
    with chromium_page() as pg:
        yield pg


def test_own_loop_run_on_live(served: tuple[str, int, int], page: Any) -> None:
    base, own, _ = served
    open_page(page, f"{base}/live?run={own}")
    points = wait_chart(page, lv.PANELS[0].title, timeout_s=60)
    # one line per modality, every step the loop logged (1..40)
    assert len(points) == 2 and all(max(xs) == 40 and len(xs) >= 20 for xs in points.values()), points


def test_own_loop_run_beside_a_native_run_on_compare(served: tuple[str, int, int], page: Any) -> None:
    base, own, native = served
    open_page(page, f"{base}/compare?runs={native},{own}")
    points = wait_chart(page, "val/acc", timeout_s=60)
    assert len(points) >= 2, points
    xs = sorted(points.values())
    assert [10, 20, 30, 40] in xs and [20, 40] in xs, points  # the own loop's evaluations, the native run's
