"""The Balancer's one error type (below the engine and its runtime, so both raise it)."""

from __future__ import annotations


class BalancerError(ValueError):
    """The Balancer got a model, input or strategy it cannot use; the message names the field."""
