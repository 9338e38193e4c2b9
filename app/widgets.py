"""Streamlit widgets for the generated form fields: one widget per `FieldSpec`, its value
kept in session state under `f:<path>`, and the field's error shown right under it inside
a container keyed `field-<path>` (so a browser test can find the message next to its field)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from app.form_fields import FieldSpec
from app.text import md

WIDGET_PREFIX = "f:"
VIEWS_DIR = Path(__file__).resolve().parent / "views"


def widget_key(path: str) -> str:
    return WIDGET_PREFIX + path


def container_key(path: str) -> str:
    return "field-" + re.sub(r"[^A-Za-z0-9_-]", "-", path)


def ensure_defaults(values: Mapping[str, Any]) -> None:
    """Put initial values in session state for widgets that have none yet."""
    for path, value in values.items():
        st.session_state.setdefault(widget_key(path), value)


def widget_values(paths: Sequence[str]) -> dict[str, Any]:
    """Current widget values by path (only those in session state)."""
    return {p: st.session_state[widget_key(p)] for p in paths if widget_key(p) in st.session_state}


def show_error(path: str, errors: Mapping[str, str], shown: set[str]) -> None:
    if path in errors:
        st.error(f"{md(path)}: {md(errors[path])}", icon=":material/error:")
        shown.add(path)


def field_widget(
    spec: FieldSpec,
    errors: Mapping[str, str],
    shown: set[str],
    *,
    options: Sequence[Any] | None = None,
    format_func: Any = None,
    label: str | None = None,
    on_change: Any = None,
) -> Any:
    """The widget of one field, with its error (if any) right under it."""
    key = widget_key(spec.path)
    text = label or spec.label
    with st.container(key=container_key(spec.path)):
        if spec.kind == "choice":
            choices = list(options if options is not None else spec.options)
            if st.session_state.get(key) not in choices and choices:
                st.session_state[key] = choices[0]
            if format_func is None and spec.authors is not None:
                format_func = spec.option_label  # the authors' value reads `official (authors')`
            kwargs = {"format_func": format_func} if format_func else {}
            value = st.selectbox(
                text, choices, key=key, help=spec.help or None, on_change=on_change, **kwargs
            )
        elif spec.kind == "bool":
            value = st.checkbox(text, key=key, help=spec.help or None)
        elif spec.kind == "int":
            value = st.number_input(text, step=1, key=key, help=spec.help or None, placeholder="null")
        elif spec.kind == "float":
            value = st.number_input(text, step=None, format="%g", key=key, help=spec.help or None)
        elif spec.kind == "mapping":
            value = st.text_input(text, key=key, help=(spec.help + " (YAML)").strip(), placeholder="{}")
        elif spec.kind == "list":
            value = st.text_input(text, key=key, help=(spec.help + " (comma-separated)").strip())
        else:
            value = st.text_input(
                text, key=key, help=spec.help or None, placeholder="null" if spec.optional else ""
            )
        show_error(spec.path, errors, shown)
        if spec.kind == "mapping":  # errors inside the mapping: `dataset.params.views`
            for path in sorted(p for p in errors if p.startswith(spec.path + ".")):
                show_error(path, errors, shown)
    return value


def fields_grid(
    specs: Sequence[FieldSpec], errors: Mapping[str, str], shown: set[str], columns: int = 3
) -> None:
    """Several fields laid out in columns."""
    cols = st.columns(columns)
    for i, spec in enumerate(specs):
        with cols[i % columns]:
            field_widget(spec, errors, shown)


def group_picker(known_groups: Mapping[str, int], default: Sequence[str], key: str) -> list[str]:
    """The groups multiselect of Compare and Report: each stored group with its run count."""
    return st.multiselect(
        "groups",
        list(known_groups),
        default=default,
        format_func=lambda g: f"{g} ({known_groups[g]} run{'s' if known_groups[g] != 1 else ''})",
        key=key,
        placeholder="pick one or more groups",
    )


def page_path(name: str) -> Path:
    """A page script, for st.page_link / st.switch_page."""
    return VIEWS_DIR / name / "page.py"
