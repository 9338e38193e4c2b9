"""A checked launch form submitted through `services.actions`: one run per seed, or the
sweep grid; the client's field errors routed back to their widgets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.views.launch.check import LaunchCheck
from app.views.launch.fields import GENERAL_ERROR_PATH, SWEEP_GRID_PATH
from app.views.launch.parse import route_error
from bml_core.config import (
    ConfigError,
)


@dataclass
class LaunchResult:
    run_ids: list[int]
    sweep_id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)
    failure: str | None = None


def submit_checked(
    check: LaunchCheck, strategy_names: Sequence[str], engine: Any = None, actor: Any = None
) -> LaunchResult:
    """Submit a checked form through services.actions as `actor`: one run per seed, or the
    sweep grid. Field errors the client still finds come back routed to their widgets."""
    from services import actions as client

    if not check.ok or check.config is None:
        return LaunchResult([], errors=dict(check.errors) or {GENERAL_ERROR_PATH: "the form has errors"})
    try:
        if check.grid is not None:
            sweep_id, ids = client.submit_sweep(
                check.config.to_dict(),
                check.grid,
                check.seeds,
                name=check.sweep_name or "",
                engine=engine,
                actor=actor,
            )
            return LaunchResult(ids, sweep_id=sweep_id)
        return LaunchResult(client.submit(check.config, check.seeds, engine=engine, actor=actor))
    except ConfigError as exc:
        errors: dict[str, str] = {}
        for path, msg in exc.errors:
            label, sep, rest = path.partition(": ")
            if sep and check.grid is not None:
                errors.setdefault(SWEEP_GRID_PATH, f"{label}: {rest}: {msg}")
            else:
                errors.setdefault(route_error(path, strategy_names), msg)
        return LaunchResult([], errors=errors)
    except Exception as exc:  # noqa: BLE001 - broker or store trouble: shown to the user as is
        return LaunchResult([], failure=f"{type(exc).__name__}: {exc}")
