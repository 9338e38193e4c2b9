"""Encoder, fusion-head and dataset plug-ins (issue 20 item 4; CONTRACT.md "Plug-ins"): the
example package examples/plugins installed (tests/plugin_package.py) is listed by
`bml plugins`, validated by the config, trains with `bml train`; without it the run is
refused with an error naming the plug-in and the package. Also: relative `impl` pointers
(a plug-in module copied under another name still loads its implementation)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bml_core import plugins
from bml_core.config import ConfigError, load_config, validate_config
from bml_core.models import build_model
from bml_core.strategies.spec import discover as discover_strategies
from tests.plugin_package import CONFIG, DIST, ROOT, install

BML = str(Path(sys.executable).parent / "bml")


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(tmp_path_factory.mktemp("plugin-package"))


@pytest.fixture
def installed(package_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(package_dir))
    plugins.discover(refresh=True)
    yield package_dir
    monkeypatch.undo()
    plugins.discover(refresh=True)


def env(package_dir: Path | None, home: Path) -> dict[str, str]:
    out = {**os.environ, "BML_HOME": str(home), "BML_RUNS_DIR": str(home / "runs")}
    out.pop("BML_PLUGINS", None)
    if package_dir is not None:
        out["PYTHONPATH"] = str(package_dir)
    else:
        out.pop("PYTHONPATH", None)
    return out


def test_bml_plugins_lists_all_four_kinds_with_the_package(package_dir: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [BML, "plugins", "--json"], env=env(package_dir, tmp_path), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    cat = json.loads(r.stdout)
    names = {kind: {d["name"]: d for d in items} for kind, items in cat.items() if kind != "plugin_errors"}
    assert set(names) == {"strategies", "encoders", "fusions", "datasets"}
    assert {"ogm_ge", "opm"} <= set(names["strategies"])
    assert {"mlp", "cnn", "resnet18", "transformer", "gru", "residual_mlp"} == set(names["encoders"])
    assert {"concat", "sum", "film", "gated", "shared", "weighted_sum"} == set(names["fusions"])
    assert {"synthetic", "features", "mfeat", "two_rings"} <= set(names["datasets"])
    enc = names["encoders"]["residual_mlp"]
    assert enc["package"] == DIST and enc["ranks"] == [1]
    assert enc["source"].startswith("entry point 'residual_mlp'")
    assert [p["name"] for p in enc["parameters"]] == ["width", "blocks"]
    assert names["fusions"]["weighted_sum"]["package"] == DIST
    assert names["datasets"]["two_rings"]["modalities"] == ["ring", "blob"]
    assert names["encoders"]["mlp"]["source"] == "built-in" and names["encoders"]["mlp"]["package"] == ""
    assert cat["plugin_errors"] == []
    text = subprocess.run([BML, "plugins"], env=env(package_dir, tmp_path), capture_output=True, text=True)
    assert "Fusion heads (6)" in text.stdout and "weighted_sum" in text.stdout
    # without the package: the built-ins only
    bare = subprocess.run([BML, "plugins", "--json"], env=env(None, tmp_path), capture_output=True, text=True)
    assert "residual_mlp" not in bare.stdout and json.loads(bare.stdout)["encoders"]


def test_specs_and_catalogue_never_import_torch(package_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from bml_core.plugins import catalogue\n"
        "from bml_core.config import load_config\n"
        "cat = catalogue()\n"
        f"load_config({str(CONFIG)!r})\n"
        "print(sorted(e['name'] for e in cat['encoders']), 'torch' in sys.modules)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=env(package_dir, tmp_path), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("] ")[1].strip() == "False" and "residual_mlp" in r.stdout


def test_the_config_validates_plugin_parameters(installed: Path) -> None:
    cfg = load_config(CONFIG)
    assert cfg.model.encoders["ring"].params == {"width": 32, "blocks": 2}
    assert cfg.requires == {
        "dataset/two_rings": DIST,
        "encoder/residual_mlp": DIST,
        "fusion/weighted_sum": DIST,
    }
    bad = {
        "dataset": {"name": "two_rings", "params": {"num_classes": 1}},
        "model": {
            "fusion": "weighted_sum",
            "fusion_params": {"temperature": 0},
            "encoders": {"ring": {"name": "residual_mlp", "params": {"width": 2, "depth": 3}}},
        },
    }
    with pytest.raises(ConfigError) as exc:
        validate_config(bad)
    errors = exc.value.as_dict()
    assert set(errors) == {
        "dataset.params.num_classes",
        "model.fusion_params.temperature",
        "model.encoders.ring.params.width",
        "model.encoders.ring.params.depth",
    }
    assert "greater than or equal to 4" in errors["model.encoders.ring.params.width"]
    assert errors["model.encoders.ring.params.depth"] == "unknown parameter; known: width, blocks"


def test_plugin_model_parts_are_built_from_their_specs(installed: Path) -> None:
    cfg = load_config(CONFIG)
    model = build_model(cfg.model, {"ring": (2,), "blob": (16,)}, num_classes=3)
    assert type(model.encoders["ring"]).__name__ == "ResidualMLP" and len(model.encoders["ring"].blocks) == 2
    assert type(model.fusion).__name__ == "WeightedSumFusion"
    feats = model.encode({"ring": torch.randn(5, 2), "blob": torch.randn(5, 16)})
    u = model.fusion.unimodal_logits(feats)
    # weights start equal (softmax of zeros): z = (u_ring + u_blob), each u_m = W_m h_m / 2
    torch.testing.assert_close(model.fusion(feats), u["ring"] + u["blob"])
    raw = model.fusion.heads["blob"](feats["blob"])
    torch.testing.assert_close(u["blob"], raw / 2)
    # a rank the encoder does not accept: a config error naming the modality's encoder
    with pytest.raises(ConfigError) as exc:
        build_model(cfg.model, {"ring": (2, 3), "blob": (16,)}, num_classes=3)
    assert "model.encoders.ring.name" in exc.value.as_dict()
    assert "rank [1]" in exc.value.as_dict()["model.encoders.ring.name"]


def test_bml_train_with_the_package_and_without_it(package_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    r = subprocess.run(
        [BML, "train", str(CONFIG), "--set", "train.epochs=2", "--summary-json", str(out)],
        env=env(package_dir, tmp_path / "a"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(out.read_text())
    assert set(summary["test"]["acc_per_modality"]) == {"ring", "blob"}
    assert summary["test"]["acc"] > 0.5  # 3 classes: well above chance after 2 epochs
    # the resolved config (with `requires`) read where the package is missing
    resolved = tmp_path / "resolved.json"
    resolved.write_text(json.dumps(validate_config_in(package_dir, CONFIG)))
    r = subprocess.run(
        [BML, "train", str(resolved)],
        env=env(None, tmp_path / "b"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    for field, name in (("model.encoders.ring.name", "residual_mlp"), ("model.fusion", "weighted_sum")):
        assert f"{field}: " in r.stderr and f"{name!r}" in r.stderr
    assert f"pip install {DIST}" in r.stderr
    # the plain YAML (no `requires`) still says what to do
    r = subprocess.run(
        [BML, "train", str(CONFIG)], env=env(None, tmp_path / "c"), capture_output=True, text=True
    )
    assert (
        r.returncode == 2
        and "unknown encoder 'residual_mlp'" in r.stderr
        and "install the package" in r.stderr
    )


def validate_config_in(package_dir: Path, path: Path) -> dict:
    code = f"import json; from bml_core.config import load_config; print(json.dumps(load_config({str(path)!r}).to_dict()))"
    r = subprocess.run(
        [sys.executable, "-c", code], env=env(package_dir, package_dir), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_plugin_copied_under_another_name_loads_its_implementation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 20: halve_dominant.py copied as my_halving.py and named in BML_PLUGINS
    shutil.copy(ROOT / "examples" / "plugins" / "halve_dominant.py", tmp_path / "my_halving.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BML_PLUGINS", "my_halving")
    try:
        spec = discover_strategies(refresh=True)["halve_dominant"]
        assert spec.module == "my_halving"
        assert spec.load_impl().__module__ == "my_halving"
        cfg = load_config({"strategies": ["halve_dominant"], "train": {"epochs": 1, "device": "cpu"}})
        from bml_core.trainer import Trainer

        assert Trainer(cfg).fit()["test"]["acc"] >= 0.0
    finally:
        monkeypatch.delenv("BML_PLUGINS")
        discover_strategies(refresh=True)


def test_a_missing_implementation_module_names_the_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lonely_encoder.py").write_text(
        "from bml_core.plugins import EncoderSpec\n"
        "SPEC = EncoderSpec(name='lonely', description='x', impl='lonely_pkg_not_here.impl:build')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BML_PLUGINS", "lonely_encoder")
    try:
        cfg = load_config({"model": {"encoders": {"audio": {"name": "lonely"}}}})
        with pytest.raises(ConfigError) as exc:
            build_model(cfg.model, {"audio": (4,), "visual": (3,)}, num_classes=2)
        msg = exc.value.as_dict()["model.encoders.audio.name"]
        assert "encoder 'lonely'" in msg and "lonely_pkg_not_here" in msg and "pip install" in msg
    finally:
        monkeypatch.delenv("BML_PLUGINS")
        plugins.discover(refresh=True)
