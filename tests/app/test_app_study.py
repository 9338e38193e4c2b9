"""The Study page (issue 23) on a study written through Optuna into the test's store: the
trials' table, the history with its best-so-far line, intermediate values with the pruned
trial marked, one parameter chart per searched key, "Launch this" linking the Launch form
to the best trial's run; and Tune on /launch refusing bad input by field, nothing stored."""

from __future__ import annotations

import optuna
from sqlalchemy import Engine

import db
from app.views.launch.tune import space_text
from app.views.study import data as sv
from db.studies import optuna_storage
from tests.helpers.apptest import chart_specs, errors_of, frame_with, open_page

CFG = {"dataset": {"name": "synthetic"}, "strategies": [{"name": "ogm_ge"}], "train": {"epochs": 3}}


def _study(engine: Engine) -> dict[int, int]:
    """Trials 0 (0.6), 1 (pruned at its first evaluation), 2 (0.8); each with a run."""
    from optuna.distributions import FloatDistribution

    study = optuna.create_study(study_name="s1", storage=optuna_storage(engine), direction="maximize")
    study.set_user_attr("metric", "val/acc")
    study.set_user_attr("trials", 3)
    dist = {"strategies.0.alpha": FloatDistribution(0.1, 1.0, log=True)}
    runs: dict[int, int] = {}
    for alpha, series, state in (
        (0.2, [0.4, 0.6], "complete"),
        (0.9, [0.2], "pruned"),
        (0.5, [0.5, 0.8], "complete"),
    ):
        study.enqueue_trial({"strategies.0.alpha": alpha})
        trial = study.ask(dist)
        cfg = {**CFG, "strategies": [{"name": "ogm_ge", "alpha": alpha}], "group": "s1"}
        rid = db.create_run(engine, cfg, name=f"s1-t{trial.number}", group="s1")
        runs[trial.number] = rid
        trial.set_user_attr("run_ids", [rid])
        for k, v in enumerate(series):
            trial.report(v, k + 1)
        if state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, series[-1])
    return runs


def test_best_so_far_and_space_text() -> None:
    assert sv.best_so_far([0.5, None, 0.4, 0.7], maximize=True) == [0.5, 0.5, 0.5, 0.7]
    assert sv.best_so_far([0.5, 0.6, 0.2], maximize=False) == [0.5, 0.5, 0.2]
    assert (
        space_text("strategies.0.alpha ", "float", "0.1, 1.0", True)
        == "strategies.0.alpha=float(0.1,1.0,log)"
    )
    assert (
        space_text("optim.name", "cat", "sgd, adam", True) == "optim.name=cat(sgd,adam)"
    )  # log: floats only


def test_study_page_draws_trials_history_intermediates_and_links_the_best(engine: Engine) -> None:
    runs = _study(engine)
    at = open_page("study", name="s1")
    assert not at.exception and not errors_of(at)
    table = frame_with(at, "state")
    assert list(table["trial"]) == [0, 1, 2]
    assert list(table["state"]) == ["complete", "pruned", "complete"]
    assert list(table["strategies.0.alpha"]) == [0.2, 0.9, 0.5]
    assert list(table["run"]) == [f"/live?run={runs[i]}" for i in range(3)]
    figs = {f["layout"]["title"]["text"]: f for f in chart_specs(at)}
    history = figs[sv.HISTORY_TITLE]["data"]
    assert history[0]["x"] == [0, 2] and history[0]["y"] == [0.6, 0.8]
    assert history[1]["name"] == "pruned (last value)" and history[1]["x"] == [1]
    assert history[2]["name"] == "best so far" and history[2]["y"] == [0.6, 0.8]
    inter = {t["name"]: t for t in figs[sv.INTERMEDIATE_TITLE]["data"]}
    assert set(inter) == {"trial 0", "trial 1 (pruned)", "trial 2"}
    assert inter["trial 1 (pruned)"]["line"]["dash"] == "dot"
    assert inter["trial 1 (pruned)"]["marker"]["symbol"] == [sv.PRUNED_MARKER]
    assert inter["trial 2"]["x"] == [1, 2] and inter["trial 2"]["y"] == [0.5, 0.8]
    param = figs[f"{sv.PARAM_TITLE}: strategies.0.alpha"]["data"][0]
    assert param["x"] == [0.2, 0.5] and param["y"] == [0.6, 0.8]
    links = {el.proto.label: el.proto for el in at.get("page_link")}
    assert links["Launch this"].query_string == f"from={runs[2]}&group=s1-best"  # the best trial's run
    assert links["Compare the trials"].query_string == "group=s1"
    assert any("Best: trial 2" in m.value for m in at.markdown)

    launch = open_page("launch", **{"from": str(runs[2]), "group": "s1-best"})
    assert not launch.exception
    assert launch.text_input(key="f:group").value == "s1-best"
    assert launch.text_input(key="f:name").value == "s1-t2"

    at = open_page("study", name="nope")
    assert any("There is no study 'nope'" in e for e in errors_of(at))


def test_tune_on_launch_refuses_bad_input_by_field_and_stores_nothing(engine: Engine) -> None:
    at = open_page("launch")
    at.toggle(key="launch_tune").set_value(True).run()
    at.text_input(key="tune_path_0").set_value("strategies.0.nope").run()
    at.text_input(key="tune_bounds_0").set_value("0.1, 1").run()
    at.button(key="tune_button").click().run()
    assert not at.exception
    errors = " | ".join(errors_of(at))
    assert "--space strategies.0.nope" in errors and "no such parameter" in errors
    at.text_input(key="tune_path_0").set_value("optim.lr").run()
    at.text_input(key="tune_bounds_0").set_value("-1, 0.1").run()
    at.button(key="tune_button").click().run()
    assert "the bound -1.0 is outside" in " | ".join(errors_of(at))
    assert db.list_runs(engine, limit=1).total == 0
    assert optuna.get_all_study_summaries(optuna_storage(engine)) == []
