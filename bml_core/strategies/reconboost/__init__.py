"""reconboost: ReconBoost, boosting that alternates modalities (Hua, Zhang, Xu, Tang, ICML
2024; STRATEGIES.md 2.10). Needs `model.head: shared`. Stages rotate the modalities; in each
stage phase 1 trains one modality (the others frozen) on a per-sample loss weighted by how
badly the other modalities' ensemble does, phase 2 trains everything on the ensemble's
cross-entropy; the optimizer state is fresh at every phase. Torch-free: parameters and spec."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bml_core.config import RunConfig, StrategyParams
from bml_core.strategies.spec import MetricFamily, StrategySpec


class ReconBoostParams(StrategyParams):
    """ReconBoost (STRATEGIES.md 2.10)."""

    name: Literal["reconboost"] = "reconboost"
    stage_epochs: int = Field(4, ge=1, description="phase 1 epochs per stage (one modality trained)")
    correct_epochs: int = Field(4, ge=0, description="phase 2 epochs per stage (everything, on CE(F))")
    w1: float = Field(5.0, gt=0.0, description="per-sample weight w1 - w2 q_{-m}(y)")
    w2: float = Field(1.0, ge=0.0, description="per-sample weight w1 - w2 q_{-m}(y)")
    summary: ClassVar[str] = "Alternating boosting stages per modality with global correction (ICML 2024)."


def _weights_positive(cfg: RunConfig, p: StrategyParams) -> tuple[str, str] | None:
    if isinstance(p, ReconBoostParams) and p.w2 >= p.w1:
        return (
            "strategies",
            f"reconboost needs w1 > w2 (now {p.w1} and {p.w2}) so every sample weight w1 - w2 q > 0",
        )
    return None


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
    cost="extra_forward",
    cost_note="phase 1: the other encoders forward without gradient; phase 2 as joint training",
    capabilities=frozenset({"needs_shared_head", "needs_features", "overrides_step"}),
)
