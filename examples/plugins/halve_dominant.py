"""halve_dominant: a complete strategy plug-in in one file (the worked example of
docs/PLUGINS.md). It multiplies the encoder gradients of the dominant modality (the one
with the largest rho, when rho > 1) by `factor` (0.5: halved) after every backward pass.

Load it with `PYTHONPATH=examples/plugins BML_PLUGINS=halve_dominant`; then
`bml strategies` lists it, `bml train --set strategies=[halve_dominant]` trains with it, the
Launch form offers it and Live draws its panel `halve_dominant/factor/<m>`.

Importing this module (for SPEC) does not import torch: the implementation class is built
on first access of `HalveDominant` (module `__getattr__`), which only the trainer does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from bml_core.schema import RatioName, StrategyParams
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class HalveDominantParams(StrategyParams):
    """Parameters (the Launch form and `bml submit` validate with this model)."""

    name: Literal["halve_dominant"] = "halve_dominant"
    factor: float = Field(0.5, gt=0.0, le=1.0, description="multiplier of the dominant encoder's gradients")
    ratio: RatioName = Field(
        "pairwise_mean", description="discrepancy ratio that picks the dominant modality"
    )
    summary: ClassVar[str] = "Halves the dominant modality's encoder gradients (example plug-in)."


def _adam_cancels_it(cfg: RunConfig, params: StrategyParams) -> str | None:
    if cfg.optim.name in ("adam", "adamw"):
        return (
            "halve_dominant with Adam: a constant gradient scale is largely undone by Adam's normalisation."
        )
    return None


SPEC = StrategySpec(
    name="halve_dominant",
    description="Multiplies the dominant modality's encoder gradients by `factor` (0.5) every step.",
    params=HalveDominantParams,
    impl=":HalveDominant",  # relative: this module, whatever it is named
    reference="Example plug-in of BML Studio (docs/PLUGINS.md); a one-factor simplification of OGM.",
    metrics=(
        MetricFamily(
            "halve_dominant/factor",
            "halve_dominant: gradient factor per modality (< 1: slowed)",
            y_axis="factor",
            reference=1.0,
            description="the multiplier applied to modality m's encoder gradients this step",
        ),
    ),
    advisories=(_adam_cancels_it,),
    cost="cheap",
    cost_note="one multiply per encoder gradient tensor of the dominant modality",
)


def _build_impl() -> type:
    """The implementation (imports torch): called on first access of `HalveDominant`."""
    import torch

    from bml_core.strategies.base import StepContext, Strategy

    class HalveDominant(Strategy):
        params: HalveDominantParams

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._names = [f"halve_dominant/factor/{m}" for m in self.modalities]
            self._grads = {m: self.model.encoder_parameters(m) for m in self.modalities}

        def on_gradients(self, ctx: StepContext) -> None:
            rho = ctx.ratio(self.params.ratio)  # [M] on the device: no host sync
            if self.active(ctx.epoch):
                dominant = torch.zeros_like(rho).scatter_(0, rho.argmax().reshape(1), 1.0) * (rho > 1)
                factors = 1 - dominant * (1 - self.params.factor)
            else:
                factors = torch.ones_like(rho)
            for i, m in enumerate(self.modalities):
                grads = [p.grad for p in self._grads[m] if p.grad is not None]
                if grads:
                    torch._foreach_mul_(grads, factors[i].to(grads[0].dtype))
            ctx.log(self._names, factors)

    return HalveDominant


def __getattr__(name: str) -> Any:
    if name == "HalveDominant":
        cls = globals()["HalveDominant"] = _build_impl()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
