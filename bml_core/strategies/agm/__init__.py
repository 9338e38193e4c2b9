"""agm: Adaptive Gradient Modulation (Li et al., ICCV 2023; STRATEGIES.md section 2.5).
Torch-free: parameters, rules and spec; the formulas and the implementation are in impl.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from bml_core.schema import StrategyParams, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig

MAX_MODALITIES = 4  # exact Shapley logits: 2^M - 1 extra forwards per step


class AGMParams(StrategyParams):
    """Adaptive Gradient Modulation (STRATEGIES.md section 2.5)."""

    name: Literal["agm"] = "agm"
    alpha: float = Field(
        1.0, ge=0.0, description="modulation strength in coeff = exp(alpha * min(r* - r, 10))"
    )
    end_epoch: int | None = Field(
        20, ge=0, description="last epoch with modulation (inclusive; official 0..20); null = the end"
    )
    empty_set: Literal["zero", "zero_input"] = authors_default(
        "zero",
        description="value of the empty coalition: zero = the authors' code (v(empty) = 0, so the "
        "Shapley logits sum to z, the logits evaluation scores; lihong2303/AGM model/CREMAD_net.py "
        "L10-17); zero_input = f(0, .., 0), the Shapley formula of STRATEGIES.md (sum of phi = f - f(0))",
    )
    masked_mode: Literal["eval", "train"] = authors_default(
        "eval",
        description="mode of the masked forwards: eval = the authors' code (BatchNorm statistics "
        "untouched by zeroed inputs; model/CREMAD_net.py L61-66); train = our earlier reading",
    )
    grad_clip: float | None = authors_default(
        1.0,
        gt=0.0,
        description="when an entry of the fusion head's weight gradient leaves [-1, 1], clip the "
        "model's gradient norm to this (the authors' loop, run/CREMAD_main.py L233-238); null = off",
    )
    summary: ClassVar[str] = "Shapley mono-modal logits with per-modality gradient scaling (ICCV 2023)."


def modality_count(cfg: RunConfig) -> int | None:
    """The number of modalities when the config says it (synthetic `modalities`, mfeat
    `views`); None when only the dataset knows (the implementation checks again)."""
    for key in ("modalities", "views"):
        value = cfg.dataset.params.get(key)
        if isinstance(value, list):
            return len(value)
    return None


def _at_most_four_modalities(cfg: RunConfig, params: StrategyParams) -> tuple[str, str] | None:
    m = modality_count(cfg)
    if m is not None and m > MAX_MODALITIES:
        return (
            "dataset.params",
            f"agm supports at most {MAX_MODALITIES} modalities (exact Shapley logits need 2^M - 1 = "
            f"{2**m - 1} extra forwards per step); this config has {m}: use fewer or another strategy",
        )
    return None


def _not_with_opm(cfg: RunConfig, params: StrategyParams) -> str | None:
    if any(s.name == "opm" for s in cfg.strategies):
        return (
            "agm replaces the fused loss by CE(sum of the Shapley logits) computed from masked "
            "forwards of the raw inputs, which OPM's dropped features never enter: use agm or opm"
        )
    return None


def _cost(cfg: RunConfig, params: StrategyParams) -> str | None:
    m = modality_count(cfg) or 2
    if m >= 3:
        return f"agm with {m} modalities runs {2**m - 1} extra forward passes per step."
    return None


SPEC = StrategySpec(
    name="agm",
    description="Shapley mono-modal logits; scales each modality's gradient by how far it leads its own average.",
    params=AGMParams,
    impl="bml_core.strategies.agm.impl:AGM",
    reference=(
        "Li, Li, Hu, Wang, Hong, Boosting Multi-modal Model Performance with Adaptive Gradient "
        "Modulation, ICCV 2023 (arXiv 2308.07686); github.com/lihong2303/AGM"
    ),
    metrics=(
        MetricFamily(
            "agm/coef",
            "AGM gradient coefficient per modality (< 1: slowed)",
            y_axis="coeff",
            reference=1.0,
            description="coeff_m = exp(alpha * min(r*_m - r_m, 10)) scaling dL/dphi_m",
        ),
        MetricFamily(
            "agm/score",
            "AGM mono-modal score per modality (cross-entropy of phi_m)",
            y_axis="score",
            description="s_m: batch mean of -log softmax(phi_m)[y]",
        ),
        MetricFamily(
            "agm/score_mean",
            "AGM running mean of the score per modality",
            y_axis="score",
            description="s_bar_m: the mean of s_m over every modulated step so far",
        ),
    ),
    advisories=(_cost,),
    rules=(_at_most_four_modalities, _not_with_opm),
    cost="extra_forward",
    cost_note="2^M - 1 extra forward passes with gradient per step (3 for M = 2, 15 for M = 4)",
    capabilities=frozenset({"needs_masked_forward"}),
)
