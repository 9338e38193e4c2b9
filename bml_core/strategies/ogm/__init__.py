"""ogm and ogm_ge: On-the-fly Gradient Modulation (with Generalisation Enhancement).
Peng, Wei, Deng, Wang, Hu, CVPR 2022; METHODS.md section 4. Torch-free: parameters and
specs; the formulas and the implementation are in impl.py."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from bml_core.schema import RatioName, StrategyParams, authors, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class OGMParams(StrategyParams):
    """On-the-fly Gradient Modulation (METHODS.md section 4)."""

    name: Literal["ogm"] = "ogm"
    alpha: float = Field(0.8, ge=0.0, description="modulation strength")
    k_form: Literal["official", "smooth"] = authors_default("official", description="coefficient form")
    params: Literal["weights", "conv_only", "all"] = Field(
        "weights",
        json_schema_extra=authors("conv_only"),
        description="encoder tensors modulated: weights (>= 2-D), conv_only (4-D, the authors' rule, "
        "GeWu-Lab/OGM-GE_CVPR2022@343dc1d main.py L127-137; the same tensors as weights on their "
        "ResNet-18 encoders, which have no Linear layer), all",
    )
    ratio: RatioName = Field("pairwise_mean", description="discrepancy ratio for M modalities")
    summary: ClassVar[str] = "Scales down the dominant encoder's gradients (CVPR 2022)."

    @property
    def modulated_tensors(self) -> str:
        """The `params` key (its config name, kept): which encoder tensors OGM modulates."""
        return self.params


class OGMGEParams(OGMParams):
    """OGM with generalisation-enhancement Gaussian noise (METHODS.md section 4)."""

    name: Literal["ogm_ge"] = "ogm_ge"  # type: ignore[assignment]
    summary: ClassVar[str] = "OGM plus gradient noise with the unmodulated gradient's std (CVPR 2022)."


def _adaptive_optimiser(cfg: RunConfig, params: StrategyParams) -> str | None:
    if cfg.optim.name in ("adam", "adamw"):
        return (
            f"OGM with {cfg.optim.name}: a constant gradient scale is largely cancelled by Adam's "
            "update normalisation (OGM-GE issue #26); the CVPR results use SGD with momentum."
        )
    return None


def _conv_only_on_mlp(cfg: RunConfig, params: StrategyParams) -> str | None:
    if getattr(params, "params", None) == "conv_only":
        mlps = [m for m, e in cfg.model.encoders.items() if e.name == "mlp"]
        if mlps or not cfg.model.encoders:
            return (
                "params: conv_only modulates 4-D (conv) gradients only; it does nothing to MLP "
                "encoders. Use params: weights for them."
            )
    return None


def _not_with_ogm(cfg: RunConfig, params: StrategyParams) -> tuple[str, str] | None:
    if any(s.name == "ogm" for s in cfg.strategies):
        return ("strategies", "use either ogm or ogm_ge, not both")
    return None


REFERENCE = (
    "Peng, Wei, Deng, Wang, Hu, Balanced Multimodal Learning via On-the-fly Gradient "
    "Modulation, CVPR 2022 (arXiv 2203.15332); github.com/GeWu-Lab/OGM-GE_CVPR2022"
)
COEF = MetricFamily(
    "ogm/coef",
    "OGM coefficient k per modality (< 1: slowed)",
    y_axis="k",
    reference=1.0,
    description="k_m multiplying the encoder gradients of modality m this step",
)

OGM_SPEC = StrategySpec(
    name="ogm",
    description="Scales down the dominant modality's encoder gradients by k = 1 - tanh(alpha rho).",
    params=OGMParams,
    impl="bml_core.strategies.ogm.impl:OGM",
    reference=REFERENCE,
    metrics=(COEF,),
    advisories=(_adaptive_optimiser, _conv_only_on_mlp),
    cost="cheap",
    cost_note="one multiply per selected encoder gradient tensor",
)
# ogm_ge: OGM's reference, metric, advisories and cost class, with its own noise and rule
SPECS = (
    OGM_SPEC,
    replace(
        OGM_SPEC,
        name="ogm_ge",
        description="OGM plus Gaussian gradient noise with the unmodulated gradient's std.",
        params=OGMGEParams,
        impl="bml_core.strategies.ogm.impl:OGMGE",
        rules=(_not_with_ogm,),
        cost_note="OGM plus one normal draw per selected encoder weight (prefetched on the CPU)",
    ),
)
