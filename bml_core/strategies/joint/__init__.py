"""joint: plain joint training (the baseline), the fused cross-entropy with no modulation.
Torch-free: its parameters and spec; the implementation is in impl.py."""

from __future__ import annotations

from typing import ClassVar, Literal

from bml_core.schema import StrategyParams
from bml_core.strategies.spec import StrategySpec


class JointParams(StrategyParams):
    """Plain joint training: no modulation (the imbalance probe still runs)."""

    name: Literal["joint"] = "joint"
    summary: ClassVar[str] = "Joint training without modulation (baseline)."


SPEC = StrategySpec(
    name="joint",
    description="Joint training without modulation (baseline): the fused cross-entropy alone.",
    params=JointParams,
    impl="bml_core.strategies.joint.impl:JointTraining",
    reference="The common baseline of every balancing paper (late fusion, one cross-entropy).",
    cost="none",
)
