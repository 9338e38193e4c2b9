"""mmpareto: MMPareto, innocent uni-modal assistance (Wei & Hu, ICML 2024; STRATEGIES.md
2.7). The faithful version: per-encoder gradients of the multi-modal and the uni-modal loss
(torch.autograd.grad restricted to that encoder), MGDA weights when they conflict, norm
restore, gamma. Torch-free: parameters and spec; the formulas are in impl.py. BalanceBenchmark's
"MMPareto" (whose conflict test never fires) is uni_aux with split heads and gamma 3: the
preset `bb-mmpareto`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bml_core.schema import StrategyParams, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec


class MMParetoParams(StrategyParams):
    """MMPareto (STRATEGIES.md 2.7)."""

    name: Literal["mmpareto"] = "mmpareto"
    gamma: float = Field(
        1.5, gt=0.0, description="multiplies each encoder's combined gradient (official 1.5)"
    )
    restore: Literal["per_tensor", "per_encoder"] = authors_default(
        "per_tensor",
        description="norm restore: per_tensor = the authors' code (GeWu-Lab/MMPareto_ICML2024 "
        "code/MMPareto.py L184-207); per_encoder = our earlier reading (one factor per encoder)",
    )
    summary: ClassVar[str] = (
        "Uni-modal aux losses whose encoder gradients are MGDA-combined on conflict (ICML 2024)."
    )


SPEC = StrategySpec(
    name="mmpareto",
    description="Aux uni-modal losses; per encoder, the multi-modal and uni-modal gradients are combined "
    "with equal weights, or MGDA min-norm weights when they conflict, norm-restored and scaled by gamma.",
    params=MMParetoParams,
    impl="bml_core.strategies.mmpareto.impl:MMPareto",
    reference="Wei & Hu, MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance, "
    "ICML 2024 (arXiv 2405.17730); github.com/GeWu-Lab/MMPareto_ICML2024",
    metrics=(
        MetricFamily(
            "mmpareto/cos",
            "cos(multi-modal grad, uni-modal grad) per encoder (< 0: conflict, MGDA weights)",
            y_axis="cos",
            reference=0.0,
        ),
        MetricFamily(
            "mmpareto/w",
            "Weight on the uni-modal gradient (0.5 = no conflict)",
            y_axis="w",
            reference=0.5,
        ),
    ),
    cost="extra_backward",
    cost_note="1 + M gradient evaluations restricted to the encoders (torch.autograd.grad) instead of one backward",
    capabilities=frozenset({"needs_aux_heads", "needs_features", "overrides_backward"}),
)
