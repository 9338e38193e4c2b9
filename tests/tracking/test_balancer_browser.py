"""A Balancer(["ogm_ge"]) own-loop run in a real browser (Playwright, Debian's Chromium) against
the dashboard alone: on /live its ρ and OGM-coefficient charts are drawn from the steps its loop
logged, and on /compare it sits beside a native OGM-GE run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bml_core
import db
from app.views.live import data as lv
from tests.helpers.browser import chromium_page, open_page, serve_dashboard, wait_chart
from tests.helpers.stored_runs import add_run
from tests.tracking.loops import batches

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Mine(nn.Module):
    """The user's model: encoders by modality and a linear head over the concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(
            {
                "audio": nn.Sequential(nn.Linear(5, 8), nn.ReLU()),
                "visual": nn.Sequential(nn.Linear(7, 8), nn.ReLU()),
            }
        )
        self.head = nn.Linear(16, 3)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    home = tmp_path_factory.mktemp("balancer-browser")
    url = f"sqlite:///{home / 'bml.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    native = add_run(engine, "native-ogm", "native-cmp", ["ogm_ge"], steps=40, status="succeeded")
    torch.manual_seed(0)
    model = Mine()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bml_core.init(
        name="my-balanced-model", group="own-cmp", modalities=["audio", "visual"], num_classes=3, store=url
    ) as run:
        balancer = bml_core.Balancer(model, ["ogm_ge"], run=run)
        for i, (xa, xv, y) in enumerate(batches(40)):
            out = balancer.forward({"audio": xa, "visual": xv}, y)
            opt.zero_grad()
            balancer.backward(F.cross_entropy(out.logits, y), out, y)
            opt.step()
            if (i + 1) % 10 == 0:
                run.log_eval("val", acc=0.3 + 0.01 * i, acc_per_modality={"audio": 0.3, "visual": 0.2})
        run.log_eval("test", acc=0.6, acc_per_modality={"audio": 0.5, "visual": 0.3})
    with serve_dashboard(home) as base:
        yield base, run.id, native
    engine.dispose()


@pytest.fixture(scope="module")
def page(served: tuple[str, int, int]) -> Iterator[Any]:
    with chromium_page() as pg:
        yield pg


def test_balanced_own_loop_run_on_live(served: tuple[str, int, int], page: Any) -> None:
    base, own, _ = served
    open_page(page, f"{base}/live?run={own}")
    ratio = wait_chart(page, lv.PANELS[0].title, timeout_s=60)
    assert len(ratio) == 2 and all(max(xs) == 40 and len(xs) >= 20 for xs in ratio.values()), ratio
    coef_panel = next(p for p in lv.panels() if "ogm/coef/" in p.prefixes)
    coef = wait_chart(page, coef_panel.title, timeout_s=60)
    assert len(coef) == 2 and all(max(xs) == 40 for xs in coef.values()), coef


def test_balanced_own_loop_run_beside_a_native_run_on_compare(
    served: tuple[str, int, int], page: Any
) -> None:
    base, own, native = served
    open_page(page, f"{base}/compare?runs={native},{own}")
    points = wait_chart(page, "val/acc", timeout_s=60)
    xs = sorted(points.values())
    assert [10, 20, 30, 40] in xs and [20, 40] in xs, points
