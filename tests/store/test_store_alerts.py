"""Alerts in the store: DbMetricSink stores each alert as an event of kind `alert` with its
step and document; the same alert sent again (a resumed run) is stored once; events read
back in the CONTRACT.md Events JSON shape, filtered by kind; alert counts per run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

import db

ALERT: dict[str, Any] = {
    "key": "dominance:visual:120",
    "kind": "alert",
    "detector": "dominance",
    "severity": "warning",
    "modality": "visual",
    "step": 120,
    "epoch": 3,
    "step_range": [71, 120],
    "evidence": {"dominant": "audio", "rho": 2.4, "rho_window_mean": 2.2},
    "advice": {"text": "try OPM q_base 0.5", "strategies": [{"name": "opm", "q_base": 0.5}], "overrides": {}},
    "message": "visual under-optimised since step 71 (ρ_audio 2.20 over 50 steps): try OPM q_base 0.5",
}


def test_alert_stored_once_across_a_resume_and_read_back_as_contract_json(engine: Engine) -> None:
    run_id = db.create_run(engine, {"name": "a", "group": "g"})
    first = db.DbMetricSink(engine, run_id, flush_interval_s=0.05)
    first.on_event("info", "hello")
    first.on_alert(ALERT)
    first.on_alert(ALERT)  # the same key twice in one batch
    first.close()
    second = db.DbMetricSink(engine, run_id, flush_interval_s=0.05)  # the resumed run re-sends it
    second.on_alert(ALERT)
    second.on_alert(
        {
            **ALERT,
            "key": "divergence:-:130",
            "detector": "divergence",
            "severity": "critical",
            "modality": None,
            "step": 130,
            "evidence": {"non_finite": {"train/loss": "nan"}},
            "advice": {"text": "lower lr", "strategies": [], "overrides": {"optim.lr": 0.001}},
        }
    )
    second.close()
    alerts = db.run_events(engine, run_id, kind="alert")
    assert [(e.step, e.data and e.data["detector"]) for e in alerts] == [
        (120, "dominance"),
        (130, "divergence"),
    ]
    doc = alerts[0].to_dict()
    assert {"id", "run_id", "kind", "step", "created_at", "message"} <= set(doc)
    assert doc["kind"] == "alert" and doc["severity"] == "warning" and doc["modality"] == "visual"
    assert doc["detector"] == "dominance" and doc["evidence"]["rho"] == 2.4
    assert doc["advice"]["strategies"] == [{"name": "opm", "q_base": 0.5}]
    assert alerts[1].level == "error"  # critical alerts are error-level events
    logs = db.run_events(engine, run_id, kind="log")
    assert [e.message for e in logs] == ["hello"] and logs[0].to_dict()["kind"] == "log"
    assert "severity" not in logs[0].to_dict()
    assert len(db.run_events(engine, run_id)) == 3
    assert db.get_event(engine, alerts[0].id) == alerts[0]
    other = db.create_run(engine, {"name": "b", "group": "g"})
    assert db.alert_counts(engine) == {run_id: {"warning": 1, "critical": 1}}
    assert db.alert_counts(engine, [other]) == {} and db.alert_counts(engine, []) == {}


def _bml(*args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from bml_cli.main import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_bml_events_json_kind_and_text(engine: Engine) -> None:
    import json

    run_id = db.create_run(engine, {"name": "a", "group": "g"})
    sink = db.DbMetricSink(engine, run_id, flush_interval_s=0.05)
    sink.on_event("warning", "an advisory")
    sink.on_alert(ALERT)
    sink.close()
    code, out, _ = _bml("events", str(run_id), "--json")
    assert code == 0
    docs = json.loads(out)
    assert [d["kind"] for d in docs] == ["log", "alert"]
    code, out, _ = _bml("events", str(run_id), "--json", "--kind", "alert")
    (doc,) = json.loads(out)
    assert doc["run_id"] == run_id and doc["step"] == 120 and doc["detector"] == "dominance"
    assert doc["advice"]["strategies"] == [{"name": "opm", "q_base": 0.5}] and doc["evidence"]["rho"] == 2.4
    code, out, _ = _bml("events", str(run_id))
    assert code == 0 and "an advisory" in out and "alert" in out and "step 120" in out
    assert _bml("events", "99999")[0] == 2
    code, _, err = _bml("events", str(run_id), "--kind", "nope")
    assert code == 2 and "unknown kind" in err


def test_train_exits_2_naming_a_malformed_threshold() -> None:
    code, _, err = _bml("train", "--set", "alerts.dominance.threshold=abc", "--no-progress")
    assert code == 2 and "alerts.dominance.threshold" in err
