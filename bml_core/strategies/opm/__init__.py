"""opm: On-the-fly Prediction Modulation. Wei, Hu, Du, Wen, T-PAMI 2024; METHODS.md
section 5. Torch-free: parameters and spec; the formulas and the implementation are in
impl.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from bml_core.schema import RatioName, StrategyParams
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class OPMParams(StrategyParams):
    """On-the-fly Prediction Modulation (METHODS.md section 5)."""

    name: Literal["opm"] = "opm"
    q_base: float = Field(0.5, ge=0.0, le=1.0, description="base drop probability")
    lam: float = Field(0.5, ge=0.0, description="lambda: growth of q with the discrepancy")
    p_exe: float = Field(0.7, ge=0.0, le=1.0, description="probability the drop runs in an iteration")
    rescale: Literal["global", "per_modality", "none"] = Field("global", description="feature rescaling")
    q_source: Literal["batch", "previous"] = Field("batch", description="rho of this batch or the previous")
    ratio: RatioName = Field("pairwise_mean", description="discrepancy ratio for M modalities")
    summary: ClassVar[str] = (
        "Drops the dominant modality's features with a dynamic probability (T-PAMI 2024)."
    )


def _never_executes(cfg: RunConfig, params: StrategyParams) -> str | None:
    if isinstance(params, OPMParams) and (params.p_exe == 0.0 or params.q_base == 0.0):
        return "OPM with p_exe = 0 or q_base = 0 never drops anything: it equals joint training."
    return None


SPEC = StrategySpec(
    name="opm",
    description="Drops the dominant modality's features with a probability that grows with its lead.",
    params=OPMParams,
    impl="bml_core.strategies.opm.impl:OPM",
    reference=(
        "Wei, Hu, Du, Wen, On-the-fly Modulation for Balanced Multimodal Learning, "
        "IEEE T-PAMI 2024 (arXiv 2410.11582); github.com/GeWu-Lab/BML_TPAMI2024"
    ),
    metrics=(
        MetricFamily(
            "opm/drop_prob",
            "OPM drop probability q per modality",
            y_axis="q",
            description="q_m, the probability a sample's features of modality m are dropped",
        ),
        MetricFamily(
            "opm/dropped",
            "OPM share of samples dropped per modality",
            y_axis="share",
            description="the share of this batch's samples whose modality-m features were dropped",
        ),
        MetricFamily(
            "opm/gate",
            "OPM gate (1: the drop ran this step)",
            y_axis="gate",
            per_modality=False,
            description="whether the drop ran this step (probability p_exe)",
        ),
    ),
    advisories=(_never_executes,),
    cost="cheap",
    cost_note="a random mask and a rescale of the features per step",
    capabilities=frozenset({"needs_features"}),
)
