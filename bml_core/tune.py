"""Search spaces of `bml tune` (issue 23): `PATH=float(lo,hi[,log])|int(lo,hi)|cat(a,b,...)`,
parsed and validated against the run config's own schema before anything is enqueued. Torch-free
and Optuna-free (the CLI and the dashboard import it); the Optuna side lives in `services.tuning` (the driver) and `bml_cli.tune_cmd`.

A path is a dotted config key as for `--set` (`optim.lr`, `strategies.0.alpha`) or, for a
strategy's parameter, the strategy's name in place of its index (`ogm_ge.alpha`). A range is
checked by validating the config with each bound in place, a categorical by validating each
choice, so every rule of the schema (`ge`/`le`, `Literal` choices, strategy rules) applies."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from bml_core.config import ConfigError, apply_override, validate_config
from bml_core.dataspecs import get_dataset_spec

# The fields the trainer logs after each evaluation (`EvalResult.as_metrics` in bml_core.trainer,
# CONTRACT.md "Metric keys": `val/<field>` and `val/acc/<modality>`); a study optimises one of them.
EVAL_FIELDS = ("acc", "f1", "map", "loss", "imbalance_degree")

KINDS = ("float", "int", "cat")
_SPEC = re.compile(r"^\s*([^=\s]+)\s*=\s*(float|int|cat)\s*\((.*)\)\s*$", re.DOTALL)
MAX_CHOICES = 64


@dataclass(frozen=True)
class SearchParam:
    """One searched key: `path` as written on the command line, `key` the resolved dotted
    config path (`strategies.0.alpha`), the kind and its bounds or choices."""

    path: str
    key: str
    kind: str  # float | int | cat
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.key, "kind": self.kind}
        if self.kind == "cat":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log)
        return out


def _usage(text: str, why: str) -> ConfigError:
    return ConfigError(
        [
            (
                "--space",
                f"{text!r}: {why}; write PATH=float(lo,hi[,log]), PATH=int(lo,hi) or PATH=cat(a,b,...), "
                "e.g. strategies.0.alpha=float(0.1,1.0,log)",
            )
        ]
    )


def _number(text: str, kind: str, whole: str) -> float | int:
    try:
        value = float(text) if kind == "float" else int(text)
    except ValueError:
        raise _usage(
            whole, f"{text.strip()!r} is not {'a number' if kind == 'float' else 'an integer'}"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _usage(whole, f"{text.strip()!r} is not a finite number")
    return value


def parse_param(text: str) -> SearchParam:
    """Parse one `--space` value (syntax only; `check_space` checks it against a config)."""
    m = _SPEC.match(text or "")
    if not m:
        raise _usage(text, "not a search space")
    path, kind, body = m.group(1), m.group(2), m.group(3)
    parts = [p.strip() for p in body.split(",")]
    if kind == "cat":
        if not parts or any(p == "" for p in parts):
            raise _usage(text, "cat(...) needs one or more comma-separated choices, none empty")
        if len(parts) > MAX_CHOICES:
            raise _usage(text, f"at most {MAX_CHOICES} choices")
        choices = tuple(_yaml_value(p) for p in parts)
        if len({repr(c) for c in choices}) != len(choices):
            raise _usage(text, "a choice is listed twice")
        return SearchParam(path=path, key=path, kind="cat", choices=choices)
    log = False
    if kind == "float" and len(parts) == 3:
        if parts[2] != "log":
            raise _usage(text, f"the third argument of float(...) can only be 'log', not {parts[2]!r}")
        log, parts = True, parts[:2]
    if len(parts) != 2:
        raise _usage(text, f"{kind}(...) needs a lower and an upper bound")
    low, high = (_number(p, kind, text) for p in parts)
    if not low < high:
        raise _usage(text, f"the lower bound {low} must be below the upper bound {high}")
    if log and low <= 0:
        raise _usage(text, f"a log range needs a lower bound above 0 (got {low})")
    return SearchParam(path=path, key=path, kind=kind, low=low, high=high, log=log)


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _lookup(dumped: Any, parts: list[str]) -> bool:
    node = dumped
    for part in parts:
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return False
            node = node[int(part)]
        elif isinstance(node, Mapping):
            if part not in node:
                return False
            node = node[part]
        else:
            return False
    return not isinstance(node, (Mapping, list))


def _resolve(path: str, dumped: Mapping[str, Any]) -> str:
    """`ogm_ge.alpha` -> `strategies.N.alpha` (N: that strategy's index); other paths as given."""
    first, _, rest = path.partition(".")
    if first not in dumped and rest:
        names = [s.get("name") for s in dumped.get("strategies", [])]
        if first in names:
            return f"strategies.{names.index(first)}.{rest}"
    return path


def normalized(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw config with the `strategies: ogm_ge` shorthand as a list, so that
    `strategies.0.alpha` can be set."""
    out = copy.deepcopy(dict(raw))
    if isinstance(out.get("strategies"), str):
        out["strategies"] = [out["strategies"]]
    return out


def check_space(raw: Mapping[str, Any], params: Iterable[SearchParam]) -> list[SearchParam]:
    """Resolve each parameter's path in the config `raw` and validate every bound and choice
    with the config's schema; raise ConfigError naming each bad `--space` (nothing else runs)."""
    raw = normalized(raw)
    base = validate_config(raw)
    dumped = base.to_dict()
    out: list[SearchParam] = []
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for p in params:
        key = _resolve(p.path, dumped)
        where = f"--space {p.path}"
        if key in seen:
            errors.append((where, "searched twice; give each path once"))
            continue
        seen.add(key)
        if not _lookup(dumped, key.split(".")):
            strategies = [s.get("name") for s in dumped.get("strategies", [])]
            errors.append(
                (
                    where,
                    f"no such parameter in this config (a dotted key such as optim.lr or "
                    f"strategies.0.alpha; the config's strategies: {strategies or 'none'})",
                )
            )
            continue
        values = list(p.choices) if p.kind == "cat" else [p.low, p.high]
        for value in values:
            trial = copy.deepcopy(dict(raw))
            try:
                apply_override(trial, key.split("."), value)
                validate_config(trial)
            except ConfigError as exc:
                what = "choice" if p.kind == "cat" else "bound"
                msgs = "; ".join(f"{path}: {msg}" for path, msg in exc.errors)
                errors.append((where, f"the {what} {value!r} is outside what the config accepts ({msgs})"))
        out.append(
            SearchParam(
                path=p.path, key=key, kind=p.kind, low=p.low, high=p.high, log=p.log, choices=p.choices
            )
        )
    if not out and not errors:
        errors.append(("--space", "give at least one --space PATH=float(lo,hi)|int(lo,hi)|cat(a,b,...)"))
    if errors:
        raise ConfigError(errors)
    return out


def evaluation_keys(raw: Mapping[str, Any]) -> tuple[list[str], list[str] | None]:
    """The `val/...` keys a run of this config logs at each evaluation, and the config's
    modalities (None when only the data file knows them: then any `val/acc/<name>` is allowed)."""
    cfg = validate_config(normalized(raw))
    spec = get_dataset_spec(cfg.dataset.name)
    modalities: list[str] | None = None
    if spec is not None:
        modalities = list(spec.modalities(spec.params(**cfg.dataset.params))) or None
    keys = [f"val/{f}" for f in EVAL_FIELDS] + [f"val/acc/{m}" for m in modalities or []]
    return keys, modalities


def check_metric(raw: Mapping[str, Any], metric: str) -> str:
    """`metric` if a run of this config logs it at each evaluation; else ConfigError on --metric
    listing the keys it does log."""
    keys, modalities = evaluation_keys(raw)
    if metric in keys:
        return metric
    name = metric.removeprefix("val/acc/")
    if modalities is None and metric.startswith("val/acc/") and re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
        return metric
    listed = ", ".join(keys) + ("" if modalities else ", val/acc/<modality>")
    raise ConfigError(
        [
            (
                "--metric",
                f"{metric!r} is never logged by this config's runs (evaluated each train.eval_every "
                f"epochs); give one of {listed}",
            )
        ]
    )


def parse_space(raw: Mapping[str, Any], texts: Iterable[str]) -> list[SearchParam]:
    """Parse every `--space` text and check them against the config (all errors together)."""
    params: list[SearchParam] = []
    errors: list[tuple[str, str]] = []
    for text in texts:
        try:
            params.append(parse_param(text))
        except ConfigError as exc:
            errors += exc.errors
    if errors:
        raise ConfigError(errors)
    return check_space(raw, params)


def trial_config(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The raw config with each searched key (resolved dotted path) set to its sampled value."""
    out = normalized(raw)
    for key, value in values.items():
        apply_override(out, key.split("."), value)
    return out


def space_signature(params: Iterable[SearchParam]) -> list[dict[str, Any]]:
    """The space as stored with a study (reusing a name with another space is refused)."""
    return sorted((p.to_dict() for p in params), key=lambda d: str(d["path"]))
