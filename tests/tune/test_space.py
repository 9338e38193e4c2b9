"""Search space parsing and checking against the config's schema (issue 23, step 1)."""

from __future__ import annotations

import pytest

from bml_core.config import ConfigError
from bml_core.tune import (
    check_metric,
    evaluation_keys,
    parse_param,
    parse_space,
    space_signature,
    trial_config,
)

CFG = {
    "dataset": {"name": "synthetic"},
    "strategies": [{"name": "ogm_ge", "alpha": 0.8}],
    "optim": {"name": "sgd", "lr": 0.01},
    "train": {"epochs": 3},
}


def _errors(texts: list[str], raw: dict | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_space(CFG if raw is None else raw, texts)
    return info.value.as_dict()


def test_float_log_int_and_cat_parse() -> None:
    p = parse_param("strategies.0.alpha=float(0.1, 1.0, log)")
    assert (p.kind, p.low, p.high, p.log) == ("float", 0.1, 1.0, True)
    q = parse_param("train.epochs=int(2,5)")
    assert (q.kind, q.low, q.high, q.log) == ("int", 2, 5, False)
    assert isinstance(q.low, int)
    c = parse_param("strategies.0.k_form=cat(official,smooth)")
    assert c.choices == ("official", "smooth")
    assert parse_param("optim.momentum=cat(0.0, 0.9)").choices == (0.0, 0.9)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("strategies.0.alpha", "not a search space"),
        ("alpha=floaty(0,1)", "not a search space"),
        ("optim.lr=float(1e-2,1e-4)", "must be below"),
        ("optim.lr=float(0.1,0.1)", "must be below"),
        ("optim.lr=float(0,1,log)", "above 0"),
        ("optim.lr=float(0.1,1,lin)", "only be 'log'"),
        ("optim.lr=float(0.1)", "lower and an upper"),
        ("optim.lr=float(a,1)", "not a number"),
        ("optim.lr=float(0.1,inf)", "finite"),
        ("train.epochs=int(1.5,3)", "not an integer"),
        ("train.epochs=int(1,3,log)", "lower and an upper"),
        ("strategies.0.k_form=cat(a,,b)", "none empty"),
        ("strategies.0.k_form=cat(a,a)", "twice"),
    ],
)
def test_malformed_space_names_the_form(text: str, why: str) -> None:
    msg = _errors([text])["--space"]
    assert why in msg
    assert "PATH=float(lo,hi[,log])" in msg


def test_unknown_path_is_refused() -> None:
    errors = _errors(["optim.learning_rate=float(1e-4,1e-2)"])
    assert "no such parameter" in errors["--space optim.learning_rate"]
    assert "ogm_ge" in errors["--space optim.learning_rate"]
    assert "no such parameter" in _errors(["strategies.1.alpha=float(0.1,1)"])["--space strategies.1.alpha"]
    # a section is not a parameter
    assert "no such parameter" in _errors(["optim=cat(sgd,adam)"])["--space optim"]


def test_bounds_outside_the_parameters_are_refused() -> None:
    # alpha has ge=0, lr has gt=0: a negative lower bound is outside; a zero lr too
    msg = _errors(["strategies.0.alpha=float(-1,1)"])["--space strategies.0.alpha"]
    assert "-1.0" in msg and "strategies.0.alpha" in msg
    assert "0.0" in _errors(["optim.lr=float(0,0.1)"])["--space optim.lr"]


def test_categorical_outside_the_literal_is_refused() -> None:
    msg = _errors(["strategies.0.k_form=cat(official,tanh)"])["--space strategies.0.k_form"]
    assert "'tanh'" in msg and "official" not in msg.split("(")[0]
    assert "'rmsprop'" in _errors(["optim.name=cat(sgd,rmsprop)"])["--space optim.name"]


def test_all_errors_are_reported_together() -> None:
    errors = _errors(["optim.nope=float(1,2)", "strategies.0.alpha=float(-2,1)"])
    assert set(errors) == {"--space optim.nope", "--space strategies.0.alpha"}


def test_strategy_name_addresses_its_index() -> None:
    raw = {**CFG, "strategies": ["joint", {"name": "ogm_ge"}]}
    (p,) = parse_space(raw, ["ogm_ge.alpha=float(0.1,1.0)"])
    assert p.key == "strategies.1.alpha"
    cfg = trial_config(raw, {p.key: 0.3})
    assert cfg["strategies"][1] == {"name": "ogm_ge", "alpha": 0.3}
    assert "no such parameter" in _errors(["opm.q_base=float(0.1,1)"], raw)["--space opm.q_base"]


def test_strategy_shorthand_string_is_searchable() -> None:
    raw = {**CFG, "strategies": "ogm_ge"}
    (p,) = parse_space(raw, ["strategies.0.alpha=float(0.1,1.0)"])
    assert trial_config(raw, {p.key: 0.5})["strategies"] == [{"name": "ogm_ge", "alpha": 0.5}]


def test_same_path_twice_and_no_space() -> None:
    errors = _errors(["ogm_ge.alpha=float(0.1,1)", "strategies.0.alpha=float(0.2,1)"])
    assert "twice" in errors["--space strategies.0.alpha"]
    assert "at least one" in _errors([])["--space"]


def test_signature_is_order_free() -> None:
    a = parse_space(CFG, ["optim.lr=float(1e-4,1e-2,log)", "strategies.0.alpha=float(0.1,1)"])
    b = parse_space(CFG, ["strategies.0.alpha=float(0.1,1)", "optim.lr=float(1e-4,1e-2,log)"])
    assert space_signature(a) == space_signature(b)
    c = parse_space(CFG, ["strategies.0.alpha=float(0.1,2)", "optim.lr=float(1e-4,1e-2,log)"])
    assert space_signature(a) != space_signature(c)


def test_evaluation_keys_are_the_trainers() -> None:
    # the keys a study may optimise are those the trainer logs at each evaluation
    from bml_core.trainer import EvalResult

    keys, modalities = evaluation_keys(CFG)
    assert modalities == ["audio", "visual"]
    result = EvalResult(0.5, 0.5, 0.5, 0.5, {"audio": 0.5, "visual": 0.4}, 0.1, {})
    assert sorted(keys) == sorted(result.as_metrics("val"))
    assert check_metric(CFG, "val/acc/visual") == "val/acc/visual"
    for bad in ("val/acc/depth", "train/acc", "val/accuracy", "test/acc"):
        with pytest.raises(ConfigError) as exc:
            check_metric(CFG, bad)
        ((field, msg),) = exc.value.errors
        assert field == "--metric" and repr(bad) in msg and "val/acc/audio" in msg
