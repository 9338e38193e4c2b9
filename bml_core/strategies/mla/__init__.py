"""mla: Multimodal representation learning by alternating unimodal adaptation (Zhang, Yoon,
Bansal, Yao, CVPR 2024; STRATEGIES.md 2.9). Needs `model.head: shared`. Each batch trains
one modality after the other through the shared head, projecting the head's weight gradient
away from the stored feature directions; evaluation fuses the uni-modal logits with
entropy-based (dynamic) or equal weights. Torch-free: parameters and spec."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bml_core.schema import StrategyParams, authors, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec


class MLAParams(StrategyParams):
    """MLA (STRATEGIES.md 2.9)."""

    name: Literal["mla"] = "mla"
    projection: bool = Field(
        True,
        json_schema_extra=authors(False),
        description="project the shared head's weight gradient (the paper); false reproduces the "
        "released code, which never applies it",
    )
    normalize: bool = authors_default(
        True,
        description="rescale P to unit Frobenius norm after each update (the authors' GSPlugin, "
        "utils/utils.py L38-40); false = our earlier reading, under which P collapses",
    )
    skip_first: bool = authors_default(
        True,
        description="no projection on the run's first uni-modal update (the authors' GSPlugin, "
        "utils/utils.py L29: train_exp_counter != 0)",
    )
    fusion_eval: Literal["dynamic", "equal"] = Field(
        "dynamic",
        description="evaluation fusion: dynamic = per-sample softmax of -entropy over modalities; equal = mean",
    )
    summary: ClassVar[str] = "Alternating uni-modal steps through one shared head (CVPR 2024)."


SPEC = StrategySpec(
    name="mla",
    description="Alternating uni-modal training through a shared head (one optimizer step per modality "
    "per batch) with gradient projection; entropy-weighted fusion at evaluation.",
    params=MLAParams,
    impl="bml_core.strategies.mla.impl:MLA",
    reference="Zhang, Yoon, Bansal, Yao, Multimodal Representation Learning by Alternating Unimodal "
    "Adaptation, CVPR 2024 (arXiv 2311.10707); github.com/Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation",
    metrics=(
        MetricFamily(
            "mla/weight",
            "Dynamic fusion weight per modality (batch mean)",
            y_axis="w",
            description="softmax over modalities of -entropy(softmax(head(h_m))), averaged over the batch",
        ),
        MetricFamily(
            "mla/p_norm",
            "Frobenius norm of the projection P",
            y_axis="||P||",
            per_modality=False,
            description="P shrinks along the stored feature directions",
        ),
    ),
    cost="extra_backward",
    cost_note="M forward/backward passes and M optimizer steps per batch (one per modality), each through one encoder",
    capabilities=frozenset({"needs_shared_head", "needs_features", "overrides_step"}),
)
