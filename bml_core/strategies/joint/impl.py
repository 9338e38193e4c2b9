"""joint: the base strategy with every event a no-op."""

from __future__ import annotations

from bml_core.strategies.base import Strategy, register_strategy


@register_strategy("joint")
class JointTraining(Strategy):
    """Joint training: the fused cross-entropy alone, no modulation."""
