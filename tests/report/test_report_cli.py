"""`bml report` on a store filled without training: the report's numbers equal the
store's summaries (recomputed here from `bml runs --json`), runs still going or cancelled
are listed as excluded, one seed gives no interval, the published numbers appear for
CREMA-D, and bad input exits 2 with a clear message."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from sqlalchemy import Engine
from typer.testing import CliRunner

import db
from bml_cli.main import app
from bml_core.compare import stats
from bml_core.compare.report import plotly_js
from tests.helpers.report_runs import add_run

runner = CliRunner()
ACC = {"joint": [0.60, 0.62, 0.61], "ogm_ge": [0.70, 0.71, 0.73], "opm": [0.61, 0.64, 0.60]}


def bml(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def study(engine: Engine, **kw: Any) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = defaultdict(list)
    for strategy, accs in ACC.items():
        for seed, acc in enumerate(accs):
            ids[strategy].append(add_run(engine, [] if strategy == "joint" else [strategy], seed, acc, **kw))
    return ids


def test_report_numbers_equal_the_store_summaries(engine: Engine, tmp_path: Path) -> None:
    study(engine)
    running = add_run(engine, ["opm"], 7, None, status="running")
    cancelled = add_run(engine, ["ogm_ge"], 8, None, status="cancelled")
    out = tmp_path / "r.json"
    code, stdout, err = bml("report", "--group", "study", "--format", "json", "-o", str(out))
    assert code == 0, err
    doc = json.loads(out.read_text())

    code, listed, _ = bml("runs", "--json", "--group", "study", "--limit", "500")
    assert code == 0
    by_strategy: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in json.loads(listed):
        if r["status"] == "succeeded":
            by_strategy[r["strategy"]].append(r)
    assert doc["baseline"] == "joint"
    assert [g["label"] for g in doc["groups"]] == ["joint", "ogm_ge", "opm"]
    for g in doc["groups"]:
        runs = sorted(by_strategy[g["strategy"]], key=lambda r: r["seed"])
        assert g["n"] == len(runs) == 3 and g["seeds"] == [r["seed"] for r in runs]
        for metric, path in {
            "test.acc": ("test", "acc"),
            "test.f1": ("test", "f1"),
            "test.map": ("test", "map"),
            "test.acc.audio": ("test", "acc_per_modality", "audio"),
            "test.acc.visual": ("test", "acc_per_modality", "visual"),
            "test.imbalance_degree": ("test", "imbalance_degree"),
            "train.seconds": ("train", "seconds"),
        }.items():
            values = []
            for r in runs:
                node: Any = r["summary"]
                for part in path:
                    node = node[part]
                values.append(node)
            d = g["metrics"][metric]
            assert d["mean"] == pytest.approx(np.mean(values), abs=1e-12), metric
            assert d["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12), metric
            lo, hi = sps.t.interval(0.95, 2, loc=np.mean(values), scale=sps.sem(values))
            assert (d["ci_low"], d["ci_high"]) == (pytest.approx(lo), pytest.approx(hi)), metric
        step_ms = [r["summary"]["train"]["seconds"] / r["summary"]["train"]["steps"] * 1000 for r in runs]
        assert g["metrics"]["train.step_ms"]["mean"] == pytest.approx(np.mean(step_ms))
    base = [r["summary"]["test"]["acc"] for r in sorted(by_strategy["joint"], key=lambda r: r["seed"])]
    ps = []
    for g in doc["groups"][1:]:
        mine = [
            r["summary"]["test"]["acc"] for r in sorted(by_strategy[g["strategy"]], key=lambda r: r["seed"])
        ]
        ref = sps.ttest_rel(mine, base)
        assert g["vs_baseline"]["test"] == "paired t"
        assert g["vs_baseline"]["p"] == pytest.approx(ref.pvalue)
        assert g["vs_baseline"]["diff"] == pytest.approx(np.mean(mine) - np.mean(base))
        ps.append(ref.pvalue)
    holm = stats.holm(ps)
    assert [g["vs_baseline"]["p_holm"] for g in doc["groups"][1:]] == pytest.approx(holm)
    assert doc["groups"][1]["vs_baseline"]["verdict"] == "better"
    assert doc["groups"][2]["vs_baseline"]["verdict"] == "not distinguishable from seed noise"

    excluded = {r["id"]: r["reason"] for r in doc["excluded"]}
    assert excluded == {running: "still running (50 %)", cancelled: "cancelled"}
    assert f"excluded: #{running}" in stdout and "still running" in stdout

    # curves: the group mean at a step equals the mean over the group's runs of the store's points
    joint_ids = doc["groups"][0]["run_ids"]
    curve = doc["curves"]["joint"]["imbalance/ratio/audio"]
    points = [
        db.series_since(engine, i, keys=["imbalance/ratio/audio"])["imbalance/ratio/audio"] for i in joint_ids
    ]
    at = curve["steps"].index(17)
    values = [p.values[p.steps.index(17)] for p in points]
    assert curve["mean"][at] == pytest.approx(np.mean(values)) and curve["n"][at] == 3
    assert curve["std"][at] == pytest.approx(np.std(values, ddof=1))
    assert set(doc["curves"]["opm"]) == {
        "imbalance/ratio/audio",
        "imbalance/ratio/visual",
        "val/acc",
        "val/acc/audio",
        "val/acc/visual",
    }
    assert doc["published"] is None  # synthetic data: nothing published


def test_html_and_markdown(engine: Engine, tmp_path: Path) -> None:
    study(engine)
    code, stdout, err = bml("report", "-g", "study", "-o", str(tmp_path / "r.html"))
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    assert page.count("Plotly.newPlot(") >= 5  # accuracy, 2 x rho, 3 x val acc
    assert page.count("plotly.js v") == 1  # the bundle, once
    own = page.replace(plotly_js(), "")  # the page without the bundle: nothing fetched
    assert len(own) < len(page) - 1_000_000
    assert "<script src" not in own and "http" not in own.replace("http-equiv", "")
    assert "ogm_ge" in page and "better" in page
    assert "ogm_ge: test accuracy 71.33 ± 1.53" in stdout
    code, _, err = bml("report", "-g", "study", "--format", "md", "-o", str(tmp_path / "r.md"))
    assert code == 0, err
    md = (tmp_path / "r.md").read_text()
    assert "| ogm_ge | 3 | 0, 1, 2 | 71.33 ± 1.53 [" in md
    assert "paired t" in md and "not distinguishable from seed noise" in md
    code, out, _ = bml("report", "-g", "study", "--format", "json", "-o", "-")
    assert code == 0 and json.loads(out)["schema"] == "bml.report/1"


def test_one_seed_says_no_interval_and_runs_selection(engine: Engine, tmp_path: Path) -> None:
    a = add_run(engine, [], 0, 0.6)
    b = add_run(engine, ["opm"], 0, 0.7)
    code, stdout, err = bml("report", "--runs", f"{a},{b}", "--format", "md", "-o", str(tmp_path / "r.md"))
    assert code == 0, err
    md = (tmp_path / "r.md").read_text()
    assert "60.00 (n = 1, no interval)" in md and "70.00 (n = 1, no interval)" in md
    assert "not tested (no test: needs at least 2 seeds on each side (here 1 and 1))" in md
    assert "n = 1, no interval" in stdout


def test_published_numbers_beside_ours_for_cremad(engine: Engine, tmp_path: Path) -> None:
    for seed, acc in enumerate((0.6, 0.62)):
        on_test = {"test_selected_on_test": {"acc": acc + 0.02, "epoch": 7, "note": "selected on test"}}
        add_run(engine, [], seed, acc, group="cd", dataset="cremad", summary_extra=on_test)
        add_run(engine, ["opm"], seed, acc + 0.05, group="cd", dataset="cremad", summary_extra=on_test)
    code, _, err = bml("report", "-g", "cd", "--format", "json", "-o", str(tmp_path / "r.json"))
    assert code == 0, err
    pub = json.loads((tmp_path / "r.json").read_text())["published"]
    assert pub["dataset"] == "cremad"
    bb_opm = next(
        r for r in pub["rows"] if r["method"] == "OPM" and r["source"].startswith("BalanceBenchmark")
    )
    assert bb_opm["accuracy_pct"] == 68.75 and bb_opm["ours_acc_pct"] == pytest.approx(66.0)
    assert bb_opm["ours_group"] == "opm" and "protocol" in bb_opm["protocol"]
    assert bb_opm["ours_test_selected_pct"] == pytest.approx(63.0)  # (0.62 + 0.64) / 2: the official protocol
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["groups"][0]["metrics"]["test_selected_on_test.acc"]["mean"] == pytest.approx(0.63)
    methods = {r["method"] for r in pub["rows"]}
    assert {"audio only", "visual only", "joint", "OPM", "concat baseline"} <= methods
    assert not methods & {"OGM", "MLA", "Greedy", "LFM"}  # methods we did not run are left out
    code, _, _ = bml("report", "-g", "cd", "-o", str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert "Published numbers (cremad)" in page and "ours, best epoch on test (%)" in page
    assert "best test acc over epochs (selected on test, as the official codes)" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group", "nope"], "unknown group 'nope' (no run has it); known groups: study"),
        (["--runs", "1,999"], "no run with id 999"),
        (["--runs", "a,b"], "--runs must be comma-separated integers"),
        ([], "say which runs: --group NAME"),
        (["-g", "study", "--format", "pdf"], "unknown format 'pdf'"),
        (["-g", "study", "--by", "optim.lrr"], "group key 'optim.lrr' is not a config path"),
        (["-g", "study", "--baseline", "x"], "baseline 'x' is not a group"),
        (["-g", "study", "--include", "sleeping"], "--include 'sleeping' is not a status"),
    ],
)
def test_bad_input_exits_2(engine: Engine, args: list[str], message: str) -> None:
    add_run(engine, [], 0, 0.6)
    code, _, err = bml("report", *args)
    assert code == 2 and message in err, err


def test_only_running_runs_is_nothing_to_report(engine: Engine) -> None:
    r = add_run(engine, ["opm"], 0, None, status="running", group="busy")
    q = add_run(engine, ["opm"], 1, None, status="queued", group="busy")
    code, _, err = bml("report", "-g", "busy")
    assert code == 2
    assert f"nothing to report: no selected run has finished (#{r} still running (50 %); #{q} queued" in err


def test_group_key_option_pools_strategies(engine: Engine, tmp_path: Path) -> None:
    study(engine)
    code, _, err = bml(
        "report", "-g", "study", "--by", "dataset.name", "--format", "json", "-o", str(tmp_path / "r.json")
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [(g["label"], g["n"]) for g in doc["groups"]] == [("dataset.name=synthetic", 9)]
    assert doc["group_by"] == {"paths": ["dataset.name"], "auto": False}
    assert math.isclose(doc["groups"][0]["metrics"]["test.acc"]["mean"], np.mean(sum(ACC.values(), [])))
