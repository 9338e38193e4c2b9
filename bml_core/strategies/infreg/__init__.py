"""infreg: InfoReg, adaptive uni-modal regulation in the prime learning window (Huang, Wei,
Yang, Hu, CVPR 2025; STRATEGIES.md section 2.6). Torch-free: parameters and spec; the
formulas and the implementation are in impl.py."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bml_core.schema import StrategyParams, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec


class InfoRegParams(StrategyParams):
    """InfoReg (STRATEGIES.md section 2.6)."""

    name: Literal["infreg"] = "infreg"
    preset: Literal["official", "paper"] = authors_default(
        "official",
        description="official: the authors' main.py (GeWu-Lab/InfoReg_CVPR2025@939b2ed L240-243, L465-476, "
        "L510-572; two modalities): beta = beta0 exp(tanh(s_1 - s_2)) on batch sums for the first "
        "modality when it leads, beta0_second exp(tanh(s_2 - s_1)) for the second when it leads, "
        "window shifted by one epoch, Fisher trace of the first modality's encoder only; paper: "
        "our M-modality reading (above-mean modalities, gap / B, trace of every encoder)",
    )
    beta0_second: float = authors_default(
        0.1,
        ge=0.0,
        description="preset official only: the second modality's (visual) proximal constant (authors' 0.1)",
    )
    beta0: float = authors_default(
        0.95,
        ge=0.0,
        description="proximal strength: beta_m = beta0 * exp(tanh((s_m - mean s) / B)) for modalities "
        "above the mean score (official M = 2 constant 0.95, dataset-tuned)",
    )
    window: int = Field(10, ge=1, description="epochs averaged on each side of the Fisher-trace growth test")
    threshold: float = Field(
        0.05, description="the prime learning window is open while the trace's relative growth exceeds this"
    )
    compare: Literal["previous", "shifted"] | None = Field(
        None,
        description="previous: the last `window` traces against the `window` before them; shifted: "
        "against the window ending one epoch earlier (official code); empty: the preset's "
        "(official: shifted, paper: previous)",
    )
    summary: ClassVar[str] = (
        "Pulls the leading modality's encoder back towards its epoch-start weights while the "
        "Fisher trace still grows (CVPR 2025)."
    )


SPEC = StrategySpec(
    name="infreg",
    description="Slows the leading modality with a proximal term to its epoch-start weights in the prime learning window.",
    params=InfoRegParams,
    impl="bml_core.strategies.infreg.impl:InfoReg",
    reference=(
        "Huang, Wei, Yang, Hu, Adaptive Unimodal Regulation for Balanced Multimodal Information "
        "Acquisition, CVPR 2025; github.com/GeWu-Lab/InfoReg_CVPR2025"
    ),
    metrics=(
        MetricFamily(
            "infreg/beta",
            "InfoReg proximal strength beta per modality (0: not regulated)",
            y_axis="beta",
            reference=0.0,
            description="beta_m applied this step (0 when the window is closed or s_m <= mean)",
        ),
        MetricFamily(
            "infreg/trace",
            "InfoReg Fisher trace of the encoders (previous epoch)",
            y_axis="trace",
            per_modality=False,
            description="sum over encoder weight tensors of the mean accumulated squared gradient, last epoch",
        ),
        MetricFamily(
            "infreg/window",
            "InfoReg prime learning window (1: open)",
            y_axis="open",
            per_modality=False,
            description="1 while the Fisher trace's relative growth exceeds the threshold",
        ),
    ),
    cost="cheap",
    cost_note=(
        "the uni-modal cross-entropies, a proximal term and a squared-gradient accumulation per "
        "step; one copy of the encoder weights"
    ),
    capabilities=frozenset({"needs_unimodal_logits_with_grad"}),
)
