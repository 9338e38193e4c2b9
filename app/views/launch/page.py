"""Launch: the run form generated from the config models, the dataset specs and the
strategy specs. "Start from" fills it from an example config, a pasted or uploaded YAML or
a past run (`?from=RUN_ID`); picking a dataset applies its recommended settings. Fields
are checked as they are edited, and an error shows once its field was touched or Launch
pressed; launches one run per seed or a sweep grid through services.actions, or starts a
tuning study (Tune, app/views/launch/tune.py). `?strategy=NAME`
preselects a strategy (the /methods page links here)."""

from __future__ import annotations

from typing import Any

import streamlit as st

import db
from app import access, catalog, store
from app.form_fields import coerce, widget_value
from app.text import md
from app.views.launch import advice as try_advice
from app.views.launch import plugin_fields as pf
from app.views.launch import tune as tune_section
from app.views.launch.check import check_form, error_shown, touched_paths
from app.views.launch.fields import (
    ENCODER_MODALITIES_PATH,
    SECTIONS,
    SEEDS_PATH,
    STRATEGIES_PATH,
    SWEEP_GRID_PATH,
    SWEEP_NAME_PATH,
    SWEEP_STRATEGIES_PATH,
    all_fields,
    dataset_default_values,
    dataset_fields,
    dataset_modalities,
    default_values,
    encoder_fields,
    model_fields,
    preselect_from_query,
    preset_values,
    run_fields,
    section_fields,
    short_description,
    strategy_fields,
    values_from_config,
)
from app.views.launch.parse import parse_yaml_config
from app.views.launch.submit import submit_checked
from app.widgets import (
    ensure_defaults,
    field_widget,
    fields_grid,
    page_path,
    show_error,
    widget_key,
    widget_values,
)
from bml_core.config import ConfigError
from services import actions as client

st.title("Launch runs")
engine = store.engine()
datasets = catalog.datasets()
strategies = catalog.strategies()
specs_by_name = catalog.strategy_specs()
ensure_defaults(default_values())
preselect_from_query(st.query_params.get("strategy"), st.session_state, widget_key(STRATEGIES_PATH))
st.session_state.setdefault(widget_key(SWEEP_GRID_PATH), "")
st.session_state.setdefault(widget_key(SWEEP_NAME_PATH), "")
st.session_state.setdefault(widget_key(SWEEP_STRATEGIES_PATH), [])
# what the form was last filled with: a field whose value differs is "touched"
st.session_state.setdefault("launch_baseline", {**default_values(), SWEEP_GRID_PATH: "", SWEEP_NAME_PATH: ""})


def _seed_defaults(specs: list[Any]) -> list[Any]:
    """Fields shown for the first time (a modality just added, a plug-in just chosen) start
    at their model's defaults, not at the widget's empty value."""
    for spec in specs:
        if widget_key(spec.path) not in st.session_state:
            st.session_state[widget_key(spec.path)] = widget_value(spec, spec.default)
    return specs


def _fill(values: dict[str, Any]) -> None:
    """Put values into the widgets (before they are drawn) and make them the baseline."""
    encoders = list(values.get(ENCODER_MODALITIES_PATH) or [])
    specs = {s.path: s for s in all_fields(list(strategies), encoders)}
    baseline = dict(st.session_state["launch_baseline"])
    for path, value in values.items():
        spec = specs.get(path)
        st.session_state[widget_key(path)] = coerce(spec, value) if spec else value
        baseline[path] = st.session_state[widget_key(path)]
    st.session_state["launch_baseline"] = baseline
    st.session_state["launch_attempted"] = False


def _fill_from_config(raw: dict[str, Any], source: str) -> None:
    try:
        values = values_from_config(raw)
    except ConfigError as exc:
        st.session_state["launch_start_error"] = (source, exc.errors)
        return
    st.session_state.pop("launch_start_error", None)
    st.session_state["launch_sweep"] = False
    _fill(values)
    st.session_state["launch_started_from"] = source


def _start_from_example() -> None:
    name = st.session_state.get("launch_example")
    if name:
        _fill_from_config(catalog.example_config(name), f"example {name}")


def _start_from_yaml() -> None:
    upload = st.session_state.get("launch_yaml_file")
    text = (
        upload.getvalue().decode("utf-8", "replace")
        if upload is not None
        else st.session_state.get("launch_yaml", "")
    )
    try:
        raw = parse_yaml_config(text)
    except ConfigError as exc:
        st.session_state["launch_start_error"] = ("YAML", exc.errors)
        return
    _fill_from_config(raw, f"the uploaded file {upload.name}" if upload is not None else "the pasted YAML")


def _start_from_run(run_id: int, group: str | None = None) -> None:
    try:
        run = db.get_run(engine, run_id)
    except db.RunNotFound:
        st.session_state["launch_start_error"] = (f"run #{run_id}", [("run", f"there is no run #{run_id}")])
        return
    # `&group=` (the Study page's "Launch this"): the run's config in another group
    config = {**dict(run.config), "group": group[:200]} if group else dict(run.config)
    _fill_from_config(config, f"run #{run.id} {run.name}")


def _start_from_picked_run() -> None:
    picked = st.session_state.get("launch_from_run")
    if picked is not None:
        _start_from_run(int(picked))


def _apply_dataset_defaults() -> None:
    name = str(st.session_state[widget_key("dataset.name")])
    _fill(dataset_default_values(name))
    st.session_state["launch_started_from"] = f"{name}'s recommended settings"


def _mark_attempted() -> None:
    st.session_state["launch_attempted"] = True


from_run = st.query_params.get("from")
if from_run and st.session_state.get("launch_from_query") != from_run:
    st.session_state["launch_from_query"] = from_run  # once per distinct link
    if from_run.isdigit():
        _start_from_run(int(from_run), st.query_params.get("group"))
    else:
        st.session_state["launch_start_error"] = ("link", [("from", f"{from_run!r} is not a run id")])


def _apply_preset() -> None:
    preset = st.session_state.get("launch_preset")
    if not preset:
        return
    specs = {s.path: s for s in all_fields(list(strategies), [])}
    for path, value in preset_values(preset).items():
        spec = specs.get(path)
        st.session_state[widget_key(path)] = coerce(spec, value) if spec else value


if try_advice.apply_query(st.query_params, st.session_state, engine, _fill):  # ?from=RUN&advice=ALERT
    st.session_state["launch_sweep"] = False
    st.session_state.pop("launch_start_error", None)
    st.session_state["launch_started_from"] = (
        f"run #{st.query_params.get('from')} with the advice of alert #{st.query_params.get('advice')}"
    )
if note := st.session_state.get(try_advice.NOTE_STATE):
    if note[0] == "info":
        st.info(
            "The form holds a run's config with an alert's advice applied", icon=":material/tips_and_updates:"
        )
    else:
        st.error("The advice link could not be applied", icon=":material/error:")
    st.text(note[1])  # quotes run names and alert messages: plain text, not Markdown
strategy_names: list[str] = list(st.session_state[widget_key(STRATEGIES_PATH)])
modalities: list[str] = list(st.session_state[widget_key(ENCODER_MODALITIES_PATH)])
sweep_on = bool(st.session_state.get("launch_sweep", False))
sweep_strategies = list(st.session_state[widget_key(SWEEP_STRATEGIES_PATH)])
paths = [s.path for s in all_fields(strategy_names, modalities)] + [
    SEEDS_PATH,
    SWEEP_GRID_PATH,
    SWEEP_NAME_PATH,
]
values = widget_values(paths)
for name in sweep_strategies:
    values.update(widget_values([s.path for s in strategy_fields(name)]))
check = check_form(values, strategy_names, modalities, sweep=sweep_on, sweep_strategies=sweep_strategies)
submitted = st.session_state.get("launch_submit_errors")
all_errors = dict(check.errors)
if submitted and submitted[0] == repr(values):
    for path, msg in submitted[1].items():
        all_errors.setdefault(path, msg)
touched = touched_paths(values, st.session_state["launch_baseline"])
attempted = bool(st.session_state.get("launch_attempted"))
errors = {p: m for p, m in all_errors.items() if error_shown(p, touched, attempted)}
shown: set[str] = set()

with st.container(border=True, key="start-from"):
    st.subheader("Start from")
    t1, t2, t3 = st.tabs(["an example", "a YAML file", "a past run"])
    with t1:
        e1, e2 = st.columns([3, 1], vertical_alignment="bottom")
        e1.selectbox(
            "example config",
            list(catalog.examples()),
            key="launch_example",
            index=None,
            placeholder="examples/*.yaml",
        )
        e2.button(
            "Fill the form",
            key="launch_fill_example",
            on_click=_start_from_example,
            disabled=not st.session_state.get("launch_example"),
        )
    with t2:
        st.file_uploader("upload a run config", type=["yaml", "yml", "json"], key="launch_yaml_file")
        st.text_area(
            "or paste it",
            key="launch_yaml",
            placeholder="name: my-run\ndataset: {name: mfeat}\nstrategies: [ogm_ge]",
        )
        st.button("Fill the form", key="launch_fill_yaml", on_click=_start_from_yaml)
    with t3:
        recent = db.list_runs(engine, limit=50).runs
        r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
        r1.selectbox(
            "run",
            [r.id for r in recent],
            key="launch_from_run",
            index=None,
            placeholder="a recent run (or open /launch?from=RUN_ID)",
            format_func=lambda rid: next(
                (f"#{r.id} {r.name} · {r.group} · {r.strategy}" for r in recent if r.id == rid), f"#{rid}"
            ),
        )
        r2.button(
            "Fill the form",
            key="launch_fill_run",
            on_click=_start_from_picked_run,
            disabled=st.session_state.get("launch_from_run") is None,
        )
    problem = st.session_state.get("launch_start_error")
    if problem:
        st.error(
            f"Could not start from {md(problem[0])}: "
            + "; ".join(f"{md(p)}: {md(m)}" for p, m in problem[1]),
            icon=":material/error:",
        )
    elif st.session_state.get("launch_started_from"):
        st.caption(f"Filled from {md(st.session_state['launch_started_from'])}; edit anything below.")

with st.container(border=True):
    st.subheader("Run")
    c1, c2, c3, c4 = st.columns(4)
    run_specs = {s.path: s for s in run_fields()}
    with c1:
        field_widget(run_specs["name"], errors, shown)
    with c2:
        field_widget(run_specs["group"], errors, shown)
    with c3:
        field_widget(run_specs["tags"], errors, shown)
    with c4, st.container(key="field-seeds"):
        st.text_input("seeds", key=widget_key(SEEDS_PATH), help="one run per seed: 0,1,2 or 0-4")
        show_error(SEEDS_PATH, errors, shown)

with st.container(border=True):
    st.subheader("Dataset")
    ds_specs = {s.path: s for s in dataset_fields()}
    c1, c2 = st.columns([1, 2])
    with c1:
        field_widget(ds_specs["dataset.name"], errors, shown, on_change=_apply_dataset_defaults)
        st.button(
            "reset to the dataset's defaults",
            key="launch_dataset_defaults",
            on_click=_apply_dataset_defaults,
            help="its recommended parameters, model, optimiser and training settings",
            type="tertiary",
        )
    chosen = datasets.get(st.session_state[widget_key("dataset.name")])
    with c2:
        if chosen is not None:
            st.caption(
                chosen.note + (" Needs `dataset.path` under BML_DATA_ROOTS." if chosen.needs_path else "")
            )
        field_widget(ds_specs["dataset.path"], errors, shown)
    show_error("dataset", errors, shown)
    fields_grid(
        [ds_specs[p] for p in ("dataset.val_fraction", "dataset.test_fraction", "dataset.params")],
        errors,
        shown,
    )

with st.container(border=True):
    st.subheader("Model")
    fields_grid(model_fields(), errors, shown, columns=2)
    fusion_params = _seed_defaults(
        pf.fusion_param_fields(str(st.session_state.get(widget_key("model.fusion"))))
    )
    if fusion_params:
        fields_grid(fusion_params, errors, shown, columns=4)
    known = dataset_modalities(chosen, values.get("dataset.params"))
    with st.container(key="field-model-encoders"):
        st.multiselect(
            "modalities with a chosen encoder (the others are picked from their input rank)",
            sorted(set(known) | set(modalities)),
            key=widget_key(ENCODER_MODALITIES_PATH),
            accept_new_options=True,
        )
        show_error(ENCODER_MODALITIES_PATH, errors, shown)
    for m in modalities:
        with st.expander(f"encoder of {m}", expanded=True):
            show_error(f"model.encoders.{m}", errors, shown)
            fields_grid(_seed_defaults(encoder_fields(m)), errors, shown, columns=5)
            chosen_encoder = str(st.session_state.get(widget_key(f"model.encoders.{m}.name")))
            encoder_params = _seed_defaults(pf.encoder_param_fields(m, chosen_encoder))
            if encoder_params:
                st.caption(f"{chosen_encoder}'s own parameters")
                fields_grid(encoder_params, errors, shown, columns=4)

with st.container(border=True):
    st.subheader("Strategies")
    c1, c2 = st.columns([2, 1])
    with c1, st.container(key="field-strategies"):
        st.multiselect(
            "strategies, applied in order (none = joint training)",
            list(strategies),
            key=widget_key(STRATEGIES_PATH),
            help="\n".join(f"- **{n}**: {short_description(spec)}" for n, spec in specs_by_name.items()),
        )
        for err in catalog.broken_plugins():
            st.warning(f"strategy plug-in not loaded: {md(err)}", icon=":material/extension_off:")
        show_error(STRATEGIES_PATH, errors, shown)
    with c2:
        presets = catalog.presets()
        st.selectbox(
            "preset",
            list(presets),
            key="launch_preset",
            index=None,
            placeholder="paper presets",
            format_func=lambda p: f"{p}",
        )
        if st.session_state.get("launch_preset"):
            st.caption(presets[st.session_state["launch_preset"]])
        st.button("Apply preset", on_click=_apply_preset, disabled=not st.session_state.get("launch_preset"))
    shown_params = list(dict.fromkeys(strategy_names + (sweep_strategies if sweep_on else [])))
    for name in shown_params:
        if name == "joint":
            continue
        with st.expander(f"{name} parameters", expanded=True):
            st.caption(f"{specs_by_name[name].description} Reference: {specs_by_name[name].reference}")
            show_error(f"strategy.{name}", errors, shown)
            fields_grid(strategy_fields(name), errors, shown, columns=4)

for title, section in SECTIONS:
    with st.container(border=True):
        st.subheader(title)
        show_error(section, errors, shown)
        fields_grid(section_fields(section), errors, shown, columns=4)

with st.container(border=True):
    st.subheader("Sweep")
    st.toggle(
        "launch a sweep: a grid over strategies and parameters × seeds, as one group", key="launch_sweep"
    )
    if sweep_on:
        c1, c2 = st.columns(2)
        with c1:
            st.multiselect(
                "strategies to compare (each with the parameters above)",
                list(strategies),
                key=widget_key(SWEEP_STRATEGIES_PATH),
            )
            with st.container(key="field-sweep-name"):
                st.text_input("sweep name (the group of its runs)", key=widget_key(SWEEP_NAME_PATH))
                show_error(SWEEP_NAME_PATH, errors, shown)
                # what the runs will be called, before launch (issue 25: the typed name was replaced silently)
                first = [options[0] for options in (check.grid or {}).values()]
                example = client.sweep_run_name(
                    str(values.get("name") or ""),
                    check.sweep_name or "SWEEP",
                    client.combo_label(list(check.grid or {}), first) if first else "setting",
                    (check.seeds or [0])[0],
                )
                st.caption(
                    f"Runs are named after the run name (the sweep name when it is left at "
                    f"`{client.DEFAULT_RUN_NAME}`), their setting and seed, e.g. “{md(example)}”."
                )
        with c2, st.container(key="field-sweep-grid"):
            st.text_area(
                "parameter grid: one `key.path = [values]` per line",
                key=widget_key(SWEEP_GRID_PATH),
                placeholder="strategies.0.alpha = [0.4, 0.8]\noptim.lr = [0.01, 0.001]",
            )
            show_error(SWEEP_GRID_PATH, errors, shown)

tune_section.render(check, engine, access.current_actor(), db.allowed(access.current_actor(), "launch"))

for advice in check.advisories:
    st.warning(advice, icon=":material/lightbulb:")
leftover = {p: m for p, m in errors.items() if p not in shown}
for path, msg in leftover.items():
    st.error(f"{md(path)}: {md(msg)}", icon=":material/error:")

count = check.run_count if check.ok else 0
label = f"Launch {count} run{'s' if count != 1 else ''}" if check.ok else "Launch"
actor = access.current_actor()
may_launch = db.allowed(actor, "launch")
if not may_launch:
    st.info(
        f"Signed in as {md(actor.name)} ({actor.role}): launching runs needs the operator or admin role.",
        icon=":material/lock:",
    )
if may_launch and st.button(label, type="primary", key="launch_button", on_click=_mark_attempted):
    if all_errors:
        st.error(
            f"Nothing was launched: fix the {len(all_errors)} field(s) marked above.", icon=":material/block:"
        )
    else:
        result = submit_checked(check, strategy_names, engine=engine, actor=actor)
        if result.errors:
            st.session_state["launch_submit_errors"] = (repr(values), result.errors)
            st.rerun()
        elif result.failure:
            st.error(f"Nothing was launched: {md(result.failure)}", icon=":material/block:")
        else:
            st.session_state["launched"] = (result.run_ids, result.sweep_id)
            st.session_state.pop("launch_submit_errors", None)

launched = st.session_state.get("launched")
if launched:
    ids, sweep_id = launched
    with st.container(border=True, key="launched-runs"):
        what = f"sweep {sweep_id}: " if sweep_id is not None else ""
        st.success(
            f"Launched {what}{len(ids)} run(s): {', '.join(f'#{i}' for i in ids)}",
            icon=":material/check_circle:",
        )
        cols = st.columns(min(len(ids), 6) + 1)
        for i, rid in enumerate(ids[:6]):
            with cols[i]:
                st.page_link(page_path("live"), label=f"Live #{rid}", query_params={"run": str(rid)})
        with cols[-1]:
            if len(ids) > 1:
                st.page_link(
                    page_path("compare"), label="Compare them", query_params={"runs": ",".join(map(str, ids))}
                )
            else:
                st.page_link(page_path("runs"), label="All runs")
