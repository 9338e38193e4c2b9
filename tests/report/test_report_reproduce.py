"""`bml reproduce`: the papers' grids from the presets, submitted as one group through the
embedded broker (no worker: the runs stay queued), bad input, and one tiny end-to-end
reproduction with a real worker that waits and writes the report (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bml_cli.main import app
from bml_cli.report_cmd import grid_configs, parse_seeds
from bml_core.config import PRESETS, ConfigError
from db import list_runs, make_engine
from tests.helpers.cluster import Cluster

runner = CliRunner()
TINY = [
    "train.epochs=2",
    "train.batch_size=32",
    "train.threads=1",
    "dataset.params.num_samples=300",
    "model.feature_dim=16",
    "optim.lr=0.01",
]


def test_tpami2024_grid_uses_the_paper_presets() -> None:
    configs = grid_configs("tpami2024", "synthetic", None, [], "g", [0, 1, 2])
    assert len(configs) == 12 and {c.group for c in configs} == {"g"}
    by_name = {}
    for c in configs:
        by_name.setdefault(c.name, []).append(c.seed)
    assert by_name == {
        n: [0, 1, 2] for n in ("tpami2024 joint", "tpami2024 ogm", "tpami2024 opm", "tpami2024 opm+ogm")
    }
    first = {c.name: c for c in configs if c.seed == 0}
    assert first["tpami2024 joint"].strategies == []
    for name, preset in (
        ("ogm", "tpami2024-ogm"),
        ("opm", "tpami2024-opm"),
        ("opm+ogm", "tpami2024-opm-ogm"),
    ):
        cfg = first[f"tpami2024 {name}"]
        for strategy, values in zip(cfg.strategies, PRESETS[preset]["strategies"], strict=True):
            dumped = strategy.model_dump()
            assert all(dumped[k] == v for k, v in values.items()), (name, dumped, values)
    for c in first.values():  # joint trains with the same optimiser and schedule as the others
        assert c.optim.name == "adamw" and c.optim.lr == 5e-5 and c.optim.scheduler.step_size == 40
        assert c.train.epochs == 100 and c.train.batch_size == 32
    cvpr = grid_configs("cvpr2022", "cremad", "/data/cremad.h5", ["train.epochs=3"], "c", [0])
    assert [c.strategy_label for c in cvpr] == ["joint", "ogm_ge"]
    assert all(
        c.optim.name == "sgd" and c.train.epochs == 3 and c.dataset.path == "/data/cremad.h5" for c in cvpr
    )
    with pytest.raises(ConfigError, match="unknown grid 'nips'"):
        grid_configs("nips", "synthetic", None, [], "g", [0])


def test_seed_ranges() -> None:
    assert (
        parse_seeds("0-2") == [0, 1, 2]
        and parse_seeds("0,3,5") == [0, 3, 5]
        and parse_seeds("0-1,4") == [0, 1, 4]
    )
    for bad in ("a", "2-0", "-1"):
        with pytest.raises(Exception, match="seed"):
            parse_seeds(bad)


def test_reproduce_submits_one_group_and_prints_the_report_command(embedded_cluster: Cluster) -> None:
    result = runner.invoke(
        app,
        [
            "reproduce",
            "cvpr2022",
            "--dataset",
            "synthetic",
            "--seeds",
            "0-1",
            "--group",
            "rep",
            *sum((["--set", s] for s in TINY), []),
        ],
    )
    assert result.exit_code == 0, result.stderr
    runs = list_runs(make_engine(), group="rep", limit=None).runs
    assert len(runs) == 4 and {r.status for r in runs} == {"queued"} and {r.sweep_id for r in runs} != {None}
    assert sorted((r.strategy, r.seed) for r in runs) == [
        ("joint", 0),
        ("joint", 1),
        ("ogm_ge", 0),
        ("ogm_ge", 1),
    ]
    assert "bml report --group rep --format html -o report-rep.html" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nips", "--dataset", "synthetic"], "unknown grid 'nips'; known: tpami2024, cvpr2022"),
        (["tpami2024", "--dataset", "synthetic", "--seeds", "x"], "--seeds"),
        (["tpami2024", "--dataset", "synthetic", "--set", "train.epochs=-1"], "train.epochs"),
        (["tpami2024", "--dataset", "synthetic", "--format", "pdf"], "unknown format 'pdf'"),
    ],
)
def test_reproduce_bad_input_exits_2(embedded_cluster: Cluster, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["reproduce", *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert list_runs(make_engine(), limit=None).total == 0


@pytest.mark.slow
def test_reproduce_waits_for_a_real_worker_and_writes_the_report(
    embedded_cluster: Cluster, tmp_path: Path
) -> None:
    embedded_cluster.start_worker("w1")
    target = tmp_path / "rep.json"
    args = ["reproduce", "cvpr2022", "--dataset", "synthetic", "--seeds", "0-1", "--group", "tiny", "--wait"]
    args += ["--format", "json", "-o", str(target), "--timeout-s", "240"]
    result = runner.invoke(app, args + sum((["--set", s] for s in TINY), []))
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(target.read_text())
    assert [(g["label"], g["n"]) for g in doc["groups"]] == [
        ("joint", 2),
        ("ogm_ge", 2),
    ]
    assert doc["baseline"] == "joint" and doc["groups"][1]["vs_baseline"]["test"] == "paired t"
    assert doc["groups"][1]["vs_baseline"]["verdict"] in (
        "better",
        "worse",
        "not distinguishable from seed noise",
    )
    runs = {r.id: r for r in list_runs(make_engine(), group="tiny", limit=None).runs}
    for g in doc["groups"]:
        accs = [runs[i].summary["test"]["acc"] for i in g["run_ids"]]  # type: ignore[index]
        assert g["metrics"]["test.acc"]["mean"] == pytest.approx(sum(accs) / len(accs))
    assert "imbalance/ratio/audio" in doc["curves"]["ogm_ge"]
    assert "wrote json report" in result.stdout
