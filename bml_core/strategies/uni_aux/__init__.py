"""uni_aux: uni-modal auxiliary losses, the baseline of STRATEGIES.md section 2.1.
Torch-free: parameters and spec; the formulas and the implementation are in impl.py.

L = CE(z) + sum_m lambda_m CE(u_m). The uni-modal logits u_m follow `model.heads`: split
(the fusion head's per-modality blocks, which also trains the fused head) or aux (one
linear head per modality on h_m; FiLM and gated fusion need it). After the backward every
encoder gradient is multiplied by `encoder_grad_scale` (1.0)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from bml_core.schema import StrategyParams
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class UniAuxParams(StrategyParams):
    """Uni-modal auxiliary losses (STRATEGIES.md section 2.1)."""

    name: Literal["uni_aux"] = "uni_aux"
    lam: float = Field(1.0, ge=0.0, description="lambda: weight of every uni-modal loss CE(u_m)")
    lambdas: dict[str, float] = Field(
        {}, description="per-modality lambda_m overriding lam (modality name -> weight >= 0)"
    )
    encoder_grad_scale: float = Field(
        1.0, gt=0.0, description="gamma: every encoder gradient is multiplied by it after the backward"
    )
    summary: ClassVar[str] = "Adds a cross-entropy loss on each modality's own logits (baseline)."

    @field_validator("lambdas")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {m: w for m, w in v.items() if not w >= 0}
        if bad:
            raise ValueError(f"weights must be >= 0 (got {bad})")
        return v


def _adaptive_optimiser(cfg: RunConfig, params: StrategyParams) -> str | None:
    if getattr(params, "encoder_grad_scale", 1.0) != 1.0 and cfg.optim.name in ("adam", "adamw"):
        return (
            f"uni_aux encoder_grad_scale with {cfg.optim.name}: a constant gradient scale is "
            "largely cancelled by Adam's update normalisation; it acts like a learning-rate "
            "change only under SGD."
        )
    return None


SPEC = StrategySpec(
    name="uni_aux",
    description="Adds lambda_m CE(u_m), a cross-entropy on each modality's own logits, to the fused loss.",
    params=UniAuxParams,
    impl="bml_core.strategies.uni_aux.impl:UniAux",
    reference=(
        "Uni-modal auxiliary losses, the baseline of the balancing literature (e.g. Du et al., "
        "On Uni-Modal Feature Learning in Supervised Multi-Modal Learning, ICML 2023); "
        "BalanceBenchmark's MMPareto (github.com/GeWu-Lab/BalanceBenchmark) is this with split "
        "heads and encoder_grad_scale 3"
    ),
    metrics=(
        MetricFamily(
            "uni_aux/loss",
            "uni_aux: uni-modal loss CE(u_m) per modality",
            y_axis="cross-entropy",
            description="the batch's cross-entropy of modality m's own logits (before lambda_m)",
        ),
    ),
    advisories=(_adaptive_optimiser,),
    cost="cheap",
    cost_note="M extra cross-entropies on logits the head already has (split) or M linear heads (aux)",
    capabilities=frozenset({"needs_unimodal_logits_with_grad"}),
)
