"""The Compare page's other tables: one row per run (seed, group, status, retries, the
summary metrics, best values marked), the config diff, and CSV bytes for the downloads.
Plain functions; no Streamlit here."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

import db
from app.labels import run_label
from app.views.compare.grouping import display_names, group
from bml_core.compare import grouping as cg
from bml_core.configpaths import diff_configs
from bml_core.csvsafe import safe_cell

# Summary columns: (column, path in the summary JSON, higher is better)
SUMMARY_COLUMNS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("val acc", ("val", "acc"), True),
    ("test acc", ("test", "acc"), True),
    ("test f1", ("test", "f1"), True),
    ("imbalance degree", ("test", "imbalance_degree"), False),
    ("time (s)", ("train", "seconds"), False),
)


def _dig(node: Any, path: Sequence[str]) -> float | None:
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def modalities_of(runs: Sequence[Any]) -> list[str]:
    """Modalities named in the runs' per-modality accuracies, in first-seen order."""
    out: list[str] = []
    for r in runs:
        summary = r.summary if hasattr(r, "summary") else r.get("summary")
        for split in ("val", "test"):
            per = ((summary or {}).get(split) or {}).get("acc_per_modality") or {}
            out.extend(m for m in per if m not in out)
    return out


def per_run_table(
    grouping: cg.Grouping, names: Mapping[str, str], show_excluded: bool = False
) -> tuple[pd.DataFrame, dict[str, bool]]:
    """One row per run (pooled ones; with `show_excluded` also those left out, marked):
    run, seed, group key, status (and why a run is not pooled, or that it is a retry),
    val and test accuracy fused and per modality, F1, imbalance degree, time. Also
    {column: higher is better} for marking the best."""
    shown = [r for r in grouping.runs if r.included or show_excluded]
    mods = modalities_of([r.record for r in shown])
    rows: list[dict[str, Any]] = []
    higher: dict[str, bool] = {}
    for gr in shown:
        rec = gr.record
        note = list(gr.flags)
        if not gr.included:
            note.insert(0, f"not pooled: {gr.reason}")
        row: dict[str, Any] = {
            "run": rec.id,
            "name": rec.name,
            "seed": rec.seed,
            "group": names.get(gr.label, gr.label),
            "status": rec.status if gr.included else f"✗ {rec.status}",
            "note": "; ".join(note),
        }
        for column, path, better_high in SUMMARY_COLUMNS:
            row[column] = _dig(rec.summary, path)
            higher[column] = better_high
            if column in ("val acc", "test acc"):
                split = path[0]
                for m in mods:
                    name = f"{split} acc {m}"
                    row[name] = _dig(rec.summary, (split, "acc_per_modality", m))
                    higher[name] = True
        row["run group"] = rec.group
        row["group key"] = gr.label
        rows.append(row)
    return pd.DataFrame(rows), higher


def summary_table(runs: Sequence[db.RunDetail]) -> tuple[pd.DataFrame, dict[str, bool]]:
    """The per-run table of the runs as grouped by default (every run shown)."""
    grouping = group(runs)
    return per_run_table(grouping, display_names(grouping, runs), show_excluded=True)


def left_out_rows(frame: pd.DataFrame) -> list[bool]:
    """Per row of `per_run_table`: whether the run is left out of the statistics (marked ✗)."""
    if frame.empty or "status" not in frame:
        return [False] * len(frame)
    return [str(s).startswith("✗") for s in frame["status"]]


def best_rows(
    frame: pd.DataFrame, higher: Mapping[str, bool], skip: Sequence[bool] = ()
) -> dict[str, list[int]]:
    """{column: row positions holding its best value} (ties all marked; empty columns and
    the rows flagged in `skip` left out)."""
    out: dict[str, list[int]] = {}
    for column, better_high in higher.items():
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if skip:
            values = values.where([not s for s in skip])
        if values.notna().sum() == 0:
            continue
        best = values.max() if better_high else values.min()
        out[column] = [i for i, v in enumerate(values) if pd.notna(v) and v == best]
    return out


def diff_table(runs: Sequence[db.RunDetail]) -> pd.DataFrame:
    """Config paths whose values differ between the runs, one column per run; strategy
    parameters named by strategy (`ogm_ge.alpha`, as grouping names them, issue 24), not by
    list position, and `strategies` as the list's label (`ogm_ge+opm`, `joint`)."""
    if len(runs) < 2:
        return pd.DataFrame()
    diff = diff_configs({r.id: r.config for r in runs}, flatten=cg.named_paths)
    rows = []
    for path in sorted(diff, key=lambda p: p != cg.STRATEGIES):  # the strategy first
        values = diff[path]
        row: dict[str, Any] = {"key": path}
        for r in runs:
            row[run_label(r)] = _show(values[r.id]) if r.id in values else "(absent)"
        rows.append(row)
    return pd.DataFrame(rows, columns=["key", *[run_label(r) for r in runs]])


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def to_csv(frame: pd.DataFrame | Sequence[Mapping[str, Any]]) -> bytes:
    """UTF-8 CSV bytes for a download button; text cells and headers that a spreadsheet
    would evaluate (=, +, -, @, tab, CR first) get a leading ' (bml_core.csvsafe)."""
    data = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
    data = data.map(safe_cell).rename(columns=lambda c: safe_cell(str(c)))
    buf = io.StringIO()
    data.to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")
