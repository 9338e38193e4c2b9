"""Launch page: the form is generated from the config models (every strategy's parameter
model, the registered datasets, the presets); every invalid field shows its message next to
it and nothing is stored or enqueued; a valid form launches one run per seed, or a sweep
grid, through services.actions (the broker send is recorded instead of made)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

import db
from app import catalog
from app.views.launch.fields import strategy_fields
from app.views.launch.parse import parse_grid, parse_seeds
from bml_core.config import PRESETS, strategy_params
from tests.helpers.apptest import errors_of, open_page
from tests.helpers.apptest import widget_key as _key


def test_fields_come_from_the_models() -> None:
    names = {s.name for s in strategy_fields("opm")}
    assert names == set(strategy_params()["opm"].model_fields) - {"name"}
    rescale = next(s for s in strategy_fields("opm") if s.name == "rescale")
    assert rescale.kind == "choice" and rescale.options == ("global", "per_modality", "none")
    q_base = next(s for s in strategy_fields("opm") if s.name == "q_base")
    assert q_base.kind == "float" and "≤ 1" in q_base.help and "drop probability" in q_base.help
    end = next(s for s in strategy_fields("ogm_ge") if s.name == "end_epoch")
    assert end.optional and end.kind == "int"
    assert set(catalog.datasets()) == {
        "synthetic",
        "features",
        "mfeat",
        "cremad",
        "kinetics_sounds",
        "ucf101",
        "synthetic_seq",
    }
    assert catalog.datasets()["features"].needs_path and not catalog.datasets()["synthetic"].needs_path
    assert set(catalog.presets()) == set(PRESETS)


def test_dataset_catalog_matches_the_registry_read_with_torch() -> None:
    """The form lists the datasets without importing torch; here the real registry is asked."""
    from bml_core.data import DATASET_NOTES, DATASETS

    # every registered builder is listed with its note; every listed dataset's builder loads
    # (synthetic_seq and plug-in datasets only through their spec's lazy `impl`)
    assert set(DATASETS) <= set(catalog.datasets())
    assert {n: catalog.datasets()[n].note for n in DATASETS} == DATASET_NOTES
    for entry in catalog.datasets().values():
        assert entry.spec is not None and callable(entry.spec.load_impl())


def test_every_invalid_field_shows_its_message_and_nothing_is_stored(engine: Engine, sent: list[int]) -> None:
    at = open_page("launch")
    assert not at.exception and not errors_of(at)  # the defaults are valid
    at.text_input(key=_key("name")).set_value("")
    at.text_input(key=_key("seeds")).set_value("0, x")
    at.text_input(key=_key("dataset.path")).set_value("/etc")
    at.text_input(key=_key("dataset.params")).set_value("{num_samples: [")
    at.number_input(key=_key("train.epochs")).set_value(0)
    at.number_input(key=_key("optim.lr")).set_value(-1.0)
    at.multiselect(key=_key("strategies")).set_value(["opm"])
    at.run()
    at.number_input(key=_key("strategy.opm.q_base")).set_value(2.0)
    at.number_input(key=_key("strategy.opm.start_epoch")).set_value(5)
    at.number_input(key=_key("strategy.opm.end_epoch")).set_value(2)
    at.run()
    errors = errors_of(at)
    expected = {
        "name": "give the run a name",
        "seeds": "'x' is not a seed",
        "dataset.path": "outside the dataset directories",
        "dataset.params": "not valid YAML",
        "train.epochs": "greater than or equal to 1",
        "optim.lr": "greater than 0",
        "strategy.opm.q_base": "less than or equal to 1",
    }
    for path, text in expected.items():
        assert any(e.startswith(f"{path}: ") and text in e for e in errors), (path, errors)
    at.number_input(key=_key("strategy.opm.q_base")).set_value(0.5).run()
    assert any(
        e.startswith("strategy.opm: ") and "end_epoch (2) must be >= start_epoch (5)" in e
        for e in errors_of(at)
    )

    at.button(key="launch_button").click().run()
    assert any("Nothing was launched" in e for e in errors_of(at))
    assert db.list_runs(engine).total == 0 and sent == []


def test_launch_one_run_per_seed_with_links(engine: Engine, sent: list[int]) -> None:
    at = open_page("launch")
    at.text_input(key=_key("name")).set_value("form-ogm")
    at.text_input(key=_key("group")).set_value("form")
    at.text_input(key=_key("seeds")).set_value("0-2")
    at.multiselect(key=_key("strategies")).set_value(["ogm_ge"])
    at.run()
    at.number_input(key=_key("strategy.ogm_ge.alpha")).set_value(0.5)
    at.number_input(key=_key("train.epochs")).set_value(7)
    at.run()
    assert at.button(key="launch_button").proto.label == "Launch 3 runs"
    at.button(key="launch_button").click().run()
    assert not errors_of(at)
    runs = sorted(db.list_runs(engine).runs, key=lambda r: r.id)
    assert [r.seed for r in runs] == [0, 1, 2] and {r.group for r in runs} == {"form"}
    config = db.get_run(engine, runs[0].id).config
    assert config["strategies"][0] == {**config["strategies"][0], "name": "ogm_ge", "alpha": 0.5}
    assert config["train"]["epochs"] == 7
    assert sent == [r.id for r in runs]
    links = [el.proto for el in at.get("page_link")]
    assert [p.label for p in links if p.label.startswith("Live #")] == [f"Live #{r.id}" for r in runs]
    assert any(p.label == "Compare them" for p in links)


def test_preset_fills_strategies_optimiser_and_schedule(engine: Engine, sent: list[int]) -> None:
    at = open_page("launch")
    at.selectbox(key="launch_preset").set_value("tpami2024-opm-ogm").run()
    at.button[[b.label for b in at.button].index("Apply preset")].click().run()
    assert at.multiselect(key=_key("strategies")).value == ["opm", "ogm_ge"]
    assert at.selectbox(key=_key("optim.name")).value == "adamw"
    assert at.number_input(key=_key("optim.lr")).value == pytest.approx(5e-5)
    assert at.number_input(key=_key("strategy.ogm_ge.end_epoch")).value == 60
    assert at.number_input(key=_key("strategy.opm.warmup_epochs")).value == 6
    assert any("Adam" in w.value for w in at.warning)  # the OGM-with-AdamW advisory
    at.button(key="launch_button").click().run()
    cfg = db.get_run(engine, db.list_runs(engine).runs[0].id).config
    assert [s["name"] for s in cfg["strategies"]] == ["opm", "ogm_ge"] and cfg["optim"]["name"] == "adamw"


def test_sweep_grid_launches_every_combination_in_one_group(engine: Engine, sent: list[int]) -> None:
    at = open_page("launch")
    at.toggle(key="launch_sweep").set_value(True).run()
    at.text_input(key=_key("sweep.name")).set_value("grid-1")
    at.multiselect(key=_key("sweep.strategies")).set_value(["joint", "ogm_ge", "opm"])
    at.text_input(key=_key("seeds")).set_value("0,1")
    at.run()
    assert at.button(key="launch_button").proto.label == "Launch 6 runs"
    at.text_area(key=_key("sweep.grid")).set_value("optim.lr = [0.01, 0.001]").run()
    assert at.button(key="launch_button").proto.label == "Launch 12 runs"
    at.text_area(key=_key("sweep.grid")).set_value("optim.lr = 0.01").run()
    assert any(e.startswith("sweep.grid: line 1") for e in errors_of(at))
    at.text_area(key=_key("sweep.grid")).set_value("train.epochs = [5, 0]").run()
    assert any(e.startswith("sweep.grid: with ") and "train.epochs" in e for e in errors_of(at))
    at.button(key="launch_button").click().run()
    assert db.list_runs(engine).total == 0 and sent == []
    at.text_area(key=_key("sweep.grid")).set_value("").run()
    at.button(key="launch_button").click().run()
    runs = db.list_runs(engine, limit=None).runs
    assert len(runs) == 6 and {r.group for r in runs} == {"grid-1"}
    assert sorted(r.strategy for r in runs) == ["joint", "joint", "ogm_ge", "ogm_ge", "opm", "opm"]
    assert len({r.sweep_id for r in runs}) == 1 and sorted(sent) == sorted(r.id for r in runs)


def test_seed_and_grid_parsers() -> None:
    assert parse_seeds("0-2, 7, 2") == [0, 1, 2, 7]
    for bad, text in (
        ("", "at least one seed"),
        ("3-1", "backwards"),
        ("-1", "not a seed"),
        ("0-99", "at most"),
    ):
        with pytest.raises(ValueError, match=text):
            parse_seeds(bad)
    assert parse_grid("# comment\nstrategies.0.alpha = [0.4, 0.8]\n") == {"strategies.0.alpha": [0.4, 0.8]}
    for bad, text in (
        ("alpha", "line 1"),
        ("a..b = [1]", "not a dotted"),
        ("a = []", "non-empty"),
        ("a=[1]\na=[2]", "twice"),
    ):
        with pytest.raises(ValueError, match=text):
            parse_grid(bad)


def test_sweep_keeps_the_typed_run_name_and_says_so_before_launch(engine: Engine, sent: list[int]) -> None:
    """Issue 25: a sweep replaced the typed run name with the sweep's without a word. The
    typed name now leads each run's name (then the setting and the seed), the form says so
    with an example before launch, and the sweep name stands in only for the default `run`."""
    at = open_page("launch")
    at.toggle(key="launch_sweep").set_value(True).run()
    at.text_input(key=_key("name")).set_value("lr-probe")
    at.text_input(key=_key("sweep.name")).set_value("grid-2")
    at.multiselect(key=_key("sweep.strategies")).set_value(["ogm_ge", "opm"])
    at.text_input(key=_key("seeds")).set_value("3,4")
    at.run()
    hint = [c.value.replace("\\", "") for c in at.caption if "Runs are named" in c.value]  # markdown-escaped
    assert len(hint) == 1 and "lr-probe [strategies=ogm" in hint[0] and "· seed 3" in hint[0], hint
    at.button(key="launch_button").click().run()
    runs = db.list_runs(engine, limit=None).runs
    assert sorted(r.name for r in runs) == [
        "lr-probe [strategies=ogm_ge] · seed 3",
        "lr-probe [strategies=ogm_ge] · seed 4",
        "lr-probe [strategies=opm] · seed 3",
        "lr-probe [strategies=opm] · seed 4",
    ]
    assert {r.group for r in runs} == {"grid-2"} and len(sent) == 4


def test_sweep_run_names_fall_back_to_the_sweep_name_and_fit_the_limit() -> None:
    from services.actions import MAX_NAME_LENGTH, expand_grid, sweep_run_name

    configs = expand_grid({"name": "run"}, {"optim.lr": [0.1, 0.2]}, [0], "sw")
    assert [c.name for c in configs] == ["sw [lr=0.1] · seed 0", "sw [lr=0.2] · seed 0"]
    assert [c.group for c in configs] == ["sw", "sw"]
    long = sweep_run_name("x" * 300, "sw", "lr=0.1", 12)
    assert len(long) == MAX_NAME_LENGTH and long.endswith("x [lr=0.1] · seed 12")
    assert sweep_run_name("  ", "sw", "a=1", 0) == "sw [a=1] · seed 0"
