"""reconboost: ReconBoost, boosting that alternates modalities (Hua, Zhang, Xu, Tang, ICML
2024; STRATEGIES.md 2.10). Needs `model.head: shared`. Stages rotate the modalities; in each
stage phase 1 trains one modality (the others frozen) on a per-sample loss weighted by how
badly the other modalities' ensemble does, phase 2 trains everything on the ensemble's
cross-entropy; the optimizer state is fresh at every phase. Torch-free: parameters and spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from bml_core.dataspecs import get_dataset_spec
from bml_core.schema import StrategyParams, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class ReconBoostParams(StrategyParams):
    """ReconBoost (STRATEGIES.md 2.10)."""

    name: Literal["reconboost"] = "reconboost"
    stage_epochs: int = Field(4, ge=1, description="phase 1 epochs per stage (one modality trained)")
    correct_epochs: int = Field(4, ge=0, description="phase 2 epochs per stage (everything, on CE(F))")
    w1: float = Field(5.0, gt=0.0, description="per-sample weight w1 - w2 q_{-m}(y)")
    w2: float = Field(1.0, ge=0.0, description="per-sample weight w1 - w2 q_{-m}(y)")
    class_mean: bool = authors_default(
        True,
        description="phase-1 loss averaged over the C classes as well (the authors' code, "
        "huacong/ReconBoost train.py L339-340: `(target * log_softmax).mean(-1)`, i.e. CE / C); "
        "false = our earlier reading (C times larger)",
    )
    head: Literal["mlp", "linear"] = authors_default(
        "mlp",
        description="the shared head: mlp = the authors' Head d -> head_hidden -> ReLU -> C "
        "(huacong/ReconBoost@14ab57a models/dynamic_net.py L5-15, 512 -> 256 -> C; the MSA data "
        "set alone uses one Linear, L17-23); linear = one Linear d -> C (our earlier reading)",
    )
    head_hidden: int = authors_default(256, ge=1, description="hidden width of the mlp head (authors' 256)")
    summary: ClassVar[str] = "Alternating boosting stages per modality with global correction (ICML 2024)."


def _weights_positive(cfg: RunConfig, p: StrategyParams) -> tuple[str, str] | None:
    if isinstance(p, ReconBoostParams) and p.w2 >= p.w1:
        return (
            "strategies",
            f"reconboost needs w1 > w2 (now {p.w1} and {p.w2}) so every sample weight w1 - w2 q > 0",
        )
    return None


def _modality_count(cfg: RunConfig) -> int:
    """M from the configured encoders, else from the dataset's spec (0 when only its file knows)."""
    if cfg.model.encoders:
        return len(cfg.model.encoders)
    spec = get_dataset_spec(cfg.dataset.name)
    if spec is None:
        return 0
    try:
        return len(spec.modalities(spec.params(**cfg.dataset.params)))
    except Exception:  # noqa: BLE001 - parameters the config check reports on its own
        return 0


def _few_stages(cfg: RunConfig, p: StrategyParams) -> str | None:
    if not isinstance(p, ReconBoostParams):
        return None
    m, cycle, epochs = _modality_count(cfg), p.stage_epochs + p.correct_epochs, cfg.train.epochs
    if m < 2 or epochs >= m * cycle:
        return None
    head = (
        f"reconboost trains one modality per stage of stage_epochs + correct_epochs ({cycle}) epochs: "
        f"{epochs} epoch(s) complete {epochs // cycle} of the {m} stages one round over the modalities needs"
    )
    per = max(1, epochs // (2 * m))
    if epochs // (2 * per) <= epochs // cycle:
        return f"{head}; no stage length gives more in a run this short."
    return f"{head}; stage_epochs = correct_epochs = {per} complete {min(m, epochs // (2 * per))}."


def _fit_stages(cfg: RunConfig, p: StrategyParams) -> dict[str, Any]:
    """Stages short enough for one round over the modalities (what the advisory suggests);
    {} when the run's own stages fit or nothing would complete more of them."""
    if not isinstance(p, ReconBoostParams) or _few_stages(cfg, p) is None:
        return {}
    epochs = cfg.train.epochs
    per = max(1, epochs // (2 * _modality_count(cfg)))
    better = epochs // (2 * per) > epochs // (p.stage_epochs + p.correct_epochs)
    return {"stage_epochs": per, "correct_epochs": per} if better else {}


SPEC = StrategySpec(
    name="reconboost",
    description="Stages rotate the modalities: train one (others frozen) on (w1 - w2 q_{-m}(y)) CE, then "
    "all on the ensemble's CE; fresh optimizer state per phase.",
    params=ReconBoostParams,
    impl="bml_core.strategies.reconboost.impl:ReconBoost",
    reference="Hua, Zhang, Xu, Tang, ReconBoost: Boosting Can Achieve Modality Reconcilement, ICML 2024 "
    "(arXiv 2405.09321); github.com/huacong/ReconBoost",
    metrics=(
        MetricFamily(
            "reconboost/stage",
            "Stage (modality trained = stage mod M)",
            y_axis="stage",
            per_modality=False,
        ),
        MetricFamily(
            "reconboost/phase", "Phase (1: one modality, 2: correction)", y_axis="phase", per_modality=False
        ),
        MetricFamily(
            "reconboost/sample_weight",
            "Mean per-sample weight w1 - w2 q (phase 1)",
            y_axis="w",
            per_modality=False,
        ),
        MetricFamily(
            "reconboost/beta", "Ensemble scale beta", y_axis="beta", reference=1.0, per_modality=False
        ),
    ),
    rules=(_weights_positive,),
    advisories=(_few_stages,),
    epoch_fit=_fit_stages,
    cost="extra_forward",
    cost_note="phase 1: the other encoders forward without gradient; phase 2 as joint training",
    capabilities=frozenset({"needs_shared_head", "needs_features", "overrides_step"}),
)
