"""AlertMonitor: runs every enabled detector over a run's metrics as they are produced
(`on_step` after each optimiser step, `on_eval` after each evaluation) and returns new
alerts as JSON-ready dicts with evidence and advice. Its state is checkpointed with the
run, and each alert has a deterministic key (detector, modality, step), so a run resumed
after a crash fires the same alert with the same key: the store keeps it once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bml_core.alerts.advice import advise, headline
from bml_core.alerts.config import AlertsConfig
from bml_core.alerts.detectors import (
    DominanceDetector,
    Finding,
    OverfittingDetector,
    SaturationDetector,
    SuppressedGradientsDetector,
    UnderOptimisedDetector,
    divergence_finding,
)

SEVERITY = {
    "divergence": "critical",
    "dominance": "warning",
    "under_optimised": "warning",
    "suppressed_gradients": "warning",
    "overfitting": "warning",
    "saturation": "info",
}


def alert_key(detector: str, modality: str | None, step: int) -> str:
    return f"{detector}:{modality or '-'}:{step}"


def opm_q_bound(strategies: Sequence[Mapping[str, Any]]) -> float | None:
    """OPM's largest drop probability min(1, q_base (1 + lambda)) (METHODS.md section 5)."""
    for s in strategies:
        if s.get("name") == "opm":
            return min(1.0, float(s.get("q_base", 0.5)) * (1.0 + float(s.get("lam", 0.5))))
    return None


class AlertMonitor:
    """The detectors of one run. `alerts` lists every alert fired so far (the summary's);
    `diverged` is the divergence alert when the run must stop."""

    def __init__(
        self,
        cfg: AlertsConfig,
        modalities: Sequence[str],
        steps_per_epoch: int,
        strategies: Sequence[Mapping[str, Any]] = (),
        lr: float | None = None,
        known_strategies: set[str] | None = None,
    ):
        self.cfg = cfg
        self.modalities = list(modalities)
        self.strategies = [dict(s) for s in strategies]
        self.lr = lr
        self.known = known_strategies
        mods = self.modalities
        self.step_detectors: list[Any] = []
        if cfg.enabled and cfg.dominance.enabled:
            self.step_detectors.append(DominanceDetector(mods, cfg.dominance, steps_per_epoch))
        if cfg.enabled and cfg.suppressed_gradients.enabled:
            self.step_detectors.append(
                SuppressedGradientsDetector(mods, cfg.suppressed_gradients, steps_per_epoch)
            )
        if cfg.enabled and cfg.saturation.enabled:
            self.step_detectors.append(
                SaturationDetector(mods, cfg.saturation, steps_per_epoch, opm_q_bound(self.strategies))
            )
        self.under = (
            UnderOptimisedDetector(mods, cfg.under_optimised)
            if cfg.enabled and cfg.under_optimised.enabled
            else None
        )
        self.overfit = (
            OverfittingDetector(cfg.overfitting) if cfg.enabled and cfg.overfitting.enabled else None
        )
        self.check_divergence = cfg.enabled and cfg.divergence.enabled
        self.alerts: list[dict[str, Any]] = []
        self.diverged: dict[str, Any] | None = None

    @property
    def stop_on_divergence(self) -> bool:
        return self.cfg.divergence.stop

    def _emit(self, findings: list[Finding], epoch: int) -> list[dict[str, Any]]:
        out = []
        for f in findings:
            advice = advise(f.detector, f.modality, f.evidence, self.strategies, self.lr, self.known)
            head = headline(f.detector, f.modality, f.step, f.start_step, f.evidence)
            alert = {
                "key": alert_key(f.detector, f.modality, f.step),
                "kind": "alert",
                "detector": f.detector,
                "severity": SEVERITY.get(f.detector, "warning"),
                "modality": f.modality,
                "step": f.step,
                "epoch": epoch,
                "step_range": [f.start_step, f.step],
                "evidence": f.evidence,
                "advice": advice,
                "message": f"{head}: {advice['text']}" if advice["text"] else head,
            }
            if f.detector == "divergence" and self.diverged is None:
                self.diverged = alert
            self.alerts.append(alert)
            out.append(alert)
        return out

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> list[dict[str, Any]]:
        findings: list[Finding] = []
        if self.check_divergence and self.diverged is None:
            bad = divergence_finding(step, metrics, "train")
            if bad is not None:
                findings.append(bad)
        for d in self.step_detectors:
            findings += d.update(step, metrics)
        if self.overfit is not None:
            self.overfit.on_step(metrics)
        return self._emit(findings, epoch) if findings else []

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> list[dict[str, Any]]:
        findings: list[Finding] = []
        if self.check_divergence and self.diverged is None:
            bad = divergence_finding(step, metrics, "val")
            if bad is not None:
                findings.append(bad)
        if self.under is not None:
            findings += self.under.update(step, metrics)
        if self.overfit is not None:
            findings += self.overfit.update(step, metrics)
        return self._emit(findings, epoch) if findings else []

    def on_reference(
        self, step: int, epoch: int, accs: Mapping[str, float], reference: Mapping[str, float]
    ) -> list[dict[str, Any]]:
        """Uni-modal accuracies against what each modality reaches alone (linear probe)."""
        if self.under is None:
            return []
        return self._emit(self.under.check_reference(step, dict(accs), dict(reference)), epoch)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": [d.state_dict() for d in self.step_detectors],
            "under": self.under.state_dict() if self.under else None,
            "overfit": self.overfit.state_dict() if self.overfit else None,
            "alerts": list(self.alerts),
            "diverged": self.diverged,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for d, st in zip(self.step_detectors, state.get("step", []), strict=False):
            d.load_state_dict(st)
        if self.under is not None and state.get("under"):
            self.under.load_state_dict(state["under"])
        if self.overfit is not None and state.get("overfit"):
            self.overfit.load_state_dict(state["overfit"])
        self.alerts = list(state.get("alerts", []))
        self.diverged = state.get("diverged")
