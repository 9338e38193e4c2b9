"""pmr: Prototypical Modal Rebalance (Fan et al., CVPR 2023; STRATEGIES.md section 2.4).
Torch-free: parameters and spec; the formulas and the implementation are in impl.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from bml_core.schema import StrategyParams, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class PMRParams(StrategyParams):
    """Prototypical Modal Rebalance (STRATEGIES.md section 2.4)."""

    name: Literal["pmr"] = "pmr"
    alpha: float = Field(1.0, ge=0.0, description="weight scale of the prototype loss (CREMA-D script: 2.0)")
    form: Literal["switch", "smooth"] = authors_default(
        "switch",
        description="switch (official (authors'), fanyunfeng-bit/Modal-Imbalance-PMR@3615e48 "
        "main_Prototype_grad.py L169-177): alpha on every modality behind the best one; smooth: "
        "alpha * clip(rho - 1, 0, 1) (our reading of the paper)",
    )
    ema_skip_first: bool = authors_default(
        True,
        description="true (official (authors'), main_Prototype_grad.py L435-437 with L539/L557): the "
        "prototypes of epoch 1 are not averaged (computed with epoch = 0), the EMA starts at epoch 2; "
        "false: every recomputation after the first is averaged",
    )
    momentum: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="EMA momentum mu of the prototypes (argparse 0.2; CREMA-D script 0.0)",
    )
    proto_fraction: float = Field(
        0.1, gt=0.0, le=1.0, description="share of the training batches the epoch-start prototypes use"
    )
    per_mu: float = Field(
        0.0,
        ge=0.0,
        description="entropy regulariser on the dominant modality's prototype distribution (0 = off)",
    )
    per_epochs: int = Field(
        10, ge=0, description="the entropy regulariser acts in the first per_epochs epochs"
    )
    summary: ClassVar[str] = "Prototype cross-entropy that pulls the weaker modalities forward (CVPR 2023)."


def _before_opm(cfg: RunConfig, params: StrategyParams) -> str | None:
    names = [s.name for s in cfg.strategies]
    if "opm" in names and names.index("opm") < names.index("pmr"):
        return "list pmr before opm: its prototype distances need the features before OPM drops and rescales them"
    return None


SPEC = StrategySpec(
    name="pmr",
    description="Adds a prototype cross-entropy CE(-||h_m - c_m||) weighted up for the modalities behind.",
    params=PMRParams,
    impl="bml_core.strategies.pmr.impl:PMR",
    reference=(
        "Fan, Xu, Wei, Chen, PMR: Prototypical Modal Rebalance for Multimodal Learning, CVPR 2023 "
        "(arXiv 2211.07089); github.com/fanyunfeng-bit/Modal-Imbalance-PMR"
    ),
    metrics=(
        MetricFamily(
            "pmr/weight",
            "PMR prototype-loss weight per modality (0: the leading modality)",
            y_axis="weight",
            reference=0.0,
            description="weight_m of L_PCE^m this step",
        ),
        MetricFamily(
            "pmr/score",
            "PMR prototype score per modality (mean p of the true class)",
            y_axis="score",
            description="s_m / B: the batch mean of softmax(-d_m)[y]",
        ),
        MetricFamily(
            "pmr/pce",
            "PMR prototype cross-entropy per modality",
            y_axis="loss",
            description="L_PCE^m = CE(-d_m, y) before weighting",
        ),
    ),
    cost="cheap",
    cost_note=(
        "a distance matrix per modality per step; at each epoch start one no-grad pass over "
        "proto_fraction of the training set"
    ),
    rules=(_before_opm,),
    capabilities=frozenset({"needs_features"}),
)
