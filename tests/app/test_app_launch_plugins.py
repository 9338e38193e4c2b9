"""Launch form with the example plug-in package installed (issue 20 items 3-4): its dataset,
fusion head and encoder are offered as choices, their parameters as generated fields (from the
specs' pydantic models), a bad value is shown on its own field, and the launched run's stored
config holds the parameters and the package it needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import db
from app import catalog
from app.views.launch import plugin_fields as pf
from app.views.launch.check import check_form
from app.views.launch.fields import default_values, encoder_fields, model_fields, values_from_config
from tests.helpers.apptest import errors_of, open_page
from tests.plugin_package import DIST, installed_on_path


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from installed_on_path(tmp_path, monkeypatch)


def test_plugin_fields_are_generated_from_the_specs(installed: Path) -> None:
    fusion = next(s for s in model_fields() if s.path == "model.fusion")
    assert fusion.kind == "choice" and set(fusion.options) == {
        "concat",
        "sum",
        "film",
        "gated",
        "weighted_sum",
    }
    (temperature,) = pf.fusion_param_fields("weighted_sum")
    assert temperature.path == "fusion.weighted_sum.temperature" and temperature.kind == "float"
    assert "> 0" in temperature.help and temperature.default == 1.0
    name = next(s for s in encoder_fields("ring") if s.name == "name")
    assert name.kind == "choice" and "residual_mlp" in name.options and "transformer" in name.options
    width, blocks = pf.encoder_param_fields("ring", "residual_mlp")
    assert (width.path, width.kind, width.default) == ("encoder.ring.residual_mlp.width", "int", 64)
    assert blocks.name == "blocks"
    assert "two_rings" in catalog.datasets()
    values = {
        **default_values(),
        "dataset.name": "two_rings",
        "dataset.params": "",
        "model.fusion": "weighted_sum",
        "fusion.weighted_sum.temperature": 0.0,
        "model.encoders.ring.name": "residual_mlp",
        "encoder.ring.residual_mlp.width": 2,
    }
    check = check_form(values, [], ["ring"])
    assert set(check.errors) == {"fusion.weighted_sum.temperature", "encoder.ring.residual_mlp.width"}
    values.update({"fusion.weighted_sum.temperature": 2.0, "encoder.ring.residual_mlp.width": 16})
    check = check_form(values, [], ["ring"])
    assert check.ok, check.errors
    assert check.config is not None and check.config.model.fusion_params == {"temperature": 2.0}
    assert check.config.model.encoders["ring"].params == {"width": 16, "blocks": 2}
    # the form holds exactly a launched config again
    back = values_from_config(check.config.to_dict())
    assert back["fusion.weighted_sum.temperature"] == 2.0 and back["encoder.ring.residual_mlp.width"] == 16


def test_the_launch_page_offers_and_launches_the_plugins(
    installed: Path, engine: Engine, sent: list[int]
) -> None:
    at = open_page("launch")
    at.selectbox(key="f:dataset.name").set_value("two_rings").run()
    at.selectbox(key="f:model.fusion").set_value("weighted_sum").run()
    at.number_input(key="f:fusion.weighted_sum.temperature").set_value(0.5).run()
    at.multiselect(key="f:model.encoders").set_value(["ring"]).run()
    at.selectbox(key="f:model.encoders.ring.name").set_value("residual_mlp").run()
    at.number_input(key="f:encoder.ring.residual_mlp.width").set_value(8).run()
    at.button(key="launch_button").click().run()
    assert not at.exception and not errors_of(at), errors_of(at)
    runs = db.list_runs(engine, limit=None).runs
    config = db.get_run(engine, max(r.id for r in runs)).config
    assert config["dataset"]["name"] == "two_rings"
    assert config["model"]["fusion"] == "weighted_sum" and config["model"]["fusion_params"] == {
        "temperature": 0.5
    }
    assert config["model"]["encoders"]["ring"]["params"] == {"width": 8, "blocks": 2}
    assert config["requires"] == {
        "dataset/two_rings": DIST,
        "encoder/residual_mlp": DIST,
        "fusion/weighted_sum": DIST,
    }
    assert len(sent) == 1


def test_methods_lists_the_plugin_kinds_with_the_package(installed: Path, engine: Engine) -> None:
    at = open_page("methods")
    assert not at.exception
    frames = [df.value for df in at.dataframe if "name" in df.value.columns]
    by_name = {row["name"]: row for df in frames for row in df.to_dict("records")}
    assert {
        "mlp",
        "transformer",
        "gru",
        "residual_mlp",
        "concat",
        "weighted_sum",
        "synthetic_seq",
        "two_rings",
    } <= set(by_name)
    assert by_name["residual_mlp"]["accepts"] == "rank 1"
    assert by_name["transformer"]["accepts"] == "rank 2 + lengths"
    assert by_name["residual_mlp"]["parameters"] == "width int = 64; blocks int = 2"
    assert f"package {DIST}" in by_name["weighted_sum"]["from"]
    assert by_name["two_rings"]["modalities"] == "ring, blob"
    assert by_name["mlp"]["from"] == "built-in"
    headings = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert headings == ["#### Encoders", "#### Fusion heads", "#### Datasets"]
