"""Launch for researchers (issue 14): dataset params checked against the dataset's spec
under their field; "start from" an example config, a pasted YAML or a past run fills the
form so that the launched config equals the source; picking a dataset applies its
recommended defaults; an untouched form shows no error."""

from __future__ import annotations

import pytest
from app_helpers import errors_of, open_page
from sqlalchemy import Engine

import db


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from worker import client

    calls: list[int] = []
    monkeypatch.setattr(client, "enqueue", lambda run_id: calls.append(int(run_id)))
    return calls


def _key(path: str) -> str:
    return f"f:{path}"


def test_bad_dataset_params_show_under_the_field_and_nothing_is_stored(
    engine: Engine, sent: list[int]
) -> None:
    at = open_page("launch")
    at.selectbox(key=_key("dataset.name")).set_value("mfeat").run()
    at.text_input(key=_key("dataset.params")).set_value("{views: [pix, nonsense]}").run()
    errors = errors_of(at)
    assert any(e.startswith("dataset.params.views: ") and "unknown view(s) ['nonsense']" in e for e in errors)
    at.text_input(key=_key("dataset.params")).set_value("{views: [pix, zer], split_seed: many}").run()
    assert any(e.startswith("dataset.params.split_seed: ") for e in errors_of(at))
    at.button(key="launch_button").click().run()
    assert any("Nothing was launched" in e for e in errors_of(at))
    assert db.list_runs(engine).total == 0 and sent == []
