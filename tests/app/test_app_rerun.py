"""app/rerun.py falls back to a whole-page `st.rerun()` where Streamlit's internals are not
the ones it knows (moved modules) or there is no script-run context to queue a request on."""

from __future__ import annotations

import pytest

from app import rerun


def _record(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(rerun.st, "rerun", lambda: calls.append("page"))
    return calls


def test_without_streamlits_internals_the_page_reruns(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record(monkeypatch)
    monkeypatch.setattr(rerun, "_internals", None)
    rerun.rerun_fragment("charts")
    assert calls == ["page"]


def test_outside_a_script_run_the_page_reruns(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record(monkeypatch)
    assert rerun._internals is not None  # this Streamlit has them
    rerun.rerun_fragment("charts")  # no script-run context in a plain test: nothing to queue on
    assert calls == ["page"]


def test_a_context_of_another_shape_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record(monkeypatch)
    assert rerun._internals is not None
    data, _ = rerun._internals

    class OtherContext:  # a request queue whose request_rerun refuses the call
        script_requests = object()

    monkeypatch.setattr(rerun, "_internals", (data, lambda: OtherContext()))
    rerun.rerun_fragment("charts")
    assert calls == ["page"]
