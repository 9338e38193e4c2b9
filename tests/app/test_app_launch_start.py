"""Launch for researchers (issue 14): dataset params checked against the dataset's spec
under their field; "start from" an example config, a pasted YAML or a past run fills the
form so that the launched config equals the source; picking a dataset applies its
recommended defaults; an untouched form shows no error."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import Engine

import db
from app import catalog
from app.views.launch.fields import short_description
from bml_core.config import validate_config
from bml_core.dataspecs import get_dataset_spec
from tests.helpers.apptest import errors_of, open_page
from tests.helpers.apptest import widget_key as _key


def test_bad_dataset_params_show_under_the_field_and_nothing_is_stored(
    engine: Engine, sent: list[int]
) -> None:
    at = open_page("launch")
    at.selectbox(key=_key("dataset.name")).set_value("mfeat").run()
    at.text_input(key=_key("dataset.params")).set_value("{views: [pix, nonsense]}").run()
    # md() escapes the brackets of the quoted input (app/text.py); Markdown shows them as written
    errors = [e.replace("\\[", "[").replace("\\]", "]") for e in errors_of(at)]
    assert any(e.startswith("dataset.params.views: ") and "unknown view(s) ['nonsense']" in e for e in errors)
    at.text_input(key=_key("dataset.params")).set_value("{views: [pix, zer], split_seed: many}").run()
    assert any(e.startswith("dataset.params.split_seed: ") for e in errors_of(at))
    at.button(key="launch_button").click().run()
    assert any("Nothing was launched" in e for e in errors_of(at))
    assert db.list_runs(engine).total == 0 and sent == []


def _launch_one(at: object, engine: Engine) -> dict:
    at.button(key="launch_button").click().run()  # type: ignore[attr-defined]
    assert not errors_of(at)
    runs = db.list_runs(engine, limit=None).runs
    newest = max(r.id for r in runs)
    return db.get_run(engine, newest).config


@pytest.mark.parametrize("example", sorted(catalog.examples()))
def test_starting_from_each_example_launches_exactly_that_config(
    example: str, engine: Engine, sent: list[int]
) -> None:
    at = open_page("launch")
    at.selectbox(key="launch_example").set_value(example).run()
    at.button(key="launch_fill_example").click().run()
    assert not errors_of(at) and any(f"Filled from example {example}" in c.value for c in at.caption)
    launched = _launch_one(at, engine)
    assert launched == validate_config(catalog.example_config(example)).to_dict()


def test_starting_from_a_past_run_and_from_pasted_yaml_round_trips(engine: Engine, sent: list[int]) -> None:
    source = {
        "name": "past",
        "group": "g-past",
        "seed": 3,
        "tags": ["a", "b"],
        "dataset": {"name": "mfeat", "params": {"views": ["fou", "kar", "mor"], "standardize": False}},
        "model": {"fusion": "gated", "heads": "aux", "encoders": {"fou": {"hidden_dim": 32, "layers": 1}}},
        "strategies": [{"name": "opm", "q_base": 0.3}, {"name": "ogm_ge", "alpha": 0.4, "end_epoch": 9}],
        "optim": {"name": "adamw", "lr": 3e-4, "scheduler": {"name": "cosine"}},
        "train": {"epochs": 12, "batch_size": 16, "eval_every": 2},
    }
    past = db.create_run(engine, source)
    at = open_page("launch", **{"from": str(past)})
    assert at.multiselect(key=_key("strategies")).value == ["opm", "ogm_ge"]
    assert at.multiselect(key=_key("model.encoders")).value == ["fou"]
    assert not errors_of(at)
    assert _launch_one(at, engine) == db.get_run(engine, past).config

    at = open_page("launch")
    at.text_area(key="launch_yaml").set_value(yaml.safe_dump(source)).run()
    at.button(key="launch_fill_yaml").click().run()
    assert _launch_one(at, engine) == validate_config(source).to_dict()

    at = open_page("launch", **{"from": "99999"})
    assert any("there is no run #99999" in e for e in errors_of(at))


def test_picking_a_dataset_applies_its_defaults_and_reset_restores_them(engine: Engine) -> None:
    at = open_page("launch")
    at.selectbox(key=_key("dataset.name")).set_value("mfeat").run()
    rec = get_dataset_spec("mfeat").recommended  # type: ignore[union-attr]
    assert at.text_input(key=_key("dataset.params")).value == "{views: [pix, zer]}"
    assert at.number_input(key=_key("optim.lr")).value == rec["optim"]["lr"]
    assert at.number_input(key=_key("train.epochs")).value == rec["train"]["epochs"] == 30
    assert at.number_input(key=_key("model.feature_dim")).value == 64
    assert at.selectbox(key=_key("optim.scheduler.name")).value == "none"
    at.number_input(key=_key("optim.lr")).set_value(0.5)
    at.number_input(key=_key("train.epochs")).set_value(3).run()
    at.button(key="launch_dataset_defaults").click().run()
    assert at.number_input(key=_key("optim.lr")).value == 0.01
    assert at.number_input(key=_key("train.epochs")).value == 30
    at.selectbox(key=_key("dataset.name")).set_value("cremad").run()
    assert at.multiselect(key=_key("model.encoders")).value == ["audio", "visual"]
    assert at.selectbox(key=_key("model.encoders.audio.name")).value == "resnet18"
    assert not errors_of(at)  # dataset.path is missing, but nobody touched it yet
    at.button(key="launch_button").click().run()
    assert any(e.startswith("dataset.path: ") for e in errors_of(at))


def test_an_untouched_form_shows_no_error_until_launch(engine: Engine, sent: list[int]) -> None:
    at = open_page("launch")
    assert not errors_of(at)
    at.toggle(key="launch_sweep").set_value(True).run()
    assert not errors_of(at)  # sweep name and grid are empty, but untouched
    at.button(key="launch_button").click().run()
    errors = errors_of(at)
    assert any(e.startswith("sweep.name: ") for e in errors) and any(
        "Nothing was launched" in e for e in errors
    )
    assert db.list_runs(engine).total == 0 and sent == []


def test_strategy_choices_are_short_names_with_descriptions_in_help(engine: Engine) -> None:
    at = open_page("launch")
    picker = at.multiselect(key=_key("strategies"))
    assert list(picker.options) == list(catalog.strategies())
    assert all("—" not in o for o in picker.options)
    for name, spec in catalog.strategy_specs().items():
        assert f"**{name}**" in picker.help and short_description(spec)[:40] in picker.help
