"""The advice rules, all in one place (documented in docs/ALERTS.md): what to try when a
detector fires, as strategy configs from the catalogue, and the function that applies an
advice to a run config (the dashboard's "Try this": `/launch?from=RUN_ID&advice=ALERT_ID`).

An advice is `{"text": str, "strategies": [strategy config, ...], "overrides": {dotted
path: value}}`. Each entry of `strategies` is one alternative; applying it replaces the
run's strategy of the same name (or adds it), keeps the others, drops `joint`, and
applies `overrides`. Torch-free."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from bml_core.configpaths import apply_override

# the catalogue's values these rules suggest (METHODS.md section 7 presets)
OPM_DEFAULT: dict[str, Any] = {"name": "opm", "q_base": 0.5, "lam": 0.5, "p_exe": 0.7}
OGM_GE_DEFAULT: dict[str, Any] = {"name": "ogm_ge", "alpha": 0.8}
MODULATING = ("opm", "ogm", "ogm_ge")
KEY_PARAMS = ("q_base", "lam", "p_exe", "alpha")  # shown in the advice text


def _fmt(strategy: Mapping[str, Any]) -> str:
    label = {"opm": "OPM", "ogm": "OGM", "ogm_ge": "OGM-GE"}.get(str(strategy["name"]), str(strategy["name"]))
    params = " ".join(
        f"{k} {float(strategy[k]):g}" for k in KEY_PARAMS if isinstance(strategy.get(k), int | float)
    )
    return f"{label} {params}".strip()


def _by_name(strategies: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(s["name"]): dict(s) for s in strategies if isinstance(s, Mapping) and "name" in s}


def _rebalance(current: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Stronger balancing than what the run used (rule R1)."""
    out: list[dict[str, Any]] = []
    if "opm" in current:
        q = float(current["opm"].get("q_base", 0.5))
        out.append({**current["opm"], "q_base": round(min(1.0, q + 0.2), 3)})
    else:
        out.append(dict(OPM_DEFAULT))
    for name in ("ogm_ge", "ogm"):
        if name in current:
            alpha = float(current[name].get("alpha", 0.8))
            out.append({**current[name], "alpha": round(alpha * 1.5, 3)})
            break
    else:
        out.append(dict(OGM_GE_DEFAULT))
    return out


def advise(
    detector: str,
    modality: str | None,
    evidence: Mapping[str, Any],
    run_strategies: Sequence[Mapping[str, Any]] = (),
    lr: float | None = None,
    known: set[str] | None = None,
) -> dict[str, Any]:
    """The advice for one finding (rules R1-R5 of docs/ALERTS.md)."""
    current = _by_name(run_strategies)
    strategies: list[dict[str, Any]] = []
    overrides: dict[str, Any] = {}
    text = ""
    if detector in ("dominance", "under_optimised", "suppressed_gradients"):
        # R1: a modality is left behind -> modulate the dominant one (OPM, OGM-GE), stronger
        # than the run already does
        strategies = _rebalance(current)
        text = "try " + ", or ".join(_fmt(s) for s in strategies)
    elif detector == "saturation":
        # R2: the strategy is at its bound -> add the other modulation family
        if evidence.get("strategy") == "ogm":
            strategies = [dict(OPM_DEFAULT)]
            text = f"OGM is at its floor on {modality}: add {_fmt(OPM_DEFAULT)} (OPM + OGM-GE compose)"
        else:
            strategies = [dict(OGM_GE_DEFAULT)]
            text = f"OPM is at its bound on {modality}: add {_fmt(OGM_GE_DEFAULT)} (OPM + OGM-GE compose)"
    elif detector == "divergence":
        # R3: non-finite loss -> a tenth of the learning rate
        if lr is not None:
            overrides["optim.lr"] = lr / 10
            text = f"lower the learning rate to {lr / 10:g} (optim.lr), or use train.amp=off"
        else:
            text = "lower the learning rate (optim.lr), or use train.amp=off"
    elif detector == "overfitting":
        # R4: growing train-val gap -> weight decay up; OPM's drop also regularises
        strategies = [] if "opm" in current else [dict(OPM_DEFAULT)]
        text = "add weight decay (optim.weight_decay) or stop earlier"
        if strategies:
            text += f"; {_fmt(OPM_DEFAULT)} also regularises"
    # R5: only strategies the catalogue knows
    if known is not None:
        strategies = [s for s in strategies if s["name"] in known]
    return {"text": text, "strategies": strategies, "overrides": overrides}


def apply_advice(raw: Mapping[str, Any], advice: Mapping[str, Any], choice: int = 0) -> dict[str, Any]:
    """A copy of the run config `raw` with advice alternative `choice` applied: that
    strategy replaces the run's strategy of the same name (or joins the list), `joint`
    is dropped, the other strategies are kept; `overrides` are set (dotted paths).
    IndexError when there is no such alternative."""
    out = copy.deepcopy(dict(raw))
    options = list(advice.get("strategies") or [])
    if options:
        chosen = dict(options[choice])
        kept = []
        for s in out.get("strategies") or []:
            name = s if isinstance(s, str) else s.get("name")
            if name in ("joint", chosen["name"]):
                continue
            kept.append(s)
        out["strategies"] = [*kept, chosen]
    elif choice:
        raise IndexError(f"the advice has no alternative {choice}")
    for path, value in (advice.get("overrides") or {}).items():
        apply_override(out, str(path).split("."), value)
    return out


def headline(
    detector: str, modality: str | None, step: int, start_step: int, evidence: Mapping[str, Any]
) -> str:
    """The one-line message of an alert (what happened, since when, the key number)."""
    if detector == "dominance":
        return (
            f"{modality} under-optimised since step {start_step:,} "
            f"(ρ_{evidence.get('dominant')} {float(evidence.get('rho_window_mean', 0.0)):.2f} "
            f"over {evidence.get('window')} steps)"
        )
    if detector == "under_optimised":
        if "linear_probe_acc" in evidence:
            return (
                f"{modality} under-optimised: acc {float(evidence['acc']):.3f} vs "
                f"{float(evidence['linear_probe_acc']):.3f} alone (linear probe)"
            )
        return (
            f"{modality} under-optimised since step {start_step:,}: val acc flat "
            f"({float(evidence['gain']):+.3f} over {evidence['evals']} evals) while fused gained "
            f"{float(evidence['fused_gain']):+.3f}"
        )
    if detector == "suppressed_gradients":
        return (
            f"{modality} gradients suppressed since step {start_step:,} "
            f"({float(evidence.get('ratio_window_mean', 0.0)):.3f} of the others' norm)"
        )
    if detector == "saturation":
        strat = str(evidence.get("strategy", "")).upper()
        return f"{strat} saturated on {modality} since step {start_step:,} (at its bound {evidence.get('bound'):g})"
    if detector == "divergence":
        keys = ", ".join(sorted(evidence.get("non_finite", {})))
        return f"diverged at step {step:,}: non-finite {keys}"
    if detector == "overfitting":
        gaps = evidence.get("gaps", [])
        return f"overfitting since step {start_step:,}: train - val gap grew to {float(gaps[-1]):.3f}"
    return f"{detector} at step {step:,}"
