"""The alert detectors on hand-made series: each fires at the right step, once per
episode, not on noise (a stationary rho around 1.2 with spikes), and respects its switch
and thresholds; the `alerts:` config rejects malformed thresholds naming the field."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from bml_core.alerts import AlertMonitor, AlertsConfig, apply_advice
from bml_core.alerts.detectors import WindowEpisode
from bml_core.config import ConfigError, load_config

MODS = ["audio", "visual"]


def _cfg(**sections: Any) -> AlertsConfig:
    return AlertsConfig.model_validate(sections)


def _steps(monitor: AlertMonitor, rows: list[dict[str, float]], start: int = 1) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, m in enumerate(rows):
        out += monitor.on_step(start + i, 0, m)
    return out


def _rho(v: float) -> dict[str, float]:
    return {"imbalance/ratio/visual": v, "imbalance/ratio/audio": 1.0 / v}


WIN = {"window": {"steps": 20, "share": 0.9}}


def test_window_episode_fires_once_and_rearms_after_release() -> None:
    ep = WindowEpisode(4, 1.0)
    fired = [ep.update(s, 1.0, s <= 10 or s > 20, s <= 10 or s > 20) for s in range(1, 31)]
    # fires when the window of 4 is full (step 4), not again in the episode, and once the
    # condition was off for a whole window (steps 11-14) re-arms and fires at step 24
    assert [s for s, f in zip(range(1, 31), fired, strict=True) if f] == [4, 24]


def test_dominance_fires_at_the_right_step_once_per_episode_with_evidence() -> None:
    mon = AlertMonitor(_cfg(dominance=WIN), MODS, steps_per_epoch=100)
    rows = [_rho(1.0)] * 30 + [_rho(2.4)] * 60  # visual dominates from step 31
    alerts = _steps(mon, rows)
    dom = [a for a in alerts if a["detector"] == "dominance"]
    # 90 % of a 20-step window: 18 dominant steps -> step 48
    assert [a["step"] for a in dom] == [48]
    a = dom[0]
    assert a["modality"] == "audio" and a["evidence"]["dominant"] == "visual"
    assert a["evidence"]["rho"] == pytest.approx(2.4)
    assert a["step_range"] == [29, 48] and a["severity"] == "warning"
    assert a["key"] == "dominance:audio:48"
    assert "audio under-optimised since step 29" in a["message"] and "ρ_visual" in a["message"]
    names = [s["name"] for s in a["advice"]["strategies"]]
    assert names == ["opm", "ogm_ge"] and "OPM q_base 0.5" in a["advice"]["text"]


def test_dominance_hysteresis_new_episode_only_after_release() -> None:
    mon = AlertMonitor(_cfg(dominance={**WIN, "release": 1.3}), MODS, steps_per_epoch=100)
    # dominant, dips to 1.4 (between release and threshold: the episode goes on), dominant again
    rows = [_rho(2.0)] * 30 + [_rho(1.4)] * 40 + [_rho(2.0)] * 30
    # (the window must be full: 20 steps)
    assert [a["step"] for a in _steps(mon, rows) if a["detector"] == "dominance"] == [20]
    # a real release (rho 1.0 for a window) then a second episode -> a second alert
    mon = AlertMonitor(_cfg(dominance={**WIN, "release": 1.3}), MODS, steps_per_epoch=100)
    rows = [_rho(2.0)] * 30 + [_rho(1.0)] * 40 + [_rho(2.0)] * 30
    assert [a["step"] for a in _steps(mon, rows) if a["detector"] == "dominance"] == [20, 88]


def test_dominance_not_on_noise_stationary_rho_with_spikes() -> None:
    rng = random.Random(0)
    rows = []
    for s in range(2000):
        v = 1.2 + rng.gauss(0, 0.1)
        if s % 7 == 0:
            v = 6.0  # spikes
        rows.append(_rho(v))
    mon = AlertMonitor(_cfg(), MODS, steps_per_epoch=100)  # default window max(50, 10 %)
    assert [a for a in _steps(mon, rows) if a["detector"] == "dominance"] == []


def test_window_defaults_from_the_epoch_and_thresholds_respected() -> None:
    cfg = AlertsConfig()
    assert cfg.dominance.window.length(100) == 50 and cfg.dominance.window.length(1000) == 100
    rows = [_rho(1.7)] * 200
    assert [a["step"] for a in _steps(AlertMonitor(cfg, MODS, 100), rows)] == [50]  # a full window
    high = _cfg(dominance={"threshold": 2.0})
    assert _steps(AlertMonitor(high, MODS, 100), rows) == []
    off = _cfg(dominance={"enabled": False})
    assert _steps(AlertMonitor(off, MODS, 100), rows) == []
    assert _steps(AlertMonitor(_cfg(enabled=False), MODS, 100), rows) == []


def test_suppressed_gradients() -> None:
    def g(a: float) -> dict[str, float]:
        return {"grad/norm/audio": a, "grad/norm/visual": 1.0}

    rows = [g(0.5)] * 10 + [g(0.05)] * 40
    cfg = _cfg(suppressed_gradients={"fraction": 0.1, **WIN})
    alerts = _steps(AlertMonitor(cfg, MODS, 100), rows)
    assert [(a["detector"], a["modality"], a["step"]) for a in alerts] == [
        ("suppressed_gradients", "audio", 28)
    ]
    assert alerts[0]["evidence"]["ratio"] == pytest.approx(0.05)
    strict = _cfg(suppressed_gradients={"fraction": 0.01, **WIN})
    assert _steps(AlertMonitor(strict, MODS, 100), rows) == []
    off = _cfg(suppressed_gradients={"enabled": False, **WIN})
    assert _steps(AlertMonitor(off, MODS, 100), rows) == []


def test_saturation_ogm_floor_and_opm_bound() -> None:
    cfg = _cfg(saturation=WIN, dominance={"enabled": False})
    rows = [{"ogm/coef/visual": 0.5, "ogm/coef/audio": 1.0}] * 10 + [
        {"ogm/coef/visual": 0.05, "ogm/coef/audio": 1.0}
    ] * 30
    alerts = _steps(AlertMonitor(cfg, MODS, 100, strategies=[{"name": "ogm_ge", "alpha": 0.8}]), rows)
    assert [(a["modality"], a["step"], a["evidence"]["strategy"]) for a in alerts] == [("visual", 28, "ogm")]
    assert alerts[0]["severity"] == "info" and alerts[0]["advice"]["strategies"][0]["name"] == "opm"
    # OPM: bound min(1, 0.5 * 1.5) = 0.75; 0.95 of it = 0.7125
    opm = [{"name": "opm", "q_base": 0.5, "lam": 0.5}]
    rows = [{"opm/drop_prob/visual": 0.70}] * 30 + [{"opm/drop_prob/visual": 0.74}] * 30
    alerts = _steps(AlertMonitor(cfg, MODS, 100, strategies=opm), rows)
    assert [(a["step"], a["evidence"]["bound"]) for a in alerts] == [(48, 0.75)]
    assert alerts[0]["advice"]["strategies"] == [{"name": "ogm_ge", "alpha": 0.8}]


def test_divergence_fires_once_and_marks_the_stop() -> None:
    mon = AlertMonitor(AlertsConfig(), MODS, 100)
    rows = [{"train/loss": 1.0}] * 5 + [{"train/loss": math.nan}, {"train/loss": math.inf}]
    alerts = _steps(mon, rows)
    assert [(a["detector"], a["step"], a["severity"]) for a in alerts] == [("divergence", 6, "critical")]
    assert mon.diverged is alerts[0] and mon.stop_on_divergence
    assert alerts[0]["evidence"]["non_finite"] == {"train/loss": "nan"}
    keep_going = _cfg(divergence={"stop": False})
    assert not AlertMonitor(keep_going, MODS, 100).stop_on_divergence
    assert _steps(AlertMonitor(_cfg(divergence={"enabled": False}), MODS, 100), rows) == []
    # an evaluation's NaN counts too; a finite run raises nothing
    mon = AlertMonitor(AlertsConfig(), MODS, 100, lr=0.01)
    assert mon.on_eval(10, 0, {"val/acc": 0.5, "val/loss": 1.0}) == []
    (a,) = mon.on_eval(20, 1, {"val/acc": 0.5, "val/loss": math.inf})
    assert a["advice"]["overrides"] == {"optim.lr": pytest.approx(0.001)}


def _evals(mon: AlertMonitor, rows: list[tuple[float, float, float]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, (fused, audio, visual) in enumerate(rows):
        mon.on_step((i + 1) * 10 - 1, i, {"train/acc": fused})
        out += mon.on_eval(
            (i + 1) * 10, i, {"val/acc": fused, "val/acc/audio": audio, "val/acc/visual": visual}
        )
    return out


def test_under_optimised_flat_modality_while_fused_rises() -> None:
    cfg = _cfg(
        under_optimised={"evals": 3, "tolerance": 0.01, "fused_gain": 0.01}, overfitting={"enabled": False}
    )
    rows = [
        (0.40, 0.30, 0.40),
        (0.50, 0.34, 0.50),
        (0.55, 0.345, 0.55),
        (0.60, 0.345, 0.60),
        (0.65, 0.346, 0.64),  # audio flat over the last 3 evals (0.34 -> 0.346) while fused +0.15
        (0.70, 0.346, 0.69),
        (0.72, 0.40, 0.71),  # audio gains: the episode ends
        (0.73, 0.40, 0.72),
        (0.74, 0.40, 0.73),
        (0.75, 0.40, 0.74),  # flat again over 3 evals: a new episode
    ]
    alerts = _evals(AlertMonitor(cfg, MODS, 10), rows)
    assert [(a["modality"], a["step"]) for a in alerts] == [("audio", 50), ("audio", 100)]
    ev = alerts[0]["evidence"]
    assert ev["gain"] == pytest.approx(0.006) and ev["fused_gain"] == pytest.approx(0.15)
    assert alerts[0]["step_range"] == [20, 50]
    # fused flat too -> nothing; tolerance 0.1 -> audio's +0.045 of eval 4 counts as flat earlier
    flat = [(0.5, 0.3, 0.5)] * 8
    assert _evals(AlertMonitor(cfg, MODS, 10), flat) == []
    loose = _cfg(under_optimised={"evals": 3, "tolerance": 0.1}, overfitting={"enabled": False})
    assert [a["step"] for a in _evals(AlertMonitor(loose, MODS, 10), rows)][0] == 40
    off = _cfg(under_optimised={"enabled": False}, overfitting={"enabled": False})
    assert _evals(AlertMonitor(off, MODS, 10), rows) == []
    # the modality ahead (here visual flat but above audio) is not "under-optimised"
    ahead = [(0.50, 0.30 + 0.05 * i, 0.46) for i in range(3)] + [
        (0.50 + 0.05 * i, 0.40 + 0.02 * i, 0.46) for i in range(3)
    ]
    assert [a["modality"] for a in _evals(AlertMonitor(cfg, MODS, 10), ahead)] == []


def test_under_optimised_against_the_linear_probe() -> None:
    mon = AlertMonitor(AlertsConfig(), MODS, 10)
    alerts = mon.on_reference(99, 9, {"audio": 0.30, "visual": 0.80}, {"audio": 0.55, "visual": 0.82})
    assert [(a["modality"], a["evidence"]["gap"]) for a in alerts] == [("audio", pytest.approx(0.25))]
    assert mon.on_reference(99, 9, {"audio": 0.30}, {"audio": 0.55}) == []  # once


def test_overfitting_gap_growing_for_k_evals() -> None:
    mon = AlertMonitor(
        _cfg(overfitting={"evals": 3, "min_gap": 0.05}, under_optimised={"enabled": False}), MODS, 10
    )
    train = [0.6, 0.7, 0.8, 0.9, 0.95, 0.96, 0.97]
    val = [0.58, 0.6, 0.62, 0.63, 0.62, 0.62, 0.70]
    out: list[dict[str, Any]] = []
    for i, (t, v) in enumerate(zip(train, val, strict=True)):
        for s in range(10):
            mon.on_step(i * 10 + s + 1, i, {"train/acc": t})
        out += mon.on_eval(i * 10 + 10, i, {"val/acc": v})
    # gaps 0.02, 0.10, 0.18, 0.27 (grew 3 times, > 0.05) -> fires at eval 4 (step 40), once
    assert [(a["detector"], a["step"]) for a in out] == [("overfitting", 40)]
    assert out[0]["evidence"]["gaps"] == pytest.approx([0.02, 0.10, 0.18, 0.27])


def _overfit_alerts(gaps: list[float]) -> list[dict[str, Any]]:
    mon = AlertMonitor(
        _cfg(overfitting={"evals": 3, "min_gap": 0.05}, under_optimised={"enabled": False}), MODS, 10
    )
    out: list[dict[str, Any]] = []
    for i, g in enumerate(gaps):
        for s in range(10):
            mon.on_step(i * 10 + s + 1, i, {"train/acc": 0.5 + g})
        out += mon.on_eval(i * 10 + 10, i, {"val/acc": 0.5})
    return out


def test_overfitting_one_alert_per_episode_refires_only_after_it_cleared() -> None:
    # a noisy, persistently overfitting run: the gap grows 3 times (fires at eval 4, step
    # 40), dips a little and grows 3 times again, twice, always above min_gap 0.05: one
    # episode, one alert (it fired three times here before issue 25)
    noisy = [0.06, 0.10, 0.14, 0.18, 0.16, 0.20, 0.24, 0.28, 0.26, 0.30, 0.34, 0.38]
    assert [(a["detector"], a["step"]) for a in _overfit_alerts(noisy)] == [("overfitting", 40)]
    # the gap clears (0.04 <= 0.05) at eval 13: a new episode may fire, 3 growths later
    cleared = [*noisy, 0.04, 0.08, 0.12, 0.16, 0.20]
    assert [a["step"] for a in _overfit_alerts(cleared)] == [40, 160]
    # a gap just above min_gap (0.06) keeps the episode open: no second alert
    held = [*noisy, 0.06, 0.08, 0.12, 0.16, 0.20]
    assert [a["step"] for a in _overfit_alerts(held)] == [40]


def test_monitor_state_round_trip_resumes_without_repeating() -> None:
    rows = [_rho(2.4)] * 60
    a = AlertMonitor(_cfg(dominance=WIN), MODS, 100)
    _steps(a, rows[:10])
    b = AlertMonitor(_cfg(dominance=WIN), MODS, 100)
    b.load_state_dict(a.state_dict())
    assert [x["step"] for x in _steps(b, rows[10:], start=11)] == [20]
    c = AlertMonitor(_cfg(dominance=WIN), MODS, 100)
    c.load_state_dict(b.state_dict())
    assert _steps(c, rows, start=61) == [] and len(c.alerts) == 1


def test_apply_advice_replaces_same_name_keeps_others() -> None:
    raw = {"name": "r", "strategies": [{"name": "joint"}], "optim": {"lr": 0.01}}
    adv = {"strategies": [{"name": "opm", "q_base": 0.5}, {"name": "ogm_ge", "alpha": 0.8}]}
    assert apply_advice(raw, adv)["strategies"] == [{"name": "opm", "q_base": 0.5}]
    assert apply_advice(raw, adv, 1)["strategies"] == [{"name": "ogm_ge", "alpha": 0.8}]
    raw2 = {"strategies": [{"name": "opm", "q_base": 0.3}, {"name": "ogm", "alpha": 0.5}]}
    assert apply_advice(raw2, adv)["strategies"] == [
        {"name": "ogm", "alpha": 0.5},
        {"name": "opm", "q_base": 0.5},
    ]
    out = apply_advice(raw, {"strategies": [], "overrides": {"optim.lr": 0.001}})
    assert out["optim"]["lr"] == 0.001 and raw["optim"]["lr"] == 0.01
    load_config(apply_advice(raw, adv))  # the result validates


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("alerts.dominance.threshold=abc", "alerts.dominance.threshold"),
        ("alerts.dominance.threshold=0.9", "alerts.dominance.threshold"),
        ("alerts.dominance.window.share=2", "alerts.dominance.window.share"),
        ("alerts.under_optimised.evals=0", "alerts.under_optimised.evals"),
        ("alerts.suppressed_gradients.fraction=-1", "alerts.suppressed_gradients.fraction"),
        ("alerts.dominance.thresold=2", "alerts.dominance.thresold"),
        ("alerts.dominance.release=3", "alerts.dominance"),
    ],
)
def test_malformed_thresholds_are_config_errors_naming_the_field(override: str, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert field in exc.value.as_dict()


def test_streaming_state_is_bounded_by_the_windows() -> None:
    """O(1) per step: the state holds at most one window per detector and modality."""
    import json

    def size(n: int) -> int:
        mon = AlertMonitor(AlertsConfig(), MODS, 100)
        rng = random.Random(1)
        for s in range(1, n + 1):
            mon.on_step(
                s,
                0,
                {
                    **_rho(1.0 + rng.random() * 0.3),
                    "grad/norm/audio": 1.0,
                    "grad/norm/visual": 1.0,
                    "train/acc": 0.5,
                },
            )
        return len(json.dumps(mon.state_dict()))

    assert size(50_000) < 1.15 * size(500)  # (longer step numbers only)
