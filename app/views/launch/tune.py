"""Tune on /launch (issue 23): beside Sweep, a study over the form's config. Rows of searched
parameters (a config path, its kind and bounds: `0.1, 1.0` for float or int, the choices
`tanh, linear` for cat; float ranges optionally on a log scale), the trial budget, trials
at a time, sampler, pruner and metric (the evaluation keys this config's runs log). "Start
study" hands the request to services.studies, which checks it as `bml tune` does and starts
the same driver (`bml tune`) as a detached process; the Study page follows it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.text import md
from app.widgets import page_path
from bml_core.config import ConfigError

KINDS = ("float", "int", "cat")
MAX_ROWS = 8
STATE = "launch_tune_started"


def space_text(path: str, kind: str, bounds: str, log: bool) -> str:
    """One row as a `--space` value: `strategies.0.alpha=float(0.1,1.0,log)`."""
    parts = [p.strip() for p in str(bounds).split(",")]
    body = ",".join(parts + (["log"] if log and kind == "float" else []))
    return f"{path.strip()}={kind}({body})"


def _rows() -> list[str]:
    n = int(st.session_state.get("tune_rows", 1) or 1)
    texts: list[str] = []
    for i in range(n):
        c1, c2, c3, c4 = st.columns([3, 1, 2, 1], vertical_alignment="bottom")
        with c1, st.container(key=f"field-tune-path-{i}"):
            path = st.text_input(
                "config path", key=f"tune_path_{i}", placeholder="strategies.0.alpha or optim.lr"
            )
        with c2, st.container(key=f"field-tune-kind-{i}"):
            kind = st.selectbox("kind", KINDS, key=f"tune_kind_{i}")
        with c3, st.container(key=f"field-tune-bounds-{i}"):
            bounds = st.text_input(
                "bounds (lo, hi) or choices", key=f"tune_bounds_{i}", placeholder="0.1, 1.0"
            )
        with c4, st.container(key=f"field-tune-log-{i}"):
            log = st.checkbox("log scale", key=f"tune_log_{i}", disabled=kind != "float")
        if str(path).strip():
            texts.append(space_text(str(path), str(kind), str(bounds), bool(log)))
    return texts


def render(check: Any, engine: Any, actor: Any, may_launch: bool) -> None:
    """The Tune section; `check` is the form's LaunchCheck (its config is the trials' base)."""
    from bml_core.tune import evaluation_keys

    with st.container(border=True, key="tune-section"):
        st.subheader("Tune")
        on = st.toggle(
            "tune: search parameters with Optuna, pruning hopeless trials (a study on the workers)",
            key="launch_tune",
        )
        if not on:
            return
        st.number_input("searched parameters", 1, MAX_ROWS, 1, key="tune_rows")
        texts = _rows()
        keys = ["val/acc"]
        if check.config is not None:
            keys = evaluation_keys(check.config.to_dict())[0]
        c1, c2, c3, c4, c5, c6 = st.columns(6)
        with c1, st.container(key="field-tune-trials"):
            trials = st.number_input("trials (budget)", 1, 10_000, 20, key="tune_trials")
        with c2, st.container(key="field-tune-parallel"):
            parallel = st.number_input("at a time", 1, 64, 1, key="tune_parallel")
        with c3, st.container(key="field-tune-sampler"):
            sampler = st.selectbox("sampler", ("tpe", "random", "grid", "cmaes"), key="tune_sampler")
        with c4, st.container(key="field-tune-pruner"):
            pruner = st.selectbox("pruner", ("asha", "median", "hyperband", "none"), key="tune_pruner")
        with c5, st.container(key="field-tune-metric"):
            metric = st.selectbox("metric", keys, key="tune_metric")
            direction = "minimize" if str(metric).endswith(("loss", "imbalance_degree")) else "maximize"
            st.caption(f"{direction}d")
        with c6, st.container(key="field-tune-name"):
            name = st.text_input("study name", key="tune_name", placeholder="(automatic)")
        if not may_launch:
            return
        if st.button("Start study", type="primary", key="tune_button"):
            _start(check, engine, actor, texts, int(trials), int(parallel), str(sampler), str(pruner),
                   str(metric), direction, str(name))  # fmt: skip
        started = st.session_state.get(STATE)
        if started:
            with st.container(key="tune-started"):
                st.success(f"Study {md(started)} started: its trials are runs on the workers.")
                st.page_link(
                    page_path("study"), label=f"Open study {started}", query_params={"name": started}
                )


def _start(check: Any, engine: Any, actor: Any, texts: list[str], trials: int, parallel: int,
           sampler: str, pruner: str, metric: str, direction: str, name: str) -> None:  # fmt: skip
    from services.studies import StudyRequest, start_study

    st.session_state.pop(STATE, None)
    if not check.ok or check.config is None:
        st.error("Nothing was started: fix the fields marked above first.", icon=":material/block:")
        return
    config = check.config.to_dict()
    config.pop("seed", None)
    req = StudyRequest(
        config=config, space=texts, trials=trials, parallel=parallel, metric=metric, direction=direction,
        sampler=sampler, pruner=pruner, seeds=list(check.seeds), name=name,
    )  # fmt: skip
    try:
        started = start_study(req, engine, actor_name=getattr(actor, "name", None))
    except ConfigError as exc:
        with st.container(key="tune-errors"):
            for path, msg in exc.errors:
                st.error(f"{md(path)}: {md(msg)}", icon=":material/error:")
        return
    except Exception as exc:  # noqa: BLE001 - the store or the process start failed: shown as is
        st.error(f"Nothing was started: {md(type(exc).__name__)}: {md(str(exc))}", icon=":material/block:")
        return
    st.session_state[STATE] = started.name
