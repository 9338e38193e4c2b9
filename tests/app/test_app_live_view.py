"""Live for researchers (issue 14): per-step series EMA-smoothed by default (the raw line
faint behind), raw, or per-epoch mean and range; the header's dominant modality (and since
which step) and ρ as a recent mean; a finished run's result block with links to Compare;
the resolved config; a fresh status in the run picker; an ASCII gradient-norm axis."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, update

import db
from app.views.live import data as lv
from db.models import Run
from tests.helpers.apptest import chart_specs, errors_of, open_page
from tests.helpers.stored_runs import add_run, summary_for


def _titles(at) -> dict[str, dict]:
    return {s["layout"]["title"]["text"]: s for s in chart_specs(at)}


def _k_panel() -> lv.Panel:
    return next(p for p in lv.panels() if p.prefixes == ("ogm/coef/",))


def _jumping_ogm_run(engine: Engine, steps: int = 200) -> int:
    """An OGM run whose k jumps between 0.3 and 1.0 every step (as the official k does at ρ = 1)."""
    rid = add_run(engine, "ogm-jumps", "g", ["ogm"], steps=0, status="running")
    db.write_points(
        engine,
        rid,
        {
            "ogm/coef/audio": [(s, 0.3 if s % 2 else 1.0) for s in range(1, steps + 1)],
            "ogm/coef/visual": [(s, 1.0) for s in range(1, steps + 1)],
            "imbalance/ratio/audio": [(s, 1.6) for s in range(1, steps + 1)],
            "imbalance/ratio/visual": [(s, 0.6) for s in range(1, steps + 1)],
        },
    )
    return rid


def test_ema_per_epoch_and_total_variation_by_hand() -> None:
    assert lv.ema([1.0, 0.0], 0.5) == pytest.approx([1.0, 0.25 / 0.75])
    assert lv.ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no start-up bias
    assert lv.ema([1.0, 5.0], 0.0) == [1.0, 5.0]
    xs, means, lows, highs = lv.per_epoch([1, 2, 3, 4, 5], [0.3, 1.0, 0.5, 0.7, 0.9], steps_per_epoch=2)
    assert xs == [2, 4, 5] and means == pytest.approx([0.65, 0.6, 0.9])
    assert lows == [0.3, 0.5, 0.9] and highs == [1.0, 0.7, 0.9]
    assert lv.total_variation([0.3, 1.0, 0.3, None, 1.0]) == pytest.approx(2.1)


def test_ogm_k_panel_smoothed_by_default_jumps_far_less_than_raw(engine: Engine) -> None:
    rid = _jumping_ogm_run(engine)
    at = open_page("live", run=str(rid))
    assert not at.exception and not errors_of(at)
    panel = _titles(at)[_k_panel().title]
    audio = [t for t in panel["data"] if t["name"].startswith("audio")]
    raw = next(t for t in audio if (t.get("meta") or {}).get("raw"))
    smooth = next(t for t in audio if not (t.get("meta") or {}).get("raw"))
    assert raw["opacity"] < 0.5 and raw["showlegend"] is False  # faint, behind (drawn first)
    assert panel["data"].index(raw) < panel["data"].index(smooth)
    tv_raw, tv_smooth = lv.total_variation(raw["y"]), lv.total_variation(smooth["y"])
    assert tv_raw == pytest.approx(0.7 * 199)
    assert tv_smooth < 0.1 * tv_raw, (tv_smooth, tv_raw)
    # no strategy shares the chart: only OGM's k lines are on it
    assert sorted((t["name"], bool((t.get("meta") or {}).get("raw"))) for t in panel["data"]) == [
        ("audio", False),
        ("audio", True),
        ("visual", False),
        ("visual", True),
    ]

    at.session_state["live_smoothing"] = lv.SMOOTH_RAW
    at.run()
    audio = [t for t in _titles(at)[_k_panel().title]["data"] if t["name"] == "audio"]
    assert len(audio) == 1 and lv.total_variation(audio[0]["y"]) == pytest.approx(tv_raw)

    with engine.begin() as conn:  # the config has 5 epochs: 100 total steps are 20 an epoch
        conn.execute(update(Run).where(Run.id == rid).values(total_steps=100))
    at.session_state["live_smoothing"] = lv.SMOOTH_EPOCH
    at.run()
    epoch = next(t for t in _titles(at)[_k_panel().title]["data"] if t["name"] == "audio (epoch mean)")
    assert epoch["y"] == pytest.approx([0.65] * 10) and epoch["x"][:2] == [20, 40]
    band = next(t for t in _titles(at)[_k_panel().title]["data"] if t["name"] == "audio (epoch mean) band")
    assert max(band["y"]) == 1.0 and min(band["y"]) == 0.3  # the range: min to max of each epoch


def test_header_dominant_modality_since_when_and_recent_mean_rho(engine: Engine) -> None:
    rid = add_run(engine, "flip", "g", ["ogm_ge"], steps=0, status="running")
    audio = [(s, 0.8 if s <= 50 else 1.5) for s in range(1, 101)]
    visual = [(s, 1.25 if s <= 50 else 0.7) for s in range(1, 101)]
    audio[-1] = (100, 9.0)  # one wild last step must not be the header's ρ
    db.write_points(engine, rid, {"imbalance/ratio/audio": audio, "imbalance/ratio/visual": visual})
    state = lv.refresh(engine, lv.LiveState(run_id=rid))
    assert lv.dominance(state, weight=0.0) == lv.Dominance("audio", 51)
    near = lv.LiveState(
        run_id=rid,
        series={
            "imbalance/ratio/audio": lv.LiveSeries("imbalance/ratio/audio", [1, 2], [1.01, 1.01]),
            "imbalance/ratio/visual": lv.LiveSeries("imbalance/ratio/visual", [1, 2], [0.99, 0.99]),
        },
    )
    assert lv.dominance(near) == lv.Dominance(None, None)  # within 2 % of 1: balanced
    lagged = lv.dominance(state)  # on the smoothed ρ the lead changes a few steps later
    assert lagged.modality == "audio" and lagged.since_step is not None and 51 < lagged.since_step < 60
    at = open_page("live", run=str(rid))
    metrics = {m.label: m for m in at.metric}
    assert (
        metrics["dominant"].value == "audio"
        and metrics["dominant"].delta == f"since step {lagged.since_step}"
    )
    expected = (1.5 * 19 + 9.0) / 20
    assert metrics["ρ audio"].value == f"{expected:.3f}" and metrics["ρ visual"].value == "0.700"


def test_finished_run_shows_its_result_with_links_to_compare_and_a_baseline(engine: Engine) -> None:
    summary = summary_for(0.8, 0.74, {"audio": 0.7, "visual": 0.41}, 0.29, 10.0)
    rid = add_run(engine, "ogm-done", "grp", ["ogm_ge"], steps=40, summary=summary)
    at = open_page("live", run=str(rid))
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["status"] == "succeeded"
    assert metrics["test accuracy (fused)"] == "0.7400"
    assert metrics["test accuracy audio"] == "0.7000" and metrics["test accuracy visual"] == "0.4100"
    assert metrics["best epoch"] == "3" and metrics["imbalance degree"] == "0.2900"
    links = {el.proto.label: el.proto for el in at.get("page_link")}
    assert "Compare group grp" in links
    assert any(label.startswith("Launch a joint baseline") for label in links)
    assert at.selectbox(key="live_pick").options[0].endswith("succeeded")
    assert any(e.label == "resolved config" for e in at.expander)
    assert any("name: ogm-done" in c.value for c in at.code)

    base = add_run(engine, "joint", "grp", [], steps=40)
    at = open_page("live", run=str(rid))
    links = {el.proto.label: el.proto for el in at.get("page_link")}
    assert f"Compare with the joint baseline #{base}" in links

    running = add_run(engine, "busy", "grp", ["ogm_ge"], steps=10, status="running")
    at = open_page("live", run=str(running))
    assert "test accuracy (fused)" not in {m.label for m in at.metric}


def test_picker_status_is_fresh_after_the_run_ends(engine: Engine) -> None:
    rid = add_run(engine, "r", "g", ["ogm_ge"], steps=10, status="running")
    at = open_page("live", run=str(rid))
    assert at.selectbox(key="live_pick").options[0].endswith("running")
    db.finish_run(engine, rid, "succeeded", summary=summary_for(0.5, 0.5, {}, 0.0, 1.0))
    at.run()  # within the picker cache's lifetime
    assert at.selectbox(key="live_pick").options[0].endswith("succeeded")


def test_gradient_norm_axis_is_plain_text() -> None:
    grad = next(p for p in lv.panels() if p.name == "grad")
    assert grad.y_title == "gradient L2 norm" and grad.y_title.isascii()
