"""The strategy grid's Markdown (bench/strategy_grid.py): one table per dataset (accuracy,
imbalance degree, step and run time, the paired test against joint, the settings beyond
joint's config), the advisories, the runs not pooled, and the page around them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JOINT = "joint"  # the baseline every strategy is tested against
VERDICT_SHORT = {"not distinguishable from seed noise": "seed noise", "not tested": "not tested"}


def _pct(d: Mapping[str, Any]) -> str:
    if d["mean"] is None:
        return "—"
    if d["std"] is None:
        return f"{100 * d['mean']:.1f}"
    return f"{100 * d['mean']:.1f} ± {100 * d['std']:.1f}"


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _vs(row: Mapping[str, Any]) -> tuple[str, str, str]:
    vs = row["vs_joint"]
    if vs is None:
        return "(baseline)" if row["strategy"] == JOINT else "—", "—", "—"
    verdict = VERDICT_SHORT.get(vs["verdict"], vs["verdict"])
    if vs["diff"] is None:
        return "—", "—", verdict
    diff = f"{100 * vs['diff']:+.1f}"
    lo, hi = vs["diff_ci"]
    if lo is not None and hi is not None:
        diff += f" ({100 * lo:+.1f} to {100 * hi:+.1f})"
    elif vs["test"] is not None:
        diff += " (equal on every seed)"  # stats.diff_interval: no spread and no difference
    if vs["p"] is None:
        return diff, "—", verdict
    return diff, f"{_p(vs['p'])} / {_p(vs['p_holm'])}", verdict


def markdown_table(dataset: str, block: Mapping[str, Any]) -> str:
    mods = block["modalities"]
    head = (
        ["strategy", "n", "fused test acc %"]
        + [f"{m} test acc %" for m in mods]
        + [
            "imbalance degree ×100",
            "step ms",
            "step ÷ joint",
            "run s",
            "Δ fused vs joint, points (95 % CI)",
            "p: paired t / Holm",
            "verdict",
            "settings beyond joint's config",
        ]
    )
    lines = [f"**{dataset}** (group `{block['group']}`)", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for row in block["rows"]:
        deg = row["imbalance_degree"]
        diff, p, verdict = _vs(row)
        cells = (
            [row["strategy"], str(row["n"]), _pct(row["test_acc"])]
            + [_pct(row["test_acc_per_modality"][m]) for m in mods]
            + [
                "—"
                if deg["mean"] is None
                else f"{100 * deg['mean']:.1f}"
                + ("" if deg["std"] is None else f" ± {100 * deg['std']:.1f}"),
                _num(row["step_ms"]["mean"], ".2f"),
                _num(row["step_ratio_to_joint"], ".2f"),
                _num(row["wall_s"]["mean"], ".1f"),
                diff,
                p,
                verdict,
                "; ".join(row["settings"]) or "—",
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    warned = [(row["strategy"], a) for row in block["rows"] for a in row.get("advisories", [])]
    if warned:
        lines.append("Advisories the runs' configs raise:")
        lines += [f"- {strategy}: {text}" for strategy, text in warned]
        lines.append("")
    if block["not_pooled"]:
        lines.append("Runs not pooled (listed, never averaged in):")
        for r in block["not_pooled"]:
            lines.append(f"- #{r['id']} {r['strategy']} seed {r['seed']}: {r['status']}, {r['reason']}")
        lines.append("")
    return "\n".join(lines)


def markdown(doc: Mapping[str, Any]) -> str:
    meta = doc["meta"]
    parts = [
        f"Command: `{meta['command']}`",
        "",
        f"Started {meta['started']}, grid wall time {meta['grid_wall_s']:.0f} s "
        f"({meta['runs']} runs, {meta['workers']} workers); load average at start "
        f"{meta['load_start']}, at end {meta['load_end']}.",
        f"Machine: {meta['machine']}.",
        f"Seeds {meta['seeds']}; epochs: {meta['epochs']}.",
        "",
        "Step time = a run's training seconds ÷ its steps (summary `train.seconds` / `train.steps`: "
        "the training loop's wall time per optimizer step, the hand-off of its metrics to the "
        "store's writer included; evaluation and epoch-start/-end work such as relearn's "
        "k-means or gblending's estimates excluded); ÷ joint = the strategy's mean over seeds "
        "÷ joint's on the same dataset. Run s = claimed → finished (process start-up, evaluation "
        "and epoch work included). Δ and verdict: fused test accuracy against joint over the "
        "same seeds (paired t, then Holm's correction across the strategies of a dataset; "
        "better/worse when the corrected p < 0.05).",
        "",
    ]
    for dataset, block in doc["datasets"].items():
        parts.append(markdown_table(dataset, block))
    if doc.get("not_run"):
        parts.append("Not run (their config is invalid on this dataset):")
        parts += [f"- {r['dataset']} {r['strategy']}: {r['error']}" for r in doc["not_run"]]
        parts.append("")
    return "\n".join(parts)
