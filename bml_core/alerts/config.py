"""The `alerts:` section of the run config: one switch and thresholds per detector, every
key with a documented default (docs/ALERTS.md). Torch-free."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class WindowConfig(_Strict):
    """A window of steps: max(min_steps, ceil(epoch_fraction * steps per epoch)), unless
    `steps` fixes it. A condition holds for the window when it is true on at least `share`
    of the window's steps (so one noisy batch does not break or make an episode)."""

    steps: int | None = Field(None, ge=1, description="fixed window length in steps; null = from the epoch")
    min_steps: int = Field(50, ge=1, description="shortest window (steps)")
    epoch_fraction: float = Field(0.1, gt=0.0, le=10.0, description="window as a share of an epoch's steps")
    share: float = Field(
        0.9, gt=0.0, le=1.0, description="share of the window's steps the condition must hold"
    )

    def length(self, steps_per_epoch: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(self.min_steps, math.ceil(self.epoch_fraction * max(1, steps_per_epoch)))


class DominanceConfig(_Strict):
    """Sustained dominance: rho_m above `threshold` for a window; the episode ends when
    rho_m stays below `release` for a window (hysteresis: one alert per episode)."""

    enabled: bool = True
    threshold: float = Field(1.5, gt=1.0, description="rho_m above this counts as dominant")
    release: float = Field(1.3, gt=0.0, description="the episode ends once rho_m stays below this")
    window: WindowConfig = Field(default_factory=WindowConfig)

    @model_validator(mode="after")
    def _release_below(self) -> DominanceConfig:
        if self.release > self.threshold:
            raise ValueError(f"release ({self.release}) must be <= threshold ({self.threshold})")
        return self


class UnderOptimisedConfig(_Strict):
    """Under-optimised modality: its uni-modal val accuracy gains at most `tolerance` over
    the last `evals` evaluations while the fused accuracy gains more than `fused_gain`; or,
    when a reference (the linear probe) is known, it is more than `probe_gap` below it."""

    enabled: bool = True
    evals: int = Field(3, ge=1, description="K: evaluations looked back over")
    tolerance: float = Field(0.01, ge=0.0, le=1.0, description="a gain at most this counts as flat")
    fused_gain: float = Field(0.02, ge=0.0, le=1.0, description="fused val acc must gain more than this")
    probe_gap: float = Field(0.1, gt=0.0, le=1.0, description="uni-modal acc this far below the probe's")


class SuppressedGradientsConfig(_Strict):
    """A modality's encoder gradient norm below `fraction` of the mean of the others' for a window."""

    enabled: bool = True
    fraction: float = Field(0.1, gt=0.0, lt=1.0, description="grad norm ratio to the others' mean")
    window: WindowConfig = Field(default_factory=WindowConfig)


class SaturationConfig(_Strict):
    """Modulation saturation: OGM's k_m at most `ogm_k_floor`, or OPM's q_m at least
    `opm_q_share` of its bound min(1, q_base (1 + lambda)), for a window."""

    enabled: bool = True
    ogm_k_floor: float = Field(0.1, gt=0.0, lt=1.0, description="k_m at or below this is saturated")
    opm_q_share: float = Field(0.95, gt=0.0, le=1.0, description="q_m at or above this share of its bound")
    window: WindowConfig = Field(default_factory=WindowConfig)


class DivergenceConfig(_Strict):
    """A NaN/inf loss or metric: an alert, and the run stops unless `stop` is false."""

    enabled: bool = True
    stop: bool = Field(True, description="stop the run (status failed) at the first non-finite loss/metric")


class OverfittingConfig(_Strict):
    """Train - val accuracy gap growing at each of the last `evals` evaluations and above `min_gap`."""

    enabled: bool = True
    evals: int = Field(3, ge=1, description="K: consecutive evaluations with a growing gap")
    min_gap: float = Field(0.05, ge=0.0, le=1.0, description="the gap must also exceed this")


class AlertsConfig(_Strict):
    """Imbalance alerts evaluated while the run trains (docs/ALERTS.md)."""

    enabled: bool = Field(True, description="evaluate the detectors at all")
    dominance: DominanceConfig = Field(default_factory=DominanceConfig)
    under_optimised: UnderOptimisedConfig = Field(default_factory=UnderOptimisedConfig)
    suppressed_gradients: SuppressedGradientsConfig = Field(default_factory=SuppressedGradientsConfig)
    saturation: SaturationConfig = Field(default_factory=SaturationConfig)
    divergence: DivergenceConfig = Field(default_factory=DivergenceConfig)
    overfitting: OverfittingConfig = Field(default_factory=OverfittingConfig)
