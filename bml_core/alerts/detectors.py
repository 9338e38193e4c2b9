"""The detectors: streaming (incremental) checks over the per-step and per-eval metric
series of one run, O(1) work per step and modality. Each keeps its state in plain Python
values (checkpointed with the run, so a resumed run neither repeats nor loses an alert)
and returns `Finding`s; the monitor (`monitor.py`) turns them into alerts with advice.

Windowed conditions use `WindowEpisode`: a condition "holds for the window" when it is
true on at least `share` of the last W steps; the detector fires once when it does, and
the episode ends (re-arming it) only when the release condition has been false on at
least `share` of a window: hysteresis, one alert per episode, not one per noisy step."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from bml_core.alerts.config import (
    DominanceConfig,
    OverfittingConfig,
    SaturationConfig,
    SuppressedGradientsConfig,
    UnderOptimisedConfig,
    WindowConfig,
)


@dataclass
class Finding:
    """What a detector found: the detector, the modality concerned, where, and the numbers."""

    detector: str
    modality: str | None
    step: int
    start_step: int
    evidence: dict[str, Any] = field(default_factory=dict)


class WindowEpisode:
    """Fires once when `fire` held on >= share of the last `window` updates; the episode
    ends when `hold` was false on >= share of the last `window` updates. Tracks the mean of
    the value over the window (evidence)."""

    def __init__(self, window: int, share: float):
        self.window = int(window)
        self.need = max(1, math.ceil(share * self.window))
        self.fire: deque[bool] = deque(maxlen=self.window)
        self.hold: deque[bool] = deque(maxlen=self.window)
        self.values: deque[float] = deque(maxlen=self.window)
        self.steps: deque[int] = deque(maxlen=self.window)
        self.n_fire = 0
        self.n_release = 0
        self.vsum = 0.0
        self.active = False

    def update(self, step: int, value: float, fire: bool, hold: bool) -> bool:
        """Feed one step; True when the episode starts at this step."""
        if len(self.fire) == self.window:
            self.n_fire -= self.fire[0]
            self.n_release -= not self.hold[0]
            self.vsum -= self.values[0]
        self.fire.append(fire)
        self.hold.append(hold)
        self.values.append(value if math.isfinite(value) else 0.0)
        self.steps.append(step)
        self.n_fire += fire
        self.n_release += not hold
        self.vsum += self.values[-1]
        full = len(self.fire) == self.window
        if not self.active:
            if full and self.n_fire >= self.need:
                self.active = True
                return True
            return False
        if full and self.n_release >= self.need:
            self.active = False
        return False

    @property
    def mean(self) -> float:
        return self.vsum / len(self.values) if self.values else math.nan

    @property
    def first_step(self) -> int:
        return self.steps[0] if self.steps else 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "fire": list(self.fire),
            "hold": list(self.hold),
            "values": list(self.values),
            "steps": list(self.steps),
            "active": self.active,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fire = deque(state["fire"], maxlen=self.window)
        self.hold = deque(state["hold"], maxlen=self.window)
        self.values = deque(state["values"], maxlen=self.window)
        self.steps = deque(state["steps"], maxlen=self.window)
        self.n_fire = sum(self.fire)
        self.n_release = sum(not h for h in self.hold)
        self.vsum = sum(self.values)
        self.active = bool(state["active"])


def _get(metrics: dict[str, float], key: str) -> float | None:
    v = metrics.get(key)
    return None if v is None else float(v)


class _Windowed(Protocol):
    window: WindowConfig


C = TypeVar("C", bound=_Windowed)


class StepDetector(Generic[C]):
    """Base of the per-step detectors: one WindowEpisode per modality over the config's
    window, reading the per-modality series `<series>/<m>` (`keys`)."""

    name = ""
    series: ClassVar[str] = ""

    def __init__(self, modalities: list[str], cfg: C, steps_per_epoch: int):
        self.modalities = list(modalities)
        self.cfg = cfg
        window = cfg.window.length(steps_per_epoch)
        self.episodes = {m: WindowEpisode(window, cfg.window.share) for m in self.modalities}
        self.keys = {m: f"{self.series}/{m}" for m in self.modalities}

    def update(self, step: int, metrics: dict[str, float]) -> list[Finding]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {m: e.state_dict() for m, e in self.episodes.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for m, st in state.items():
            if m in self.episodes:
                self.episodes[m].load_state_dict(st)


class DominanceDetector(StepDetector[DominanceConfig]):
    """rho_m (`imbalance/ratio/<m>`) above the threshold for a window: m dominates, the
    modality with the lowest rho at that step is the one left behind."""

    name = "dominance"
    series = "imbalance/ratio"

    def update(self, step: int, metrics: dict[str, float]) -> list[Finding]:
        out: list[Finding] = []
        rhos = {m: _get(metrics, k) for m, k in self.keys.items()}
        for m, rho in rhos.items():
            if rho is None:
                continue
            ep = self.episodes[m]
            if ep.update(step, rho, rho > self.cfg.threshold, rho > self.cfg.release):
                others = {o: r for o, r in rhos.items() if o != m and r is not None}
                weak = min(others, key=lambda o: others[o]) if others else None
                out.append(
                    Finding(
                        self.name,
                        weak,
                        step,
                        ep.first_step,
                        {
                            "dominant": m,
                            "weak": weak,
                            "rho": rho,
                            "rho_window_mean": ep.mean,
                            "threshold": self.cfg.threshold,
                            "window": ep.window,
                            "rho_weak": others.get(weak) if weak else None,
                        },
                    )
                )
        return out


class SuppressedGradientsDetector(StepDetector[SuppressedGradientsConfig]):
    """`grad/norm/<m>` below `fraction` of the mean of the other modalities' for a window."""

    name = "suppressed_gradients"
    series = "grad/norm"

    def update(self, step: int, metrics: dict[str, float]) -> list[Finding]:
        norms = {m: _get(metrics, k) for m, k in self.keys.items()}
        if len(norms) < 2 or any(v is None or not math.isfinite(v) for v in norms.values()):
            return []
        total = sum(v for v in norms.values() if v is not None)
        out: list[Finding] = []
        for m, g in norms.items():
            assert g is not None
            others = (total - g) / (len(norms) - 1)
            ratio = g / others if others > 0 else math.inf
            low = ratio < self.cfg.fraction
            ep = self.episodes[m]
            if ep.update(step, ratio, low, low):
                out.append(
                    Finding(
                        self.name,
                        m,
                        step,
                        ep.first_step,
                        {
                            "grad_norm": g,
                            "others_mean_grad_norm": others,
                            "ratio": ratio,
                            "ratio_window_mean": ep.mean,
                            "fraction": self.cfg.fraction,
                            "window": ep.window,
                        },
                    )
                )
        return out


class SaturationDetector:
    """OGM's k_m (`ogm/coef/<m>`) at its floor or OPM's q_m (`opm/drop_prob/<m>`) at its
    bound for a window: the strategy is doing all it can."""

    name = "saturation"

    def __init__(
        self, modalities: list[str], cfg: SaturationConfig, steps_per_epoch: int, opm_q_max: float | None
    ):
        self.cfg = cfg
        self.modalities = list(modalities)
        w = cfg.window.length(steps_per_epoch)
        self.ogm = {m: WindowEpisode(w, cfg.window.share) for m in self.modalities}
        self.opm = {m: WindowEpisode(w, cfg.window.share) for m in self.modalities}
        self.opm_q_max = opm_q_max

    def update(self, step: int, metrics: dict[str, float]) -> list[Finding]:
        out: list[Finding] = []
        for m in self.modalities:
            k = _get(metrics, f"ogm/coef/{m}")
            if k is not None:
                sat = k <= self.cfg.ogm_k_floor
                ep = self.ogm[m]
                if ep.update(step, k, sat, sat):
                    out.append(
                        Finding(
                            self.name,
                            m,
                            step,
                            ep.first_step,
                            {
                                "strategy": "ogm",
                                "k": k,
                                "k_window_mean": ep.mean,
                                "bound": self.cfg.ogm_k_floor,
                                "window": ep.window,
                            },
                        )
                    )
            q = _get(metrics, f"opm/drop_prob/{m}")
            if q is not None and self.opm_q_max is not None and self.opm_q_max > 0:
                sat = q >= self.cfg.opm_q_share * self.opm_q_max
                ep = self.opm[m]
                if ep.update(step, q, sat, sat):
                    out.append(
                        Finding(
                            self.name,
                            m,
                            step,
                            ep.first_step,
                            {
                                "strategy": "opm",
                                "q": q,
                                "q_window_mean": ep.mean,
                                "bound": self.opm_q_max,
                                "window": ep.window,
                            },
                        )
                    )
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "ogm": {m: e.state_dict() for m, e in self.ogm.items()},
            "opm": {m: e.state_dict() for m, e in self.opm.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for fam, eps in (("ogm", self.ogm), ("opm", self.opm)):
            for m, st in state.get(fam, {}).items():
                if m in eps:
                    eps[m].load_state_dict(st)


def divergence_finding(step: int, metrics: dict[str, float], where: str) -> Finding | None:
    """The first NaN/inf among the losses (`train/loss...`) of a step, or any value of an
    evaluation (`val/...`)."""
    bad = {
        k: float(v)
        for k, v in metrics.items()
        if (k.startswith("train/loss") or k.startswith("val/")) and not math.isfinite(float(v))
    }
    if not bad:
        return None
    return Finding(
        "divergence", None, step, step, {"where": where, "non_finite": {k: str(v) for k, v in bad.items()}}
    )


class UnderOptimisedDetector:
    """Per evaluation: a modality's uni-modal val accuracy (`val/acc/<m>`) gained at most
    `tolerance` over the last K evaluations while the fused accuracy (`val/acc`) gained more
    than `fused_gain`, the modality being behind (below the others' mean uni-modal accuracy,
    and below the fused accuracy). Once per episode: the episode ends when the modality
    gains again."""

    name = "under_optimised"

    def __init__(self, modalities: list[str], cfg: UnderOptimisedConfig):
        self.cfg = cfg
        self.modalities = list(modalities)
        n = cfg.evals + 1
        self.fused: deque[float] = deque(maxlen=n)
        self.steps: deque[int] = deque(maxlen=n)
        self.accs: dict[str, deque[float]] = {m: deque(maxlen=n) for m in self.modalities}
        self.active: dict[str, bool] = {m: False for m in self.modalities}
        self.reference_done: set[str] = set()

    def update(self, step: int, metrics: dict[str, float]) -> list[Finding]:
        fused = _get(metrics, "val/acc")
        if fused is None:
            return []
        self.fused.append(fused)
        self.steps.append(step)
        for m in self.modalities:
            a = _get(metrics, f"val/acc/{m}")
            self.accs[m].append(math.nan if a is None else a)
        if len(self.fused) < self.fused.maxlen:  # type: ignore[operator]
            return []
        fused_gain = self.fused[-1] - self.fused[0]
        out: list[Finding] = []
        for m in self.modalities:
            acc = self.accs[m]
            gain = acc[-1] - acc[0]
            if not math.isfinite(gain):
                continue
            flat = gain <= self.cfg.tolerance
            if self.active[m]:
                if not flat:
                    self.active[m] = False
                continue
            others = [self.accs[o][-1] for o in self.modalities if o != m and math.isfinite(self.accs[o][-1])]
            behind = not others or acc[-1] < sum(others) / len(others)
            if (
                flat
                and behind
                and fused_gain > self.cfg.fused_gain
                and acc[-1] < self.fused[-1] - self.cfg.tolerance
            ):
                self.active[m] = True
                out.append(
                    Finding(
                        self.name,
                        m,
                        step,
                        self.steps[0],
                        {
                            "val_acc": list(acc),
                            "val_acc_fused": list(self.fused),
                            "gain": gain,
                            "fused_gain": fused_gain,
                            "evals": self.cfg.evals,
                            "tolerance": self.cfg.tolerance,
                        },
                    )
                )
        return out

    def check_reference(
        self, step: int, accs: dict[str, float], reference: dict[str, float]
    ) -> list[Finding]:
        """A modality more than `probe_gap` below what it reaches alone (the linear probe)."""
        out: list[Finding] = []
        for m in self.modalities:
            a, ref = accs.get(m), reference.get(m)
            if a is None or ref is None or m in self.reference_done:
                continue
            if ref - a > self.cfg.probe_gap:
                self.reference_done.add(m)
                out.append(
                    Finding(
                        self.name,
                        m,
                        step,
                        step,
                        {"acc": a, "linear_probe_acc": ref, "gap": ref - a, "probe_gap": self.cfg.probe_gap},
                    )
                )
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "fused": list(self.fused),
            "steps": list(self.steps),
            "accs": {m: list(v) for m, v in self.accs.items()},
            "active": dict(self.active),
            "reference_done": sorted(self.reference_done),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = self.cfg.evals + 1
        self.fused = deque(state["fused"], maxlen=n)
        self.steps = deque(state["steps"], maxlen=n)
        for m, v in state["accs"].items():
            if m in self.accs:
                self.accs[m] = deque(v, maxlen=n)
        self.active.update({m: bool(a) for m, a in state["active"].items() if m in self.active})
        self.reference_done = set(state.get("reference_done", []))


class OverfittingDetector:
    """Per evaluation: gap = mean train accuracy (`train/acc`) since the previous
    evaluation - `val/acc`. Fires when the gap grew at each of the last K evaluations and
    exceeds `min_gap`; one alert per episode: the episode ends (re-arming the detector) only
    when the gap clears, i.e. falls to `min_gap` or below. A gap that dips and grows again
    while still above `min_gap` is the same episode (issue 25: five alerts on one run)."""

    name = "overfitting"

    def __init__(self, cfg: OverfittingConfig):
        self.cfg = cfg
        self.train_sum = 0.0
        self.train_n = 0
        self.gaps: deque[float] = deque(maxlen=cfg.evals + 1)
        self.steps: deque[int] = deque(maxlen=cfg.evals + 1)
        self.active = False

    def on_step(self, metrics: dict[str, float]) -> None:
        a = metrics.get("train/acc")
        if a is not None and math.isfinite(a):
            self.train_sum += a
            self.train_n += 1

    def update(self, step: int, metrics: dict[str, float]) -> list[Finding]:
        val = _get(metrics, "val/acc")
        if val is None or self.train_n == 0:
            return []
        train = self.train_sum / self.train_n
        self.train_sum, self.train_n = 0.0, 0
        gap = train - val
        self.gaps.append(gap)
        self.steps.append(step)
        if self.active:
            if gap <= self.cfg.min_gap:
                self.active = False
            return []
        g = list(self.gaps)
        if (
            len(g) == self.gaps.maxlen
            and all(b > a for a, b in zip(g, g[1:], strict=False))
            and gap > self.cfg.min_gap
        ):
            self.active = True
            return [
                Finding(
                    self.name,
                    None,
                    step,
                    self.steps[0],
                    {
                        "gaps": g,
                        "train_acc": train,
                        "val_acc": val,
                        "evals": self.cfg.evals,
                        "min_gap": self.cfg.min_gap,
                    },
                )
            ]
        return []

    def state_dict(self) -> dict[str, Any]:
        return {
            "train_sum": self.train_sum,
            "train_n": self.train_n,
            "gaps": list(self.gaps),
            "steps": list(self.steps),
            "active": self.active,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train_sum, self.train_n = float(state["train_sum"]), int(state["train_n"])
        self.gaps = deque(state["gaps"], maxlen=self.cfg.evals + 1)
        self.steps = deque(state["steps"], maxlen=self.cfg.evals + 1)
        self.active = bool(state["active"])
