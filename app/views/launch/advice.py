"""`/launch?from=RUN_ID&advice=ALERT_ID`: the run's config with the alert's advice applied
(`bml_core.alerts.apply_advice`: the suggested strategy replaces the run's one of the same
name or joins the list, `joint` goes, the other strategies stay, overrides are set), put
into the launch form through `logic.values_from_config`. Plain functions, no Streamlit;
`apply_query` is the page's one hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine

import db
from app.views.launch.fields import values_from_config
from bml_core.alerts import apply_advice
from bml_core.config import ConfigError

QUERY_STATE = "launch_advice_query"  # the (from, advice) link already applied
NOTE_STATE = "launch_advice_note"  # ("info" | "error", text) shown at the top of the form


class AdviceError(ValueError):
    """The link names no such run or alert, or an alert of another run."""


def advised_config(engine: Engine, run_id: int, alert_id: int, choice: int = 0) -> tuple[dict[str, Any], str]:
    """(the run's config with the alert's advice alternative `choice` applied, a note saying
    what changed). AdviceError with the reason when the link does not fit."""
    try:
        run = db.get_run(engine, run_id)
    except db.RunNotFound:
        raise AdviceError(f"there is no run #{run_id}") from None
    event = db.get_event(engine, alert_id)
    if event is None or event.kind != "alert":
        raise AdviceError(f"there is no alert #{alert_id}")
    if event.run_id != run_id:
        raise AdviceError(f"alert #{alert_id} belongs to run #{event.run_id}, not to run #{run_id}")
    advice = (event.data or {}).get("advice") or {}
    try:
        raw = apply_advice(run.config, advice, choice)
    except IndexError:
        raise AdviceError(f"alert #{alert_id} has no suggestion {choice}") from None
    options = advice.get("strategies") or []
    what = []
    if options:
        chosen = options[choice]
        what.append(
            f"strategy {chosen['name']} ("
            + ", ".join(f"{k} {v}" for k, v in chosen.items() if k != "name")
            + ")"
        )
    what += [f"{k} = {v}" for k, v in (advice.get("overrides") or {}).items()]
    note = (
        f"Run #{run_id}'s config with the advice of alert #{alert_id} applied: "
        + ("; ".join(what) if what else "nothing to change")
        + f". The alert: {event.message}"
    )
    raw["name"] = f"{run.name} (advice #{alert_id})"[:200]
    return raw, note


def apply_query(
    query: Mapping[str, Any], state: Any, engine: Engine, fill: Callable[[dict[str, Any]], None]
) -> bool:
    """The launch page's hook, after its `?from=RUN_ID` fill: with `from` and `advice` in the
    address, fill the form once per distinct link with the advised config
    (`fill(widget values)`: the page's own form filler). True when it filled."""
    run_param, alert_param = query.get("from"), query.get("advice")
    if not run_param or not alert_param:
        return False
    link = (str(run_param), str(alert_param))
    if state.get(QUERY_STATE) == link:
        return False
    state[QUERY_STATE] = link
    if not (link[0].isdigit() and link[1].isdigit()):
        state[NOTE_STATE] = ("error", "from= and advice= in the address must be a run id and an alert id")
        return False
    try:
        raw, note = advised_config(engine, int(link[0]), int(link[1]))
        values = values_from_config(raw)
    except AdviceError as exc:
        state[NOTE_STATE] = ("error", f"Cannot apply the advice: {exc}.")
        return False
    except ConfigError as exc:
        state[NOTE_STATE] = ("error", f"The advised config does not validate: {exc}")
        return False
    fill(values)
    state[NOTE_STATE] = ("info", note)
    return True
