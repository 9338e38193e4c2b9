"""The comparison report: from grouped runs (and their group curves) to one document
(`build_report`, plain JSON-ready data holding every number of the tables), rendered as a
self-contained HTML page (Plotly's JS embedded once, no network, printable), JSON or
Markdown. The data comes from the store through `db.runs_for_report` and
`db.group_curves`; nothing here touches the store, torch or streamlit:

    sel = db.runs_for_report(engine, groups=["g"])
    grouping = group_runs(sel.runs)
    doc = build_report(grouping, db.group_curves(engine, grouping.included_ids()))
    html = render_html(doc)
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bml_core.compare import stats
from bml_core.compare.fmt import format_p, p_clause
from bml_core.compare.grouping import Grouping
from bml_core.compare.published import UNIMODAL_METHODS, published_for
from bml_core.compare.results import PRIMARY, TEST_SELECTED, GroupResult, Results, results
from bml_core.finitejson import finite_json

SCHEMA = "bml.report/1"
FORMATS = ("html", "json", "md")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
TEST_RULE = (
    "fused test accuracy of each group against the baseline: paired t-test over matching seeds "
    "(every seed once on both sides), else Welch's t-test; p-values Holm-corrected across the "
    "compared groups; 'better'/'worse' when the corrected p < {alpha:g}, else 'not distinguishable "
    "from seed noise'. Intervals: {conf:g} % t interval of the mean, percentile bootstrap "
    "(10,000 resamples, seeded) from 10 seeds on; one seed gives no interval."
)

PUBLISHED_NOTE = (
    "As each source reports them (%, with their protocol and backbone): for calibration, not a "
    "like-for-like comparison unless the protocol matches. 'ours' is the checkpoint selected on "
    "validation; the official codes report the best epoch on test, shown as 'ours, best epoch on "
    "test' when the runs recorded it."
)


def _curve(agg: Any) -> dict[str, Any]:
    def get(name: str) -> list[Any]:
        value = agg.get(name) if isinstance(agg, Mapping) else getattr(agg, name)
        return list(value or [])

    return {
        "steps": get("steps"),
        "mean": get("means"),
        "std": get("stds"),
        "n": get("counts"),
    }


def _published(res: Results, datasets: Sequence[str]) -> dict[str, Any] | None:
    """Published rows for the study's dataset (one dataset only): the methods we ran, with
    our matching group beside them, and the sources' uni-modal baselines."""
    if len(datasets) != 1:
        return None
    rows = published_for(datasets[0])
    if not rows:
        return None
    ours: dict[str, GroupResult] = {}
    for row in res.rows:
        if row.n and row.strategy not in ours:
            ours[row.strategy] = row
    out = []
    for p in rows:
        if p.strategy not in ours and p.method not in UNIMODAL_METHODS:
            continue
        mine = ours.get(p.strategy) if p.strategy else None
        acc = mine.metrics[PRIMARY] if mine else None
        on_test = mine.metrics.get(TEST_SELECTED) if mine else None
        out.append(
            {
                **p.to_dict(),
                "ours_group": mine.label if mine else None,
                "ours_acc_pct": acc.mean * 100 if acc else None,
                "ours_test_selected_pct": on_test.mean * 100 if on_test and on_test.n else None,
                "ours_n": acc.n if acc else None,
            }
        )
    return {"dataset": datasets[0], "rows": out}


def build_report(
    grouping: Grouping,
    curves: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    baseline: str | None = None,
    title: str | None = None,
    selection: Mapping[str, Any] | None = None,
    generated_at: datetime | None = None,
    alpha: float = stats.significance_level,
) -> dict[str, Any]:
    """The report as plain data: groups with every metric (n, mean, std, interval), the
    test against the baseline, the runs (pooled and excluded, with why), mean ± std curves
    per group, and the published numbers when the dataset has some."""
    res = results(grouping, baseline=baseline, alpha=alpha)
    datasets = sorted({str(r.record.config.get("dataset", {}).get("name", "?")) for r in grouping.runs})
    runs = []
    for gr in grouping.runs:
        row = gr.to_dict()
        row["metrics"] = {m.id: m.value(gr.record) for m in res.metrics}
        runs.append(row)
    groups_asked = list((selection or {}).get("groups", []))
    doc = {
        "schema": SCHEMA,
        "title": title or ("Comparison: " + (", ".join(groups_asked) or f"{len(runs)} runs")),
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "selection": dict(selection or {}),
        "datasets": datasets,
        "group_by": {"paths": grouping.by, "auto": grouping.auto},
        "baseline": res.baseline,
        "metric": PRIMARY,
        "alpha": alpha,
        "confidence": res.confidence,
        "test_rule": TEST_RULE.format(alpha=alpha, conf=res.confidence * 100),
        "modalities": res.modalities,
        "columns": [
            {"id": m.id, "title": m.title, "unit": m.unit, "higher_is_better": m.higher_is_better}
            for m in res.metrics
        ],
        "groups": [r.to_dict() for r in res.rows],
        "runs": runs,
        "excluded": [r.to_dict() for r in grouping.excluded],
        "curves": {
            label: {key: _curve(agg) for key, agg in sorted(per_key.items())}
            for label, per_key in (curves or {}).items()
        },
        "published": _published(res, datasets),
    }
    return finite_json(doc)


# --------------------------------------------------------------------------- text formats


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}"


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "fraction":
        return pct(value)
    if unit == "ms":
        return f"{value:.1f}"
    if unit == "s":
        return f"{value:.1f}"
    return f"{value:.4f}"


def describe_cell(d: Mapping[str, Any], unit: str, interval: bool = True) -> str:
    """`72.00 ± 2.00 [67.03, 76.97]` (fractions shown as %); `72.00 (n = 1, no interval)`."""
    if not d or d.get("n", 0) == 0:
        return "–"
    mean = _num(d.get("mean"), unit)
    if d["n"] == 1:
        return f"{mean} (n = 1, no interval)"
    text = f"{mean} ± {_num(d.get('std'), unit)}"
    if interval and d.get("ci_low") is not None:
        text += f" [{_num(d['ci_low'], unit)}, {_num(d['ci_high'], unit)}]"
    return text


def _diff_cell(vs: Mapping[str, Any] | None) -> str:
    if not vs or vs.get("diff") is None:
        return "–"
    return f"{vs['diff'] * 100:+.2f} pp"


def _p(value: float | None) -> str:
    return format_p(value, missing="–")


def _verdict(group: Mapping[str, Any]) -> str:
    if group.get("is_baseline"):
        return "baseline"
    vs = group.get("vs_baseline")
    if not vs:
        return "–"
    if vs.get("verdict") == stats.NOT_TESTED:
        return f"not tested ({vs.get('note') or 'too few seeds'})"
    return str(vs["verdict"])


def _unit_suffix(unit: str) -> str:
    return {"fraction": " (%)", "s": " (s)", "ms": " (ms)"}.get(unit, "")


def headline(doc: Mapping[str, Any]) -> list[str]:
    """One line per group: who wins against the baseline, by how much, beyond noise or not."""
    lines = []
    base = doc.get("baseline")
    for g in doc["groups"]:
        acc = g["metrics"].get(PRIMARY, {})
        if not g["n"]:
            lines.append(f"{g['label']}: no finished run ({len(g['excluded'])} excluded, see below)")
            continue
        head = f"{g['label']}: test accuracy {describe_cell(acc, 'fraction')} % (n = {g['n']})"
        if g.get("is_baseline"):
            lines.append(head + " — baseline")
        elif g.get("vs_baseline"):
            vs = g["vs_baseline"]
            test = (
                f"{vs['test']}, Holm {p_clause(vs.get('p_holm'), missing='–')}"
                if vs.get("test")
                else "no test"
            )
            lines.append(f"{head}; {_diff_cell(vs)} vs {base} ({test}): {_verdict(g)}")
        else:
            lines.append(head)
    return lines


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(c: str) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _results_rows(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "group",
        "n",
        "seeds",
        "test acc (%) mean ± std [95 % CI]",
        "Δ vs baseline",
        "test",
        "p",
        "p (Holm)",
        "verdict",
    ]
    rows = []
    for g in doc["groups"]:
        vs = g.get("vs_baseline") or {}
        rows.append(
            [
                g["label"],
                str(g["n"]),
                ", ".join(str(s) for s in g["seeds"]) or "–",
                describe_cell(g["metrics"].get(PRIMARY, {}), "fraction"),
                "–" if g.get("is_baseline") else _diff_cell(vs),
                vs.get("test") or "–",
                _p(vs.get("p")),
                _p(vs.get("p_holm")),
                _verdict(g),
            ]
        )
    return header, rows


def _metric_rows(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in doc["columns"] if c["id"] != PRIMARY]
    header = ["group", *(c["title"] + _unit_suffix(c["unit"]) for c in cols)]
    rows = [
        [g["label"], *(describe_cell(g["metrics"].get(c["id"], {}), c["unit"], interval=False) for c in cols)]
        for g in doc["groups"]
    ]
    return header, rows


def _published_rows(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    published = (doc.get("published") or {}).get("rows", [])
    on_test = any(p.get("ours_test_selected_pct") is not None for p in published)
    header = ["method", "published (%)", "ours (%)"]
    header += ["ours, best epoch on test (%)"] if on_test else []
    header += ["our group", "source", "protocol", "backbone"]
    rows = []
    for p in published:
        ours = "–" if p.get("ours_acc_pct") is None else f"{p['ours_acc_pct']:.2f} (n = {p['ours_n']})"
        extra = (
            []
            if not on_test
            else ["–" if p.get("ours_test_selected_pct") is None else f"{p['ours_test_selected_pct']:.2f}"]
        )
        protocol = p["protocol"] + (f" — {p['note']}" if p.get("note") else "")
        rows.append(
            [
                p["method"],
                f"{p['accuracy_pct']:.2f}",
                ours,
                *extra,
                p.get("ours_group") or "–",
                p["source"],
                protocol,
                p["backbone"],
            ]
        )
    return header, rows


def _run_rows(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "name", "group key", "seed", "status", "try", "test acc (%)", "pooled", "note"]
    rows = []
    for r in doc["runs"]:
        note = "; ".join([*(r.get("flags") or []), *([r["reason"]] if r.get("reason") else [])])
        rows.append(
            [
                f"#{r['id']}",
                r["name"],
                r["label"],
                str(r["seed"]),
                r["status"],
                str(r["attempt"]),
                pct(r["metrics"].get(PRIMARY)),
                "yes" if r["included"] else "no",
                note or "",
            ]
        )
    return header, rows


def render_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(finite_json(doc), indent=2, allow_nan=False) + "\n"


def render_markdown(doc: Mapping[str, Any]) -> str:
    parts = [f"# {doc['title']}", ""]
    parts.append(
        f"Generated {doc['generated_at']} · dataset {', '.join(doc['datasets']) or '?'} · grouped by "
        f"{', '.join(doc['group_by']['paths']) or '(nothing differs)'} · baseline {doc.get('baseline') or '–'}"
    )
    parts += ["", *(f"- {line}" for line in headline(doc)), ""]
    parts += ["## Results", "", _md_table(*_results_rows(doc)), "", f"_{doc['test_rule']}_", ""]
    parts += ["## Other metrics (mean ± std over seeds)", "", _md_table(*_metric_rows(doc)), ""]
    if doc.get("published"):
        parts += [
            f"## Published numbers ({doc['published']['dataset']})",
            "",
            _md_table(*_published_rows(doc)),
            "",
            f"_{PUBLISHED_NOTE}_",
            "",
        ]
    if doc["excluded"]:
        parts += ["## Excluded runs", ""]
        parts += [
            f"- #{r['id']} {r['name']} ({r['label']}, seed {r['seed']}): {r['reason']}"
            for r in doc["excluded"]
        ]
        parts.append("")
    parts += ["## Runs", "", _md_table(*_run_rows(doc)), ""]
    parts.append(
        "Curves (mean ± std of ρ and per-modality accuracy per group) are in the HTML and JSON reports."
    )
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- HTML


def _figure_curves(doc: Mapping[str, Any], key: str, title: str, y_title: str) -> dict[str, Any] | None:
    data: list[dict[str, Any]] = []
    for i, (label, per_key) in enumerate(doc["curves"].items()):
        c = per_key.get(key)
        if not c or not c["steps"]:
            continue
        color = PALETTE[i % len(PALETTE)]
        mean = [m for m in c["mean"]]
        std = [s if s is not None else 0.0 for s in c["std"]]
        upper = [None if m is None else m + s for m, s in zip(mean, std, strict=True)]
        lower = [None if m is None else m - s for m, s in zip(mean, std, strict=True)]
        data.append(
            {
                "x": c["steps"] + c["steps"][::-1],
                "y": upper + lower[::-1],
                "fill": "toself",
                "fillcolor": color,
                "opacity": 0.18,
                "line": {"width": 0},
                "hoverinfo": "skip",
                "showlegend": False,
                "legendgroup": label,
                "type": "scatter",
                "mode": "lines",
                "name": f"{label} ± std",
            }
        )
        data.append(
            {
                "x": c["steps"],
                "y": mean,
                "type": "scatter",
                "mode": "lines",
                "name": f"{label} (n={max(c['n'] or [0])})",
                "legendgroup": label,
                "line": {"color": color, "width": 2},
            }
        )
    if not data:
        return None
    return {"data": data, "layout": _layout(title, "step", y_title)}


def _layout(title: str, x_title: str, y_title: str) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0, "font": {"size": 15}},
        "xaxis": {"title": {"text": x_title}, "automargin": True},
        "yaxis": {"title": {"text": y_title}, "automargin": True},
        "legend": {"orientation": "h", "y": -0.25, "x": 0, "yanchor": "top"},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        "height": 380,
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
    }


def _figure_accuracy(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    labels, means, lo, hi, colors = [], [], [], [], []
    for i, g in enumerate(doc["groups"]):
        d = g["metrics"].get(PRIMARY) or {}
        if not d.get("n"):
            continue
        labels.append(f"{g['label']} (n={g['n']})")
        means.append(d["mean"] * 100)
        lo.append(0 if d.get("ci_low") is None else (d["mean"] - d["ci_low"]) * 100)
        hi.append(0 if d.get("ci_high") is None else (d["ci_high"] - d["mean"]) * 100)
        colors.append(PALETTE[i % len(PALETTE)])
    if not labels:
        return None
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": means,
        "y": labels,
        "marker": {"size": 11, "color": colors},
        "error_x": {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "thickness": 2},
        "name": "mean and 95 % interval",
        "showlegend": False,
    }
    layout = _layout("Fused test accuracy: mean and 95 % interval over seeds", "test accuracy (%)", "")
    layout["height"] = 120 + 45 * len(labels)
    layout["yaxis"]["autorange"] = "reversed"
    return {"data": [trace], "layout": layout}


def figures(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(section, Plotly figure) pairs: accuracy with intervals, ρ per modality, accuracy curves."""
    out: list[tuple[str, dict[str, Any]]] = []
    acc = _figure_accuracy(doc)
    if acc:
        out.append(("results", acc))
    keys = sorted({k for per in doc["curves"].values() for k in per})
    for key in (k for k in keys if k.startswith("imbalance/ratio/")):
        m = key.rsplit("/", 1)[-1]
        fig = _figure_curves(doc, key, f"Discrepancy ratio ρ of {m} (mean ± std over seeds)", f"ρ {m}")
        if fig:
            out.append(("rho", fig))
    for key in (k for k in keys if k == "val/acc" or k.startswith("val/acc/")):
        what = "fused" if key == "val/acc" else key.rsplit("/", 1)[-1]
        fig = _figure_curves(doc, key, f"Validation accuracy, {what} (mean ± std over seeds)", "accuracy")
        if fig:
            out.append(("acc", fig))
    return out


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;
color:#1b1b1b;padding:0 16px;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555}.rule{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em;width:100%}
th,td{border:1px solid #ccc;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap}
.better{color:#0a7a2f;font-weight:600}.worse{color:#b3261e;font-weight:600}.noise{color:#555}
.plot{width:100%;min-height:300px;margin:.5em 0}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(480px,100%),1fr));gap:12px}
ul.headline li{margin:.2em 0}
@media print{body{max-width:none;margin:0}.plot{break-inside:avoid;page-break-inside:avoid}
table{break-inside:auto}tr{break-inside:avoid}h2{break-after:avoid}.grid{display:block}}
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict_class(g: Mapping[str, Any]) -> str:
    v = (g.get("vs_baseline") or {}).get("verdict")
    return {stats.BETTER: "better", stats.WORSE: "worse", stats.NOISE: "noise"}.get(str(v), "")


def _js(value: Any) -> str:
    """JSON for inside a <script> element (no `</` that could close it)."""
    return json.dumps(finite_json(value)).replace("</", "<\\/")


def plotly_js() -> str:
    """Plotly's JS bundle from the installed plotly package (no network)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def render_html(doc: Mapping[str, Any], plotly_bundle: str | None = None) -> str:
    """One self-contained page: tables, charts (Plotly's JS inlined once), print CSS."""
    e = html.escape
    figs = figures(doc)
    plots: dict[str, list[str]] = {"results": [], "rho": [], "acc": []}
    scripts = []
    for i, (section, fig) in enumerate(figs):
        div = f"plot-{i}"
        plots[section].append(f'<div class="plot" id="{div}"></div>')
        scripts.append(
            f"Plotly.newPlot({_js(div)}, {_js(fig['data'])}, {_js(fig['layout'])}, "
            "{displaylogo: false, responsive: true});"
        )
    body = [f"<h1>{e(doc['title'])}</h1>"]
    body.append(
        f"<p class='meta'>Generated {e(doc['generated_at'])} · dataset {e(', '.join(doc['datasets']) or '?')} · "
        f"grouped by <b>{e(', '.join(doc['group_by']['paths']) or '(nothing differs)')}</b> "
        f"({'found from the configs' if doc['group_by']['auto'] else 'chosen'}) · "
        f"baseline <b>{e(doc.get('baseline') or '–')}</b> · {len(doc['runs'])} runs, "
        f"{len(doc['excluded'])} excluded</p>"
    )
    body.append("<ul class='headline'>" + "".join(f"<li>{e(x)}</li>" for x in headline(doc)) + "</ul>")
    header, rows = _results_rows(doc)
    body += ["<h2>Results</h2>", _html_table(header, rows, [_verdict_class(g) for g in doc["groups"]])]
    body.append(f"<p class='rule'>{e(doc['test_rule'])}</p>")
    body += plots["results"]
    body += ["<h2>Other metrics (mean ± std over seeds)</h2>", _html_table(*_metric_rows(doc))]
    if plots["rho"]:
        body += [
            "<h2>Discrepancy ratio ρ per modality</h2>",
            f"<div class='grid'>{''.join(plots['rho'])}</div>",
        ]
    if plots["acc"]:
        body += [
            "<h2>Validation accuracy per modality</h2>",
            f"<div class='grid'>{''.join(plots['acc'])}</div>",
        ]
    if doc.get("published"):
        body += [
            f"<h2>Published numbers ({e(doc['published']['dataset'])})</h2>",
            f"<p class='rule'>{e(PUBLISHED_NOTE)}</p>",
            _html_table(*_published_rows(doc)),
        ]
    if doc["excluded"]:
        body.append("<h2>Excluded runs</h2><ul>")
        body += [
            f"<li>#{r['id']} {e(r['name'])} ({e(r['label'])}, seed {r['seed']}, {e(r['status'])}): {e(r['reason'] or '')}</li>"
            for r in doc["excluded"]
        ]
        body.append("</ul>")
    body += ["<h2>Runs</h2>", _html_table(*_run_rows(doc))]
    bundle = plotly_js() if plotly_bundle is None else plotly_bundle
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{e(doc['title'])}</title>"
        f"<style>{CSS}</style><script>{bundle}</script></head><body>"
        + "\n".join(body)
        + f"<script>{''.join(scripts)}</script></body></html>\n"
    )


def render(doc: Mapping[str, Any], fmt: str) -> str:
    """The document in one of FORMATS."""
    if fmt == "html":
        return render_html(doc)
    if fmt == "json":
        return render_json(doc)
    if fmt == "md":
        return render_markdown(doc)
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")
