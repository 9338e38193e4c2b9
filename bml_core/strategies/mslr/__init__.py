"""mslr and mses: modality-specific learning rates and modality-specific early stopping
(STRATEGIES.md section 2.2). Yao & Mihalcea, Findings of ACL 2022. Torch-free: parameters and
specs; the formulas and the implementation are in impl.py.

Both act on the per-modality encoder parameter groups of the optimizer (learning-rate
multipliers, never gradient scaling) after each validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from bml_core.schema import StrategyParams, authors_default
from bml_core.strategies.spec import MetricFamily, StrategySpec

if TYPE_CHECKING:
    from bml_core.config import RunConfig


class _StartMults(StrategyParams):
    """The starting learning-rate multipliers shared by mslr and mses."""

    start_mults: list[float] = Field(
        [],
        description="starting LR multiplier per modality, in the dataset's modality order (empty = 1.0 each)",
    )

    @field_validator("start_mults")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not f > 0 for f in v):
            raise ValueError(f"every multiplier must be > 0 (got {v})")
        return v


class MSLRParams(_StartMults):
    """Modality-specific learning rates, dynamic (STRATEGIES.md section 2.2)."""

    name: Literal["mslr"] = "mslr"
    window: int = Field(5, ge=1, description="epochs of validation accuracy averaged in the update")
    form: Literal["official", "compound"] = authors_default(
        "official",
        description="official = the only released code (lihong2303/AGM run/CREMAD_main.py L195-198, "
        "L671-684): mult = start * acc_t / mean(previous window epochs), from the epoch the window "
        "is full, bounded; compound = our earlier reading, mult *= acc_t / mean(window incl. t)",
    )
    summary: ClassVar[str] = (
        "Per-modality learning rates that follow validation accuracy (ACL Findings 2022)."
    )


class MSESParams(_StartMults):
    """Modality-specific early stopping, the mses variant (STRATEGIES.md section 2.2)."""

    name: Literal["mses"] = "mses"
    patience: int = authors_default(
        80,
        ge=1,
        description="epochs without a better smoothed val loss before a modality is frozen "
        "(official 80: run/CREMAD_main.py L722, epoch - best_epoch > 80)",
    )
    smoothing: float = Field(
        0.6, ge=0.0, lt=1.0, description="weight of the previous val loss (0.6 prev + 0.4 current)"
    )
    form: Literal["official", "ours"] = authors_default(
        "official",
        description="official (lihong2303/AGM run/CREMAD_main.py L686-729): smoothing over the "
        "previous RAW loss, frozen once epochs since the best > patience, and the whole model and "
        "optimizer reloaded from the best epoch; ours = our earlier reading (previous smoothed "
        "loss, >= patience, only the stopped encoder restored)",
    )
    stop_when_all_frozen: bool = Field(
        True, description="end the run (cleanly, checkpointed) once every encoder is frozen"
    )
    summary: ClassVar[str] = (
        "Freezes each encoder when its own validation loss stops improving (ACL Findings 2022)."
    )


def _evaluates_every_epoch(cfg: RunConfig, params: StrategyParams) -> str | None:
    if cfg.train.eval_every != 1:
        return (
            f"{params.name} updates after each validation; with train.eval_every = "
            f"{cfg.train.eval_every} it updates only every {cfg.train.eval_every} epochs"
        )
    return None


def _one_of_them(cfg: RunConfig, params: StrategyParams) -> tuple[str, str] | None:
    if params.name == "mses" and any(s.name == "mslr" for s in cfg.strategies):
        return ("strategies", "use either mslr or mses, not both (both set the encoders' learning rates)")
    return None


REFERENCE = (
    "Yao & Mihalcea, Modality-specific Learning Rates for Effective Multimodal Additive "
    "Late-fusion, Findings of ACL 2022 (no official code)"
)
COST_NOTE = "a learning-rate change per encoder group after each validation"

SPECS = (
    StrategySpec(
        name="mslr",
        description="Per-encoder LR multipliers: mult_m *= val_acc_m / mean(last window val_acc_m) each epoch.",
        params=MSLRParams,
        impl="bml_core.strategies.mslr.impl:MSLR",
        reference=REFERENCE,
        metrics=(
            MetricFamily(
                "mslr/lr_mult",
                "MSLR: learning-rate multiplier per modality",
                y_axis="multiplier",
                reference=1.0,
                description="mult_m, the factor on encoder m's learning rate this step",
            ),
            MetricFamily(
                "mslr/ratio",
                "MSLR: val accuracy over its recent mean, per modality",
                y_axis="ratio",
                reference=1.0,
                kind="eval",
                description="val_acc_m / mean(last window val_acc_m), the factor of the last update",
            ),
        ),
        advisories=(_evaluates_every_epoch,),
        cost="none",
        cost_note=COST_NOTE,
        capabilities=frozenset({"needs_val"}),
    ),
    StrategySpec(
        name="mses",
        description="Freezes (LR 0) each encoder whose smoothed val loss stopped improving; restores its best weights.",
        params=MSESParams,
        impl="bml_core.strategies.mslr.impl:MSES",
        reference=REFERENCE,
        metrics=(
            MetricFamily(
                "mses/lr_mult",
                "MSES: learning-rate multiplier per modality (0: frozen)",
                y_axis="multiplier",
                reference=1.0,
                description="the factor on encoder m's learning rate this step; 0 once frozen",
            ),
            MetricFamily(
                "mses/smoothed_loss",
                "MSES: smoothed uni-modal val loss per modality",
                y_axis="cross-entropy",
                kind="eval",
                description="0.6 previous + 0.4 current val cross-entropy of u_m",
            ),
        ),
        advisories=(_evaluates_every_epoch,),
        rules=(_one_of_them,),
        cost="none",
        cost_note=COST_NOTE
        + "; one pass over val for the uni-modal losses and a copy of each encoder's best weights",
        capabilities=frozenset({"needs_val"}),
    ),
)
