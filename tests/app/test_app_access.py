"""The dashboard's gate and roles without a browser: with BML_AUTH=local and no session the
app draws only the login prompt (no page, no data); the Runs page offers each role only its
actions and runs them as the actor (a viewer calling anyway is refused by services.actions);
"Rerun exactly" queues a linked run; Live's environment rows."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

import db
from app.views.live import data as lv
from app.views.runs import data as runs_data
from tests.helpers.apptest import open_page
from tests.helpers.stored_runs import add_run

ADMIN = db.Actor("ada", "admin")
OPERATOR = db.Actor("otto", "operator")
VIEWER = db.Actor("vic", "viewer")


def test_without_a_session_only_the_login_prompt_is_drawn(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_run(engine, "private-run", "g")
    monkeypatch.setenv("BML_AUTH", "local")
    monkeypatch.setenv("BML_SECRET_KEY", "s" * 32)
    at = open_page()
    assert [t.value for t in at.title] == ["Log in to BML Studio"]
    assert "/_bml/login?next=" in at.markdown[0].value
    assert not at.dataframe and "private-run" not in str([m.value for m in at.markdown])


def test_each_role_is_offered_only_its_actions(engine: Engine) -> None:
    mine = db.get_run(engine, db.create_run(engine, {"name": "m"}, owner="otto"))
    theirs = db.get_run(engine, db.create_run(engine, {"name": "t"}, owner="olga"))
    assert runs_data.permitted_actions(VIEWER, mine) == {
        "cancel": False,
        "retry": False,
        "rerun": False,
        "delete": False,
    }
    assert runs_data.permitted_actions(OPERATOR, mine) == {
        "cancel": True,
        "retry": True,
        "rerun": True,
        "delete": False,
    }
    assert runs_data.permitted_actions(OPERATOR, theirs) == {
        "cancel": False,
        "retry": False,
        "rerun": True,
        "delete": False,
    }
    assert all(runs_data.permitted_actions(ADMIN, theirs).values())


def test_actions_run_as_the_actor(engine: Engine, sent: list[int]) -> None:
    run_id = add_run(engine, "done", "g")
    refused = runs_data.run_action("delete", run_id, engine, VIEWER)
    assert not refused.ok and refused.message.startswith("Refused: user 'vic' (viewer) may not delete run")
    result = runs_data.run_action("rerun", run_id, engine, OPERATOR)
    assert result.ok and result.new_run_id is not None and sent == [result.new_run_id]
    rerun = db.get_run(engine, result.new_run_id)
    assert (
        rerun.rerun_of == run_id
        and rerun.owner == "otto"
        and rerun.config == db.get_run(engine, run_id).config
    )
    assert runs_data.run_action("delete", run_id, engine, ADMIN).ok


def test_environment_rows() -> None:
    assert lv.environment_rows(None) == []
    env = {
        "project_version": "0.1.0",
        "git": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True},
        "python": "3.11.9",
        "packages": {"torch": "2.13.0", "numpy": "2.1.0"},
        "cuda": None,
        "gpu": None,
        "platform": "Linux",
        "host": "box",
        "worker": "cpu@box",
        "data": [{"path": "/d/f.npz", "size": 10, "sha256": "ab" * 32}],
    }
    rows = dict(lv.environment_rows(env))
    assert rows["code commit"] == "0123456789ab (uncommitted changes)"
    assert (
        rows["torch"] == "2.13.0" and rows["GPU"] == "none (CPU)" and rows["worker host"] == "box (cpu@box)"
    )
    assert rows["data /d/f.npz"] == "sha256 abababababababab… (10 bytes)"
