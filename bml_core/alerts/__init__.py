"""Imbalance alerts: torch-free streaming detectors over a run's metric series
(`detectors.py`), their `alerts:` config (`config.py`), the advice rules (`advice.py`),
the per-run monitor the trainer feeds (`monitor.py`) and the optional webhook sink
(`webhook.py`). docs/ALERTS.md documents the detectors, defaults and rules."""

from bml_core.alerts.advice import advise, apply_advice
from bml_core.alerts.config import AlertsConfig
from bml_core.alerts.monitor import AlertMonitor, alert_key

__all__ = ["AlertMonitor", "AlertsConfig", "advise", "alert_key", "apply_advice"]
