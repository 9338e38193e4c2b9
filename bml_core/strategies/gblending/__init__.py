"""gblending: Gradient-Blending (Wang, Tran, Feiszli, CVPR 2020; STRATEGIES.md 2.8). The loss
is sum_k w_k CE(logits_k) over the M uni-modal aux heads and the fused head, with weights
from each head's overfitting-to-generalisation ratio measured on a held-out part of the
training split (never the validation split). Torch-free: parameters and spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from bml_core.schema import StrategyParams
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class GBlendingParams(StrategyParams):
    """Gradient-Blending (STRATEGIES.md 2.8)."""

    name: Literal["gblending"] = "gblending"
    mode: Literal["online", "offline"] = Field(
        "online",
        description="online: weights recomputed every super-epoch from the model's own per-head losses "
        "(no extra training); offline: the paper's, a copy trained per head for super_epoch epochs first",
    )
    super_epoch: int = Field(10, ge=1, description="epochs over which the loss curves are measured")
    heldout_fraction: float = Field(
        0.1, gt=0.0, lt=0.5, description="share of the training split held out (fixed seed; never trained on)"
    )
    summary: ClassVar[str] = "Loss weights per head from overfitting vs generalisation (CVPR 2020)."


def _offline_cost(cfg: RunConfig, p: StrategyParams) -> str | None:
    if getattr(p, "mode", "online") == "offline":
        k = len(cfg.model.encoders) + 1 if cfg.model.encoders else None
        heads = f"{k}" if k else "M + 1"
        return (
            f"gblending offline trains a copy of the model per head ({heads} heads) for super_epoch "
            f"({getattr(p, 'super_epoch', '?')}) epochs before the run: about {heads} x super_epoch extra "
            "epochs of training. mode: online costs nothing extra."
        )
    return None


MIN_ESTIMATES = 3  # online weight estimates a run should make (the first comes from the initial model)


def _few_estimates(cfg: RunConfig, p: StrategyParams) -> str | None:
    super_epoch = getattr(p, "super_epoch", 1)
    if getattr(p, "mode", "online") == "online" and cfg.train.epochs // super_epoch < MIN_ESTIMATES:
        return (
            f"gblending online re-estimates its weights every super_epoch ({super_epoch}) epochs: "
            f"{cfg.train.epochs // super_epoch} estimate(s) in {cfg.train.epochs} epochs. The first estimate, "
            "made from the initial model, can give a head almost no weight for the rest of the run "
            f"(dG / dO^2 is extreme early on); prefer super_epoch <= epochs / {MIN_ESTIMATES}."
        )
    return None


def _fit_super_epoch(cfg: RunConfig, p: StrategyParams) -> dict[str, Any]:
    """Online: a super-epoch short enough for MIN_ESTIMATES estimates in the run (what the
    advisory above asks for); offline trains its copies for super_epoch epochs: left alone."""
    if _few_estimates(cfg, p) is None:
        return {}
    return {"super_epoch": max(1, cfg.train.epochs // MIN_ESTIMATES)}


SPEC = StrategySpec(
    name="gblending",
    description="Weighted sum of the uni-modal and fused heads' losses, weights dG / dO^2 from each head's "
    "train and held-out loss curves (0 for a head whose held-out loss rose).",
    params=GBlendingParams,
    impl="bml_core.strategies.gblending.impl:GBlending",
    reference="Wang, Tran, Feiszli, What Makes Training Multi-modal Classification Networks Hard?, "
    "CVPR 2020 (arXiv 1905.12681)",
    metrics=(
        MetricFamily(
            "gblending/weight",
            "Blending weight per head (per modality, and `fused`)",
            y_axis="w",
            description="w_k proportional to dG_k / dO_k^2, summing to 1; series <modality> and fused",
        ),
    ),
    advisories=(_offline_cost, _few_estimates),
    epoch_fit=_fit_super_epoch,
    cost="cheap",
    cost_note="online: K aux-head losses per step plus one held-out and train-subset evaluation per "
    "super-epoch; offline: ~K x super_epoch extra epochs before the run (side training)",
    capabilities=frozenset({"needs_aux_heads", "needs_features", "needs_heldout"}),
)
