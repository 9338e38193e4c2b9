"""relearn: Diagnosing and re-learning (Wei, Li, Hu, ECCV 2024; STRATEGIES.md 2.11). Every
`every` epochs (at most `times`), each encoder's features are clustered (k-means, k = C) on
the training part and on a held-out part of the training split; the gap between the two
purities says how much the encoder memorises, and the encoder is softly re-initialised
towards its initial weights in proportion (parameters and BatchNorm buffers), with its
optimizer state reset. Torch-free: parameters and spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from bml_core.schema import StrategyParams, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class RelearnParams(StrategyParams):
    """Diagnosing & re-learning (STRATEGIES.md 2.11)."""

    name: Literal["relearn"] = "relearn"
    every: int = Field(20, ge=1, description="epochs between diagnoses")
    times: int = Field(3, ge=0, description="at most this many re-initialisations")
    lam: float = Field(3.0, ge=0.0, description="alpha_m = tanh(lam * purity gap)")
    form: Literal["official", "ours"] = authors_default(
        "official",
        description="official (GeWu-Lab/Diagnosing_Relearning_ECCV2024@025085e code/ours.py L139-169, "
        "L418-427): re-initialise after epoch e with e % every == 0 and e > 0, parameters only, the "
        "optimizer state kept; ours: after e with (e + 1) % every == 0, parameters and BatchNorm "
        "buffers, the encoder's optimizer state reset",
    )
    heldout_fraction: float = Field(
        0.1, gt=0.0, lt=0.5, description="share of the training split held out (fixed seed; never trained on)"
    )
    summary: ClassVar[str] = (
        "Soft re-initialisation of encoders that memorise (k-means purity gap, ECCV 2024)."
    )


def diagnoses(epochs: int, every: int, times: int, form: str = "official") -> int:
    """Re-initialisations a run of `epochs` epochs makes, never after the last epoch, at most
    `times`: after epoch e when e % every == 0 and e > 0 (official) or (e + 1) % every == 0 (ours)."""
    last = epochs - 2 if form == "official" else epochs - 1  # the last e + (form's offset) allowed
    return min(times, last // every) if last > 0 else 0


def _spread(epochs: int, times: int) -> int:
    """The period that spreads `times` diagnoses over the run, the last `every` epochs before its end."""
    return max(1, epochs // (times + 1))


def _few_diagnoses(cfg: RunConfig, p: StrategyParams) -> str | None:
    if not isinstance(p, RelearnParams) or p.times == 0:
        return None
    epochs = cfg.train.epochs
    n = diagnoses(epochs, p.every, p.times, p.form)
    if n >= p.times:
        return None
    head = (
        f"relearn diagnoses every `every` ({p.every}) epochs, never after the last: {n} of its "
        f"{p.times} re-initialisation(s) happen in {epochs} epoch(s)"
    )
    every = _spread(epochs, p.times)
    best = diagnoses(epochs, every, p.times, p.form)
    if best <= n:
        return f"{head}; no period gives more in a run this short."
    return f"{head}; every: {every} gives {best}."


def _fit_every(cfg: RunConfig, p: StrategyParams) -> dict[str, Any]:
    """The period the advisory above suggests (all `times` diagnoses spread over the run when
    they fit); {} when the run's own period already fits them or nothing would do better."""
    if not isinstance(p, RelearnParams) or _few_diagnoses(cfg, p) is None:
        return {}
    every = _spread(cfg.train.epochs, p.times)
    n = cfg.train.epochs
    better = diagnoses(n, every, p.times, p.form) > diagnoses(n, p.every, p.times, p.form)
    return {"every": every} if better else {}


SPEC = StrategySpec(
    name="relearn",
    description="Every `every` epochs: k-means purity gap (train part vs held-out part) per encoder; "
    "theta <- alpha theta_0 + (1 - alpha) theta with alpha = tanh(lam gap), parameters and BatchNorm "
    "buffers; optimizer state reset.",
    params=RelearnParams,
    impl="bml_core.strategies.relearn.impl:Relearn",
    reference="Wei, Li, Hu, Diagnosing and Re-learning for Balanced Multimodal Learning, ECCV 2024 "
    "(arXiv 2407.09705); github.com/GeWu-Lab/Diagnosing_Relearning_ECCV2024",
    metrics=(
        MetricFamily(
            "relearn/alpha",
            "Re-initialisation strength alpha per encoder",
            y_axis="alpha",
            description="of the last diagnosis (0 before the first); each re-initialisation is also a run event",
        ),
        MetricFamily(
            "relearn/purity_gap",
            "k-means purity gap |train - held-out| per encoder (last diagnosis)",
            y_axis="gap",
        ),
    ),
    advisories=(_few_diagnoses,),
    epoch_fit=_fit_every,
    cost="side_training",
    cost_note="per diagnosis: one feature pass over the training split and k-means per modality (scikit-learn)",
    capabilities=frozenset({"needs_features", "needs_heldout", "needs_init_snapshot"}),
)
