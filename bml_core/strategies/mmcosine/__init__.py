"""mmcosine: the MMCosine head (STRATEGIES.md section 2.3). Xu, Wei, Hu, ICASSP 2023;
github.com/GeWu-Lab/MMCosine_ICASSP23. Torch-free: parameters and spec; the formulas and the
implementation are in impl.py.

u_m[k] = s cos(h_m, W_m[k]) with the concat head's per-modality class weight blocks (no
bias), z = sum_m u_m, in training and at evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from bml_core.schema import StrategyParams, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class MMCosineParams(StrategyParams):
    """MMCosine (STRATEGIES.md section 2.3)."""

    name: Literal["mmcosine"] = "mmcosine"
    scale: float = Field(10.0, gt=0.0, description="s: the cosine logits are s * cos(h_m, W_m[k])")
    eval_logits: Literal["linear", "cosine"] = authors_default(
        "linear",
        description="fused logits scored at evaluation: linear = the plain concat head W h + b, "
        "as the authors' code (GeWu-Lab/MMCosine_ICASSP23 main_CD.py L181, L196: prediction = "
        "softmax(out)); cosine = the cosine head trained on (our earlier reading)",
    )
    summary: ClassVar[str] = (
        "Cosine logits per modality with normalised features and class weights (ICASSP 2023)."
    )


def _needs_concat(cfg: RunConfig, params: StrategyParams) -> tuple[str, str] | None:
    if cfg.model.fusion != "concat":
        return (
            "model.fusion",
            f"mmcosine needs fusion: concat (its per-modality class weight blocks); "
            f"got {cfg.model.fusion!r}: set model.fusion: concat or drop mmcosine",
        )
    return None


def _schedule_ignored(cfg: RunConfig, params: StrategyParams) -> str | None:
    if params.start_epoch or params.end_epoch is not None or params.warmup_epochs:
        return (
            "mmcosine is the model's head for the whole run (training and evaluation): "
            "start_epoch, end_epoch and warmup_epochs are ignored"
        )
    return None


SPEC = StrategySpec(
    name="mmcosine",
    description="Replaces the fused logits by sum_m s cos(h_m, W_m[k]): normalised features and class weights.",
    params=MMCosineParams,
    impl="bml_core.strategies.mmcosine.impl:MMCosine",
    reference=(
        "Xu, Wei, Hu, MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual "
        "Fine-Grained Learning, ICASSP 2023; github.com/GeWu-Lab/MMCosine_ICASSP23"
    ),
    metrics=(
        MetricFamily(
            "mmcosine/cos",
            "MMCosine: cosine with the true class per modality",
            y_axis="cos(h_m, W_m[y])",
            description="the batch mean of cos(h_m, W_m[y]), modality m's alignment with its label",
        ),
        MetricFamily(
            "mmcosine/acc",
            "MMCosine: uni-modal batch accuracy of the cosine logits",
            y_axis="accuracy",
            description="the share of the batch whose argmax of s cos(h_m, W_m[k]) is the label",
        ),
    ),
    advisories=(_schedule_ignored,),
    rules=(_needs_concat,),
    cost="cheap",
    cost_note="normalises the features and the head's class rows; no extra pass",
    capabilities=frozenset({"needs_features"}),
)
