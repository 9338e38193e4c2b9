"""The worked example plug-in examples/plugins/halve_dominant.py (docs/PLUGINS.md): its spec
imports without torch, it loads through BML_PLUGINS, its formula (the dominant modality's
encoder gradients times `factor`, everything else bitwise untouched), `bml strategies`,
`bml train` and `bml submit` with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bml_core.models import MultimodalModel
from bml_core.models.encoders import MLPEncoder
from bml_core.models.fusion import ConcatFusion
from bml_core.strategies import StepContext, discover, get_spec
from tests.test_cli_no_torch import run_probe, store_env  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "plugins"
BML = str(Path(sys.executable).parent / "bml")


@pytest.fixture
def halve_dominant(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("BML_PLUGINS", "halve_dominant")
    discover(refresh=True)
    spec = get_spec("halve_dominant")
    assert spec is not None
    yield spec
    monkeypatch.delenv("BML_PLUGINS")
    discover(refresh=True)


def plugin_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(EXAMPLES), "BML_PLUGINS": "halve_dominant"}


def test_spec_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "from bml_core.strategies import get_spec\n"
        "spec = get_spec('halve_dominant')\n"
        "print(spec.name, spec.metrics[0].key, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=plugin_env(), capture_output=True, text=True, cwd=ROOT
    )
    assert out.stdout.split() == ["halve_dominant", "halve_dominant/factor", "False"], out.stderr


@pytest.mark.parametrize(
    ("scores", "halved"), [([2.0, 1.0], "audio"), ([1.0, 3.0], "visual"), ([1.0, 1.0], None)]
)
def test_dominant_encoder_gradients_are_multiplied_by_factor(halve_dominant, scores, halved) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = MultimodalModel(
        {"audio": MLPEncoder(6, 8, 1, 4), "visual": MLPEncoder(5, 8, 1, 4)},
        ConcatFusion({"audio": 4, "visual": 4}, 3),
    )
    x = {"audio": torch.randn(7, 6), "visual": torch.randn(7, 5)}
    nn.functional.cross_entropy(model(x), torch.randint(0, 3, (7,))).backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    cls = halve_dominant.load_impl()  # type: ignore[attr-defined]
    params = halve_dominant.params(factor=0.25)  # type: ignore[attr-defined]
    strat = cls(params, model, torch.device("cpu"), 0)
    ctx = StepContext(
        epoch=0, step=1, modalities=["audio", "visual"], scores=torch.tensor(scores), y=torch.zeros(1)
    )
    strat.on_gradients(ctx)
    for n, p in model.named_parameters():
        if halved is not None and n.startswith(f"encoders.{halved}"):
            assert torch.equal(p.grad, before[n] * 0.25), n
        else:
            assert torch.equal(p.grad, before[n]), n
    expected = {m: (0.25 if m == halved else 1.0) for m in ("audio", "visual")}
    assert ctx.metrics == {f"halve_dominant/factor/{m}": v for m, v in expected.items()}


def test_bml_strategies_lists_it_and_bml_train_trains_with_it(tmp_path: Path) -> None:
    listed = subprocess.run([BML, "strategies", "--json"], env=plugin_env(), capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    spec = {s["name"]: s for s in json.loads(listed.stdout)["strategies"]}["halve_dominant"]
    assert spec["source"] == "BML_PLUGINS module 'halve_dominant'"
    assert spec["metrics"][0]["reference"] == 1.0
    assert {p["name"] for p in spec["parameters"]} >= {"factor", "ratio"}
    text = subprocess.run([BML, "strategies"], env=plugin_env(), capture_output=True, text=True).stdout
    assert "halve_dominant  [cheap]" in text and "from: BML_PLUGINS module 'halve_dominant'" in text
    assert "factor         float (> 0.0, <= 1.0), default 0.5" in text
    out = tmp_path / "run"
    args = ["--set", "strategies=[halve_dominant]", "--set", "train.epochs=2", "--set", "train.threads=1"]
    args += ["--set", "dataset.params.num_samples=240", "--no-progress", "--out", str(out)]
    trained = subprocess.run(
        [BML, "train", *args], env=plugin_env(), capture_output=True, text=True, timeout=300
    )
    assert trained.returncode == 0, trained.stderr
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    factors = [s["metrics"]["halve_dominant/factor/audio"] for s in steps if s["event"] == "step"]
    assert factors and set(factors) <= {0.5, 1.0}
    assert json.loads((out / "summary.json").read_text())["run"]["strategies"] == ["halve_dominant"]


def test_bml_submit_with_the_plugin_never_imports_torch(store_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    env = {**store_env, "PYTHONPATH": str(EXAMPLES), "BML_PLUGINS": "halve_dominant"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: hd\ntrain: {epochs: 1}\nstrategies: [{name: halve_dominant, factor: 0.3}]\n")
    ok, proc = run_probe(env, tmp_path, "submit", str(cfg))
    assert ok == {"code": 0, "torch": False}, proc.stderr
    bad, proc = run_probe(env, tmp_path, "submit", str(cfg), "--set", "strategies.0.factor=0")
    assert bad == {"code": 2, "torch": False} and "strategies.0.factor" in proc.stderr
